"""The command layer of looking inside checkpoints (docs/architecture.md §4, "Looking inside a checkpoint").

Every front end (``checkpoint inspect``/``diff`` in the CLI, ``%container``, the timeline widget) calls
these. A checkpoint is named by words: an existing file or directory is an exported archive or a
checkpoint directory in podman's layout; any other word is a container, followed by an entry of its
history (number or name). In a diff, a container's second entry may follow its first directly
(``diff web 1 2``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kernelext.core.checkpointinfo import CheckpointDiff, CheckpointInfo, diff_checkpoints, read_checkpoint
from kernelext.errors import InvalidArgumentError

if TYPE_CHECKING:
    from kernelext.core.runtime import Runtime

#: How the words of ``checkpoint inspect``/``diff`` are read (the help, README and §4 say the same).
RULE = ("an existing file or directory is a checkpoint archive or directory; any other word is a container, "
        "followed by an entry of its history (number or name)")


def _path(path: str | os.PathLike[str]) -> Path:
    if not str(path):
        raise InvalidArgumentError("a checkpoint archive or directory is required", operation="checkpoint inspect")
    return Path(path).expanduser()


def inspect_checkpoint(path: str | os.PathLike[str]) -> CheckpointInfo:
    """What one checkpoint (archive or directory) holds."""
    return read_checkpoint(_path(path))


def inspect_entry(rt: Runtime, container: str, which: str | int) -> CheckpointInfo:
    """What entry ``which`` of the container's history holds."""
    return rt.get(container).inspect_checkpoint(which)


def diff_entries(rt: Runtime, a: tuple[str, str | int], b: tuple[str, str | int]) -> CheckpointDiff:
    """What changed from entry ``a`` to entry ``b``, each ``(container, entry)``."""
    return diff_checkpoints(inspect_entry(rt, *a), inspect_entry(rt, *b))


def _is_path(word: str) -> bool:
    return bool(word) and os.path.lexists(Path(word).expanduser())


def _read(rt: Runtime, words: Sequence[str], wanted: int, operation: str) -> list[CheckpointInfo]:
    """The ``wanted`` checkpoints the words name (:data:`RULE`), each read."""
    refs: list[str | tuple[str, str]] = []
    rest = list(words)
    while rest:
        word = rest.pop(0)
        if _is_path(word):
            refs.append(word)
            continue
        if not rest and not refs and wanted == 1:
            refs.append(word)  # a lone word is a path: the reader says it is missing
            continue
        if not rest:
            raise InvalidArgumentError(f"{word!r} is no checkpoint archive or directory, and no entry follows it "
                                       "to read it as a container", operation=operation)
        refs.append((word, rest.pop(0)))
        if len(refs) == 1 and len(rest) == 1 and wanted == 2 and not _is_path(rest[0]):
            refs.append((word, rest.pop(0)))  # diff CTR A B: two entries of one container
    if len(refs) != wanted:
        raise InvalidArgumentError(f"checkpoint {operation} takes {wanted} checkpoint{'s' if wanted > 1 else ''}, "
                                   f"{len(refs)} given: {RULE}", operation=f"checkpoint {operation}")
    # Every container and entry is looked up before any is read: a typo fails fast.
    for ref in refs:
        if isinstance(ref, tuple):
            rt.get(ref[0]).checkpoint_entry(ref[1])
    return [inspect_checkpoint(ref) if isinstance(ref, str) else inspect_entry(rt, *ref) for ref in refs]


def inspect(rt: Runtime, words: Sequence[str]) -> CheckpointInfo:
    """``checkpoint inspect ARCHIVE|DIR`` or ``checkpoint inspect CONTAINER ENTRY``."""
    return _read(rt, words, 1, "inspect")[0]


def diff(rt: Runtime, words: Sequence[str]) -> CheckpointDiff:
    """``checkpoint diff A B``, each an archive, a directory or ``CONTAINER ENTRY``; ``CONTAINER ENTRY_A ENTRY_B``."""
    a, b = _read(rt, words, 2, "diff")
    return diff_checkpoints(a, b)
