"""Directory trees of any depth, walked through fds without recursion.

An unprivileged process builds a tree deeper than Python's recursion limit and
than ``PATH_MAX`` with a loop of relative ``mkdir``/``cd``. Every walk of a
tree in kernelext keeps its own stack (:class:`DirStack`) and names one
component relative to a directory fd at a time, so neither limit applies.

A stack keeps at most :data:`OPEN_LEVELS` directory fds open (a deep tree
must not exhaust the process's fds): an ancestor whose fd was closed is
reopened through ``..`` of its child when the walk comes back up to it, and
must still be the same directory (device and inode) it was.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

#: Directory fds a stack keeps open (besides its first): enough that only very deep trees reopen any.
OPEN_LEVELS = 64
O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Frame(Protocol):
    """A level of a walk: its directory's fd (-1 while closed by the stack)."""

    fd: int


F = TypeVar("F", bound=Frame)


def moved_error() -> OSError:
    return OSError(errno.ESTALE, "a directory was moved while it was being walked")


class DirStack(Generic[F]):
    """The frames from a walk's first directory down to the current one; owns their fds.

    ``on_close`` runs before the stack closes the fd of a frame still on it (a
    writer with work queued in that directory finishes it first).
    """

    def __init__(self, first: F, on_close: Callable[[F], None] | None = None, reopen: int = O_DIR) -> None:
        """``reopen``: the flags a closed frame's fd is opened again with (those its fds have)."""
        self._frames = [first]
        self._reopen = reopen
        self._closed: dict[int, tuple[int, int]] = {}  # level → (device, inode) of a frame whose fd was closed
        self._on_close = on_close

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, level: int) -> F:
        return self._frames[level]

    @property
    def top(self) -> F:
        return self._frames[-1]

    def push(self, frame: F) -> None:
        """Descend into ``frame``, a directory of the current one; takes its fd."""
        self._frames.append(frame)
        level = len(self._frames) - 1 - OPEN_LEVELS
        if level >= 1 and level not in self._closed:
            old = self._frames[level]
            if self._on_close is not None:
                self._on_close(old)
            st = os.fstat(old.fd)
            self._closed[level] = (st.st_dev, st.st_ino)
            os.close(old.fd)
            old.fd = -1

    def pop(self) -> F:
        """Leave the current frame (its fd closed); its parent's fd is open again."""
        frame = self._frames.pop()
        try:
            ident = self._closed.pop(len(self._frames) - 1, None)
            if ident is not None:
                fd = os.open("..", self._reopen, dir_fd=frame.fd)
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != ident:
                    os.close(fd)
                    raise moved_error()
                self._frames[-1].fd = fd
        finally:
            os.close(frame.fd)
            frame.fd = -1
        return frame

    def close(self) -> None:
        """Close every fd still open (after a failure: a finished walk has popped them all)."""
        for frame in self._frames:
            if frame.fd >= 0:
                os.close(frame.fd)
                frame.fd = -1
        self._frames.clear()
        self._closed.clear()


def list_names(fd: int) -> list[str]:
    with os.scandir(fd) as it:
        return [entry.name for entry in it]


@dataclass
class _Level:
    fd: int
    name: str  # in its parent
    names: list[str] = field(default_factory=list)  # children still to visit


def remove_entry(parent_fd: int, name: str, *, ignore_errors: bool = False) -> None:
    """``rm -rf`` of the entry ``name`` of ``parent_fd``, never following a symlink.

    ``ignore_errors``: what cannot be removed is left and the rest goes on (else the first error is raised).
    """
    stack: DirStack[_Level] | None = None
    try:
        top = _open_for_removal(parent_fd, name)
        if top is None:
            return
        stack = DirStack(top)
        while len(stack):
            level = stack.top
            if level.names:
                try:
                    child = _open_for_removal(level.fd, level.names.pop())
                except OSError:
                    if not ignore_errors:
                        raise
                    continue
                if child is not None:
                    stack.push(child)
                continue
            stack.pop()
            try:
                os.rmdir(level.name, dir_fd=stack.top.fd if len(stack) else parent_fd)
            except OSError:
                if not ignore_errors:  # ignored: a directory that would not go is left as it is
                    raise
    except OSError:
        if not ignore_errors:
            raise
    finally:
        if stack is not None:
            stack.close()


def _open_for_removal(parent_fd: int, name: str) -> _Level | None:
    """Unlink ``name`` if it is no directory (None); else open it with its children listed."""
    try:
        os.unlink(name, dir_fd=parent_fd)
        return None
    except IsADirectoryError:
        pass
    except FileNotFoundError:
        return None
    fd = os.open(name, O_DIR, dir_fd=parent_fd)
    try:
        return _Level(fd, name, list_names(fd))
    except BaseException:
        os.close(fd)
        raise


def remove_tree(path: str | os.PathLike[str], *, ignore_errors: bool = False) -> None:
    """``rm -rf path``: a missing path is no error; a symlink is removed, not followed."""
    parent, name = os.path.split(os.path.abspath(path))
    try:
        parent_fd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        remove_entry(parent_fd, name, ignore_errors=ignore_errors)
    finally:
        os.close(parent_fd)


def tree_size(path: str | os.PathLike[str]) -> int:
    """The bytes of the files in the directory ``path`` (as ``lstat`` gives them); what vanishes is skipped."""
    total = 0
    stack = DirStack(_Level(os.open(path, O_DIR), ""))
    try:
        stack.top.names = list_names(stack.top.fd)
        while len(stack):
            level = stack.top
            if not level.names:
                stack.pop()
                continue
            name = level.names.pop()
            try:
                st = os.stat(name, dir_fd=level.fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    fd = os.open(name, O_DIR, dir_fd=level.fd)
                    stack.push(_Level(fd, name))
                    stack.top.names = list_names(fd)
                else:
                    total += st.st_size
            except OSError:
                continue
    finally:
        stack.close()
    return total
