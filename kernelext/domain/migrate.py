"""Moving a running container between engines: podman's checkpoint archive carried across.

What ``kernelext --connection A checkpoint --export F NAME`` then ``kernelext --connection B restore --import F``
do by hand (docs/architecture.md §4, §16), as one operation for a front end: the archive is written to a
private directory, restored on the target, and the source's container removed only once the target runs it.
A failed restore restores the source from the checkpoint it kept, so the container runs on one engine or the
other, never on none.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from kernelext.domain.engine import ContainerRecord, Engine
from kernelext.domain.reports import raise_for
from kernelext.errors import InvalidArgumentError, KernelextError

ARCHIVE = "checkpoint.tar"


def move(source: Engine, name: str, target: Engine) -> ContainerRecord:
    """Checkpoint ``name`` on ``source`` (exported, its checkpoint kept there), restore it on ``target`` under
    the same name, then remove it from ``source``; the new record (on ``target``)."""
    if source.name == target.name:
        raise InvalidArgumentError(f"{name} is already on {target.name}")
    where = Path(tempfile.mkdtemp(prefix="kernelext-move-"))
    try:
        archive = str(where / ARCHIVE)
        raise_for(source.checkpoint([name], export=archive, keep=True))
        try:
            moved = target.restore_import(archive)
        except KernelextError:
            raise_for(source.restore([name], keep=False))  # back where it was
            raise
        raise_for(source.rm([name], force=True))
        return moved
    finally:
        shutil.rmtree(where, ignore_errors=True)
