#!/bin/bash
# Issue #23: a container restored from an exported archive under a new name must run in its own cgroup (runc
# before 1.2 does not name it to CRIU on v2: kernelext does, docs/architecture.md §15), so it checkpoints
# again (CRIU freezes that cgroup) and restores again; then nothing of either container is left.
. /job/job.sh.d/common.sh
cd "$SRC"; K=$PWD/.venv/bin/kernelext
export KERNELEXT_FORKSERVER=0
ARCH=/tmp/rr.tar.zst
where() {  # NAME: the restored PID's cgroup against its own scope (inspect's CgroupPath is read from the PID)
    local pid id; pid=$($K inspect --format '{{.State.Pid}}' "$1"); id=$($K inspect --format '{{.Id}}' "$1")
    echo "$1: pid $pid /proc/$pid/cgroup: $(cat /proc/$pid/cgroup 2>&1)"
    echo "$1: its own: /machine.slice/libpod-$id.scope; State.CgroupPath: $($K inspect --format '{{.State.CgroupPath}}' "$1")"
    check "rr-$1-in-own-cgroup" grep -qx "0::/machine.slice/libpod-$id.scope" /proc/$pid/cgroup
}
sec "root, without the fix (for the record): restore -i ARCHIVE -n NEW, checkpoint --leave-running NEW"
# The same kernelext with the cgroup left to CRIU alone, as before the fix: the tasks land in the old scope.
B=(.venv/bin/python -c 'import sys, kernelext.core.checkpoint as c; c._pin_restore_cgroup = lambda ctr: None
from kernelext.cli import console; sys.exit(console())')
run $K run -d --name rb busybox sh -c 'i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 0.5; done'
sleep 2
run "${B[@]}" checkpoint -e $ARCH rb
run "${B[@]}" restore -i $ARCH -n rb2
P=$($K inspect --format '{{.State.Pid}}' rb2)
echo "rb2 (no fix): pid $P /proc/$P/cgroup: $(cat /proc/$P/cgroup 2>&1)"
echo "rb2 (no fix): its own: /machine.slice/libpod-$($K inspect --format '{{.Id}}' rb2).scope; rb's: libpod-$($K inspect --format '{{.Id}}' rb).scope"
run "${B[@]}" checkpoint --leave-running rb2
run $K rm -f rb rb2; rm -f $ARCH
sec "root: restore -i ARCHIVE -n NEW, then checkpoint and restore the new one"
run $K run -d --name rr busybox sh -c 'i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 0.5; done'
sleep 2
ID=$($K inspect --format '{{.Id}}' rr)
run $K checkpoint -e $ARCH rr
run $K restore -i $ARCH -n rr2
ID2=$($K inspect --format '{{.Id}}' rr2)
where rr2
run cat "$($K inspect --format '{{.StaticDir}}' rr2 2>/dev/null || echo /nonexistent)/criu-restore.conf"
run $K checkpoint --leave-running rr2
check rr-rr2-checkpoints-again test "$($K inspect --format '{{.State.Status}}' rr2)" = running
run $K checkpoint rr2
run $K restore rr2
check rr-rr2-restores-again test "$($K inspect --format '{{.State.Status}}' rr2)" = running
where rr2
sleep 1.5; run $K logs --tail 2 rr2
check rr-rr2-counter-goes-on sh -c "$K logs --tail 1 rr2 | grep -q '^tick [1-9]'"
run $K rm -f rr rr2
sleep 1
check rr-no-cgroup-left sh -c "! ls /sys/fs/cgroup/machine.slice/ | grep -q -e $ID -e $ID2"
rm -f $ARCH
