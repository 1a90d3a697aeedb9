#!/bin/bash
# The CLI by hand as root on systemd + cgroup v2: the manager, where the container and conmon are
# (systemd-cgls), stats with a real limit, pause through cgroup.freeze, checkpoint/restore, OOM, and that
# no cgroup is left; then a container started from a systemd service outlives that service.
. /job/job.sh.d/common.sh
cd "$SRC"; K=$PWD/.venv/bin/kernelext
export KERNELEXT_FORKSERVER=0  # each command on its own: what it does is what is measured
sec "root: info"
run $K info
check root-info-manager-systemd test "$($K info --format '{{.host.cgroupManager}}')" = systemd
check root-info-v2 test "$($K info --format '{{.host.cgroupVersion}}')" = v2
sec "root: run -d, placement"
run $K run -d --name cnt --memory 64m busybox sh -c 'i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 0.5; done'
sleep 2
ID=$($K inspect --format '{{.Id}}' cnt); PID=$($K inspect --format '{{.State.Pid}}' cnt)
CPID=$($K inspect --format '{{.State.ConmonPid}}' cnt)
run cat /proc/$PID/cgroup /proc/$CPID/cgroup
check root-ctr-in-machine-slice grep -qx "0::/machine.slice/libpod-$ID.scope" /proc/$PID/cgroup
check root-conmon-own-scope grep -qx "0::/machine.slice/libpod-conmon-$ID.scope" /proc/$CPID/cgroup
run systemctl status --no-pager "libpod-$ID.scope" "libpod-conmon-$ID.scope"
run sh -c "systemd-cgls --no-pager -u machine.slice | head -20"
run $K inspect --format '{{.HostConfig.CgroupManager}} {{.HostConfig.CgroupParent}} {{.HostConfig.CgroupnsMode}} {{.State.CgroupPath}}' cnt
check root-inspect-cgrouppath test "$($K inspect --format '{{.State.CgroupPath}}' cnt)" = "/machine.slice/libpod-$ID.scope"
run $K exec cnt cat /proc/self/cgroup
sec "root: stats / top"
run $K stats --no-stream cnt
MEM=$($K stats --no-stream --format '{{.MemLimit}}' cnt); echo "MemLimit: $MEM"
check root-stats-limit test "$MEM" = 67108864
run $K stats --no-stream --format json cnt
run $K top cnt
sec "root: pause / unpause"
run $K pause cnt
check root-paused-freeze grep -qx 1 /sys/fs/cgroup/machine.slice/libpod-$ID.scope/cgroup.freeze
L1=$($K logs cnt | wc -l); sleep 2; L2=$($K logs cnt | wc -l); echo "log lines while paused: $L1 -> $L2"
check root-paused-no-output test "$L1" = "$L2"
run $K unpause cnt
sec "root: checkpoint / restore"
run $K checkpoint cnt
check root-no-cgroup-after-checkpoint test ! -e /sys/fs/cgroup/machine.slice/libpod-$ID.scope
run $K restore cnt
sleep 1.5
run $K logs --tail 2 cnt
NPID=$($K inspect --format '{{.State.Pid}}' cnt)
check root-restored-in-scope grep -qx "0::/machine.slice/libpod-$ID.scope" /proc/$NPID/cgroup
run $K checkpoint -R -e /tmp/cnt.tar.zst cnt
run $K restore -i /tmp/cnt.tar.zst -n cnt2
ID2=$($K inspect --format '{{.Id}}' cnt2)
run $K rm -f cnt cnt2
sleep 1
run sh -c "ls /sys/fs/cgroup/machine.slice/ | grep libpod || true"
check root-no-cgroup-after-rm sh -c "! ls /sys/fs/cgroup/machine.slice/ | grep -q -e $ID -e $ID2"
sec "root: OOM on v2 (conmon's oom file, else the kernel's report of the kill)"
for i in 1 2 3 4 5; do  # conmon alone missed most of these (it drops its watch; systemd removes the scope)
    run $K run --name oom --memory 20m busybox sh -c 'x=a; while :; do x=$x$x; done'
    OID=$($K inspect --format '{{.Id}}' oom)
    run $K inspect --format '{{.State.OOMKilled}} {{.State.ExitCode}}' oom
    echo "conmon's oom file: $(ls /run/kernelext/storage/persist/$OID/oom 2>/dev/null || echo none)"
    run sh -c "dmesg | grep 'oom-kill:' | grep -c $OID"
    check root-oom-detected-$i test "$($K inspect --format '{{.State.OOMKilled}}' oom)" = true
    run $K rm oom
done
sec "root: a container started by a systemd service outlives the service"
run systemd-run --unit kx-svc --wait -p Type=oneshot -E KERNELEXT_FORKSERVER=0 $K run -d --name svc busybox sleep 1000
sleep 1
run systemctl status --no-pager kx-svc
SPID=$($K inspect --format '{{.State.Pid}}' svc); SC=$($K inspect --format '{{.State.ConmonPid}}' svc)
run cat /proc/$SPID/cgroup /proc/$SC/cgroup
check root-svc-container-survives test "$($K inspect --format '{{.State.Status}}' svc)" = running
check root-svc-conmon-survives kill -0 "$SC"
run $K rm -f svc
sec "root: --cgroup-manager cgroupfs and --cgroup-parent"
run $K --cgroup-manager cgroupfs run --rm busybox cat /proc/self/cgroup
run $K run --rm --cgroupns host --cgroup-parent kxtest.slice busybox cat /proc/self/cgroup
check root-cgroup-parent-slice sh -c "$K run --rm --cgroupns host --cgroup-parent kxtest.slice busybox cat /proc/self/cgroup | grep -q '^0::/kxtest.slice/libpod-'"
run $K ps -a
