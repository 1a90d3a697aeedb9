"""The command layer of looking inside checkpoints (docs/architecture.md §4, "Looking inside a checkpoint").

Every front end (``checkpoint inspect``/``diff`` in the CLI, ``%container``)
calls these: they take the checkpoint's path (an exported archive or a
checkpoint directory in podman's layout) and return the core's dataclasses.
"""

from __future__ import annotations

import os
from pathlib import Path

from kernelext.core.checkpointinfo import CheckpointDiff, CheckpointInfo, diff_checkpoints, read_checkpoint
from kernelext.errors import InvalidArgumentError


def _path(path: str | os.PathLike[str]) -> Path:
    if not str(path):
        raise InvalidArgumentError("a checkpoint archive or directory is required", operation="checkpoint inspect")
    return Path(path).expanduser()


def inspect_checkpoint(path: str | os.PathLike[str]) -> CheckpointInfo:
    """What one checkpoint holds."""
    return read_checkpoint(_path(path))


def diff_two(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> CheckpointDiff:
    """What changed from checkpoint ``a`` to the later ``b``."""
    return diff_checkpoints(read_checkpoint(_path(a)), read_checkpoint(_path(b)))
