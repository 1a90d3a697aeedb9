#!/usr/bin/env bash
# Sets everything up, then drives real containers on the built-in busybox
# image in the default store: attached run, background run, exec, logs,
# pause, copy in, checkpoint/restore (where CRIU works), stop with the SIGKILL
# escalation, inspect, ps, and clean-up.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
K=.venv/bin/kernelext
step() { printf '\n\033[1m$ kernelext %s\033[0m\n' "$*"; "$K" "$@"; }

step info
step run --rm busybox sh -c 'echo "hello from $(hostname), pid $$, as $(id -un)"'
step run -d --name demo-counter busybox sh -c 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done'
sleep 1
step exec demo-counter sh -c 'echo "inside: $(ps | wc -l) processes"; ls /'
step logs --tail 3 demo-counter
step pause demo-counter
step ps -a
step unpause demo-counter
echo "hello from the host" > /tmp/kernelext-demo.txt
step cp /tmp/kernelext-demo.txt demo-counter:/tmp/
step exec demo-counter cat /tmp/kernelext-demo.txt
rm -f /tmp/kernelext-demo.txt
if "$K" info --format '{{.features.checkpoint.available}}' | grep -q true; then
    step checkpoint demo-counter
    step restore demo-counter
    sleep 0.5
    step logs --tail 3 demo-counter   # the counter carries on from where it was checkpointed
fi
step stop -t 2 demo-counter
step inspect --format '{{.Name}}: {{.State.Status}}, exit code {{.State.ExitCode}}' demo-counter
step rm demo-counter
echo; echo "demo finished: every container removed"
