"""Network namespaces kernelext prepares itself, as podman does, instead of letting runc make them.

A container with its own network (``--network none``) gets a namespace
created here, with its loopback up, kept alive by a bind mount of its nsfs
file on ``<runroot>/netns/<id>`` (``ip netns``'s technique, in the store's
runroot), and named to runc by the spec's ``{"type": "network", "path": ...}``.

Why: runc tells CRIU that the network namespace is not its business
(``empty_ns``); only a namespace given by path is dumped as *external*, and
restored by joining the namespace runc passes in again. A namespace runc makes
itself comes back from a checkpoint new and with its loopback down, so
established TCP connections cannot be restored into it ("Can't connect inet
socket back: Network is unreachable"; docs/architecture.md §4).

As root only: rootless, runc creates the namespace inside the store's user
namespace, which must own it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading
from pathlib import Path

from kernelext.errors import NetworkError

_CLONE_NEWNET = 0x40000000
_MS_BIND = 0x1000
_MNT_DETACH = 2
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
#: ``struct ifreq``: the interface name, then ``short ifr_flags`` in a 24-byte union.
_IFREQ = struct.Struct("16sh22x")
LOOPBACK = b"lo"
#: The calling thread's own namespace: the process's other threads keep theirs.
_THREAD_NETNS = b"/proc/thread-self/ns/net"
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise NetworkError(f"{what}: {os.strerror(ctypes.get_errno())}", operation="network")


def _loopback_up() -> None:
    """Set IFF_UP on ``lo`` of the calling thread's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        name, flags = _IFREQ.unpack(fcntl.ioctl(sock, _SIOCGIFFLAGS, _IFREQ.pack(LOOPBACK, 0)))
        fcntl.ioctl(sock, _SIOCSIFFLAGS, _IFREQ.pack(name, flags | _IFF_UP))


def _create_in_this_thread(path: Path) -> None:
    _check(_libc.unshare(_CLONE_NEWNET), "creating a network namespace")
    try:
        _loopback_up()
    except OSError as exc:
        raise NetworkError(f"bringing the loopback up: {exc.strerror}", operation="network") from None
    _check(_libc.mount(_THREAD_NETNS, os.fsencode(path), None, _MS_BIND, None),
           f"bind-mounting the network namespace on {path}")


def create(path: Path) -> None:
    """A new network namespace with its loopback up, held by a bind mount on ``path``."""
    remove(path)  # a leftover of a run that was never cleaned up (a crash): never stack mounts
    path.parent.mkdir(mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    failure: list[BaseException] = []

    def work() -> None:
        try:
            _create_in_this_thread(path)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller's thread
            failure.append(exc)

    # A thread of its own: it leaves the namespace it switched to with it, the process never is in it.
    thread = threading.Thread(target=work, name="kernelext-netns")
    thread.start()
    thread.join()
    if failure:
        remove(path)
        raise failure[0]


def adopt(path: Path, pid: int) -> None:
    """Hold the namespace ``pid`` is in on ``path`` instead of the one prepared there: the spec runc keeps
    names ``path``, and a later checkpoint must find there the namespace the container is really in."""
    remove(path)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    _check(_libc.mount(os.fsencode(f"/proc/{pid}/ns/net"), os.fsencode(path), None, _MS_BIND, None),
           f"bind-mounting the network namespace on {path}")


def remove(path: Path) -> None:
    """Unmount and delete the namespace's file; nothing if there is none.

    The namespace itself goes when its last process has exited too.
    """
    if _libc.umount2(os.fsencode(path), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # not mounted, or no file: nothing to undo
            raise NetworkError(f"unmounting the network namespace {path}: {os.strerror(err)}", operation="network")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def holds(path: Path, pid: int) -> bool:
    """Whether ``pid`` is in the namespace mounted on ``path``."""
    try:
        mounted, current = os.stat(path), os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return False
    return (mounted.st_dev, mounted.st_ino) == (current.st_dev, current.st_ino)
