"""Which storage driver a store uses (podman's names): ``overlay``, else ``vfs``.

overlay wherever it can be mounted: always as root, and rootless on Linux >=
5.11 (inside the user namespace). Otherwise vfs, a full copy of the image per
container. fuse-overlayfs is not supported. A store keeps the driver it was
created with (its containers' layers are in that driver's format); asking for
another one (``KERNELEXT_STORAGE_DRIVER`` or ``Runtime(storage_driver=...)``)
is refused with podman's message.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from pathlib import Path

from kernelext.errors import InvalidArgumentError
from kernelext.rootless import Namespace, userns_overlay_supported
from kernelext.storage.overlay import Layer
from kernelext.storage.vfs import CopyLayer

ENV_STORAGE_DRIVER = "KERNELEXT_STORAGE_DRIVER"
#: The driver a store was created with, under its root.
DRIVER_FILE = "storage-driver"

ContainerLayer = Layer | CopyLayer


class StorageDriver(enum.Enum):
    OVERLAY = "overlay"
    VFS = "vfs"

    @classmethod
    def parse(cls, text: str) -> StorageDriver:
        try:
            return cls(text)
        except ValueError:
            raise InvalidArgumentError(f"unsupported storage driver {text!r}: use 'overlay' or 'vfs'") from None

    def layer(self, path: Path, lower: Path | Sequence[Path], namespace: Namespace, *, volatile: bool = False) -> ContainerLayer:
        """``volatile``: never synced (a ``--rm`` container's); vfs mounts nothing, so has nothing to sync."""
        if self is StorageDriver.OVERLAY:
            return Layer(path, lower, namespace, volatile=volatile)
        return CopyLayer(path, lower, namespace)


def default_driver(namespace: Namespace) -> StorageDriver:
    if namespace.rootless and not userns_overlay_supported():
        return StorageDriver.VFS
    return StorageDriver.OVERLAY


def store_driver(root: Path, namespace: Namespace, asked: str | None = None) -> StorageDriver:
    """The store's driver: the one it was created with; a new store records its own."""
    text = asked or os.environ.get(ENV_STORAGE_DRIVER)
    wanted = StorageDriver.parse(text) if text else None
    record = root / DRIVER_FILE
    try:
        recorded = StorageDriver.parse(record.read_text().strip())
    except FileNotFoundError:
        chosen = wanted or default_driver(namespace)
        tmp = record.with_name(f".{DRIVER_FILE}.{os.getpid()}")
        tmp.write_text(f"{chosen.value}\n")
        tmp.replace(record)
        return chosen
    if wanted is not None and wanted is not recorded:
        raise InvalidArgumentError(f'database storage graph driver "{recorded.value}" does not match our storage '
                                   f'graph driver "{wanted.value}": database configuration mismatch')
    return recorded
