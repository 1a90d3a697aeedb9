"""``Terminal``: a container's TTY in a cell, drawn by xterm.js (docs/architecture.md §14).

The widget only moves bytes: a :class:`~kernelext.domain.terminal.TerminalSession`
(an attach or an exec with a TTY) is the core's. Its message protocol:

- browser → kernel: ``ready`` (a view opened: rows and columns), ``input``
  (what xterm.js says was typed or pasted, as text), ``resize`` (rows,
  columns), ``ack`` (a ``data`` message was drawn), ``detach`` (the button),
  ``ping`` (answered by ``pong``: a round trip with no TTY in it).
- kernel → browser: ``reset`` (draw again from here), ``data`` (output bytes
  as one binary buffer, with a sequence number).

A view numbers its messages (``view``, ``n``) and they are handled in that
order: ipykernel 7 may run a queued comm message beside a busy one, which
turned a typed ``exit 3`` into ``etx i3`` on a loaded machine.

A reader thread takes output from the session as it comes; a sender thread
batches it into at most one ``data`` message a frame and never has more than
:data:`WINDOW` of them undrawn in the browser (the acks), so a flood costs one
message a frame at most, and output the page could not keep up with is
dropped from the oldest end (past :data:`PENDING_LIMIT`, more than the
scrollback could hold). The newest :data:`HISTORY_BYTES` are kept to redraw a
view that opens later (a page reload, a second tab). Input goes through
podman's detach-key filter; Ctrl-C, Ctrl-D and Ctrl-Z are bytes like any other.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anywidget
from traitlets import Int, Unicode

from kernelext.errors import KernelextError
from kernelext.oci.attach import DEFAULT_DETACH_KEYS, Detached, DetachFilter, parse_detach_keys
from kernelext.widgets._assets import css, esm, umd
from kernelext.widgets._registry import track

if TYPE_CHECKING:
    from kernelext.domain.terminal import TerminalSession

#: The shortest time between two ``data`` messages (one display frame).
FRAME_S = 1 / 60
#: ``data`` messages sent and not yet drawn by the browser before the sender waits.
WINDOW = 4
#: Output waiting for the browser past which its oldest bytes are dropped (a flood the page cannot show).
PENDING_LIMIT = 1 << 20
#: Output kept to redraw a view that opens later.
HISTORY_BYTES = 256 << 10
#: Lines the browser keeps above the screen.
SCROLLBACK_LINES = 5000
#: A view's messages held for one that has not come, past which it is given up on.
REORDER_LIMIT = 256


class TerminalStatus(str, enum.Enum):
    """Where the session is: the browser takes input only while it is ``running``."""

    RUNNING = "running"
    EXITED = "exited"
    DETACHED = "detached"


class InOrder:
    """Each view's numbered messages in the order it sent them, whatever order they are handled in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}
        self._held: dict[str, dict[int, dict[str, Any]]] = {}

    def accept(self, content: dict[str, Any]) -> list[dict[str, Any]]:
        """The messages that can be handled now, ``content`` among them or held until its turn."""
        view, n = content.get("view"), content.get("n")
        if not isinstance(view, str) or not isinstance(n, int):
            return [content]  # not numbered (a client of its own): as it comes
        with self._lock:
            held = self._held.setdefault(view, {})
            held[n] = content
            expected = self._next.get(view, 0)
            if len(held) > REORDER_LIMIT:  # a message that will never come: go on from the oldest held
                expected = min(held)
            ready = []
            while expected in held:
                ready.append(held.pop(expected))
                expected += 1
            self._next[view] = expected
            return ready


class Terminal(anywidget.AnyWidget):
    """A container's terminal; ``Terminal(container)`` attaches to a running TTY container, and
    ``Terminal(factory)`` opens ``factory()``'s session once the detach keys are known to be good."""

    _esm = "\n".join((umd("vendor/xterm/xterm.js", "XtermLib"), umd("vendor/xterm/addon-fit.js", "FitLib"),
                      esm("controls.js", "terminal.js")))
    _css = css("vendor/xterm/xterm.css", "terminal.css")

    title = Unicode("").tag(sync=True)
    status = Unicode(TerminalStatus.RUNNING.value).tag(sync=True)
    #: The last line, once the session is over: the exit code, or how to re-attach.
    footer = Unicode("").tag(sync=True)
    rows = Int(24).tag(sync=True)
    cols = Int(80).tag(sync=True)
    scrollback = Int(SCROLLBACK_LINES).tag(sync=True)
    detach_keys = Unicode(DEFAULT_DETACH_KEYS).tag(sync=True)

    def __init__(self, session: TerminalSession | Callable[[], TerminalSession] | Any, *,
                 detach_keys: str | None = None,
                 on_exit: Callable[[int], object] | None = None, **kwargs: Any) -> None:
        from kernelext.core.container import Container
        from kernelext.domain.terminal import AttachTerminal

        keys = DEFAULT_DETACH_KEYS if detach_keys is None else detach_keys
        self._filter = DetachFilter(parse_detach_keys(keys))  # a bad sequence is refused before attaching
        if isinstance(session, Container):  # Terminal(container): attach to it
            session = AttachTerminal(session, start=False)
        elif callable(session):  # nothing is started before a bad sequence is refused
            session = session()
        super().__init__(title=session.title, detach_keys=keys, **kwargs)
        self.session: TerminalSession = session
        self._on_exit = on_exit
        self.exit_code: int | None = None
        self._cond = threading.Condition()
        self._pending = bytearray()
        self._history = bytearray(session.backlog()[-HISTORY_BYTES:])
        self._pending += self._history
        self._unacked = 0
        self._seq = 0
        self._ended = False
        #: Messages and bytes sent to the browser, and bytes dropped in floods (the benchmark reports them).
        self.sent_messages = 0
        self.sent_bytes = 0
        self.dropped_bytes = 0
        self._in_order = InOrder()
        self.on_msg(self._on_frontend_message)
        track(self)
        self._reader = threading.Thread(target=self._read, name=f"terminal {session.title}", daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name=f"terminal {session.title} out", daemon=True)
        self._reader.start()
        self._sender.start()

    def __repr__(self) -> str:
        return f"Terminal(title={self.title!r}, status={self.status!r})"

    @property
    def live(self) -> bool:
        return self.status == TerminalStatus.RUNNING.value

    # ------------------------------------------------------------ browser side
    def _on_frontend_message(self, _widget: Any, content: dict[str, Any], _buffers: list[Any]) -> None:
        for message in self._in_order.accept(content):
            self._handle(message)

    def _handle(self, content: dict[str, Any]) -> None:
        kind = content.get("type")
        if kind == "input":
            self.type(str(content.get("data", "")))
        elif kind in ("resize", "ready"):
            rows, cols = int(content.get("rows", 0)), int(content.get("cols", 0))
            if kind == "ready":
                self._redraw()
            if rows > 0 and cols > 0 and (rows, cols) != (self.rows, self.cols):
                self.resize(rows, cols)
        elif kind == "ack":
            with self._cond:
                self._unacked = max(0, self._unacked - 1)
                self._cond.notify_all()
        elif kind == "detach":
            self.detach()
        elif kind == "ping":  # a comm round trip with no TTY in it (the benchmark's floor)
            self.send({"type": "pong", "t": content.get("t")})

    def _redraw(self) -> None:
        """A view (re)opened: everything it should show is the kept history, sent again from a clean screen."""
        with self._cond:
            self._pending = bytearray(self._history)
            self._unacked = 0
            self._seq += 1
            seq = self._seq
            self._cond.notify_all()
        self.send({"type": "reset", "seq": seq})

    # ---------------------------------------------------------------- actions
    def type(self, text: str | bytes) -> None:
        """Keystrokes or a paste to the TTY (detach keys detach); ignored once the session is over."""
        if not self.live:
            return
        data = text.encode() if isinstance(text, str) else text
        try:
            data = self._filter.feed(data)
        except Detached:
            self.detach()
            return
        if data:
            try:
                self.session.write(data)
            except OSError:
                pass  # the process just ended: the reader reports it

    def resize(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        if self.live:
            try:
                self.session.resize(rows, cols)
            except (KernelextError, OSError):
                pass  # it ended meanwhile

    def detach(self) -> None:
        """Leave the session; the container (or the exec'd process) keeps running."""
        if not self.live:
            return
        self.status = TerminalStatus.DETACHED.value
        hint = self.session.reattach_hint
        self._finish(f"[detached from {self.session.title}: it keeps running"
                     + (f"; {hint} re-attaches]" if hint else "]"))
        self.session.detach()

    def close(self) -> None:
        from kernelext.domain.terminal import ExecTerminal

        if not hasattr(self, "_cond"):  # its session failed to open: nothing was started
            super().close()
            return
        if self.live:
            if isinstance(self.session, ExecTerminal):
                self.session.hang_up()  # nobody could reach the exec'd process again
            else:
                self.detach()
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        super().close()

    # ---------------------------------------------------------------- threads
    def _read(self) -> None:
        session = self.session
        while (data := session.read()) is not None:
            if not session.detached:
                self._output(data)
        if session.detached and not session.owns_process:
            return  # an attach: the container keeps running, its exit is not this session's
        try:
            code = session.wait()
        except KernelextError as exc:
            self._finish(f"[{session.title}: {exc}]")
            return
        if session.detached:
            return  # a detached exec, reaped quietly
        self.exit_code = code
        self.status = TerminalStatus.EXITED.value
        self._finish(f"[{session.title} exited with code {code}]")
        if self._on_exit is not None:
            self._on_exit(code)

    def _output(self, data: bytes) -> None:
        with self._cond:
            self._history += data
            if len(self._history) > HISTORY_BYTES:
                del self._history[:len(self._history) - HISTORY_BYTES]
            self._pending += data
            if len(self._pending) > PENDING_LIMIT:
                excess = len(self._pending) - PENDING_LIMIT
                del self._pending[:excess]
                self.dropped_bytes += excess
            self._cond.notify_all()

    def _finish(self, footer: str) -> None:
        """The footer, also drawn as the terminal's last line."""
        self.footer = footer
        self._output(f"\r\n\x1b[0m{footer}\r\n".encode())

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._ended and not (self._pending and self._unacked < WINDOW):
                    self._cond.wait()
                if self._ended:
                    return
                chunk = bytes(self._pending)
                self._pending.clear()
                self._unacked += 1
                seq = self._seq
            self.send({"type": "data", "seq": seq}, [chunk])
            self.sent_messages += 1
            self.sent_bytes += len(chunk)
            time.sleep(FRAME_S)  # output meanwhile joins the next message: one a frame at most
