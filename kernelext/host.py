"""What this host can do for this user: each feature, and why not when it can't.

``kernelext info`` prints it; notebooks use it to say up front what is
unavailable instead of failing further down.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kernelext.config import PROVISIONED_CRIU, StoreConfig, find_criu
from kernelext.oci import cgroups
from kernelext.oci.conmon import LOG_DRIVER
from kernelext.rootless import (
    is_rootless,
    kernel_version,
    pause_refusal,
    user_id_map,
    user_namespace_refusal,
    userns_overlay_supported,
)

CGROUP_ROOT = Path("/sys/fs/cgroup")
CHECK_TIMEOUT_S = 30
#: Kernels from 6.16 refuse SO_PASSCRED/SO_PASSSEC on TCP sockets, which CRIU reads from each one it
#: dumps; CRIU copes from 4.2 on (docs/architecture.md §4).
TCP_SOCKOPT_KERNEL = (6, 16)
CRIU_TCP_VERSION = (4, 2)
#: Where events go: an append-only file in the store (kernelext/core/events.py).
EVENT_LOGGER = "file"


@dataclass(frozen=True)
class Feature:
    available: bool
    detail: str = ""


@dataclass
class HostCapabilities:
    kernel: str
    rootless: bool
    cgroup_version: str
    cgroup_manager: str = ""
    cgroup_controllers: list[str] = field(default_factory=list)
    features: dict[str, Feature] = field(default_factory=dict)

    def available(self, name: str) -> bool:
        feature = self.features.get(name)
        return feature is not None and feature.available

    def to_json(self) -> dict[str, Any]:
        return {"host": {"kernel": self.kernel, "rootless": self.rootless, "cgroupVersion": self.cgroup_version,
                         "logDriver": LOG_DRIVER, "eventLogger": EVENT_LOGGER,
                         "cgroupManager": self.cgroup_manager, "cgroupControllers": self.cgroup_controllers},
                "features": {name: asdict(f) for name, f in self.features.items()}}


def _version(argv: list[str]) -> Feature:
    binary = shutil.which(argv[0]) if "/" not in argv[0] else argv[0]
    if not binary or not os.access(binary, os.X_OK):
        return Feature(False, f"{argv[0]} not found")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Feature(False, str(exc))
    first = (proc.stdout or proc.stderr).strip().splitlines()
    return Feature(proc.returncode == 0, first[0] if first else f"exit {proc.returncode}")


def _overlay_source() -> str:
    """Where overlayfs comes from: the running kernel, or a module loaded at the first mount
    (``/proc/filesystems`` lists a module's file system only once it is loaded); "" if neither."""
    try:
        if "overlay" in Path("/proc/filesystems").read_text():
            return "kernel overlayfs"
    except OSError:
        pass
    modprobe = shutil.which("modprobe") or shutil.which("modprobe", path="/usr/sbin:/sbin")
    if modprobe is None:
        return ""
    try:  # -n: resolve the module without loading it
        found = subprocess.run([modprobe, "-n", "-q", "overlay"], capture_output=True, timeout=CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return "kernel overlayfs (a module, loaded at the first mount)" if found.returncode == 0 else ""


def _overlay(rootless: bool) -> Feature:
    source = _overlay_source()
    if not source:
        return Feature(False, "overlayfs is neither in /proc/filesystems nor a loadable module")
    if not rootless:
        return Feature(True, source)
    if userns_overlay_supported():
        return Feature(True, "kernel overlayfs inside the user namespace")
    return Feature(False, "overlayfs in a user namespace needs Linux >= 5.11: new stores use the vfs driver "
                          "(a full copy of the image per container)")


def _user_namespaces() -> Feature:
    try:
        limit = int(Path("/proc/sys/user/max_user_namespaces").read_text())
    except (OSError, ValueError):
        limit = 0
    if limit <= 0:
        return Feature(False, "user namespaces disabled (user.max_user_namespaces = 0)")
    refusal = user_namespace_refusal()
    if refusal is not None:
        return Feature(False, f"this session may not create user namespaces ({refusal}), e.g. under a "
                              "container's seccomp profile")
    return Feature(True, f"runc's rootless mode in a user namespace held by a pause process (limit {limit})")


def criu_binary(opts: StoreConfig) -> str | None:
    return find_criu(opts.criu)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def _tcp_sockets(version: str, checkpoint: Feature) -> Feature:
    """Whether this CRIU can dump TCP sockets (a listening one too) on this kernel."""
    if not checkpoint.available:
        return Feature(False, "no working criu")
    try:
        numbers = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        numbers = ()
    kernel = kernel_version()
    if numbers >= CRIU_TCP_VERSION or (kernel is not None and kernel < TCP_SOCKOPT_KERNEL):
        return Feature(True, f"criu {version} dumps TCP sockets (connections with tcp_established)")
    return Feature(False, f"criu {version} cannot dump TCP sockets on Linux >= {_dotted(TCP_SOCKOPT_KERNEL)}: it "
                          f"needs CRIU >= {_dotted(CRIU_TCP_VERSION)} (scripts/provision-criu.sh)")


def _criu(opts: StoreConfig, rootless: bool) -> tuple[Feature, Feature, Feature]:
    binary = criu_binary(opts)
    if rootless:
        reason = "checkpointing a container requires root"
        return Feature(False, reason), Feature(False, reason), Feature(False, reason)
    if binary is None:
        reason = "criu not found (set KERNELEXT_CRIU or run scripts/provision-criu.sh)"
        return Feature(False, reason), Feature(False, reason), Feature(False, reason)
    try:
        check = subprocess.run([binary, "check"], capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
        dirty = subprocess.run([binary, "check", "--feature", "mem_dirty_track"], capture_output=True, text=True,
                               timeout=CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        failed = Feature(False, f"{binary}: {exc}")
        return failed, failed, failed
    match = re.search(r"Version:\s*(\S+)", version.stdout)
    number = match.group(1) if match else "?"
    origin = "provisioned by scripts/provision-criu.sh" if binary == str(PROVISIONED_CRIU) else "the system's"
    label = f"criu {number} ({binary}, {origin})"
    text = (check.stdout + check.stderr).strip().splitlines()
    checkpoint = Feature(check.returncode == 0, f"{label}: {text[-1] if text else 'criu check failed'}")
    dirty_text = (dirty.stdout + dirty.stderr).strip().splitlines()
    memory_tracking = Feature(dirty.returncode == 0 and check.returncode == 0,
                              dirty_text[-1] if dirty_text else "criu check --feature mem_dirty_track failed")
    return checkpoint, memory_tracking, _tcp_sockets(number, checkpoint)


def host_capabilities(opts: StoreConfig | None = None) -> HostCapabilities:
    opts = opts or StoreConfig.from_env()
    rootless = is_rootless()
    caps = HostCapabilities(kernel=os.uname().release, rootless=rootless, cgroup_version=cgroups.hierarchy().value,
                            cgroup_manager=cgroups.default_manager(rootless).value,
                            cgroup_controllers=cgroups.delegated_controllers(rootless))
    caps.features["runc"] = _version([opts.runc, "--version"])
    caps.features["conmon"] = _version([opts.conmon, "--version"])
    caps.features["overlay"] = _overlay(rootless)
    if rootless:
        id_map = user_id_map()
        caps.features["user_namespace"] = _user_namespaces()
        caps.features["id_mapping"] = Feature(id_map.subordinate, id_map.describe())
        if caps.cgroup_manager == cgroups.CgroupManager.SYSTEMD.value:
            caps.features["cgroups"] = Feature(True, "one systemd scope per container in the user's manager "
                                                     f"(delegated: {' '.join(caps.cgroup_controllers) or 'none'})")
            caps.features["freezer"] = Feature(True, "pause/unpause through the scope's cgroup.freeze")
        else:
            caps.features["cgroups"] = Feature(False, "containers share the user's cgroup: stats and top come "
                                                      "from their processes (psutil)")
            caps.features["freezer"] = Feature(False, pause_refusal())
    else:
        caps.features["cgroups"] = Feature(True, f"one cgroup per container ({caps.cgroup_version}, "
                                                 f"{caps.cgroup_manager})")
        caps.features["freezer"] = Feature((CGROUP_ROOT / "freezer").is_dir() or caps.cgroup_version == "v2",
                                           "pause/unpause through the freezer cgroup")
    checkpoint, memory_tracking, tcp_sockets = _criu(opts, rootless)
    caps.features["checkpoint"] = checkpoint
    caps.features["memory_tracking"] = memory_tracking
    caps.features["tcp_checkpoint"] = tcp_sockets
    return caps
