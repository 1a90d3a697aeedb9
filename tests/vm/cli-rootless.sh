#!/bin/bash
# The CLI by hand as a normal user with a systemd user manager: the user's manager places the container
# (user.slice/libpod-<id>.scope, delegated), pause works, stats show the limit.
. /job/job.sh.d/common.sh
STAGE=/var/lib/kernelext-rootless-tests
KX=$STAGE/.venv/bin/kernelext
U=kernelext-test; UID_=$(id -u $U)
run "$SRC"/scripts/stage-checkout.sh $STAGE $U
run loginctl enable-linger $U
for _ in $(seq 60); do [ -S /run/user/$UID_/bus ] && break; sleep 1; done
u() {  # a shell command as the user, in a scope of its systemd manager
    runuser -u $U -- env -i HOME=/home/$U USER=$U LANG=C.UTF-8 PATH=/usr/bin:/bin:/usr/sbin:/sbin \
        KERNELEXT_FORKSERVER=0 XDG_RUNTIME_DIR=/run/user/$UID_ DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$UID_/bus \
        systemd-run --user --scope --quiet -- bash -c "$1"
}
sec "rootless: environment"
run u 'id; cat /proc/self/cgroup'
run systemctl show user@$UID_.service -p Delegate -p DelegateControllers
run u "$KX info"
check user-info-manager-systemd test "$(u "$KX info --format '{{.host.cgroupManager}}'")" = systemd
sec "rootless: run -d"
run u "$KX run -d --name r1 --memory 64m busybox sh -c 'i=0; while :; do echo tick \$i; i=\$((i+1)); sleep 0.5; done'"
sleep 2
PID=$(u "$KX inspect --format '{{.State.Pid}}' r1"); CPID=$(u "$KX inspect --format '{{.State.ConmonPid}}' r1")
ID=$(u "$KX inspect --format '{{.Id}}' r1")
run cat /proc/$PID/cgroup /proc/$CPID/cgroup
check user-ctr-in-user-slice grep -q "^0::/user.slice/user-$UID_.slice/user@$UID_.service/user.slice/libpod-$ID.scope$" /proc/$PID/cgroup
check user-conmon-own-scope grep -q "/libpod-conmon-$ID.scope$" /proc/$CPID/cgroup
run sh -c "systemd-cgls --no-pager -u user@$UID_.service | head -30"
PAUSE=$(pgrep -u $U -x sleep | head -1); run cat /proc/$PAUSE/cgroup
check user-pause-process-own-scope grep -q "/kernelext-pause-$PAUSE.scope$" /proc/$PAUSE/cgroup
run u "$KX inspect --format '{{.HostConfig.CgroupManager}} {{.HostConfig.CgroupParent}} {{.State.CgroupPath}}' r1"
sec "rootless: stats / pause"
run u "$KX stats --no-stream r1"
MEM=$(u "$KX stats --no-stream --format '{{.MemLimit}}' r1"); echo "MemLimit: $MEM"
check user-stats-limit test "$MEM" = 67108864
run u "$KX pause r1"
check user-paused test "$(u "$KX inspect --format '{{.State.Status}}' r1")" = paused
run u "$KX unpause r1"
check user-unpaused test "$(u "$KX inspect --format '{{.State.Status}}' r1")" = running
run u "$KX top r1"
sec "rootless: stop / rm"
run u "$KX rm -f r1"
sleep 1
check user-no-scope-left sh -c "! systemd-cgls --no-pager -u user@$UID_.service | grep -q $ID"
run u "$KX ps -a"
run loginctl terminate-user $U
