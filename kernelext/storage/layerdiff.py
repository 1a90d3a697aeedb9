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
without following symlinks (the upper's contents belong to the container),
and without recursion.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kernelext.files.fdtree import DirStack, list_names

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


@dataclass
class _Level:
    fd: int
    prefix: str  # its path with a trailing "/"
    pending: list[str]  # children not visited yet, last first


@dataclass
class _Fd:
    fd: int


#: What a walk does with each child: the fds of the child directory and its counterpart to descend into,
#: or None (args: the directory's fd, its counterpart's or None, the child's name, the child's path).
Visit = Callable[[int, "int | None", str, str], "tuple[int, int | None] | None"]
#: A directory's children in visiting order (args: its fd, its counterpart's or None, its path with "/").
Listing = Callable[[int, "int | None", str], list[str]]


def _walk_pair(tree: int, other: int | None, listing: Listing, visit: Visit) -> None:
    """Depth first through ``tree`` and, where it has the same directories, ``other``: with explicit
    stacks, as a container's tree may be deeper than any recursion. Neither fd is taken."""
    trees = DirStack(_Level(os.dup(tree), "/", []))
    others = DirStack(_Fd(os.dup(other))) if other is not None else None
    try:
        trees.top.pending = listing(trees.top.fd, other, "/")[::-1]
        while len(trees):
            level = trees.top
            paired = others is not None and len(others) == len(trees)
            if not level.pending:
                if paired:
                    assert others is not None
                    others.pop()
                trees.pop()
                continue
            name = level.pending.pop()
            counterpart = others.top.fd if paired and others is not None else None
            below = visit(level.fd, counterpart, name, level.prefix + name)
            if below is None:
                continue
            child, child_other = below
            trees.push(_Level(child, level.prefix + name + "/", []))
            if child_other is not None and others is not None:
                others.push(_Fd(child_other))
            trees.top.pending = listing(child, child_other, trees.top.prefix)[::-1]
    finally:
        trees.close()
        if others is not None:
            others.close()


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

    def sorted(self) -> list[Change]:
        return sorted(Change(path, kind) for path, kind in self.changes.items())

    # ----------------------------------------------------- overlay: upper over lower
    def upper_entry(self, upper: int, lower: int | None, name: str, path: str) -> tuple[int, int | None] | None:
        st = os.stat(name, dir_fd=upper, follow_symlinks=False)
        below = _lstat(lower, name)
        if _is_whiteout(st):
            if below is not None:
                self.record(path, ChangeKind.DELETED)
            return None
        if not stat.S_ISDIR(st.st_mode):
            self.record(path, ChangeKind.ADDED if below is None else ChangeKind.CHANGED)
            return None
        fd = os.open(name, _O_DIR, dir_fd=upper)
        try:
            return fd, self._upper_dir(fd, lower, name, path, st, below)
        except BaseException:
            os.close(fd)
            raise

    def _upper_dir(self, fd: int, lower: int | None, name: str, path: str, st: os.stat_result,
                   below: os.stat_result | None) -> int | None:
        """Record the directory ``fd``; its lower counterpart to walk beside it (None: none, or hidden)."""
        opaque = _opaque(fd)
        if below is None:
            self.record(path, ChangeKind.ADDED)
            return None
        if not stat.S_ISDIR(below.st_mode):
            self.record(path, ChangeKind.CHANGED)
            return None
        if (stat.S_IMODE(st.st_mode), st.st_mtime_ns) != (stat.S_IMODE(below.st_mode), below.st_mtime_ns) \
                or opaque:
            self.record(path, ChangeKind.CHANGED)
        assert lower is not None
        lower_fd = os.open(name, _O_DIR, dir_fd=lower)
        if not opaque:
            return lower_fd
        try:
            present = set(list_names(fd))
            hidden = sorted(n for n in list_names(lower_fd) if n not in present)
        finally:
            os.close(lower_fd)
        for child in hidden:
            self.record(f"{path}/{child}", ChangeKind.DELETED)
        return None

    # --------------------------------------------------- vfs: a copy against the image
    def copy_listing(self, copy: int, image: int | None, prefix: str) -> list[str]:
        """The copy's children; what the image has and the copy lacks was deleted."""
        names = set(list_names(copy))
        if image is not None:
            for name in sorted(set(list_names(image)) - names):
                self.record(prefix + name, ChangeKind.DELETED)
        return sorted(names)

    def copy_entry(self, copy: int, image: int | None, name: str, path: str) -> tuple[int, int | None] | None:
        st = os.stat(name, dir_fd=copy, follow_symlinks=False)
        below = _lstat(image, name)
        if below is None:
            self.record(path, ChangeKind.ADDED)
        elif image is not None and not _same_entry(st, below, name, copy, image):
            self.record(path, ChangeKind.CHANGED)
        if not stat.S_ISDIR(st.st_mode):
            return None
        fd = os.open(name, _O_DIR, dir_fd=copy)
        if below is None or not stat.S_ISDIR(below.st_mode):
            return fd, None  # all of it added
        try:
            return fd, os.open(name, _O_DIR, dir_fd=image)
        except BaseException:
            os.close(fd)
            raise


def _sorted_names(fd: int, other: int | None, prefix: str) -> list[str]:
    return sorted(list_names(fd))


def layer_changes(upper: Path, lower: Path, excluded: frozenset[str] = INIT_PATHS) -> list[Change]:
    """The changes of ``upper`` over ``lower``, sorted by path; ``excluded`` paths are left out."""
    diff = _Diff(excluded)
    upper_fd = os.open(upper, _O_DIR)
    lower_fd = os.open(lower, _O_DIR)
    try:
        _walk_pair(upper_fd, lower_fd, _sorted_names, diff.upper_entry)
    finally:
        os.close(upper_fd)
        os.close(lower_fd)
    return diff.sorted()


def _same_entry(a: os.stat_result, b: os.stat_result, name: str, a_dir: int, b_dir: int) -> bool:
    if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode) or stat.S_IMODE(a.st_mode) != stat.S_IMODE(b.st_mode):
        return False
    if stat.S_ISLNK(a.st_mode):
        return os.readlink(name, dir_fd=a_dir) == os.readlink(name, dir_fd=b_dir)
    if stat.S_ISDIR(a.st_mode):
        return a.st_mtime_ns == b.st_mtime_ns
    return (a.st_size, a.st_mtime_ns, a.st_rdev) == (b.st_size, b.st_mtime_ns, b.st_rdev)


def tree_changes(copy: Path, image: Path, excluded: frozenset[str] = INIT_PATHS) -> list[Change]:
    """The changes of a full copy of the image (``copy``) against the image, sorted by path."""
    diff = _Diff(excluded)
    copy_fd, image_fd = os.open(copy, _O_DIR), os.open(image, _O_DIR)
    try:
        _walk_pair(copy_fd, image_fd, diff.copy_listing, diff.copy_entry)
    finally:
        os.close(copy_fd)
        os.close(image_fd)
    return diff.sorted()
