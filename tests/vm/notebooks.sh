#!/bin/bash
# The notebooks (tour, labs, debugging walkthrough) under nbval in the cgroup v2 VM (issue #22): as root with
# their stored outputs compared, then as kernelext-test inside its systemd user manager under --nbval-lax, as
# tests/test_rootless_suite.py runs them for a normal user (cells must run; the tagged outputs are compared).
. /job/job.sh.d/common.sh
cd "$SRC"
# SIGINT at the timeout: pytest then still reports the failures so far. JOB_NOTEBOOKS(_USER) narrow the selection.
NB_TIMEOUT=${JOB_NB_TIMEOUT:-1800}; NB_USER_TIMEOUT=${JOB_NB_USER_TIMEOUT:-$NB_TIMEOUT}
NOTEBOOKS=${JOB_NOTEBOOKS:-notebooks/}; NOTEBOOKS_USER=${JOB_NOTEBOOKS_USER:-$NOTEBOOKS}
sec "notebooks as root (nbval)"
run timeout -s INT "$NB_TIMEOUT" .venv/bin/python -m pytest -p no:cacheprovider -o addopts= --nbval \
    --nbval-current-env -q -rs --durations=0 $NOTEBOOKS
U=kernelext-test; UID_=$(id -u $U); STAGE=/var/lib/kernelext-rootless-tests
sec "notebooks as $U in its systemd user manager (nbval-lax)"
run scripts/stage-checkout.sh $STAGE $U
run loginctl enable-linger $U
for _ in $(seq 60); do [ -S /run/user/$UID_/bus ] && break; sleep 1; done
run runuser -u $U -- env -i HOME=/home/$U USER=$U LANG=C.UTF-8 PATH=$STAGE/.venv/bin:/usr/bin:/bin:/usr/sbin:/sbin \
    XDG_RUNTIME_DIR=/run/user/$UID_ DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$UID_/bus \
    systemd-run --user --scope --quiet -- bash -c "cd $STAGE && timeout -s INT $NB_USER_TIMEOUT .venv/bin/python \
    -m pytest -p no:cacheprovider -o addopts= --nbval-lax --nbval-current-env -q -rs --durations=0 $NOTEBOOKS_USER"
