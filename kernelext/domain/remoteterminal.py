"""A remote container's terminal as a :class:`~kernelext.domain.terminal.TerminalSession`: podman's API.

``exec -it`` and ``attach``/``run -it``/``start -ai`` of a TTY container on a remote engine: the
libpod ``exec start`` and ``attach`` requests take over the HTTP connection; with a TTY what follows
is the terminal's raw byte stream both ways (no multiplexing). Keystrokes are written to that
connection as typed, a resize is the API's ``resize`` endpoint, the exit code the exec session's
inspect or the container's ``wait`` (docs/architecture.md §16). The ``Terminal`` widget drives these
sessions as it drives the local ones.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kernelext.domain.terminal import DEFAULT_SIZE, READ_SIZE, TerminalSession, _check_size
from kernelext.errors import InvalidArgumentError, KernelextError

if TYPE_CHECKING:
    import io
    from typing import Any

    from kernelext.domain.engine import ContainerRecord, Engine
    from kernelext.domain.remote import RemoteEngine

def create_to_attach(engine: Engine, image: str, options: dict[str, Any]) -> ContainerRecord:
    """``run -it``'s container, created without the service's own ``--rm``: its terminal session removes
    it once the exit code is read (a container the service removed itself has no exit code to wait for)."""
    return engine.create(image, **{**options, "auto_remove": False})


#: How long the service may take to record an exec session's exit code after its stream ended.
EXIT_WAIT_S = 5.0
EXIT_POLL_S = 0.05


class _RemoteStream(TerminalSession):
    """The hijacked connection's two directions; closing it is detaching."""

    _sock: socket.socket
    _reader: io.BufferedReader

    def __init__(self, engine: RemoteEngine) -> None:
        self.engine = engine
        self.container = None  # type: ignore[assignment]  # a remote container: no local Container
        self.detached = False

    def read(self) -> bytes | None:
        try:
            data = self._reader.read1(READ_SIZE)
        except (OSError, ValueError):  # closed by detach
            return None
        return data or None

    def write(self, data: bytes) -> None:
        if not self.detached:
            with contextlib.suppress(OSError):
                self._sock.sendall(data)

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.close()
        self._sock.close()


class RemoteExecTerminal(_RemoteStream):
    """``exec -it`` on the remote service: a new exec session with a TTY and stdin, its stream hijacked."""

    owns_process = True

    def __init__(self, engine: RemoteEngine, name: str, command: list[str], *, env: Sequence[str] = (),
                 workdir: str | None = None, user: str | None = None,
                 size: tuple[int, int] = DEFAULT_SIZE) -> None:
        super().__init__(engine)
        rows, cols = _check_size(*size)
        self.title = f"exec {' '.join(command)} in {name}"
        # podman gives an exec with a TTY TERM=xterm unless the caller sets it
        self._id = engine.exec_session(name, command, ["TERM=xterm", *env], workdir, user, tty=True, stdin=True)
        self._sock, self._reader = engine.hijack(f"/exec/{self._id}/start", {},
                                                 {"Detach": False, "Tty": True, "h": rows, "w": cols})
        self._code: int | None = None

    def resize(self, rows: int, cols: int) -> None:
        rows, cols = _check_size(rows, cols)
        with contextlib.suppress(KernelextError):  # an exec that has just ended has no terminal to resize
            self.engine.resize_exec(self._id, rows, cols)

    def detach(self) -> None:
        """The process keeps running; its output is read and dropped until it ends."""
        self.detached = True

    def hang_up(self) -> None:
        """A closed widget: the connection is closed (podman ends the session's attach)."""
        self._close()

    def wait(self) -> int:
        if self._code is None:
            self._close()
            deadline = time.monotonic() + EXIT_WAIT_S
            doc = self.engine.exec_inspect(self._id)
            while doc.get("Running") and time.monotonic() < deadline:
                time.sleep(EXIT_POLL_S)
                doc = self.engine.exec_inspect(self._id)
            self._code = int(doc.get("ExitCode") or 0)
        return self._code


class RemoteAttachTerminal(_RemoteStream):
    """A remote TTY container's own terminal (``run -it``, ``start -ai``, ``attach``)."""

    def __init__(self, engine: RemoteEngine, name: str, *, start: bool, remove: bool = False,
                 size: tuple[int, int] = DEFAULT_SIZE) -> None:
        super().__init__(engine)
        doc = engine.inspect_container(name)
        if not (doc.get("Config") or {}).get("Tty"):
            raise InvalidArgumentError(f"container {name} has no TTY: attach streams its output instead",
                                       container=name, operation="attach")
        self._id = str(doc["Id"])
        self.title = name
        self.reattach_hint = f"%container --connection {engine.name} attach {name}"
        self.remove = remove
        self._sock, self._reader = engine.hijack(f"/containers/{self._id}/attach",
                                                 {"stream": True, "stdin": True, "stdout": True, "stderr": True})
        try:
            if start:
                engine.start_one(self._id)
            self.resize(*size)
        except BaseException:
            self._close()
            raise

    def resize(self, rows: int, cols: int) -> None:
        rows, cols = _check_size(rows, cols)
        with contextlib.suppress(KernelextError):  # a container that has just exited has no terminal
            self.engine.resize_container(self._id, rows, cols)

    def detach(self) -> None:
        self.detached = True
        self._close()

    def wait(self) -> int:
        self._close()
        return self.engine.wait_exit(self._id, remove=self.remove)
