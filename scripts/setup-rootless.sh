#!/usr/bin/env bash
# Prepares the rootless test run (issue #7), idempotently; run as root by scripts/setup.sh.
#
# Two normal users: one with subordinate ID ranges (/etc/subuid, /etc/subgid) and
# one without. A copy of this checkout that they can read (the checkout itself may
# sit where they cannot), with its own virtual environment from the system Python
# (the root venv's interpreter may be private to root). tests/test_rootless_suite.py
# refreshes the copy's sources and runs the tests as these users.
set -euo pipefail
cd "$(dirname "$0")/.."

USER_SUBIDS=${KERNELEXT_TEST_USER:-kernelext-test}
USER_PLAIN=${KERNELEXT_TEST_USER_PLAIN:-kernelext-test-plain}
STAGE=${KERNELEXT_ROOTLESS_STAGE:-/var/lib/kernelext-rootless-tests}

id -u "$USER_SUBIDS" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$USER_SUBIDS"
grep -q "^$USER_SUBIDS:" /etc/subuid || usermod --add-subuids 200000-265535 "$USER_SUBIDS"
grep -q "^$USER_SUBIDS:" /etc/subgid || usermod --add-subgids 200000-265535 "$USER_SUBIDS"
id -u "$USER_PLAIN" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$USER_PLAIN"

scripts/stage-checkout.sh "$STAGE" "$USER_SUBIDS"
if [ ! -x "$STAGE/.venv/bin/python" ]; then
    runuser -u "$USER_SUBIDS" -- /usr/bin/python3 -m venv "$STAGE/.venv"
fi
runuser -u "$USER_SUBIDS" -- env HOME="$STAGE" "$STAGE/.venv/bin/python" -m pip install -q \
    --disable-pip-version-check -e "$STAGE[test]" --config-settings editable_mode=compat
echo "setup: rootless test users $USER_SUBIDS (subordinate IDs) and $USER_PLAIN (none), copy in $STAGE"
