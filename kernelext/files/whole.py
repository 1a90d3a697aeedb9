"""A file written beside its target and renamed to it once whole: a failed ``export -o``, ``save -o`` or
``checkpoint --export`` leaves neither a partial file nor a changed target."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

#: A new file's mode before the umask (open()'s default).
FILE_MODE = 0o666


def written_in_place(target: str | os.PathLike[str]) -> bool:
    """A target that is not a plain file (``/dev/null``, a FIFO, a symlink) is written through, as podman's
    ``os.Create`` does: replacing it would replace the device or the link itself (as root, ``/dev/null``)."""
    path = Path(target)
    return path.is_symlink() or (path.exists() and not path.is_file())


@contextmanager
def whole_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """The path a tool should write ``target``'s new content at: a new name beside it, renamed to ``target``
    when the block ends and removed when it raises; ``target`` itself when it is written in place."""
    path = Path(target)
    if written_in_place(path):
        yield path
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}-{time.monotonic_ns()}.partial")
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@contextmanager
def whole_file(target: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """:func:`whole_path` opened for writing (the new file made exclusively, so nothing else's is reused)."""
    with whole_path(target) as path:
        if path == Path(target):
            with open(path, "wb") as f:
                yield f
            return
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE), "wb") as f:
            yield f
