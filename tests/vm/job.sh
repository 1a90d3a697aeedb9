#!/bin/bash
# The issue #23 run inside the cgroup v2 VM (scripts/vm-cgroup2.sh boots it): scripts/demo.sh, the CLI as
# root and as a normal user in a systemd user session, then the cgroup-focused tests and the notebooks as root
# and as that user.
. /job/job.sh.d/common.sh
facts
sec "unpack the checkout"
mkdir -p /root/work && tar -C /root/work -xf /job/kernelext.tar && cd "$SRC" && pwd
PARTS=${JOB_PARTS:-demo cli-root restore-rename cli-rootless tests notebooks}  # a rerun on the same disk may take fewer
if [[ " $PARTS " == *" demo "* ]]; then
    sec "scripts/demo.sh"
    run bash -c 'scripts/demo.sh 2>&1 | tee /job/out/demo.log; exit ${PIPESTATUS[0]}'
fi
[ -x .venv/bin/kernelext ] || { echo "no .venv/bin/kernelext: stop"; exit 1; }
for part in cli-root restore-rename cli-rootless tests notebooks; do
    [[ " $PARTS " == *" $part "* ]] && bash /job/job.sh.d/$part.sh 2>&1 | tee /job/out/$part.log
done
sec "summary"
grep -h '^CHECK ' /job/out/cli-*.log /job/out/restore-rename.log 2>/dev/null | sort | uniq -c
grep -h -E '^(FAILED|ERROR)|[0-9]+ (passed|failed)' /job/out/tests.log /job/out/notebooks.log 2>/dev/null | tail -30
