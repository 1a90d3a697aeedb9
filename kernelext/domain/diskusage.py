"""``system df``: what the store's images, containers, volumes and checkpoint histories take on disk.

podman's rows (``TYPE TOTAL ACTIVE SIZE RECLAIMABLE``) plus one for the checkpoint histories
(docs/architecture.md §4, "Checkpoint history"): active entries are each container's newest, the
rest is what ``checkpoint prune`` reclaims.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernelext.core.state import ContainerStatus
from kernelext.files.fdtree import tree_size

if TYPE_CHECKING:
    from kernelext.core.runtime import Runtime


@dataclass(frozen=True)
class UsageRow:
    """One row of ``system df``: how many, how many in use, their bytes and the bytes not in use."""

    kind: str
    total: int
    active: int
    size: int
    reclaimable: int


def _size(path: object) -> int:
    try:
        return tree_size(str(path))
    except OSError:
        return 0


def disk_usage(rt: Runtime) -> list[UsageRow]:
    containers = rt.list(all=True)
    used_images = {c.config.image_id for c in containers}
    images = rt.images.all()
    image_sizes = {i.id: i.config.size for i in images}
    image_size = sum(image_sizes.values())
    running = [c for c in containers if c.status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED)]
    layer_sizes = {c.id: _size(c.layer.upper) for c in containers}
    volumes = rt.volumes.list()
    volume_sizes = {v.name: _size(rt.volumes.path(v.name)) for v in volumes}
    used_volumes = {v.name for v in volumes if rt.volumes.users(v.name)}
    histories = [c.checkpoints() for c in containers]
    entries = [e for listed in histories for e in listed]
    newest = [listed[-1] for listed in histories if listed]
    checkpoint_size = sum(e.size for e in entries)
    return [
        UsageRow("Images", len(images), len(used_images & set(image_sizes)), image_size,
                 sum(s for i, s in image_sizes.items() if i not in used_images)),
        UsageRow("Containers", len(containers), len(running), sum(layer_sizes.values()),
                 sum(s for i, s in layer_sizes.items() if i not in {c.id for c in running})),
        UsageRow("Local Volumes", len(volumes), len(used_volumes), sum(volume_sizes.values()),
                 sum(s for n, s in volume_sizes.items() if n not in used_volumes)),
        UsageRow("Checkpoints", len(entries), len(newest), checkpoint_size,
                 checkpoint_size - sum(e.size for e in newest)),
    ]
