"""Overlay mounts: the image as the read-only lower layer, one upper per container.

As root the mount is a syscall here; rootless it is made inside the store's
user namespace (Linux >= 5.11 allows overlayfs there), where runc sees it.
Layer paths longer than a page of mount options are shortened to
``/proc/self/fd/N`` by the process that mounts (docs/architecture.md §11):
rootless, a child of this process that joined the namespace.

A volatile layer (a ``--rm`` container's, as podman makes it) is mounted with
overlayfs' ``volatile`` option: unmounting a normal overlay syncs the whole
filesystem under it (every dirty page on it, anyone's: 20 MB took 40 ms here),
pointless for a layer deleted right after.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from kernelext.errors import RuntimeFailure, tool_reason
from kernelext.rootless import Namespace
from kernelext.storage.layerdiff import Change, layer_changes
from kernelext.storage.layerworker import changes_in_namespace

_MNT_DETACH = 2
_MS_RDONLY = 1
#: overlayfs' option for its metadata in ``user.overlay.*`` xattrs: what a user namespace may set.
_USERXATTR = ",userxattr"
#: Where a layered image is mounted read-only while a container's changes are compared with it.
LOWER_VIEW_PREFIX = ".lower-view-"
#: The kernel copies mount options into one page: a lowerdir list longer than that cannot be mounted.
MAX_MOUNT_OPTIONS = os.sysconf("SC_PAGE_SIZE") - 1
#: A container's root directory: podman's (containers/storage creates layer roots 0555).
ROOT_MODE = 0o555
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def lowerdir_option(lowers: Sequence[Path], room: int) -> Iterator[str]:
    """The ``lowerdir`` value for a mount made by this process: the layers' paths, or, when they would not
    fit in ``room``, ``/proc/self/fd/N`` of each (17 bytes a layer, the room podman's short links buy)."""
    full = ":".join(str(p) for p in lowers)
    if len(full) <= room:
        yield full
        return
    fds: list[int] = []
    try:
        for path in lowers:
            fds.append(os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        yield ":".join(f"/proc/self/fd/{fd}" for fd in fds)
    finally:
        for fd in fds:
            os.close(fd)


def compares_in_namespace(lowers: Sequence[Path], namespace: Namespace) -> bool:
    """Whether comparing with these layers takes a mount that this process cannot make (rootless, outside
    the namespace): the comparison then runs in the namespace (kernelext.storage.layerworker)."""
    return len(lowers) > 1 and not namespace.direct


@contextlib.contextmanager
def lower_view(lowers: Sequence[Path], parent: Path, namespace: Namespace) -> Iterator[Path]:
    """The image as one directory, to compare a container's files with: its only layer, or its layers
    mounted read-only (an overlay of lower layers alone) on a new directory under ``parent`` while in use
    (by this process: as root, or inside the store's namespace)."""
    if len(lowers) == 1:
        yield lowers[0]
        return
    where = Path(tempfile.mkdtemp(prefix=LOWER_VIEW_PREFIX, dir=parent))  # one each: diffs may run side by side
    extra = _USERXATTR if namespace.rootless else ""  # the layers' opaque directories are marked in user.*
    try:
        with lowerdir_option(lowers, MAX_MOUNT_OPTIONS - len(f"lowerdir={extra}")) as lowerdir:
            if _libc.mount(b"overlay", os.fsencode(where), b"overlay", _MS_RDONLY,
                           f"lowerdir={lowerdir}{extra}".encode()) != 0:
                err = ctypes.get_errno()
                raise RuntimeFailure(f"mounting the image's layers on {where}: {os.strerror(err)}")
        try:
            yield where
        finally:
            _libc.umount2(os.fsencode(where), _MNT_DETACH)
    finally:
        where.rmdir()


class Layer:
    """The writable layer of one container: ``diff`` (upper), ``work`` and ``merged``."""

    driver = "overlay"

    def __init__(self, path: Path, lower: Path | Sequence[Path], namespace: Namespace | None = None, *,
                 volatile: bool = False) -> None:
        """``lower``: the image's root, or its layers top first."""
        self.path = path
        self.lowers = [lower] if isinstance(lower, Path) else list(lower)
        # The top layer: what diff compares with (a file of a deeper layer changed shows as added).
        self.lower = self.lowers[0]
        self.namespace = namespace or Namespace()
        # Not rootless: the kernel's marker (see mount) sits under a mode-000 directory there, which only a
        # process inside the namespace could clear: one more process per mount.
        self.volatile = volatile and not self.namespace.rootless

    @property
    def upper(self) -> Path:
        return self.path / "diff"

    @property
    def work(self) -> Path:
        return self.path / "work"

    @property
    def merged(self) -> Path:
        return self.path / "merged"

    def create(self) -> None:
        for d in (self.upper, self.work, self.merged):
            d.mkdir(parents=True, exist_ok=True)
        if not self.namespace.rootless:
            # The container's / is the upper's root: podman's mode (containers/storage's default), which a
            # checkpoint records and a restore on either engine checks (docs/architecture.md §4). Rootless
            # keeps 0755: the user removes the layer from outside its namespace, without root's override.
            self.upper.chmod(ROOT_MODE)

    def graph_data(self, mounted: bool) -> dict[str, str]:
        """inspect's ``GraphDriver.Data``."""
        return {"LowerDir": ":".join(str(p) for p in self.lowers), "UpperDir": str(self.upper), "WorkDir": str(self.work),
                "MergedDir": str(self.merged) if mounted else ""}

    def changes(self) -> list[Change]:
        if compares_in_namespace(self.lowers, self.namespace):
            return changes_in_namespace(self.driver, self.path, self.lowers, self.namespace)
        with lower_view(self.lowers, self.path, self.namespace) as lower:
            return layer_changes(self.upper, lower)

    @property
    def merged_view(self) -> Path:
        """The mounted root filesystem as this process reaches it (through the namespace rootless)."""
        return self.namespace.view(self.merged)

    def is_mounted(self) -> bool:
        target = os.fsencode(self.merged)
        with open(self.namespace.mountinfo(), "rb") as f:
            return any(line.split()[4] == target for line in f)

    def mount(self) -> Path:
        """Mount (if not yet) and return the mount point as the runtime sees it."""
        if not self.is_mounted():
            extra = ""
            if self.namespace.rootless:
                # Its metadata in user.* xattrs: without them, removing a lower directory fails (EIO).
                extra += _USERXATTR
            if self.volatile:
                extra += ",volatile"
                # A volatile mount leaves this marker, and overlayfs refuses to mount the layer again while
                # it exists (its contents may be lost after a crash); removed first, as containers/storage does.
                shutil.rmtree(self.work / "work" / "incompat" / "volatile", ignore_errors=True)
            options = f"lowerdir={':'.join(map(str, self.lowers))},upperdir={self.upper},workdir={self.work}{extra}"
            if self.namespace.direct or len(options) > MAX_MOUNT_OPTIONS:
                # Rootless and too long for the `mount` command: a child of this process that joined the
                # namespace mounts, its /proc/self/fd/N shortening the paths as root's do.
                self.namespace.call(functools.partial(self._mount_here, extra))
            else:
                self._run_in_namespace("mount", ["mount", "-t", "overlay", "overlay", "-o", options,
                                                 str(self.merged)])
        return self.merged

    def _mount_here(self, extra: str) -> None:
        """The mount made by this process (``extra``: the options after ``workdir``)."""
        fixed = len(f"lowerdir=,upperdir={self.upper},workdir={self.work}{extra}")
        with lowerdir_option(self.lowers, MAX_MOUNT_OPTIONS - fixed) as lowerdir:
            options = f"lowerdir={lowerdir},upperdir={self.upper},workdir={self.work}{extra}"
            if len(options) > MAX_MOUNT_OPTIONS:
                raise RuntimeFailure(f"mounting overlay on {self.merged}: the image has too many layers "
                                     f"({len(self.lowers)}) for one mount", operation="mount")
            if _libc.mount(b"overlay", os.fsencode(self.merged), b"overlay", 0, options.encode()) != 0:
                err = ctypes.get_errno()
                raise RuntimeFailure(f"mounting overlay on {self.merged}: {os.strerror(err)}", operation="mount")

    def _run_in_namespace(self, operation: str, argv: list[str]) -> None:
        proc = subprocess.run(self.namespace.command(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeFailure(f"{operation} {self.merged}: {tool_reason(proc.stderr, argv[0] + ' failed')}",
                                 operation=operation)

    def unmount(self) -> None:
        if not self.namespace.direct:
            if self.is_mounted():
                # Lazily: a process in flight may still hold it, as with MNT_DETACH below.
                self._run_in_namespace("unmount", ["umount", "--lazy", str(self.merged)])
            return
        if _libc.umount2(os.fsencode(self.merged), 0) != 0:
            err = ctypes.get_errno()
            if err == errno.EBUSY:
                # Still referenced by a process in flight; detach it from the tree now.
                _libc.umount2(os.fsencode(self.merged), _MNT_DETACH)
            elif err not in (errno.EINVAL, errno.ENOENT):
                raise RuntimeFailure(f"unmounting {self.merged}: {os.strerror(err)}", operation="unmount")

    def remove(self) -> None:
        self.unmount()
        self.namespace.remove_tree(self.path)
