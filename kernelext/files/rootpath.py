"""Opening paths inside a container root without ever leaving it.

``openat2(RESOLVE_IN_ROOT)`` resolves every component (symlinks, absolute
targets, ``..``) as if the root directory were ``/``, atomically in the
kernel: a process inside the container swapping links meanwhile cannot make
the lookup escape (the docker cp CVEs, docs/architecture.md §5).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct

_SYS_OPENAT2 = 437  # the same number on x86_64 and aarch64
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_OPEN_HOW = struct.Struct("QQQ")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

if os.uname().machine not in ("x86_64", "aarch64"):  # pragma: no cover
    raise ImportError(f"openat2 syscall number unknown on {os.uname().machine}")


def openat2(dir_fd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    how = ctypes.create_string_buffer(_OPEN_HOW.pack(flags | os.O_CLOEXEC, mode, resolve))
    fd = _libc.syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), how, ctypes.c_size_t(_OPEN_HOW.size))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def open_in_root(root_fd: int, path: str, flags: int = os.O_RDONLY, mode: int = 0) -> int:
    """Open ``path`` as seen from inside the root that ``root_fd`` refers to."""
    return openat2(root_fd, path.lstrip("/") or ".", flags, mode,
                   RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)


def read_file_in_root(root: str | os.PathLike[str], path: str, limit: int = 1 << 20) -> bytes | None:
    """The content of a regular file inside ``root``, or None if it is missing."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(root_fd, path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return os.read(fd, limit)
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)


def is_dir_in_root(root: str | os.PathLike[str], path: str) -> bool:
    """Whether ``path`` is a directory as seen from inside ``root`` (symlinks resolved within it)."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(open_in_root(root_fd, path, os.O_PATH | os.O_DIRECTORY))
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return False
        raise
    finally:
        os.close(root_fd)
