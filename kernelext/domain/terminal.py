"""A container's terminal as one byte stream: what the ``Terminal`` widget drives (docs/architecture.md §14).

Two kinds of session share one interface:

- :class:`AttachTerminal`: a TTY container's own terminal, through conmon's
  attach socket; a resize goes to conmon's ``ctl`` FIFO; detaching closes the
  connection and the container keeps running (``run -it``, ``start -ai``,
  ``attach``).
- :class:`ExecTerminal`: ``exec -it``. ``runc exec --tty`` runs in the
  foreground with the slave of a host pseudo-terminal the kernel opened as its
  stdio and controlling terminal: runc finds its terminal there, sets it raw
  and copies between it and the container-side terminal it made. Setting the
  host terminal's size sends runc SIGWINCH, and runc copies the size in.
  A hang-up (a closed widget) is SIGHUP to runc's session, which runc passes on.

Input bytes go to the TTY as typed (Ctrl-C is 0x03 to the container's line
discipline, never a signal to the kernel), except podman's detach sequence,
which :class:`~kernelext.oci.attach.DetachFilter` recognises client-side as
podman does.
"""

from __future__ import annotations

import abc
import errno
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kernelext.core.state import ContainerStatus
from kernelext.errors import InvalidArgumentError, KernelextError
from kernelext.oci.attach import AttachSocket, Stream

if TYPE_CHECKING:
    from kernelext.core.container import Container

#: The size a terminal gets before its view has measured itself (the VT100's).
DEFAULT_SIZE = (24, 80)
#: Bytes one read takes from the TTY.
READ_SIZE = 65536
#: Output an exec session keeps to tell why its command could not run.
ERROR_TAIL = 4096
#: The log tail an attach to a running container shows first (conmon's socket has no backlog for a TTY).
BACKLOG_LINES = 200


def _check_size(rows: int, cols: int) -> tuple[int, int]:
    if not (0 < rows <= 0xFFFF and 0 < cols <= 0xFFFF):
        raise InvalidArgumentError(f"invalid terminal size {rows}x{cols}", operation="resize")
    return rows, cols


class TerminalSession(abc.ABC):
    """One TTY session: read what it draws, write keystrokes, resize, detach, wait for its exit code."""

    #: What the session is connected to, as the widget's title says it (``web``, ``exec sh in web``).
    title: str
    #: What re-attaches after a detach (shown in the terminal), or "" when nothing can.
    reattach_hint: str = ""
    #: The session's process is its own (an exec): after a detach it is still read (and dropped) and reaped.
    owns_process: bool = False

    def __init__(self, ctr: Container) -> None:
        self.container = ctr
        self.detached = False

    @abc.abstractmethod
    def read(self) -> bytes | None:
        """The next output (blocking), or None once the session's output has ended or it was detached."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Bytes to the TTY, as typed."""

    @abc.abstractmethod
    def resize(self, rows: int, cols: int) -> None:
        """The TTY's size in character cells."""

    @abc.abstractmethod
    def detach(self) -> None:
        """Stop reading and writing; the container keeps running."""

    @abc.abstractmethod
    def wait(self) -> int:
        """The exit code once the process has ended (after :meth:`read` returned None undetached)."""

    def backlog(self) -> bytes:
        """What was drawn before this session connected (empty for a new process)."""
        return b""


class AttachTerminal(TerminalSession):
    """A TTY container's terminal through conmon's attach socket."""

    def __init__(self, ctr: Container, *, start: bool, size: tuple[int, int] = DEFAULT_SIZE,
                 remove: bool = False) -> None:
        from kernelext.domain import containers as domain

        super().__init__(ctr)
        if not ctr.config.tty:
            raise InvalidArgumentError(f"container {ctr.name} has no TTY: attach streams its output instead",
                                       container=ctr.name, operation="attach")
        self.title = ctr.name
        self.reattach_hint = f"%container attach {ctr.name}"
        self.remove = remove
        self._backlog = b"" if start or ctr.status is not ContainerStatus.RUNNING else self._log_tail(ctr)
        self._conn: AttachSocket = domain.attach_and_start(ctr, start=start, remove=remove, tty_size=_check_size(*size))
        if not start:  # a running container: its TTY takes this view's size now
            try:
                self.resize(*size)
            except BaseException:
                self._conn.close()
                raise

    @staticmethod
    def _log_tail(ctr: Container) -> bytes:
        try:
            return b"".join(line.data for line in ctr.logs(tail=BACKLOG_LINES))
        except (KernelextError, OSError):
            return b""

    def backlog(self) -> bytes:
        return self._backlog

    def read(self) -> bytes | None:
        while True:
            try:
                packet = self._conn.recv()
            except OSError:
                return None  # closed by detach
            if packet is None:
                return None
            if packet[0] in (Stream.STDOUT, Stream.STDERR):
                return packet[1]

    def write(self, data: bytes) -> None:
        if not self.detached:
            self._conn.send(data)

    def resize(self, rows: int, cols: int) -> None:
        self.container.resize(*_check_size(rows, cols))

    def detach(self) -> None:
        self.detached = True
        self._conn.close()

    def wait(self) -> int:
        from kernelext.domain import containers as domain

        return domain.wait_and_remove(self.container, remove=self.remove)


class ExecTerminal(TerminalSession):
    """``runc exec --tty`` behind a host pseudo-terminal (see the module's docstring)."""

    owns_process = True

    def __init__(self, ctr: Container, command: list[str], *, env: Sequence[str] = (),
                 workdir: str | None = None, user: str | None = None,
                 size: tuple[int, int] = DEFAULT_SIZE) -> None:
        from kernelext.core import execution

        super().__init__(ctr)
        self.title = f"exec {' '.join(command)} in {ctr.name}"
        self._master, slave = os.openpty()
        try:
            os.set_blocking(self._master, True)
            self._set_size(*_check_size(*size))
            # podman gives an exec with a TTY TERM=xterm unless the caller sets it.
            self._proc, self._session = execution.begin(ctr, command, tty=True, stdin=None,
                                                        env=["TERM=xterm", *env], workdir=workdir, user=user,
                                                        console=slave)
        except BaseException:
            os.close(self._master)
            raise
        finally:
            os.close(slave)  # runc holds it: its exit ends the master's reads (EIO)
        self._code: int | None = None
        self._closed = False
        #: The newest output: runc's own error is there when the command could not run (podman's 126/127).
        self._tail = b""

    def _set_size(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read(self) -> bytes | None:
        try:
            data = os.read(self._master, READ_SIZE)
            self._tail = (self._tail + data[-ERROR_TAIL:])[-ERROR_TAIL:]  # never a copy of the whole chunk
            return data or None
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EBADF):
                return None  # every slave closed: runc ended
            raise

    def write(self, data: bytes) -> None:
        if not self.detached and not self._closed:
            os.write(self._master, data)

    def resize(self, rows: int, cols: int) -> None:
        if not self._closed:
            self._set_size(*_check_size(rows, cols))  # the kernel signals SIGWINCH to runc, its terminal's owner

    def detach(self) -> None:
        """The process keeps running; its output is read and dropped until it ends (and is reaped)."""
        self.detached = True

    def wait(self) -> int:
        from kernelext.core import execution

        if self._code is None:
            code = self._proc.wait()
            if not self._closed:
                self._closed = True
                os.close(self._master)
            self.container._runtime.db.remove_exec_session(self._session)
            self._code = execution.end(self.container, self._session, code, self._tail)
        return self._code

    def hang_up(self) -> None:
        """A hang-up of its terminal (a closed widget): SIGHUP to runc's session, which runc passes to the
        process; the master is closed once runc has ended (:meth:`wait`), never under a blocked read."""
        if self._code is None:
            try:
                os.killpg(self._proc.pid, signal.SIGHUP)
            except ProcessLookupError:
                pass

