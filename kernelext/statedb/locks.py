"""Per-container locks that hold across processes and die with their holder.

An exclusive ``flock`` on ``<runroot>/locks/<id>.lock``: two kernels and a
terminal driving one store serialise on it, and the kernel drops it when the
holding process dies, so a crash never leaves a container locked. flock locks
belong to the open file description, so two threads of one process that each
open the file also exclude each other.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Self


class ContainerLock:
    """A re-acquirable exclusive lock on one lock file (not re-entrant)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._owner: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None and self._owner == threading.get_ident()

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._owner = threading.get_ident()

    def release(self) -> None:
        fd, self._fd, self._owner = self._fd, None, None
        if fd is not None:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
