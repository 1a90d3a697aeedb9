#!/usr/bin/env bash
# Run podman's own system tests (test/system/*.bats of podman v4.3.1) against kernelext through the
# `podman` shim beside this script, on a private store, and print per file how many tests pass.
#
#   tests/podman-system/run.sh -s PODMAN_SOURCE [-o OUTDIR] [-w] [FILE...]
#
# PODMAN_SOURCE: a clone of github.com/containers/podman (the files are read from its v4.3.1 tag) or a
# directory holding podman's test/system/ (used as it is); also $PODMAN_SOURCE. FILE: names such as
# 030-run (default: the lifecycle files below; -w adds the image, volume, copy and log files after them).
# Needs root, bats, skopeo and busybox-static
# (scripts/setup.sh installs them). Each file's TAP output is kept in OUTDIR (default: a new temp dir).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
PODMAN_TAG=v4.3.1
DEFAULT_FILES=(030-run 040-ps 045-start 050-stop 055-rm 075-exec 080-pause 090-events 130-kill)
# 120-load last: its test 6 removes the test image and, with no registry, nothing brings it back for what follows.
WIDER_FILES=(010-images 011-image 020-tag 035-logs 060-mount 065-cp 110-history 125-import 140-diff 160-volumes
             120-load)

source_dir=${PODMAN_SOURCE:-}
outdir=
wider=
while getopts "s:o:wh" opt; do
    case $opt in
    s) source_dir=$OPTARG ;;
    o) outdir=$OPTARG ;;
    w) wider=1 ;;
    *) sed -n '2,11p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
files=("$@")
[ ${#files[@]} -gt 0 ] || files=("${DEFAULT_FILES[@]}" ${wider:+"${WIDER_FILES[@]}"})
if [ -z "$source_dir" ]; then
    echo "run.sh: give podman's source with -s DIR (a clone of containers/podman, or a copy of its test/system)" >&2
    exit 2
fi
command -v bats >/dev/null || { echo "run.sh: bats is missing (apt-get install bats)" >&2; exit 2; }
python=${KERNELEXT_PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=/work/main/.venv/bin/python
export KERNELEXT_PYTHON=$python

work=$(mktemp -d /tmp/podman-system.XXXXXX)
outdir=${outdir:-$work/results}
mkdir -p "$outdir" "$work/system" "$work/tmp"
export PODMAN_SHIM_STORE=$work/store
export PODMAN=$here/podman
export PODMAN_TEST_IMAGE_FQN=quay.io/libpod/testimage:20220615

cleanup() {
    "$PODMAN" rm --all --force >/dev/null 2>&1 || true
    # Nothing of the store may stay mounted before its directory goes.
    findmnt -rn -o TARGET | grep "^$PODMAN_SHIM_STORE/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work/store" "$work/system" "$work/tmp"
    rmdir "$work" 2>/dev/null || true  # kept only when it holds the results
}
trap cleanup EXIT

# podman's test files and helpers, from the tag in a clone or as they are in a directory.
fetch_file() {
    if git -C "$source_dir" rev-parse --verify -q "$PODMAN_TAG^{commit}" >/dev/null 2>&1; then
        git -C "$source_dir" show "$PODMAN_TAG:test/system/$1"
    elif [ -f "$source_dir/test/system/$1" ]; then
        cat "$source_dir/test/system/$1"
    else
        cat "$source_dir/$1"
    fi
}
fetch_file helpers.bash >"$work/system/helpers.bash"
for f in "${files[@]}"; do
    fetch_file "$f.bats" >"$work/system/$f.bats"
done

# The stand-in for podman's test image (testimage.py), loaded into the private store.
PYTHONPATH=$repo "$python" "$here/testimage.py" "$work/testimage.tar" "$PODMAN_TEST_IMAGE_FQN" >/dev/null
"$PODMAN" load -i "$work/testimage.tar" >/dev/null
rm -f "$work/testimage.tar"

total_pass=0 total_all=0
printf '%-12s %5s %5s %5s %5s\n' file pass fail skip total
for f in "${files[@]}"; do
    tap=$outdir/$f.tap
    (cd "$work/system" && BATS_TMPDIR=$work/tmp TMPDIR=$work/tmp bats --tap "$f.bats") >"$tap" 2>&1 || true
    pass=$(grep -cE '^ok [0-9]+ ' "$tap" | tr -d '\n' || true)
    skip=$(grep -cE '^ok [0-9]+ .*# skip' "$tap" || true)
    fail=$(grep -cE '^not ok [0-9]+ ' "$tap" || true)
    pass=$((pass - skip))
    all=$((pass + fail + skip))
    printf '%-12s %5d %5d %5d %5d\n' "$f" "$pass" "$fail" "$skip" "$all"
    total_pass=$((total_pass + pass)) total_all=$((total_all + all))
done
printf '%-12s %5d of %d pass; TAP output in %s\n' total "$total_pass" "$total_all" "$outdir"
