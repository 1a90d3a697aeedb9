#!/bin/bash
# The issue #23 run inside the cgroup v2 VM (scripts/vm-cgroup2.sh boots it): scripts/demo.sh, the CLI as
# root and as a normal user in a systemd user session, then the cgroup-focused tests as root and as that user.
. /job/job.sh.d/common.sh
facts
sec "unpack the checkout"
mkdir -p /root/work && tar -C /root/work -xf /job/kernelext.tar && cd "$SRC" && pwd
sec "scripts/demo.sh"
run bash -c 'scripts/demo.sh 2>&1 | tee /job/out/demo.log; exit ${PIPESTATUS[0]}'
[ -x .venv/bin/kernelext ] || { echo "no .venv/bin/kernelext: stop"; exit 1; }
bash /job/job.sh.d/cli-root.sh 2>&1 | tee /job/out/cli-root.log
bash /job/job.sh.d/cli-rootless.sh 2>&1 | tee /job/out/cli-rootless.log
bash /job/job.sh.d/tests.sh 2>&1 | tee /job/out/pytest.log
sec "summary"
grep -h '^CHECK ' /job/out/cli-root.log /job/out/cli-rootless.log | sort | uniq -c
grep -h -E '^(FAILED|ERROR|[0-9]+ (passed|failed))|passed|failed' /job/out/pytest.log | tail -20
