"""The vfs storage driver (podman's name): each container gets a full copy of its image.

The fallback where overlayfs cannot be mounted: a rootless user on a kernel
older than 5.11. Nothing is mounted, so "mounting" only hands out the
directory; creating a container costs a copy of the image (made inside the
user namespace rootless, so files keep their owners), and ``diff`` compares the
copy with the image.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from kernelext.errors import RuntimeFailure, tool_reason
from kernelext.rootless import Namespace
from kernelext.storage.layerdiff import Change, tree_changes


class CopyLayer:
    """A container's root filesystem as a plain directory (``rootfs``) copied from the image."""

    driver = "vfs"

    def __init__(self, path: Path, lower: Path, namespace: Namespace | None = None) -> None:
        self.path = path
        self.lower = lower
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
        self.path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(self.namespace.command(["cp", "-a", "--reflink=auto", f"{self.lower}/.",
                                                      str(self.merged)]),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0:
            self.namespace.remove_tree(self.path)
            raise RuntimeFailure(f"copying the image into {self.merged}: {tool_reason(proc.stderr, 'cp failed')}",
                                 operation="create")

    def is_mounted(self) -> bool:
        return True  # a directory is always there to use

    def mount(self) -> Path:
        return self.merged

    def unmount(self) -> None:
        """Nothing is mounted."""

    def remove(self) -> None:
        self.namespace.remove_tree(self.path)

    def changes(self) -> list[Change]:
        return tree_changes(self.merged, self.lower)
