"""What a container changed in its root filesystem: podman diff's A / C / D.

Two ways, one per storage driver: overlay (:func:`layer_changes`) and a full
copy of the image (:func:`tree_changes`, the vfs driver).

Read from the overlay upper directory against the image (the lower): an
upper entry that the lower lacks was added, one the lower has was changed; a
whiteout (a character device 0/0) deleted the lower entry; an opaque
directory (xattr ``trusted.overlay.opaque`` = ``y``, or ``user.overlay.opaque``
for an overlay mounted in a user namespace, i.e. rootless) hides, so deletes, every
lower entry it does not have itself. As in containers/storage, a directory
whose mode, size and mtime match the lower's is not reported unless something
was added or deleted directly in it. Both trees are walked through fds
without following symlinks: the upper's contents belong to the container.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Paths the runtime itself creates or mounts over in every container; podman leaves them out.
INIT_PATHS = frozenset({"/dev", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc/mtab", "/proc", "/run",
                        "/run/notify", "/run/.containerenv", "/run/secrets", "/sys"})


class ChangeKind(enum.Enum):
    ADDED = "A"
    CHANGED = "C"
    DELETED = "D"


@dataclass(frozen=True, order=True)
class Change:
    path: str
    kind: ChangeKind

    def __str__(self) -> str:
        return f"{self.kind.value} {self.path}"


def _lstat(dir_fd: int | None, name: str) -> os.stat_result | None:
    if dir_fd is None:
        return None
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(fd: int) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(fd, name) == b"y":
                return True
        except OSError:
            continue
    return False


class _Diff:
    def __init__(self, excluded: frozenset[str]) -> None:
        self.excluded = excluded
        self.changes: dict[str, ChangeKind] = {}

    def record(self, path: str, kind: ChangeKind) -> None:
        if path in self.excluded:
            return
        self.changes.setdefault(path, kind)
        if kind is not ChangeKind.CHANGED:
            parent = path.rsplit("/", 1)[0] or "/"
            if parent != "/" and parent not in self.excluded:
                self.changes.setdefault(parent, ChangeKind.CHANGED)

    def walk(self, upper: int, lower: int | None, prefix: str) -> None:
        with os.scandir(upper) as it:
            names = sorted(e.name for e in it)
        for name in names:
            path = prefix + name
            st = os.stat(name, dir_fd=upper, follow_symlinks=False)
            below = _lstat(lower, name)
            if _is_whiteout(st):
                if below is not None:
                    self.record(path, ChangeKind.DELETED)
                continue
            if not stat.S_ISDIR(st.st_mode):
                self.record(path, ChangeKind.ADDED if below is None else ChangeKind.CHANGED)
                continue
            self.directory(upper, lower, name, path, st, below)

    def directory(self, upper: int, lower: int | None, name: str, path: str, st: os.stat_result,
                  below: os.stat_result | None) -> None:
        fd = os.open(name, _O_DIR, dir_fd=upper)
        lower_fd: int | None = None
        try:
            opaque = _opaque(fd)
            if below is None:
                self.record(path, ChangeKind.ADDED)
            elif not stat.S_ISDIR(below.st_mode):
                self.record(path, ChangeKind.CHANGED)
            else:
                if (stat.S_IMODE(st.st_mode), st.st_mtime_ns) != (stat.S_IMODE(below.st_mode), below.st_mtime_ns) \
                        or opaque:
                    self.record(path, ChangeKind.CHANGED)
                assert lower is not None
                lower_fd = os.open(name, _O_DIR, dir_fd=lower)
                if opaque:
                    with os.scandir(fd) as it:
                        present = {e.name for e in it}
                    with os.scandir(lower_fd) as it:
                        hidden = sorted(e.name for e in it if e.name not in present)
                    for child in hidden:
                        self.record(f"{path}/{child}", ChangeKind.DELETED)
                    os.close(lower_fd)
                    lower_fd = None
            self.walk(fd, lower_fd, path + "/")
        finally:
            os.close(fd)
            if lower_fd is not None:
                os.close(lower_fd)


def layer_changes(upper: Path, lower: Path, excluded: frozenset[str] = INIT_PATHS) -> list[Change]:
    """The changes of ``upper`` over ``lower``, sorted by path; ``excluded`` paths are left out."""
    diff = _Diff(excluded)
    upper_fd = os.open(upper, _O_DIR)
    lower_fd = os.open(lower, _O_DIR)
    try:
        diff.walk(upper_fd, lower_fd, "/")
    finally:
        os.close(upper_fd)
        os.close(lower_fd)
    return sorted(Change(path, kind) for path, kind in diff.changes.items())


def _same_entry(a: os.stat_result, b: os.stat_result, name: str, a_dir: int, b_dir: int) -> bool:
    if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode) or stat.S_IMODE(a.st_mode) != stat.S_IMODE(b.st_mode):
        return False
    if stat.S_ISLNK(a.st_mode):
        return os.readlink(name, dir_fd=a_dir) == os.readlink(name, dir_fd=b_dir)
    if stat.S_ISDIR(a.st_mode):
        return a.st_mtime_ns == b.st_mtime_ns
    return (a.st_size, a.st_mtime_ns, a.st_rdev) == (b.st_size, b.st_mtime_ns, b.st_rdev)


def _compare(diff: _Diff, copy: int, image: int, prefix: str) -> None:
    with os.scandir(copy) as it:
        names = {e.name for e in it}
    with os.scandir(image) as it:
        originals = {e.name for e in it}
    for name in sorted(originals - names):
        diff.record(prefix + name, ChangeKind.DELETED)
    for name in sorted(names):
        path = prefix + name
        st = os.stat(name, dir_fd=copy, follow_symlinks=False)
        below = _lstat(image, name) if name in originals else None
        if below is None:
            diff.record(path, ChangeKind.ADDED)
        elif not _same_entry(st, below, name, copy, image):
            diff.record(path, ChangeKind.CHANGED)
        if not stat.S_ISDIR(st.st_mode):
            continue
        fd = os.open(name, _O_DIR, dir_fd=copy)
        try:
            if below is not None and stat.S_ISDIR(below.st_mode):
                below_fd = os.open(name, _O_DIR, dir_fd=image)
                try:
                    _compare(diff, fd, below_fd, path + "/")
                finally:
                    os.close(below_fd)
            else:
                _added_tree(diff, fd, path + "/")
        finally:
            os.close(fd)


def _added_tree(diff: _Diff, fd: int, prefix: str) -> None:
    with os.scandir(fd) as it:
        entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
    for name, is_dir in entries:
        diff.record(prefix + name, ChangeKind.ADDED)
        if is_dir:
            child = os.open(name, _O_DIR, dir_fd=fd)
            try:
                _added_tree(diff, child, prefix + name + "/")
            finally:
                os.close(child)


def tree_changes(copy: Path, image: Path, excluded: frozenset[str] = INIT_PATHS) -> list[Change]:
    """The changes of a full copy of the image (``copy``) against the image, sorted by path."""
    diff = _Diff(excluded)
    copy_fd, image_fd = os.open(copy, _O_DIR), os.open(image, _O_DIR)
    try:
        _compare(diff, copy_fd, image_fd, "/")
    finally:
        os.close(copy_fd)
        os.close(image_fd)
    return sorted(Change(path, kind) for path, kind in diff.changes.items())
