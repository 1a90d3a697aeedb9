"""``LiveOutput``: a container's output as a live, bounded widget.

The browser gets append-only custom messages, at most ``update_rate`` a
second (the first one interval after the widget is made, so a burst that ends
sooner costs one message): the cost grows with new bytes, not with everything
so far. Each carries the count of lines that fell out of the buffer, so the
update rate bounds the message rate. The newest ``max_lines`` lines are also
kept kernel-side, and a view that (re)opens (a page reload) asks for them with
a ``replay`` message. Lines are tagged stdout or stderr; ANSI colours (SGR) are
rendered in the browser.

Output is held raw until it is sent and only its newest ``max_lines`` lines
are then split and decoded; the rest is only counted (a C-speed newline
count), so a flood costs the kernel little more than its bytes.
"""

from __future__ import annotations

import contextvars
import enum
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anywidget
from traitlets import Bool, Int, Unicode

from kernelext.core.logs import LogCursor
from kernelext.core.state import ContainerStatus
from kernelext.errors import KernelextError
from kernelext.widgets._assets import css, esm
from kernelext.widgets._registry import track

if TYPE_CHECKING:
    from kernelext.core.container import Container
    from kernelext.domain.engine import Engine

STREAMS = ("stdout", "stderr")
#: States in which a run is under way (its footer is empty).
ACTIVE = (ContainerStatus.CREATED, ContainerStatus.RUNNING, ContainerStatus.PAUSED, ContainerStatus.STOPPING)
#: How long the end of a run may take to be recorded (a stop's SIGKILL, conmon's exit file) before the footer says it.
SETTLE_S = 3.0
#: How often a panel's output looks for the container's next run (a restart or restore from anywhere).
NEXT_RUN_POLL_S = 0.25
#: A followed log resumes just after its last line's timestamp (podman's timestamps are nanoseconds; a float
#: of seconds holds about a microsecond at this epoch).
LOG_TIME_STEP_S = 1e-6


class LiveMode(str, enum.Enum):
    """What a live area is doing: its stop button says "stop following" or "detach"."""

    FOLLOW = "follow"
    ATTACH = "attach"


HALTED_FOOTER = {
    LiveMode.FOLLOW: "[stopped following {name}: it keeps running]",
    LiveMode.ATTACH: "[detached from {name}: it keeps running]",
}


def _footer(ctr: Container) -> str:
    """The footer that is true of the container's state now: empty while a run is under way."""
    st = ctr.state
    if st.status in ACTIVE:
        return ""
    if st.checkpointed:
        return f"[{ctr.name} checkpointed]"
    return f"[{ctr.name} exited with code {st.exit_code}]" if st.exited else ""


def _run_of(ctr: Container) -> tuple[float, float, int]:
    """What tells one run from the next: a start, a restore, a new conmon."""
    st = ctr.state
    return st.started_at, st.restored_at, st.conmon_pid


def _settled_footer(ctr: Container, timeout: float) -> str:
    """The footer once the run's end is recorded (a log ends a moment before the exit code is saved)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ctr.reload()
        except KernelextError:
            return f"[{ctr.name} removed]"
        if ctr.state.status not in ACTIVE or time.monotonic() > deadline:
            return _footer(ctr)
        time.sleep(NEXT_RUN_POLL_S)


def _log_size(ctr: Container) -> int:
    try:
        return ctr.log_path.stat().st_size
    except FileNotFoundError:
        return 0
#: Raw output held before it is split into lines; past this much it is parsed at once (memory stays bounded).
RAW_LIMIT = 1 << 20


class LiveOutput(anywidget.AnyWidget):
    _esm = esm("ansi.js", "controls.js", "live_output.js")
    _css = css("live_output.css")

    title = Unicode("").tag(sync=True)
    max_lines = Int(1000).tag(sync=True)
    footer = Unicode("").tag(sync=True)
    #: A follow or attach is under way (the stop button is enabled), and which.
    live = Bool(False).tag(sync=True)
    mode = Unicode("").tag(sync=True)

    def __init__(self, title: str = "", *, max_lines: int = 1000, update_rate: float = 5.0, **kwargs: Any) -> None:
        super().__init__(title=title, max_lines=max_lines, **kwargs)
        self._lines: deque[tuple[str, str]] = deque(maxlen=max_lines)
        self._pending: deque[tuple[str, str]] = deque(maxlen=max_lines)
        #: Lines that fell out of the bounded buffer ("N earlier lines not shown"), sent with each append.
        self.dropped = 0
        self._pending_dropped = 0
        # Fed output not split yet: (stream, bytes, newlines in it), oldest first.
        self._raw: list[tuple[str, bytes, int]] = []
        self._raw_lines = 0
        self._raw_bytes = 0
        self._partial = dict.fromkeys(STREAMS, b"")  # bytes: a newline never splits a UTF-8 character
        self._interval = 1.0 / update_rate
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self._last_send = time.monotonic()  # the display itself was the first update
        self._stop = threading.Event()  # closed
        self._halt = threading.Event()  # the current follow or attach was stopped by the reader
        self._thread: threading.Thread | None = None
        self._full_log: Callable[[], bytes] | None = None
        # Where following stopped (it resumes there after a restart); read at the update rate.
        self._cursor = LogCursor(newest=max_lines, interval=1.0 / update_rate)
        self._closers: list[Callable[[], None]] = []
        #: Where following through an engine resumes (the time just after the last line shown).
        self._engine_since: float | None = None
        #: The kernel's interrupt stops it (a ``logs -f``/``attach`` area); a panel's own output keeps following.
        self.interruptible = True
        self.messages_sent = 0
        self.bytes_sent = 0
        self.on_msg(self._on_frontend_message)

    def __repr__(self) -> str:
        return f"LiveOutput(title={self.title!r})"

    @property
    def lines(self) -> list[tuple[str, str]]:
        """The buffered (newest) lines as ``(stream, text)``."""
        with self._lock:
            self._split()
            return list(self._lines)

    # ------------------------------------------------------------- feeding
    def feed(self, stream: str, data: bytes) -> None:
        """Add raw output; complete lines are shown, a partial one waits for its newline."""
        with self._lock:
            newlines = data.count(b"\n")
            self._raw.append((stream, data, newlines))
            self._raw_lines += newlines
            self._raw_bytes += len(data)
            if self._raw_bytes > RAW_LIMIT:
                self._split()
            self._schedule()

    def _split(self) -> None:
        """Turn the held output into lines; those that could not stay in the buffer are only counted."""
        if not self._raw:
            return
        skip = max(0, self._raw_lines - self.max_lines)
        tagged: list[tuple[str, str]] = []
        for stream, data, newlines in self._raw:
            if newlines <= skip:  # every line this chunk completes falls out: keep only what follows them
                skip -= newlines
                self._partial[stream] = data[data.rindex(b"\n") + 1:] if newlines else self._partial[stream] + data
                continue
            *complete, self._partial[stream] = (self._partial[stream] + data).split(b"\n")
            tagged.extend((stream, line.decode(errors="replace")) for line in complete[skip:])
            skip = 0
        self._pending_dropped += max(0, self._raw_lines - self.max_lines)
        self._raw.clear()
        self._raw_lines = self._raw_bytes = 0
        self._append(tagged)

    def _append(self, tagged: list[tuple[str, str]]) -> None:
        self._pending_dropped += max(0, len(self._lines) + len(tagged) - self.max_lines)
        self._lines.extend(tagged)
        self._pending.extend(tagged)

    def finish(self, footer: str) -> None:
        with self._lock:
            self._split()
            rest = [(stream, partial.decode(errors="replace")) for stream, partial in self._partial.items() if partial]
            self._partial = dict.fromkeys(STREAMS, b"")
            self._append(rest)
        self.flush()
        self.footer = footer

    # ------------------------------------------------------------- sending
    def _schedule(self) -> None:
        if self._timer is not None:
            return
        delay = max(0.0, self._last_send + self._interval - time.monotonic())
        self._timer = threading.Timer(delay, self.flush)
        self._timer.daemon = True
        self._timer.start()

    def flush(self) -> None:
        # Sent under the lock: a flush from the timer and one from finish() never overtake each other.
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()  # a no-op from the timer's own thread
                self._timer = None
            self._split()
            if not self._pending and not self._pending_dropped:
                return
            self.dropped += self._pending_dropped
            self._pending_dropped = 0
            self._send_custom({"type": "append", "chunks": list(self._pending), "dropped": self.dropped})
            self._pending.clear()
            self._last_send = time.monotonic()

    def _send_custom(self, content: dict[str, Any]) -> None:
        self.messages_sent += 1
        self.bytes_sent += sum(len(text) for _, text in content.get("chunks", ()))
        self.send(content)

    def _on_frontend_message(self, _widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
        if content.get("type") == "replay":
            with self._lock:
                self.flush()  # what is pending goes to the other views now, so the new one gets it only once
                self._send_custom({"type": "replay", "chunks": list(self._lines), "dropped": self.dropped})
        elif content.get("type") == "halt":
            self.halt()
        elif content.get("type") == "download" and self._full_log is not None:
            self.send({"type": "download", "name": f"{self.title or 'output'}.log",
                       "text": self._full_log().decode(errors="replace")})

    # ------------------------------------------------- following a container
    def _halted(self) -> bool:
        return self._halt.is_set() or self._stop.is_set()

    def halt(self) -> None:
        """Stop following or detach (the stop button, an interrupt): the container keeps running."""
        if not self.live:
            return
        self._halt.set()
        for closer in self._closers:
            closer()  # wakes an attach blocked on the socket

    def _start(self, mode: LiveMode, name: str, run: Callable[[], None]) -> None:
        self._halt.clear()
        with self.hold_sync():
            self.footer, self.live, self.mode = "", True, mode.value
        context = contextvars.copy_context()

        def body() -> None:
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - shown in the widget, never raised elsewhere
                if not self._halted():
                    self.finish(f"[error: {exc}]")
            finally:
                if self._halt.is_set() and not self._stop.is_set():
                    self.finish(HALTED_FOOTER[mode].format(name=name))
                self.live = False
        self._thread = threading.Thread(target=context.run, args=(body,), daemon=True,
                                        name=f"kernelext-live-{name}")
        self._thread.start()
        track(self)

    def follow(self, container: Container, *, across_runs: bool = False) -> LiveOutput:
        """Show the container's log so far, then follow it until it exits.

        One log file, read in order from a cursor, so nothing is lost or
        repeated when following resumes. With ``across_runs`` (a panel) the
        view follows whatever run comes next, whoever starts it (a restart or
        restore in another cell, the CLI): the store's state says when
        (docs/architecture.md §12). The footer always says the current truth.
        """
        if self._thread is not None and self._thread.is_alive():
            return self
        self._full_log = lambda: b"".join(line.data for line in container.logs())

        def run() -> None:
            # An object of its own: the caller's may be in the middle of an operation in another thread.
            watcher = container._runtime.get(container.id)
            cursor = self._cursor
            while True:
                run_id = _run_of(watcher)
                skipped = cursor.skipped
                for line in container.logs(follow=True, cursor=cursor, stop=self._halted):
                    if cursor.skipped != skipped:  # a burst bigger than the buffer: only its end was parsed
                        with self._lock:
                            self._pending_dropped += cursor.skipped - skipped
                        skipped = cursor.skipped
                    self.feed(line.stream, line.data)
                if self._halted():
                    return
                self.finish(_settled_footer(watcher, SETTLE_S))
                if not across_runs or not self._next_run(watcher, run_id, _log_size(watcher)):
                    return
                self.footer = ""
        self._start(LiveMode.FOLLOW, container.name, run)
        return self

    def follow_engine(self, engine: Engine, name: str, *, footer: Callable[[], str]) -> LiveOutput:
        """Follow a container's log through its engine (a remote one: the service's logs follow stream) until
        it exits; ``footer()`` then says how it ended. Each call continues after the last line shown, so a
        panel that follows the next run (a restart) repeats nothing (docs/architecture.md §16)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        stream = engine.follow_logs(name, since=self._engine_since)
        self._closers.append(stream.close)

        def run() -> None:
            try:
                for line in stream:
                    if self._halted():
                        return
                    self._engine_since = line.time + LOG_TIME_STEP_S
                    self.feed(line.stream, line.data)
                if not self._halted():
                    self.finish(footer())
            finally:
                stream.close()
        self._start(LiveMode.FOLLOW, name, run)
        return self

    def _next_run(self, watcher: Container, previous: tuple[float, float, int], log_size: int) -> bool:
        """Wait for the container's next run (True), keeping the footer true meanwhile; False once halted."""
        while not self._halted():
            try:
                watcher.reload()
            except KernelextError:
                return False  # removed
            st = watcher.state
            self.footer = _footer(watcher)
            if (st.status in ACTIVE and _run_of(watcher) != previous) or _log_size(watcher) > log_size:
                return True
            self._halt.wait(NEXT_RUN_POLL_S)
        return False

    def attach(self, container: Container) -> LiveOutput:
        """Show what the running container writes from now on (its attach socket), then its exit code."""
        return self.attach_stream(container.attach(), container.name,
                                  footer=lambda: _settled_footer(container._runtime.get(container.id), SETTLE_S))

    def attach_stream(self, conn: Any, name: str, *, footer: Callable[[], str]) -> LiveOutput:
        """Show an attachment's output (a local attach socket, or a remote engine's attach stream: anything
        with ``packets()`` and ``close()``) until it ends; ``footer()`` then says how the container ended."""
        self._closers.append(conn.close)

        def run() -> None:
            try:
                for stream, data in conn.packets():
                    if self._halted():
                        return
                    self.feed(stream.name.lower(), data)
                if not self._halted():
                    self.finish(footer())
            finally:
                conn.close()
        self._start(LiveMode.ATTACH, name, run)
        return self

    def close(self) -> None:
        self._stop.set()
        for closer in self._closers:
            closer()  # wakes a thread blocked on the socket
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        super().close()
