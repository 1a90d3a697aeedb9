#!/usr/bin/env bash
# Installs everything kernelext and its tests need, idempotently: the system
# packages (runc, conmon, busybox-static, ...) and a virtual environment in
# .venv with kernelext installed in it. Run as root on Debian bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium and a font: the browser test of the widgets (Playwright drives the system browser).
# uidmap (newuidmap/newgidmap) and python3-venv: rootless containers and their test users.
# skopeo: pull, load and save of OCI images; docker-registry: the image tests' own registry on loopback;
# podman: its store is a source of images (containers-storage:) and the image benchmark's comparison.
# gcc and libc6-dev: the port forwarder (kernelext/oci/portfwd.c) is compiled on first use
# (nsenter, which starts it, is in the essential util-linux).
# bats: podman's own system tests, run on demand against kernelext (tests/podman-system/run.sh).
# golang-github-containers-common: podman's default seccomp profile (/usr/share/containers/seccomp.json);
# catatonit: the init of --init, as podman uses it.
# openssh-client: ssh:// connections of the remote engine; openssh-server: its tests' own sshd on loopback
# (the system's sshd is not started: Debian's package would start it only under systemd, absent here).
SYSTEM_PACKAGES=(runc conmon busybox-static tar zstd iproute2 procps gcc libc6-dev chromium fonts-dejavu-core uidmap
                 python3-venv skopeo docker-registry podman bats golang-github-containers-common catatonit
                 openssh-client openssh-server)

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# CRIU >= 4.2 for checkpoint/restore, in a private prefix unless the system's is one that works (docs/architecture.md §4).
scripts/provision-criu.sh

# Debian's interpreter (built with PGO and LTO) by default: it starts and imports faster than a locally
# built one without those optimizations, which every kernelext command and the fork server's start pay.
# PYTHON=... picks another.
PYTHON=${PYTHON:-/usr/bin/python3}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "kernelext needs Python >= 3.11"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# compat: a plain path entry, not an import hook that every Python start-up (the CLI's too) would load.
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
# Normal users and a copy of the checkout they can read, for the rootless tests.
scripts/setup-rootless.sh
echo "setup: done ($(.venv/bin/python --version), $(runc --version | head -1), $(conmon --version | head -1))"
