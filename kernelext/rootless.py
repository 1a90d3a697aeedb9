"""Running without root (podman's ``pkg/rootless``).

A normal user gets one user + mount namespace per store, held open by a
*pause process* (``sleep``) as podman does: its root is the calling user, and
when the host has ``newuidmap``/``newgidmap`` and subordinate ID ranges for
the user, IDs 1..N map to that range, so images with files owned by other
users keep their owners. runc, conmon and the overlay mounts all run inside
it (runc then uses its rootless mode on its own); this process stays outside
and reaches the mounted root filesystems through ``/proc/<pause>/root``.

Processes that conmon starts (the exit command) are already inside: they see
themselves as root of the namespace and act directly.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kernelext.errors import RuntimeFailure
from kernelext.files.fdtree import remove_tree

#: The first line of ``/proc/self/uid_map`` in the initial user namespace.
_INITIAL_USERNS_MAP = ["0", "0", "4294967295"]
PAUSE_PID_FILE = "pause.pid"
PAUSE_LOCK_FILE = "pause.lock"
SUBUID_FILE = Path("/etc/subuid")
SUBGID_FILE = Path("/etc/subgid")
#: What the kernel shows for an ID that a user namespace does not map (``nobody``).
OVERFLOW_ID = 65534
CGROUP_V2_MARKER = Path("/sys/fs/cgroup/cgroup.controllers")
#: Unprivileged overlay mounts inside a user namespace arrived in Linux 5.11.
USERNS_OVERLAY_KERNEL = (5, 11)
#: How long the check that a user namespace can be made may take (one unshare of a `true`).
USERNS_PROBE_TIMEOUT_S = 10


def in_initial_user_namespace() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.readline().split() == _INITIAL_USERNS_MAP
    except OSError:
        return True


def is_rootless() -> bool:
    """True for a normal user, and inside its namespace (where this process looks like root)."""
    return os.geteuid() != 0 or not in_initial_user_namespace()


@dataclass(frozen=True)
class IdRange:
    """``count`` IDs from ``inside`` in the namespace are ``outside`` on the host."""

    inside: int
    outside: int
    count: int


@dataclass(frozen=True)
class IdMap:
    """The user and group ID mappings of the rootless namespace."""

    uids: tuple[IdRange, ...]
    gids: tuple[IdRange, ...]

    @property
    def subordinate(self) -> bool:
        """Whether IDs other than root exist inside (subordinate ranges are mapped)."""
        return len(self.uids) > 1 and len(self.gids) > 1

    def describe(self) -> str:
        if self.subordinate:
            uid, gid = self.uids[1], self.gids[1]
            return (f"root → uid {self.uids[0].outside}, uids 1-{uid.count} → {uid.outside}-"
                    f"{uid.outside + uid.count - 1}, gids 1-{gid.count} → {gid.outside}-{gid.outside + gid.count - 1}")
        return (f"single user: root → uid {self.uids[0].outside}; no subordinate IDs (newuidmap/newgidmap and "
                f"/etc/subuid, /etc/subgid entries), so files owned by other users in an image become root's")


def _subordinate_range(path: Path, user: str, uid: int) -> tuple[int, int] | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)) and parts[1].isdigit() and parts[2].isdigit():
            return int(parts[1]), int(parts[2])
    return None


def user_id_map(uid: int | None = None, gid: int | None = None) -> IdMap:
    """The mapping this user gets: subordinate ranges when the host provides them, else the user alone."""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    root_uid, root_gid = (IdRange(0, uid, 1),), (IdRange(0, gid, 1),)
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        return IdMap(root_uid, root_gid)
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    subuid, subgid = _subordinate_range(SUBUID_FILE, user, uid), _subordinate_range(SUBGID_FILE, user, uid)
    if not subuid or not subgid:
        return IdMap(root_uid, root_gid)
    return IdMap(root_uid + (IdRange(1, *subuid),), root_gid + (IdRange(1, *subgid),))


def _read_map(path: str) -> tuple[IdRange, ...]:
    with open(path) as f:
        return tuple(IdRange(*map(int, line.split())) for line in f if line.strip())


def current_id_map() -> IdMap:
    """The mapping of the namespace this process is in."""
    return IdMap(_read_map("/proc/self/uid_map"), _read_map("/proc/self/gid_map"))


def pause_refusal() -> str:
    """podman's reason a rootless container cannot be paused: it has no cgroup (freezer) of its own."""
    if CGROUP_V2_MARKER.exists():
        return "cannot pause without using Cgroups: this container does not have a cgroup"
    return "can not pause containers on rootless containers with cgroup V1"


def kernel_version(release: str | None = None) -> tuple[int, int] | None:
    """(major, minor) of the running kernel (or of ``release``); None if unreadable."""
    numbers = (release or os.uname().release).split("-")[0].split(".")
    try:
        return int(numbers[0]), int(numbers[1])
    except (ValueError, IndexError):
        return None


def userns_overlay_supported(release: str | None = None) -> bool:
    version = kernel_version(release)
    return version is not None and version >= USERNS_OVERLAY_KERNEL


class Namespace:
    """Where runc, conmon and mounts run. As root: right here, on the host."""

    rootless = False

    @property
    def keeps_owners(self) -> bool:
        """Whether files may belong to users other than root (subordinate IDs, rootless)."""
        return True

    @property
    def direct(self) -> bool:
        """Whether this process can mount and run the runtime itself (no namespace to enter)."""
        return True

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` made to run in the namespace."""
        return list(argv)

    def ensure(self) -> None:
        """Make sure the namespace exists; raises RuntimeFailure with the reason if it cannot."""

    def view(self, path: Path) -> Path:
        """How this process reaches ``path`` as the namespace sees it (mount points differ)."""
        return path

    def call(self, function: Callable[[], None]) -> None:
        """Run ``function`` in the namespace (here, on the host)."""
        function()

    def mountinfo(self) -> Path:
        return Path("/proc/self/mountinfo")

    def mapped_gids(self) -> range:
        """Group IDs that exist in the namespace."""
        return range(1 << 32)

    def host_ids(self, uid: int, gid: int) -> tuple[int, int] | None:
        """The host's (uid, gid) for IDs of the namespace, None when it has no such IDs."""
        return uid, gid

    def container_ids(self, uid: int, gid: int) -> tuple[int, int]:
        """The namespace's (uid, gid) for host IDs (the kernel's overflow ID for unmapped ones)."""
        return uid, gid

    def remove_tree(self, path: Path) -> None:
        """Delete a directory tree that processes of the namespace wrote (owned by any of its IDs)."""
        if self.direct:
            remove_tree(path, ignore_errors=True)  # iterative: a container's tree may be deeper than any recursion
        else:
            subprocess.run(self.command(["rm", "-rf", "--one-file-system", "--", str(path)]),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class UserNamespace(Namespace):
    """The rootless namespace of one store, created on first use and kept by its pause process."""

    rootless = True

    def __init__(self, runroot: Path, id_map: IdMap | None = None,
                 survivors: Callable[[], Iterable[int]] = tuple) -> None:
        """``survivors``: PIDs of processes that may still be in the namespace (the store's conmons)."""
        self.runroot = runroot
        self.survivors = survivors
        # Processes conmon starts (the exit command) are already inside it.
        self._inside = not in_initial_user_namespace()
        self.id_map = id_map or (current_id_map() if self._inside else user_id_map())
        self._pid: int | None = None

    def mapped_gids(self) -> range:
        return range(sum(r.count for r in self.id_map.gids))

    def container_ids(self, uid: int, gid: int) -> tuple[int, int]:
        if self.direct:
            return uid, gid
        return _inside(self.id_map.uids, uid), _inside(self.id_map.gids, gid)

    def host_ids(self, uid: int, gid: int) -> tuple[int, int] | None:
        if self.direct:
            return uid, gid
        host_uid, host_gid = _outside(self.id_map.uids, uid), _outside(self.id_map.gids, gid)
        return None if host_uid is None or host_gid is None else (host_uid, host_gid)

    @property
    def keeps_owners(self) -> bool:
        return self.id_map.subordinate

    @property
    def direct(self) -> bool:
        return self._inside

    def command(self, argv: Sequence[str]) -> list[str]:
        if self.direct:
            return list(argv)
        return ["nsenter", "--preserve-credentials", "--user", "--mount", f"--target={self.pid()}", "--", *argv]

    def view(self, path: Path) -> Path:
        if self.direct:
            return path
        return Path(f"/proc/{self.pid()}/root") / path.relative_to("/")

    def call(self, function: Callable[[], None]) -> None:
        """Run ``function`` in the namespace: in a forked child that joined it (no exec, so nothing but
        this process's own code runs there); the child's exception is raised here again."""
        if self.direct:
            function()
        else:
            _call_in(self.pid(), function)

    def mountinfo(self) -> Path:
        return Path("/proc/self/mountinfo") if self.direct else Path(f"/proc/{self.pid()}/mountinfo")

    def ensure(self) -> None:
        self.pid()

    def pid(self) -> int:
        """The pause process, started if there is none (serialised across processes)."""
        if self._pid is not None and _is_pause(self._pid):
            return self._pid
        self.runroot.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.runroot / PAUSE_LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            pid = self._recorded()
            if pid is None:
                pid = self._spawn()
                _move_to_own_scope(pid)
                tmp = self.runroot / f"{PAUSE_PID_FILE}.tmp"
                tmp.write_text(f"{pid}\n")
                tmp.replace(self.runroot / PAUSE_PID_FILE)
        finally:
            os.close(fd)
        self._pid = pid
        return pid

    def _recorded(self) -> int | None:
        try:
            pid = int((self.runroot / PAUSE_PID_FILE).read_text())
        except (OSError, ValueError):
            return None
        return pid if _is_pause(pid) else None

    def _spawn(self) -> int:
        """A new pause: in the namespace the store's conmons still live in if its pause died
        (their mounts are there, as podman rejoins), else in a new namespace."""
        for pid in self.survivors():
            if _in_our_namespace_tree(pid):
                enter = ["nsenter", "--preserve-credentials", "--user", "--mount", f"--target={pid}", "--"]
                found, _ = _start_pause(enter)
                if found is not None:
                    return found
        refusal = user_namespace_refusal()
        if refusal is not None:  # asked first: unshare's ID-mapping helper would wait for it forever
            raise RuntimeFailure(f"cannot create the rootless user namespace: {refusal}", operation="userns")
        argv = ["unshare", "--user", "--mount", "--propagation", "private", "--map-root-user"]
        if self.id_map.subordinate:
            uid, gid = self.id_map.uids[1], self.id_map.gids[1]
            argv += [f"--map-users={uid.outside},{uid.inside},{uid.count}",
                     f"--map-groups={gid.outside},{gid.inside},{gid.count}"]
        found, error = _start_pause(argv)
        if found is None:
            raise RuntimeFailure(f"cannot create the rootless user namespace: {error or 'unshare failed'}",
                                 operation="userns")
        return found

    def stop(self) -> None:
        """End the pause process (the namespace lives on while containers use it)."""
        pid = self._recorded()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        (self.runroot / PAUSE_PID_FILE).unlink(missing_ok=True)
        self._pid = None


#: setns(2) flags of the namespaces a rootless store lives in.
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
#: Longest error a child reports back (the rest is cut).
MAX_CHILD_ERROR = 1 << 16


def _call_in(pid: int, function: Callable[[], None]) -> None:
    """``function`` in a forked child that joined ``pid``'s user and mount namespaces (as ``nsenter
    --preserve-credentials --user --mount``): the child is single-threaded, as setns to a user namespace
    needs. An exception it raises comes back as the same :mod:`kernelext.errors` class and message."""
    import ctypes
    import json

    from kernelext import errors

    namespaces = [os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC) for name in ("user", "mnt")]
    read_end, write_end = os.pipe()
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - the child never returns
            status = 1
            try:
                os.close(read_end)
                libc = ctypes.CDLL(None, use_errno=True)
                for fd, flag in zip(namespaces, (CLONE_NEWUSER, CLONE_NEWNS)):
                    if libc.setns(fd, flag) != 0:
                        raise OSError(ctypes.get_errno(), "setns into the store's namespace failed")
                function()
                status = 0
            except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
                name = type(exc).__name__ if isinstance(exc, errors.KernelextError) else "RuntimeFailure"
                os.write(write_end, json.dumps([name, str(exc)[:MAX_CHILD_ERROR]]).encode())
            finally:
                os._exit(status)
        os.close(write_end)
        write_end = -1
        with os.fdopen(read_end, "rb") as pipe:
            read_end = -1
            report = pipe.read()
        _, status = os.waitpid(child, 0)
    finally:
        for fd in (*namespaces, read_end, write_end):
            if fd >= 0:
                os.close(fd)
    if os.waitstatus_to_exitcode(status) == 0:
        return
    name, message = json.loads(report) if report else ("RuntimeFailure", "the namespace's child died")
    kind = getattr(errors, name, None)
    if not (isinstance(kind, type) and issubclass(kind, errors.KernelextError)):
        kind = errors.RuntimeFailure
    raise kind(message)


def _outside(ranges: tuple[IdRange, ...], inside: int) -> int | None:
    for r in ranges:
        if r.inside <= inside < r.inside + r.count:
            return r.outside + inside - r.inside
    return None


def _inside(ranges: tuple[IdRange, ...], outside: int) -> int:
    for r in ranges:
        if r.outside <= outside < r.outside + r.count:
            return r.inside + outside - r.outside
    return OVERFLOW_ID


def user_namespace_refusal() -> str | None:
    """Why this process may not create a user namespace, or None if it may.

    Tried rather than read from ``user.max_user_namespaces``: a seccomp filter (a container's default
    profile, as in a Binder session) refuses them while the limit allows them.
    """
    try:
        probe = subprocess.run(["unshare", "--user", "true"], stdin=subprocess.DEVNULL, check=False, capture_output=True,
                               text=True, timeout=USERNS_PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if probe.returncode == 0:
        return None
    return probe.stderr.strip().rsplit(": ", 1)[-1] or f"unshare exited with {probe.returncode}"


def _start_pause(prefix: list[str]) -> tuple[int | None, str]:
    """A pause process started through ``prefix`` (which enters or makes the namespace): its PID, or None and why."""
    # setsid --fork: the pause process is nobody's child here, so no one has to reap it.
    # It reports its PID once it is in the namespace, then becomes the pause.
    argv = ["setsid", "--fork", *prefix, "sh", "-c", 'echo $$; exec sleep infinity >/dev/null 2>&1']
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    line = proc.stdout.strip()
    return (int(line) if line.isdigit() else None), proc.stderr.strip()


def _move_to_own_scope(pid: int) -> None:
    """Under a systemd user manager, the pause process gets a scope of its own (as podman's
    ``podman-pause-*.scope``), so stopping the service or session that started it does not end it."""
    from kernelext.oci import cgroups  # not at import: kernelext.oci.cgroups imports this module

    if cgroups.default_manager(rootless=True) is cgroups.CgroupManager.SYSTEMD:
        failure = cgroups.move_to_scope(pid, f"kernelext-pause-{pid}.scope", cgroups.ROOTLESS_SYSTEMD_PARENT,
                                        rootless=True)
        if failure:  # it still holds the namespace, only in the caller's cgroup (podman says as little)
            logging.getLogger("kernelext").debug("pause process %d stays in the caller's cgroup: %s", pid, failure)


def _in_our_namespace_tree(pid: int) -> bool:
    """A live process of this user in another user namespace (not the host's)."""
    try:
        return (os.stat(f"/proc/{pid}").st_uid == os.getuid()
                and os.stat(f"/proc/{pid}/ns/user").st_ino != os.stat("/proc/self/ns/user").st_ino)
    except OSError:
        return False


def _is_pause(pid: int) -> bool:
    """A live process of ours in another user namespace: not a recycled PID."""
    try:
        return _in_our_namespace_tree(pid) and os.readlink(f"/proc/{pid}/exe").endswith("/sleep")
    except OSError:
        return False


def namespace_for(runroot: Path, survivors: Callable[[], Iterable[int]] = tuple) -> Namespace:
    """The namespace a store's runtime runs in: the host for root, the user's own otherwise."""
    return UserNamespace(runroot, survivors=survivors) if is_rootless() else Namespace()
