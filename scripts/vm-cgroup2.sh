#!/usr/bin/env bash
# Runs issue #23's check in a Debian 12 VM with systemd as PID 1 and the unified cgroup v2 hierarchy:
# scripts/demo.sh, the CLI as root and as a normal user in a systemd user session, and the cgroup-focused
# tests (tests/vm/job.sh). Run as root. Slow under software emulation: ~25 minutes a run here.
#
#   scripts/vm-cgroup2.sh [OUTDIR]
#
# The VM itself (debootstrap image, qemu boot, job disk, logs copied out) comes from the vm-cgroup2 tool,
# kept beside the checkout on the build machines (../shared/tools/vm-cgroup2; KERNELEXT_VM_TOOL overrides):
# build.sh makes WORKDIR/base.img once, preinstall.sh runs setup.sh natively in a chroot of it
# (WORKDIR/base-pre.img, so the VM does not spend half an hour on apt), run-in-vm.sh boots a copy-on-write
# overlay of it, runs the job and copies /job/out back. VM_WORKDIR (default /tmp/vm-cg2), VM_CPUS
# (default 1 here: the host keeps a core), VM_MEM, VM_REBUILD=1 (a fresh base image and preinstall),
# JOB_PARTS (default "demo cli-root cli-rootless tests"), JOB_ROOT_TESTS / JOB_USER_TESTS (the selections).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
TOOL=${KERNELEXT_VM_TOOL:-$REPO/../shared/tools/vm-cgroup2}
[ -x "$TOOL/run-in-vm.sh" ] || { echo "vm-cgroup2: no VM tool at $TOOL (set KERNELEXT_VM_TOOL)" >&2; exit 2; }
export VM_WORKDIR=${VM_WORKDIR:-/tmp/vm-cg2} VM_CPUS=${VM_CPUS:-1} KERNELEXT_SRC=$REPO
OUT=${1:-$VM_WORKDIR/out-cgroup2-$(date +%Y%m%d-%H%M%S)}
if [ -n "${VM_REBUILD:-}" ] || [ ! -f "$VM_WORKDIR/base.img" ]; then
    "$TOOL/build.sh" "$VM_WORKDIR"
fi
if [ -n "${VM_REBUILD:-}" ] || [ ! -f "$VM_WORKDIR/base-pre.img" ]; then
    "$TOOL/preinstall.sh" "$VM_WORKDIR"
fi
# VM_REUSE=1: the previous run's disk (setup done), e.g. with JOB_PARTS="cli-root tests" for a quicker rerun.
VM_BASE=base-pre.img "$TOOL/run-in-vm.sh" ${VM_REUSE:+-r} -t "${VM_TIMEOUT:-5400}" "$REPO/tests/vm/job.sh" "$OUT"
echo "vm-cgroup2: logs in $OUT (job.log, demo.log, cli-root.log, cli-rootless.log, tests.log, console.log)"
sed -n '/===== summary/,$p' "$OUT/job.log" 2>/dev/null || tail -n 30 "$OUT/console.log"
