#!/usr/bin/env bash
# Gives kernelext a working CRIU without touching the system's packages
# (DESIGN.md §4). Idempotent; run as root; setup.sh calls it.
#
# This kernel needs CRIU 4: bookworm's 3.17 fails ("vdso: Unexpected rt vDSO
# area bounds"), and installing trixie's criu system-wide would upgrade libc6
# and ~30 other packages. So: when `criu check` already passes, nothing is
# done. Otherwise trixie's criu and the closure of its library dependencies
# are downloaded with apt through a private apt state (the system's sources,
# lists and pins stay as they are), unpacked with dpkg-deb into PREFIX, and a
# wrapper runs criu through the prefix's own dynamic loader. Children criu
# starts (ip, iptables-save) use the system's loader and libraries, since the
# library path is given to the loader, not through LD_LIBRARY_PATH.
set -euo pipefail

# Keep in step with kernelext/config.py (CRIU_PREFIX, PROVISIONED_CRIU).
PREFIX=${KERNELEXT_CRIU_PREFIX:-/opt/kernelext/criu}
WRAPPER="$PREFIX/criu"
SUITE=trixie
# The Debian mirror this machine's apt already uses (the first "main" archive URI).
system_mirror() {
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' || true
      grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' || true; } |
        grep -v -- '-security' | head -n 1 || true
}
MIRROR=${KERNELEXT_DEBIAN_MIRROR:-$(system_mirror)}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
LOADER=usr/lib64/ld-linux-x86-64.so.2
LIBDIR=usr/lib/x86_64-linux-gnu

looks_good() { "$1" check 2>&1 | grep -q "Looks good"; }

# CRIU locks a container's network during a dump with iptables-restore (any CRIU).
if ! command -v iptables-restore >/dev/null; then
    echo "setup: installing iptables (CRIU's network lock)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends iptables >/dev/null
fi

if [ -z "${KERNELEXT_CRIU_FORCE_PROVISION:-}" ] && command -v criu >/dev/null && looks_good criu; then
    echo "setup: system criu works ($(criu --version | sed -n 's/Version: //p'))"
    exit 0
fi
if [ -x "$WRAPPER" ] && looks_good "$WRAPPER"; then
    echo "setup: criu $("$WRAPPER" --version | sed -n 's/Version: //p') in $PREFIX works"
    exit 0
fi
if [ "$(dpkg --print-architecture)" != amd64 ]; then
    echo "setup: no working criu and the private CRIU prefix is only set up on amd64" >&2
    exit 1
fi

work=$(mktemp -d /tmp/kernelext-criu.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
mkdir -p "$work/sources.d" "$work/preferences.d"
cat >"$work/sources.d/$SUITE.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE
Components: main
Signed-By: $KEYRING
EOF
# An empty status file: apt then resolves the whole dependency closure, as for
# an empty system, which is what the private prefix is.
: >"$work/status"
APT_OPTS=(-q -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/sources.d"
          -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=$work/preferences.d"
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "Dir::State::status=$work/status")

echo "setup: fetching $SUITE's criu into $PREFIX"
# apt downloads as the unprivileged _apt user when it can reach the target.
chmod 0755 "$work"
chown -R _apt "$work/lists" "$work/debs" 2>/dev/null || true
apt-get "${APT_OPTS[@]}" update >/dev/null
packages=$(apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances criu | grep -v '^ ' | sort -u)
(cd "$work/debs" && apt-get "${APT_OPTS[@]}" download $packages >/dev/null)
for deb in "$work"/debs/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
done
cat >"$work/root/criu" <<EOF
#!/bin/sh
# $SUITE's CRIU through its own loader and libraries (kernelext scripts/provision-criu.sh).
exec "$PREFIX/$LOADER" --library-path "$PREFIX/$LIBDIR" "$PREFIX/usr/sbin/criu" "\$@"
EOF
chmod 0755 "$work/root/criu"

# Swap the new prefix in whole, so a failed run never leaves half a prefix.
mkdir -p "$(dirname "$PREFIX")"
rm -rf "$PREFIX.new" "$PREFIX.old"
mv "$work/root" "$PREFIX.new"
[ -e "$PREFIX" ] && mv "$PREFIX" "$PREFIX.old"
mv "$PREFIX.new" "$PREFIX"
rm -rf "$PREFIX.old"

if ! looks_good "$WRAPPER"; then
    echo "setup: criu in $PREFIX does not work here:" >&2
    "$WRAPPER" check >&2 || true
    exit 1
fi
echo "setup: criu $("$WRAPPER" --version | sed -n 's/Version: //p') installed in $PREFIX"
