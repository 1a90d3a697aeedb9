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
in_user_session "notebooks as kernelext-test in its systemd user manager (nbval-lax)" "timeout -s INT \
    $NB_USER_TIMEOUT .venv/bin/python -m pytest -p no:cacheprovider -o addopts= --nbval-lax --nbval-current-env -q \
    -rs --durations=0 $NOTEBOOKS_USER"
