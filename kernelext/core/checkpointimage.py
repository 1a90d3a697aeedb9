"""A checkpoint as an image (podman's ``checkpoint --create-image`` and ``restore IMAGE``).

As podman does, the image's one layer holds the exported checkpoint's files
(``config.dump``, ``spec.dump``, ``checkpoint/``, ``rootfs-diff.tar``, ...) at
its root, and labels in CRIU's ``org.criu.checkpoint.*`` vocabulary (podman
puts the same keys in the image's annotations) say it is a checkpoint and of
which container and image. Restoring one is restoring that archive
(:func:`kernelext.core.checkpoint.import_archive`): the same ID, or a new
container with ``name``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kernelext
from kernelext.errors import InvalidArgumentError, RuntimeFailure, tool_reason
from kernelext.storage.images import Image

if TYPE_CHECKING:
    from kernelext.core.container import Container
    from kernelext.core.runtime import Runtime

#: CRIU's checkpoint annotation names (as checkpointctl reads them), kept here as the image's labels.
LABEL_ENGINE = "org.criu.checkpoint.engine.name"
LABEL_ENGINE_VERSION = "org.criu.checkpoint.engine.version"
LABEL_NAME = "org.criu.checkpoint.container.name"
LABEL_ROOTFS_IMAGE_ID = "org.criu.checkpoint.rootfsImageID"
LABEL_ROOTFS_IMAGE_NAME = "org.criu.checkpoint.rootfsImageName"
LABEL_RUNTIME = "org.criu.checkpoint.runtime.name"
LABEL_HOST_ARCH = "org.criu.checkpoint.host.arch"
LABEL_HOST_KERNEL = "org.criu.checkpoint.host.kernel"
ENGINE = "kernelext"
ARCHIVE_NAME = "checkpoint.tar"
#: Go's architecture names, which podman records.
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def _labels(ctr: Container) -> dict[str, str]:
    machine = platform.machine()
    return {LABEL_ENGINE: ENGINE, LABEL_ENGINE_VERSION: kernelext.__version__, LABEL_NAME: ctr.name,
            LABEL_ROOTFS_IMAGE_ID: ctr.config.image_id, LABEL_ROOTFS_IMAGE_NAME: ctr.config.image_name,
            LABEL_RUNTIME: "runc", LABEL_HOST_ARCH: _GOARCH.get(machine, machine),
            LABEL_HOST_KERNEL: platform.release()}


def is_checkpoint_image(image: Image) -> bool:
    return LABEL_NAME in image.config.labels


def checkpoint_to_image(ctr: Container, image_name: str, **options: Any) -> tuple[Any, Image]:
    """Checkpoint ``ctr`` (``Container.checkpoint``'s options; with ``export`` that archive is written
    too) and store the checkpoint as the image ``image_name``; what ``Container.checkpoint`` returned (its
    history entry, or the statistics asked for) and the image."""
    labels = _labels(ctr)  # before the checkpoint: an exported --rm container is gone after it
    images = ctr._runtime.images
    with tempfile.TemporaryDirectory(prefix="kernelext-ckimage-") as tmp:
        archive = options.pop("export", None) or Path(tmp) / ARCHIVE_NAME
        if options.get("compress") is None and archive == Path(tmp) / ARCHIVE_NAME:
            options["compress"] = "none"  # unpacked into the image at once: compressing would only cost time
        result = ctr.checkpoint(export=archive, **options)
        return result, images.import_tarball(Path(archive), image_name, labels=labels)


def restore_from_image(runtime: Runtime, image: Image, name: str | None = None, **options: Any) -> Container:
    """A new container (``name``; else the checkpointed container's ID) restored from a checkpoint image."""
    if not is_checkpoint_image(image):
        raise InvalidArgumentError(f"image {image.name} is not a checkpoint image", operation="restore")
    if len(image.lowers) != 1:
        raise InvalidArgumentError(f"image {image.name} is not a checkpoint image: it has {len(image.lowers)} layers",
                                   operation="restore")
    root = image.lowers[0]
    with tempfile.TemporaryDirectory(prefix="kernelext-ckimage-") as tmp:
        archive = Path(tmp) / ARCHIVE_NAME
        # Members by name (not "./name"): the restore reads config.dump and spec.dump by those names.
        proc = subprocess.run(["tar", "--create", "--numeric-owner", "--xattrs", "-f", str(archive), "-C", str(root),
                               "--", *sorted(os.listdir(root))], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise RuntimeFailure(f"reading checkpoint image {image.name}: {tool_reason(proc.stderr, 'tar failed')}",
                                 operation="restore")
        return runtime.restore_from_archive(archive, name, **options)
