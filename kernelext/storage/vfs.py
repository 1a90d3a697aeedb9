"""The vfs storage driver (podman's name): each container gets a full copy of its image.

The fallback where overlayfs cannot be mounted: a rootless user on a kernel
older than 5.11. Nothing is mounted, so "mounting" only hands out the
directory; creating a container costs a copy of the image (made inside the
user namespace rootless, so files keep their owners), and ``diff`` compares the
copy with the image. A layered image's layers are applied bottom first
with the copy engine (confined to the new root), each one's whiteouts and
opaque directories removing what they hide below first.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

from kernelext.errors import CopyError, RuntimeFailure, tool_reason
from kernelext.files.confined import O_DIR, DevicePolicy, FsSink, Root, SinkPolicy, tree_entries
from kernelext.files.fdtree import list_names, remove_entry
from kernelext.files.rootpath import open_in_root
from kernelext.rootless import Namespace
from kernelext.storage.layerdiff import Change, tree_changes
from kernelext.storage.layerworker import changes_in_namespace
from kernelext.storage.overlay import compares_in_namespace, lower_view

#: The opaque-directory xattrs a layer may carry (see kernelext.storage.layers).
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_LAYER_POLICY = SinkPolicy(owner=None, overwrite=True, devices=DevicePolicy.SKIP, strip_setid=False,
                           where="the container's root")


class CopyLayer:
    """A container's root filesystem as a plain directory (``rootfs``) copied from the image."""

    driver = "vfs"

    def __init__(self, path: Path, lower: Path | Sequence[Path], namespace: Namespace | None = None) -> None:
        """``lower``: the image's root, or its layers top first (applied bottom first)."""
        self.path = path
        self.lowers = [lower] if isinstance(lower, Path) else list(lower)
        self.lower = self.lowers[0]
        self.namespace = namespace or Namespace()

    @property
    def merged(self) -> Path:
        return self.path / "rootfs"

    #: Where the container's own files are: the whole copy (checkpoint exports read changed files here).
    upper = merged

    @property
    def merged_view(self) -> Path:
        return self.namespace.view(self.merged)

    def graph_data(self, mounted: bool) -> dict[str, str]:
        """inspect's ``GraphDriver.Data``."""
        return {}

    def create(self) -> None:
        if len(self.lowers) > 1:
            self._stack_layers()
            return
        self.path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(self.namespace.command(["cp", "-a", "--reflink=auto", f"{self.lower}/.",
                                                      str(self.merged)]),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0:
            self.namespace.remove_tree(self.path)
            raise RuntimeFailure(f"copying the image into {self.merged}: {tool_reason(proc.stderr, 'cp failed')}",
                                 operation="create")

    def _stack_layers(self) -> None:
        if not self.namespace.direct:  # rootless: where the layers' owners exist (docs/architecture.md §11)
            from kernelext.storage.layerworker import stack_in_namespace

            stack_in_namespace(self.path, self.lowers, self.namespace)
            return
        self.merged.mkdir(parents=True)
        root = Root.open(self.merged)
        try:
            for layer in reversed(self.lowers):
                os.chmod(self.merged, stat.S_IMODE(os.stat(layer).st_mode))
                _remove_hidden(root.fd, layer)
                _copy_layer(root, layer)
        except (CopyError, OSError) as exc:
            self.namespace.remove_tree(self.path)
            raise RuntimeFailure(f"applying the image's layers to {self.merged}: {exc}", operation="create") from None
        finally:
            root.close()

    def is_mounted(self) -> bool:
        return True  # a directory is always there to use

    def mount(self) -> Path:
        return self.merged

    def unmount(self) -> None:
        """Nothing is mounted."""

    def remove(self) -> None:
        self.namespace.remove_tree(self.path)

    def changes(self) -> list[Change]:
        if compares_in_namespace(self.lowers, self.namespace):
            return changes_in_namespace(self.driver, self.path, self.lowers, self.namespace)
        with lower_view(self.lowers, self.path, self.namespace) as lower:
            return tree_changes(self.merged, lower)


def _remove_hidden(root_fd: int, layer: Path) -> None:
    """What ``layer``'s whiteouts delete and its opaque directories hide, removed from the root below it."""
    for dirpath, _dirs, files in os.walk(layer):
        rel = os.path.relpath(dirpath, layer)
        opaque = any(_xattr(dirpath, name) == b"y" for name in _OPAQUE_XATTRS)
        whiteouts = [name for name in files if _is_whiteout(os.path.join(dirpath, name))]
        if not opaque and not whiteouts:
            continue
        try:
            fd = open_in_root(root_fd, rel, O_DIR)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                continue  # nothing below to hide (or not a directory: the layer's own entry replaces it)
            raise
        try:
            for name in list_names(fd) if opaque else whiteouts:
                remove_entry(fd, name)
        finally:
            os.close(fd)


def _xattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP):
            return None
        raise


def _is_whiteout(path: str) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _copy_layer(root: Root, layer: Path) -> None:
    """The layer's entries over the root (whiteouts, device nodes, are skipped), confined to the root."""
    source_root = Root.open(layer)
    source = source_root.resolve("/")
    sink = FsSink(root, os.open(".", O_DIR, dir_fd=root.fd), "/", _LAYER_POLICY)
    try:
        for entry in tree_entries(source, "", contents=True):
            sink.feed(entry)
        sink.finish()
    finally:
        sink.close()
        source.close()
        source_root.close()
