#!/usr/bin/env bash
# Gives kernelext a working CRIU without touching the system's packages
# (docs/architecture.md §4). Idempotent; run as root; setup.sh calls it.
#
# This kernel needs CRIU >= 4.2: bookworm's 3.17 fails ("vdso: Unexpected rt
# vDSO area bounds"), trixie's 4.1 cannot dump any TCP socket on kernels >=
# 6.16 ("Can't get 1:16 opt"), and installing a newer suite's criu
# system-wide would upgrade libc6 and ~30 other packages. So: when a criu >=
# 4.2 already passes `criu check` (PREFIX's or the system's), nothing is
# fetched (an older PREFIX, which would shadow the system's, is removed).
# Otherwise the criu of the first suite in SUITES that passes `criu check`
# here (sid's is 4.2; trixie's 4.1 is the fallback) and the closure of its
# library dependencies are downloaded with apt through a private apt state
# (the system's sources, lists and pins stay as they are), unpacked with
# dpkg-deb into PREFIX, and a wrapper runs criu through the prefix's own
# dynamic loader. Children criu starts (ip, iptables-restore) use the
# system's loader and libraries, since the library path is given to the
# loader, not through LD_LIBRARY_PATH. Without any provisioned criu, a system
# criu that passes `criu check` is used as it is.
set -euo pipefail

# Keep in step with kernelext/config.py (CRIU_PREFIX, PROVISIONED_CRIU) and kernelext/host.py (CRIU_TCP_VERSION).
PREFIX=${KERNELEXT_CRIU_PREFIX:-/opt/kernelext/criu}
WRAPPER="$PREFIX/criu"
read -r -a SUITES <<<"${KERNELEXT_CRIU_SUITES:-sid trixie}"
#: The first CRIU that dumps TCP sockets on kernels >= 6.16.
MIN_VERSION=4.2
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

looks_good() { "$@" check 2>&1 | grep -q "Looks good"; }
version_of() { "$@" --version 2>/dev/null | sed -n 's/^Version: //p'; }
recent() { dpkg --compare-versions "$(version_of "$@")" ge "$MIN_VERSION"; }
# criu unpacked under $1, run through that tree's loader.
unpacked() { local root=$1; shift; "$root/$LOADER" --library-path "$root/$LIBDIR" "$root/usr/sbin/criu" "$@"; }

# CRIU locks a container's network during a dump with iptables-restore (any CRIU).
if ! command -v iptables-restore >/dev/null; then
    echo "setup: installing iptables (CRIU's network lock)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends iptables >/dev/null
fi

system_criu=$(command -v criu || true)
if [ -x "$WRAPPER" ] && looks_good "$WRAPPER" && recent "$WRAPPER"; then
    echo "setup: criu $(version_of "$WRAPPER") in $PREFIX works"
    exit 0
fi
if [ -z "${KERNELEXT_CRIU_FORCE_PROVISION:-}" ] && [ -n "$system_criu" ] && looks_good criu && recent criu; then
    # kernelext prefers PREFIX's criu (config.find_criu): an older one there would shadow this one.
    rm -rf "$PREFIX"
    echo "setup: system criu works ($(version_of criu))"
    exit 0
fi
if [ "$(dpkg --print-architecture)" != amd64 ]; then
    echo "setup: no working criu >= $MIN_VERSION and the private CRIU prefix is only set up on amd64" >&2
    exit 1
fi

work=$(mktemp -d /tmp/kernelext-criu.XXXXXX)
trap 'rm -rf "$work"' EXIT
# apt downloads as the unprivileged _apt user when it can reach the target.
chmod 0755 "$work"

# Unpacks $1's criu and its dependency closure into $work/$1 (a tree laid out as PREFIX).
fetch_suite() {
    local suite=$1 state="$work/apt-$1" root="$work/$1"
    mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/debs" "$state/sources.d" \
             "$state/preferences.d" "$root"
    cat >"$state/sources.d/$suite.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $suite
Components: main
Signed-By: $KEYRING
EOF
    # An empty status file: apt then resolves the whole dependency closure, as for
    # an empty system, which is what the private prefix is.
    : >"$state/status"
    local apt_opts=(-q -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$state/sources.d"
                    -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=$state/preferences.d"
                    -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
                    -o "Dir::State::status=$state/status")
    chown -R _apt "$state/lists" "$state/debs" 2>/dev/null || true
    local log="$work/update-$suite.log"
    if ! apt-get "${apt_opts[@]}" update >"$log" 2>&1; then
        # A mirror that lags (or a snapshot) serves a Release file past its Valid-Until: apt refuses it
        # ("is not valid yet" / "expired" / "invalid since"). Its signature is still checked, so take it,
        # and say so rather than fall back to an older suite that loses a capability.
        if grep -qiE 'expired|invalid since|Valid-Until' "$log"; then
            echo "setup: $suite's Release file on $MIRROR is expired; using it with Acquire::Check-Valid-Until=false" \
                 "(its signature is still verified)" >&2
            apt_opts+=(-o Acquire::Check-Valid-Until=false)
            apt-get "${apt_opts[@]}" update >"$log" 2>&1 || { tail -n 5 "$log" >&2; return 1; }
        else
            tail -n 5 "$log" >&2
            return 1
        fi
    fi
    local packages
    packages=$(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances criu | grep -v '^ ' | sort -u) || return 1
    # shellcheck disable=SC2086 # one package name per word
    (cd "$state/debs" && apt-get "${apt_opts[@]}" download $packages >/dev/null) || return 1
    local deb
    for deb in "$state"/debs/*.deb; do
        dpkg-deb -x "$deb" "$root" || return 1
    done
    rm -rf "$state"
}

chosen=""
for suite in "${SUITES[@]}"; do
    echo "setup: fetching $suite's criu"
    if ! fetch_suite "$suite"; then
        echo "setup: could not fetch $suite's criu" >&2
        continue
    fi
    if ! looks_good unpacked "$work/$suite"; then
        echo "setup: $suite's criu $(version_of unpacked "$work/$suite") fails \`criu check\` here:" >&2
        unpacked "$work/$suite" check 2>&1 | tail -n 3 >&2 || true
        continue
    fi
    if recent unpacked "$work/$suite"; then
        chosen=$suite
        break
    fi
    # Works, but cannot dump TCP sockets here: kept only if no later suite does better.
    echo "setup: $suite's criu $(version_of unpacked "$work/$suite") is older than $MIN_VERSION" >&2
    [ -n "$chosen" ] || chosen=$suite
done

# A CRIU older than MIN_VERSION cannot dump TCP sockets on kernels >= 6.16: refuse to settle for it there
# (KERNELEXT_CRIU_ALLOW_OLD=1 accepts the loss), rather than lose the feature without a word.
tcp_kernel() { dpkg --compare-versions "$(uname -r | cut -d- -f1)" ge 6.16; }
refuse_old() {
    if tcp_kernel && [ -z "${KERNELEXT_CRIU_ALLOW_OLD:-}" ]; then
        echo "setup: error: only criu $1 works here, and criu < $MIN_VERSION cannot checkpoint TCP sockets on" \
             "Linux $(uname -r); fix the mirror (KERNELEXT_DEBIAN_MIRROR) or set KERNELEXT_CRIU_ALLOW_OLD=1" >&2
        exit 1
    fi
}
if [ -z "$chosen" ]; then
    if [ -n "$system_criu" ] && looks_good criu; then
        refuse_old "$(version_of criu)"
        echo "setup: keeping system criu $(version_of criu) (no newer one works here; TCP sockets may not dump)" >&2
        exit 0
    fi
    echo "setup: no working criu for this kernel" >&2
    exit 1
fi

recent unpacked "$work/$chosen" || refuse_old "$(version_of unpacked "$work/$chosen")"
cat >"$work/$chosen/criu" <<EOF
#!/bin/sh
# $chosen's CRIU through its own loader and libraries (kernelext scripts/provision-criu.sh).
exec "$PREFIX/$LOADER" --library-path "$PREFIX/$LIBDIR" "$PREFIX/usr/sbin/criu" "\$@"
EOF
chmod 0755 "$work/$chosen/criu"

# Swap the new prefix in whole, so a failed run never leaves half a prefix.
mkdir -p "$(dirname "$PREFIX")"
rm -rf "$PREFIX.new" "$PREFIX.old"
mv "$work/$chosen" "$PREFIX.new"
[ -e "$PREFIX" ] && mv "$PREFIX" "$PREFIX.old"
mv "$PREFIX.new" "$PREFIX"
rm -rf "$PREFIX.old"

if ! looks_good "$WRAPPER"; then
    echo "setup: criu in $PREFIX does not work here:" >&2
    "$WRAPPER" check >&2 || true
    exit 1
fi
echo "setup: criu $(version_of "$WRAPPER") from $chosen installed in $PREFIX"
if ! recent "$WRAPPER"; then
    echo "setup: warning: criu < $MIN_VERSION cannot checkpoint TCP sockets on kernels >= 6.16" >&2
fi
