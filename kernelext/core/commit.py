"""``podman commit``: a container's changes become a new image (docs/architecture.md §11).

The changes are read from the container's writable layer (the overlay upper
directory as it is, or the vfs copy's change list against the image), written
as one OCI layer tar with whiteouts for what the container deleted, and stacked
on the image's own layers; the image's config, with the container's command,
entrypoint, working directory, user and ``-e`` variables as podman's commit
takes them and edited by ``--change`` instructions, gets a history entry. A running container is paused while its
files are read (podman's ``--pause``, default true), except rootless without a
freezable cgroup of its own (Container.pause_refusal).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from kernelext import faults
from kernelext.core.state import ContainerStatus
from kernelext.errors import ContainerStateError
from kernelext.storage import staging
from kernelext.storage.imagechanges import apply_changes
from kernelext.storage.images import Image, ImageConfig, check_name
from kernelext.storage.layerworker import Source, write_changes

if TYPE_CHECKING:
    from kernelext.core.container import Container


@dataclass(frozen=True)
class CommitOptions:
    """podman commit's flags: ``changes`` (``-c``), ``message`` (``-m``), ``author`` (``-a``), ``pause`` (``-p``)."""

    changes: list[str] = field(default_factory=list)
    message: str = ""
    author: str = ""
    pause: bool = True


def commit(ctr: Container, name: str | None, options: CommitOptions) -> Image:
    """The new image (named ``name``, or dangling without one); checked before anything is written."""
    runtime = ctr._runtime
    names = [check_name(name, "commit")] if name else []
    parent = runtime.images.get(ctr.config.image_id)
    config = apply_changes(_container_config(ctr, parent.config), options.changes)
    history = {"created_by": shlex.join(ctr.config.args), "comment": options.message, "author": options.author}
    # Named after this process: if it is killed, the next one knows the file for garbage (staging.py).
    changes_tar = staging.make_file(runtime.opts.root / "images", ".tar")
    try:
        ctr.batch(lambda c: _write_layer(c, changes_tar, options.pause))
        faults.point("commit:layer-written")
        image = runtime.images.commit(parent, changes_tar, config, names, history)
    finally:
        changes_tar.unlink(missing_ok=True)
    runtime.events.emit("commit", ctr.id, ctr.name, image.name)
    return image


def _container_config(ctr: Container, image: ImageConfig) -> ImageConfig:
    """The image's config with what the container was made with (podman's commit: a ``run --entrypoint``
    becomes the new image's entrypoint)."""
    given = {item.partition("=")[0]: item for item in ctr.config.env}
    env = [given.pop(item.partition("=")[0], item) for item in image.env] + list(given.values())
    return replace(image, cmd=list(ctr.config.command), entrypoint=list(ctr.config.entrypoint), env=env,
                   workdir=ctr.config.workdir or image.workdir, user=ctr.config.user or image.user)


def _write_layer(ctr: Container, output: Path, pause: bool) -> None:
    if ctr.state.status is ContainerStatus.REMOVING:
        raise ContainerStateError(f"container {ctr.name} is being removed, cannot commit", container=ctr.name,
                                  operation="commit")
    paused = pause and ctr.state.status is ContainerStatus.RUNNING and not ctr.pause_refusal()
    if paused:
        ctr.pause()
    try:
        layer = ctr.layer
        if layer.driver == "overlay":
            write_changes(layer.upper, Source.UPPER, [], output, ctr._runtime.namespace)
        else:
            changes = [(c.path, c.kind.value) for c in layer.changes()]
            write_changes(layer.merged, Source.CHANGES, changes, output, ctr._runtime.namespace)
    finally:
        if paused:
            ctr.unpause()
