"""Generating the OCI runtime spec (``config.json``) for a container."""

from __future__ import annotations

import resource
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelext.core.mounts import spec_mounts
from kernelext.core.state import ContainerConfig, NetworkMode
from kernelext.oci.cgroups import CgroupnsMode
from kernelext.oci.identity import INIT_PATH, find_init
from kernelext.storage.users import ExecUser

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: podman's default environment, under the image's (``--unsetenv`` removes from both).
DEFAULT_ENV = (f"PATH={DEFAULT_PATH}", "TERM=xterm", "container=podman")
SHM = "/dev/shm"

#: (rlimit type, resource) pairs raised to the caller's hard limit: asking for
#: more than that makes runc fail ("error setting rlimit type 7").
RLIMITS = [("RLIMIT_NOFILE", resource.RLIMIT_NOFILE), ("RLIMIT_NPROC", resource.RLIMIT_NPROC)]

# Character devices every container gets (type, major, minor, path).
_DEVICES = [("c", 1, 3, "/dev/null"), ("c", 1, 5, "/dev/zero"), ("c", 1, 7, "/dev/full"),
            ("c", 1, 8, "/dev/random"), ("c", 1, 9, "/dev/urandom"), ("c", 5, 0, "/dev/tty")]


#: The device cgroup: deny all but the standard character devices and ptys.
_DEVICE_RULES = [{"allow": False, "access": "rwm"},
                 *({"allow": True, "type": t, "major": ma, "minor": mi, "access": "rwm"} for t, ma, mi, _ in _DEVICES),
                 {"allow": True, "type": "c", "major": 136, "access": "rwm"},
                 {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"}]
#: The ``tty`` group that owns pseudo-terminals (devpts ``gid=``).
TTY_GID = 5


def _resources(config: ContainerConfig, device_rules: list[dict[str, Any]]) -> dict[str, Any]:
    """The cgroup's limits: the device rules and kernelext.oci.resources' limits."""
    return {"devices": [*_DEVICE_RULES, *device_rules], **config.resources.linux_resources()}


def _cgroup(config: ContainerConfig, device_rules: list[dict[str, Any]], rootless: bool) -> dict[str, Any]:
    """``cgroupsPath`` and the limits; none where the container has no cgroup of its own (rootless on
    cgroupfs, as with podman). A user's systemd manager does no device policy: no device rules there."""
    path = config.cgroups.cgroups_path(config.id)
    if path is None:
        return {}
    limits = config.resources.linux_resources() if rootless else _resources(config, device_rules)
    return {"cgroupsPath": path, "resources": limits}


def _security_mounts(config: ContainerConfig) -> list[dict[str, Any]]:
    """``--read-only``'s tmpfs mounts, then what is bound under them: the init, the time zone."""
    taken = {mount.destination for mount in config.mounts}  # podman: the user's mount wins there
    mounts = [m for m in config.security.tmpfs_mounts() if m["destination"] not in taken]
    if config.identity.init:
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": find_init(),
                       "options": ["bind", "ro", "rprivate"]})
    zone = config.identity.timezone_source()
    if zone is not None:
        mounts.append({"destination": "/etc/localtime", "type": "bind", "source": str(zone),
                       "options": ["bind", "ro", "rprivate"]})
    return mounts


@dataclass(frozen=True)
class SpecInputs:
    """Everything besides the container config that the spec depends on."""

    rootfs: Path
    user: ExecUser
    image_env: list[str]
    etc_files: dict[str, Path]  # /etc/hosts, /etc/hostname, /etc/resolv.conf bind sources
    #: Rootless: runc runs in the user's namespace, where it cannot manage cgroups or mount sysfs
    #: of the host's network namespace, and only mapped group IDs exist.
    rootless: bool = False
    mapped_gids: range = range(1 << 32)
    #: The network namespace kernelext prepared (kernelext.oci.netns); None: runc makes one.
    netns: Path | None = None
    #: A named volume's host directory (kernelext.storage.volumes).
    volume_path: Callable[[str], Path] = Path


def _merge_env(*layers: list[str]) -> list[str]:
    env: dict[str, str] = {}
    for layer in layers:
        for item in layer:
            key, sep, value = item.partition("=")
            env[key] = value if sep else env.get(key, "")
    return [f"{k}={v}" for k, v in env.items()]


def _rlimits() -> list[dict[str, Any]]:
    limits = []
    for name, res in RLIMITS:
        _, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            limits.append({"type": name, "hard": hard, "soft": hard})
    return limits


def hostname_of(config: ContainerConfig) -> str:
    if config.identity.uts:  # the host's UTS namespace: its name
        return socket.gethostname()
    return config.identity.hostname or config.id[:12]


def generate(config: ContainerConfig, inputs: SpecInputs) -> dict[str, Any]:
    security = config.security
    caps = security.capabilities
    identity = config.identity
    base = [] if identity.unsetenv_all else [item for item in _merge_env(list(DEFAULT_ENV), inputs.image_env)
                                             if item.partition("=")[0] not in identity.unsetenv]
    env = _merge_env(base, [f"HOSTNAME={hostname_of(config)}", f"HOME={inputs.user.home}"], config.env)
    namespaces = [{"type": t} for t in (*config.identity.private_namespaces(), "mount")]
    if config.cgroups.cgroupns is CgroupnsMode.PRIVATE:
        namespaces.append({"type": "cgroup"})
    if config.network is NetworkMode.NONE:
        namespaces.append({"type": "network", **({"path": str(inputs.netns)} if inputs.netns else {})})
    tty_gid = ["gid=5"] if TTY_GID in inputs.mapped_gids else []
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", *tty_gid]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    ]
    if not any(m.destination == SHM for m in config.mounts):  # the user's own (podman's, from an archive) wins
        mounts.insert(3, {"destination": SHM, "type": "tmpfs", "source": "shm",
                          "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]})
    if inputs.rootless and config.network is NetworkMode.HOST:
        # sysfs belongs to the host's network namespace, out of the user namespace's reach.
        mounts.append({"destination": "/sys", "type": "none", "source": "/sys",
                       "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    else:
        sys_mode = "rw" if security.privileged else "ro"  # podman's privileged containers may write /sys
        mounts += [
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", sys_mode]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", sys_mode]},
        ]
    mounts += _security_mounts(config)
    for dest, source in sorted(inputs.etc_files.items()):
        if any(m.destination == dest for m in config.mounts):
            continue  # the user's own mount replaces it, as in podman
        mounts.append({"destination": dest, "type": "bind", "source": str(source), "options": ["rbind", "rprivate"]})
    mounts += spec_mounts(config.mounts, inputs.volume_path)
    devices, device_rules = security.device_spec()
    masked, readonly = security.masked_paths()
    seccomp = security.seccomp_spec()
    args = [INIT_PATH, "--", *config.args] if config.identity.init else config.args
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": config.tty,
            "user": {"uid": inputs.user.uid, "gid": inputs.user.gid, "umask": int(config.identity.umask, 8),
                     **({"additionalGids": inputs.user.additional_gids} if inputs.user.additional_gids else {})},
            "args": args,
            "env": env,
            "cwd": config.workdir or "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": config.resources.rlimits(_rlimits()),
            "noNewPrivileges": security.no_new_privileges,
            **({} if config.resources.oom_score_adj is None else {"oomScoreAdj": config.resources.oom_score_adj}),
        },
        "root": {"path": str(inputs.rootfs), "readonly": security.read_only},
        **({} if config.identity.uts else {"hostname": hostname_of(config)}),
        "mounts": mounts,
        "annotations": {"io.kernelext.name": config.name, **config.labels, **config.identity.annotations},
        "linux": {
            **_cgroup(config, device_rules, inputs.rootless),
            "namespaces": namespaces,
            "maskedPaths": masked,
            "readonlyPaths": readonly,
            **({"devices": devices} if devices else {}),
            **({"seccomp": seccomp} if seccomp is not None else {}),
        },
    }
