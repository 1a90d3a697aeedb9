#!/usr/bin/env bash
# stage-checkout.sh DEST OWNER: copy this checkout's sources (tracked and new files, not
# ignored ones such as .venv) to DEST, owned by OWNER and readable by everyone.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=$1 owner=$2

install -d -o "$owner" -m 0755 "$dest"
if [ -d .git ] || git rev-parse --git-dir >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null
else
    tar --exclude=./.venv --exclude=.git -cf - .
fi | runuser -u "$owner" -- sh -c 'umask 022; exec tar --extract --file - -C "$1"' sh "$dest"
