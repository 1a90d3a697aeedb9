# Sourced by the VM job scripts (inside the cgroup v2 VM, as root): output helpers and the host's facts.
[ -f /job/env ] && { set -a; . /job/env; set +a; }
SRC=/root/work/$(cat /job/srcname 2>/dev/null || echo kernelext)
sec() { printf '\n===== %s (%s)\n' "$*" "$(date +%T)"; }
# run CMD...: show it, run it, show its status and seconds; the job goes on whatever it returns.
run() {
    printf '+ %s\n' "$*"
    local t0=$EPOCHREALTIME rc
    "$@"; rc=$?
    printf '[rc=%s %ss]\n' "$rc" "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')"
    return 0
}
# check NAME CMD...: a verdict line the summary collects (PASS/FAIL NAME).
check() {
    local name=$1; shift
    if "$@"; then echo "CHECK PASS $name"; else echo "CHECK FAIL $name"; fi
    return 0
}
facts() {
    sec "facts: cgroup hierarchy, init, kernel, systemd"
    run stat -fc %T /sys/fs/cgroup
    run ps -p 1 -o comm=
    run uname -r
    run sh -c 'systemctl --version | head -1'
    run cat /sys/fs/cgroup/cgroup.controllers /sys/fs/cgroup/cgroup.subtree_control /proc/self/cgroup
}
# in_user_session TITLE SCRIPT: SCRIPT (a bash -c string, run in the staged checkout) as kernelext-test inside
# its systemd user manager (a scope of systemd-run --user, as a person's session gives), from the copy
# scripts/stage-checkout.sh prepares for that user.
in_user_session() {
    local title=$1 script=$2 u=kernelext-test stage=/var/lib/kernelext-rootless-tests uid
    uid=$(id -u $u)
    sec "$title"
    run "$SRC"/scripts/stage-checkout.sh $stage $u
    run loginctl enable-linger $u
    for _ in $(seq 60); do [ -S /run/user/$uid/bus ] && break; sleep 1; done
    run runuser -u $u -- env -i HOME=/home/$u USER=$u LANG=C.UTF-8 PATH=$stage/.venv/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        XDG_RUNTIME_DIR=/run/user/$uid DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$uid/bus \
        systemd-run --user --scope --quiet -- bash -c "cd $stage && $script"
}
