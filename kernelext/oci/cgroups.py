"""Where a container and its conmon go in the cgroup tree, chosen as podman chooses it
(docs/architecture.md §15).

Two managers: ``systemd`` where systemd is PID 1 and its bus answers (runc gets ``--systemd-cgroup``
and a ``slice:prefix:name`` path, so the container is systemd's ``libpod-<id>.scope`` and conmon is
put in a ``libpod-conmon-<id>.scope`` of its own), ``cgroupfs`` elsewhere (runc makes the directory
itself, under ``/kernelext``). podman's ``--cgroups``, ``--cgroup-parent`` and ``--cgroupns``
choose the rest per container.
"""

from __future__ import annotations

import enum
import errno
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelext.errors import InvalidArgumentError
from kernelext.oci import kmsg
from kernelext.oci.resources import cgroup_oom_killed
from kernelext.rootless import is_rootless

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: containers.conf's ``cgroup_manager``: the default manager for new containers, where set.
ENV_CGROUP_MANAGER = "KERNELEXT_CGROUP_MANAGER"
#: cgroupfs: the directory each container's cgroup is made in (podman's is ``/libpod_parent``).
CGROUPFS_PARENT = "/kernelext"
#: systemd: the slice containers go in, as root and in the user's own manager.
SYSTEMD_PARENT = "machine.slice"
ROOTLESS_SYSTEMD_PARENT = "user.slice"
#: podman's unit names: ``libpod-<id>.scope`` (runc makes it) and conmon's ``libpod-conmon-<id>.scope``.
SCOPE_PREFIX = "libpod"
CONMON_SCOPE = "libpod-conmon-{id}.scope"
#: ``--cgroups=split``: the container's cgroup under the caller's own.
PAYLOAD_PREFIX = "libpod-payload-"
#: ``split`` on v2: the caller's processes move into this child of their cgroup, so that cgroup may have
#: children with controllers (v2's "no internal processes" rule) and the container goes beside them.
SUPERVISOR = "supervisor"
#: How long a D-Bus call to systemd may take (software-emulated VMs are slow).
BUS_TIMEOUT_S = 30
#: How long a restore waits for systemd to unload the previous conmon's emptied scope, and how often it looks.
SCOPE_GONE_S = 2.0
SCOPE_POLL_S = 0.1
#: sd_booted(3)'s test: this directory exists only when systemd is the init.
SYSTEMD_RUN_DIR = Path("/run/systemd/system")
SYSTEM_BUS = "/run/dbus/system_bus_socket"


class CgroupManager(enum.Enum):
    SYSTEMD = "systemd"
    CGROUPFS = "cgroupfs"


class CgroupsMode(enum.Enum):
    """podman's ``--cgroups``."""

    ENABLED = "enabled"
    #: Not with runc: it always makes a cgroup (podman needs crun for it).
    DISABLED = "disabled"
    #: conmon stays in the caller's cgroup.
    NO_CONMON = "no-conmon"
    #: conmon stays in the caller's cgroup, the container gets a child of it.
    SPLIT = "split"


class CgroupnsMode(enum.Enum):
    HOST = "host"
    PRIVATE = "private"


class Hierarchy(enum.Enum):
    V1 = "v1"
    HYBRID = "v1 (hybrid)"
    V2 = "v2"


def hierarchy() -> Hierarchy:
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return Hierarchy.V2
    return Hierarchy.HYBRID if (CGROUP_ROOT / "unified").is_dir() else Hierarchy.V1


def _bus_path(rootless: bool) -> str:
    if not rootless:
        address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={SYSTEM_BUS}")
    else:
        runtime_dir = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
        address = os.environ.get("DBUS_SESSION_BUS_ADDRESS", f"unix:path={runtime_dir}/bus")
    for part in address.split(";")[0].partition(":")[2].split(","):
        key, _, value = part.partition("=")
        if key == "path":
            return value
    return ""


def systemd_reachable(rootless: bool) -> bool:
    """systemd is the init and its bus (the user's own for a normal user) takes a connection."""
    if not SYSTEMD_RUN_DIR.is_dir():
        return False
    path = _bus_path(rootless)
    if not path:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def default_manager(rootless: bool) -> CgroupManager:
    """podman's choice: systemd where it runs and answers (a normal user also needs cgroup v2, where
    the user's manager has a delegated subtree), cgroupfs otherwise."""
    configured = os.environ.get(ENV_CGROUP_MANAGER)
    if configured:
        return parse_manager(configured)
    if systemd_reachable(rootless) and (not rootless or hierarchy() is Hierarchy.V2):
        return CgroupManager.SYSTEMD
    return CgroupManager.CGROUPFS


def parse_manager(value: str) -> CgroupManager:
    try:
        return CgroupManager(value)
    except ValueError:
        raise InvalidArgumentError(f'invalid cgroup manager "{value}": must be "systemd" or "cgroupfs"') from None


def _slice_path(slice_name: str) -> str:
    """systemd's directory for a slice: ``a-b.slice`` lives in ``a.slice/a-b.slice``."""
    stem = slice_name.removesuffix(".slice")
    if stem in ("", "-"):
        return ""
    parts = stem.split("-")
    return "/".join("-".join(parts[:i]) + ".slice" for i in range(1, len(parts) + 1))


def controller_paths(pid: int | str = "self") -> dict[str, str]:
    """``/proc/PID/cgroup``: controller name (v1; "" for the unified hierarchy) → the cgroup of ``pid``."""
    found = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                found[name] = path
    return found


def own_cgroup(pid: int | str = "self") -> str:
    """The cgroup ``pid`` is in: v2's unified path, else the v1 memory controller's."""
    try:
        found = controller_paths(pid)
    except (OSError, ValueError):
        return ""
    return found.get("", "") if hierarchy() is Hierarchy.V2 else found.get("memory", found.get("", ""))


@dataclass(frozen=True)
class CgroupOptions:
    """A container's cgroup settings, fixed at create (podman's ``--cgroup-manager``, ``--cgroups``,
    ``--cgroup-parent``, ``--cgroupns``)."""

    manager: CgroupManager = CgroupManager.CGROUPFS
    mode: CgroupsMode = CgroupsMode.ENABLED
    parent: str = ""
    cgroupns: CgroupnsMode = CgroupnsMode.HOST
    rootless: bool = False
    #: ``split``: the caller's cgroup at create, the container's parent.
    split_parent: str = ""

    @classmethod
    def build(cls, *, cgroup_manager: str | None = None, cgroups: str | None = None,
              cgroup_parent: str | None = None, cgroupns: str | None = None) -> CgroupOptions:
        rootless = is_rootless()
        requested = cgroup_manager or os.environ.get(ENV_CGROUP_MANAGER)
        manager = parse_manager(requested) if requested else default_manager(rootless)
        # the default already probed the bus: only a requested systemd still needs the check
        if requested and manager is CgroupManager.SYSTEMD and not systemd_reachable(rootless):
            raise InvalidArgumentError("systemd cgroup manager requested but systemd is not running or its "
                                       "D-Bus cannot be reached: use --cgroup-manager=cgroupfs")
        try:
            mode = CgroupsMode(cgroups or CgroupsMode.ENABLED.value)
        except ValueError:
            raise InvalidArgumentError(f"invalid cgroup mode {cgroups!r}: must be one of enabled, disabled, "
                                       "no-conmon, split") from None
        if cgroupns in (None, ""):
            ns = CgroupnsMode.PRIVATE if hierarchy() is Hierarchy.V2 else CgroupnsMode.HOST  # podman's default
        else:
            try:
                ns = CgroupnsMode(cgroupns)
            except ValueError:
                raise InvalidArgumentError(f"invalid --cgroupns {cgroupns!r}: must be host or private") from None
        parent = cgroup_parent or ""
        if mode is CgroupsMode.DISABLED:
            if parent:
                raise InvalidArgumentError("cannot specify --cgroup-parent with --cgroups=disabled")
            # podman's words: only crun runs a container without a cgroup; runc always makes one
            raise InvalidArgumentError("requested OCI runtime runc is not compatible with NoCgroups: invalid argument")
        if mode is CgroupsMode.SPLIT and parent:
            raise InvalidArgumentError("cannot specify --cgroup-parent with --cgroups=split")
        if parent and manager is CgroupManager.SYSTEMD and not parent.endswith(".slice"):
            raise InvalidArgumentError("did not receive systemd slice as cgroup parent when using systemd to "
                                       "manage cgroups: invalid argument")
        if parent and manager is CgroupManager.CGROUPFS and parent.endswith(".slice"):
            raise InvalidArgumentError("systemd slice received as cgroup parent when using cgroupfs: "
                                       "invalid argument")
        if parent and manager is CgroupManager.CGROUPFS and not parent.startswith("/"):
            parent = "/" + parent
        split_parent = split_caller() if mode is CgroupsMode.SPLIT else ""
        return cls(manager, mode, parent, ns, rootless, split_parent)

    @property
    def systemd(self) -> bool:
        return self.manager is CgroupManager.SYSTEMD and self.mode is not CgroupsMode.SPLIT

    @property
    def own_cgroup(self) -> bool:
        """Whether the container gets a cgroup of its own (rootless cgroupfs: none, as with podman)."""
        return not self.rootless or self.systemd

    def default_parent(self) -> str:
        if self.manager is CgroupManager.SYSTEMD:
            return ROOTLESS_SYSTEMD_PARENT if self.rootless else SYSTEMD_PARENT
        return CGROUPFS_PARENT

    def cgroups_path(self, ctr_id: str) -> str | None:
        """The spec's ``linux.cgroupsPath`` (None: the container gets no cgroup of its own)."""
        if not self.own_cgroup:
            return None
        if self.mode is CgroupsMode.SPLIT:
            return f"{self.split_parent.rstrip('/')}/{PAYLOAD_PREFIX}{ctr_id}"
        if self.systemd:
            return f"{self.parent or self.default_parent()}:{SCOPE_PREFIX}:{ctr_id}"
        return f"{self.parent or CGROUPFS_PARENT}/{ctr_id}"

    def expected_path(self, ctr_id: str) -> str:
        """The container's cgroup relative to the hierarchy's root as root sees it ("" if it has none);
        rootless systemd paths are under the user's manager, found from the process instead."""
        path = self.cgroups_path(ctr_id)
        if path is None:
            return ""
        if self.systemd:
            slice_name, prefix, name = path.split(":")
            return f"/{_slice_path(slice_name)}/{prefix}-{name}.scope".replace("//", "/")
        return path

    def restore_root(self, ctr_id: str) -> str | None:
        """The cgroup CRIU must restore the container's tasks into when runc does not say (None: leave it).

        runc before 1.2 names the target cgroup to CRIU only on v1 (``criuApplyCgroups``), so on v2 CRIU puts
        the tasks back into the cgroup recorded in the images: the checkpointed container's, which is not
        this one's after a restore under a new name (docs/architecture.md §15)."""
        if self.rootless or hierarchy() is not Hierarchy.V2:
            return None
        return self.expected_path(ctr_id) or None

    def runtime_args(self) -> list[str]:
        """runc's global options for create and restore."""
        return ["--systemd-cgroup"] if self.systemd else []

    def conmon_scope(self, ctr_id: str) -> str | None:
        """The systemd scope conmon is moved into, or None where it stays in the caller's cgroup."""
        if self.systemd and self.mode is CgroupsMode.ENABLED:
            return CONMON_SCOPE.format(id=ctr_id)
        return None

    def oom_killed(self, ctr_id: str, started_at: float) -> bool:
        """The fallback when conmon recorded no OOM kill: the cgroup's own counter while it is there
        (cgroupfs), else the kernel's report of a kill in the container's cgroup since ``started_at``
        (a systemd scope and its ``memory.events`` are gone by the time the exit is seen: kernelext.oci.kmsg)."""
        if self.rootless:
            return False
        return (cgroup_oom_killed(CGROUP_ROOT, self.expected_path(ctr_id))
                or (self.own_cgroup and kmsg.oom_killed_since(container_dir_names(ctr_id), started_at)))

    def release(self, ctr_id: str) -> list[Path]:
        """After the runtime forgot the container: remove what is left of a cgroupfs cgroup (a systemd
        scope goes by itself once empty). Returns directories still busy."""
        if self.systemd or self.rootless:
            return []
        return remove(self.expected_path(ctr_id))

    @property
    def inspect_parent(self) -> str:
        """``HostConfig.CgroupParent`` as podman shows it."""
        if self.mode is CgroupsMode.SPLIT:
            return self.split_parent
        return self.parent or (self.default_parent() if self.own_cgroup else "")

    def host_config(self) -> dict[str, Any]:
        """podman's ``inspect`` ``HostConfig`` cgroup fields."""
        return {"CgroupManager": self.manager.value, "CgroupParent": self.inspect_parent, "Cgroup": "",
                "CgroupnsMode": self.cgroupns.value,
                "Cgroups": "default" if self.mode is CgroupsMode.ENABLED else self.mode.value}

    def to_json(self) -> dict[str, Any]:
        return {"manager": self.manager.value, "mode": self.mode.value, "parent": self.parent,
                "cgroupns": self.cgroupns.value, "rootless": self.rootless, "split_parent": self.split_parent}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CgroupOptions:
        if not data:  # a container made before cgroup options: cgroupfs under /kernelext (none rootless), as then
            return cls(rootless=is_rootless())
        return cls(CgroupManager(data["manager"]), CgroupsMode(data["mode"]), data.get("parent", ""),
                   CgroupnsMode(data.get("cgroupns", CgroupnsMode.HOST.value)), bool(data.get("rootless")),
                   data.get("split_parent", ""))


def split_caller() -> str:
    """podman's ``--cgroups=split``: the cgroup the container goes under, the caller's own. On v2 a cgroup
    with processes cannot hold a child with controllers, so, as podman does, every process of the caller's
    cgroup first moves into its ``supervisor`` child (conmon then starts there); a caller already in a
    ``supervisor`` cgroup (an earlier split) uses its parent as is."""
    current = own_cgroup()
    if hierarchy() is not Hierarchy.V2:
        return current
    path = CGROUP_ROOT / current.lstrip("/")
    if path.name == SUPERVISOR:
        return "/" + str(path.parent.relative_to(CGROUP_ROOT)).lstrip(".")
    supervisor = path / SUPERVISOR
    try:
        supervisor.mkdir(exist_ok=True)
        pids = (path / "cgroup.procs").read_text().split()
    except OSError as exc:
        raise InvalidArgumentError(f"cannot split the cgroup {current}: {exc.strerror or exc}") from None
    for pid in pids:
        try:
            (supervisor / "cgroup.procs").write_text(pid)
        except OSError as exc:
            if exc.errno not in (errno.ESRCH, errno.EINVAL):  # gone meanwhile; a kernel thread (root cgroup)
                raise InvalidArgumentError(f"cannot move process {pid} into {supervisor}: "
                                           f"{exc.strerror or exc}") from None
    return current


def container_dir(pid: int, ctr_id: str) -> Path | None:
    """The v2 cgroup directory of the container whose process is ``pid``, if it is the container's own."""
    if hierarchy() is not Hierarchy.V2:
        return None
    path = CGROUP_ROOT / own_cgroup(pid).lstrip("/")
    return path if is_container_dir(path.name, ctr_id) else None


def freezable(pid: int, ctr_id: str) -> bool:
    """Whether this user can freeze the container: cgroup v2, and a cgroup of its own it may write (a
    user's systemd scope), as podman pauses a rootless container."""
    path = container_dir(pid, ctr_id)
    return path is not None and os.access(path / "cgroup.freeze", os.W_OK)


def delegated_controllers(rootless: bool) -> list[str]:
    """The controllers this user can give a container: root, all the hierarchy has; a normal user on v2,
    those systemd delegated to its manager (user@UID.service), else those of the highest cgroup above
    it that it may write; none for a normal user on v1."""
    if hierarchy() is not Hierarchy.V2:
        if rootless:
            return []
        try:  # subsys_name hierarchy num_cgroups enabled: those mounted on a v1 hierarchy
            rows = [line.split() for line in Path("/proc/cgroups").read_text().splitlines()[1:]]
        except OSError:
            return []
        return sorted(row[0] for row in rows if len(row) == 4 and row[1] != "0" and row[3] == "1")
    if not rootless:
        return (CGROUP_ROOT / "cgroup.controllers").read_text().split()
    uid = os.getuid()
    manager = CGROUP_ROOT / f"user.slice/user-{uid}.slice/user@{uid}.service"
    if default_manager(rootless) is CgroupManager.SYSTEMD and (manager / "cgroup.controllers").exists():
        return (manager / "cgroup.controllers").read_text().split()  # where the user's manager puts containers
    path = CGROUP_ROOT / own_cgroup().lstrip("/")
    found: list[str] = []
    while path != CGROUP_ROOT and os.access(path / "cgroup.subtree_control", os.W_OK):
        try:
            found = (path / "cgroup.controllers").read_text().split()
        except OSError:
            break
        path = path.parent
    return found


def container_dir_names(ctr_id: str) -> tuple[str, ...]:
    """The names a container's own cgroup directory has: cgroupfs's ``<id>``, systemd's
    ``libpod-<id>.scope``, split's ``libpod-payload-<id>``."""
    return ctr_id, f"{SCOPE_PREFIX}-{ctr_id}.scope", f"{PAYLOAD_PREFIX}{ctr_id}"


def is_container_dir(name: str, ctr_id: str) -> bool:
    """Whether a cgroup directory's name is the container's."""
    return name in container_dir_names(ctr_id)


def move_to_scope(pid: int, unit: str, slice_name: str, *, rootless: bool) -> str:
    """Put ``pid`` into a new transient systemd scope ``unit`` in ``slice_name`` over D-Bus (podman's
    RunUnderSystemdScope); returns the error text, "" on success.

    The previous conmon's scope (a restore right after a checkpoint) is unloaded by systemd once it
    empties, after that conmon's exit command: wait a little for that, then take a name of its own. A
    restart runs from that very scope (the exit command), so it does not wait."""
    deadline = time.monotonic() + (0 if own_cgroup().endswith(f"/{unit}") else SCOPE_GONE_S)
    while True:
        failure = _start_scope(pid, unit, slice_name, rootless=rootless)
        if not failure or "already" not in failure:
            return failure
        if time.monotonic() > deadline:
            # Still busy (the old conmon's exit command runs there, for seconds on a slow machine): a scope
            # of this conmon's own all the same, named for its PID.
            return _start_scope(pid, unit.replace(".scope", f"-{pid}.scope"), slice_name, rootless=rootless)
        time.sleep(SCOPE_POLL_S)


def _start_scope(pid: int, unit: str, slice_name: str, *, rootless: bool) -> str:
    argv = ["busctl", *(["--user"] if rootless else []), "--quiet", f"--timeout={BUS_TIMEOUT_S}", "call",
            "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
            "StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "fail", "3",
            "PIDs", "au", "1", str(pid), "Slice", "s", slice_name, "CollectMode", "s", "inactive-or-failed", "0"]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=BUS_TIMEOUT_S + 5)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return "" if proc.returncode == 0 else (proc.stderr or proc.stdout).strip()


def hierarchy_dirs() -> list[Path]:
    """The root of each mounted hierarchy: v2's root, or v1's controller directories (and hybrid's unified)."""
    if hierarchy() is Hierarchy.V2:
        return [CGROUP_ROOT]
    try:
        return sorted(p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def remove(relative: str) -> list[Path]:
    """Remove an emptied container cgroup from every hierarchy (runc leaves one behind when the
    container died under it or was checkpointed); returns those still busy (with processes).
    One rmdir per hierarchy: a hierarchy without the cgroup answers ENOENT, no stat first."""
    relative = relative.lstrip("/")
    if not relative:
        return []
    busy = []
    for path in (d / relative for d in hierarchy_dirs()):
        try:
            path.rmdir()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                busy.append(path)
    return busy
