"""Watching conmon from outside: liveness and waiting for a container's exit.

The core never waits on a container process itself (it is not our child).
It learns about an exit from conmon's exit file, and about a dead conmon from
its PID. A PID alone can be reused, so a process is identified by its PID and
its start time (field 22 of ``/proc/PID/stat``). A zombie counts as dead: on
these machines PID 1 reaps orphans only every few seconds.
"""

from __future__ import annotations

import ctypes
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000

#: Upper bound of a single sleep while waiting, so cancellation is prompt
#: even where pidfd or inotify are unavailable.
MAX_POLL_S = 0.1

_libc = ctypes.CDLL(None, use_errno=True)


def process_start_time(pid: int) -> int | None:
    """The start time of a live (non-zombie) process, or None."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_alive(pid: int, start_time: int) -> bool:
    started = process_start_time(pid)
    return started is not None and (start_time == 0 or started == start_time)


_self: tuple[int, int] = (0, 0)


def this_process() -> tuple[int, int]:
    """This process's (PID, start time), as :func:`is_alive` checks them (a fork gets its own)."""
    global _self
    pid = os.getpid()
    if _self[0] != pid:
        _self = (pid, process_start_time(pid) or 0)
    return _self


class _InotifyPool:
    """Reusable inotify instances, one set per watched directory.

    Closing an inotify descriptor waits for an RCU grace period (several ms
    here), which would dominate a short container's whole life; so instances
    are drained and kept for the next waiter instead.
    """

    def __init__(self) -> None:
        self._free: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def acquire(self, directory: str) -> int:
        with self._lock:
            free = self._free.get(directory)
            if free:
                return free.pop()
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return -1
        if _libc.inotify_add_watch(fd, directory.encode(), _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE) < 0:
            os.close(fd)
            return -1
        return int(fd)

    def release(self, directory: str, fd: int) -> None:
        _drain(fd)
        with self._lock:
            self._free.setdefault(directory, []).append(fd)

    def discard(self, directory: str) -> None:
        """Close the kept instances of ``directory``: each counts against the user's inotify limit (128)."""
        with self._lock:
            fds = self._free.pop(directory, [])
        for fd in fds:
            os.close(fd)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


_pool = _InotifyPool()


def forget_exit_directory(directory: Path) -> None:
    """No more waits on ``directory`` from this process (its store is closed)."""
    _pool.discard(str(directory))


class ExitWatcher:
    """Wakes up when an exit file appears or a process dies.

    Event-driven (inotify on the exit directory, a pidfd for the process)
    with a bounded poll interval as a safety net.
    """

    def __init__(self, exit_file: Path, pid: int = 0) -> None:
        self.exit_file = exit_file
        self._directory = str(exit_file.parent)
        self._inotify = _pool.acquire(self._directory)
        self._pidfd = -1
        self._fds = [self._inotify] if self._inotify >= 0 else []
        if pid > 0:
            try:
                self._pidfd = os.pidfd_open(pid)
                self._fds.append(self._pidfd)
            except OSError:
                pass

    def close(self) -> None:
        if self._inotify >= 0:
            _pool.release(self._directory, self._inotify)
            self._inotify = -1
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        self._fds = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self, timeout: float) -> None:
        """Sleep until something may have changed, at most ``timeout`` seconds."""
        readable, _, _ = select.select(self._fds, [], [], max(0.0, min(timeout, MAX_POLL_S)))
        for fd in readable:
            if fd == self._inotify:
                _drain(fd)
            elif fd == self._pidfd:
                self._fds.remove(fd)  # a dead process stays readable: report it once


def wait_until(predicate: Callable[[], bool], watcher: ExitWatcher, timeout: float | None,
               cancel: threading.Event | None = None) -> bool:
    """Wait until ``predicate()`` is true; False on timeout or cancellation."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if cancel is not None and cancel.is_set():
            return False
        remaining = MAX_POLL_S if deadline is None else deadline - time.monotonic()
        if remaining <= 0:
            return False
        watcher.wait(remaining)
