"""A file written beside its target and renamed to it once whole: a failed ``export -o`` or ``save -o``
leaves neither a partial file nor a changed target."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

#: A new file's mode before the umask (open()'s default).
FILE_MODE = 0o666


@contextmanager
def whole_file(target: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A new file in ``target``'s directory to write; renamed to ``target`` when the block ends, removed when
    it raises. A target that is not a plain file (``/dev/null``, a FIFO, a symlink) is written in place:
    replacing it would replace the device or the link itself."""
    path = Path(target)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        with open(path, "wb") as f:
            yield f
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}-{time.monotonic_ns()}.partial")
    try:
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE), "wb") as f:
            yield f
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
