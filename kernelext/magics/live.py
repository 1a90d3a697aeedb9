"""Container output in notebook cells.

Two shapes:

* :func:`stream_attached` — an attached run/exec/start: output streams into
  the running cell (stdout as stdout, stderr as stderr, ANSI kept) and the
  call blocks like ``!cmd``. Past ``max_lines`` the rest goes to a bounded
  :class:`LiveArea` of the newest lines, so the stored notebook stays small.
* :class:`LiveArea` — a display that a background thread keeps updating
  (``attach``, ``logs -f``) after the magic has returned. Updates go out as
  ``update_display_data`` for the area's display ID, from a thread that runs
  in the creating cell's context, so nothing ever lands in another cell.
"""

from __future__ import annotations

import codecs
import contextvars
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from kernelext.oci.attach import AttachSocket, Stream

#: After forwarding an interrupt, how long the stream may take to end before we detach.
INTERRUPT_GRACE_S = 0.5
STDERR_SGR = "\x1b[31m"
SGR_RESET = "\x1b[0m"

_registry_lock = threading.Lock()
_live: set[LiveArea] = set()


class LiveArea:
    """A bounded, rate-limited output area in the cell that created it."""

    def __init__(self, title: str, *, max_lines: int, rate_hz: float) -> None:
        from IPython.display import display

        self.title = title
        self.lines: deque[str] = deque(maxlen=max_lines)
        self.dropped = 0
        self.footer = ""
        self._partial = {Stream.STDOUT: "", Stream.STDERR: ""}
        self._decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in self._partial}
        self._interval = 1.0 / rate_hz
        self._lock = threading.Lock()
        self._last = 0.0
        self._timer: threading.Timer | None = None
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle = display(self._bundle(), raw=True, display_id=True)  # type: ignore[no-untyped-call]
        with _registry_lock:
            _live.add(self)

    # Content.
    def _bundle(self) -> dict[str, str]:
        with self._lock:
            body = list(self.lines)
            dropped, footer = self.dropped, self.footer
        head = [f"[{self.title}]"] + ([f"... {dropped} earlier lines not shown ..."] if dropped else [])
        return {"text/plain": "\n".join(head + body + ([footer] if footer else []))}

    def feed(self, stream: Stream, data: bytes) -> None:
        text = self._partial[stream] + self._decoders[stream].decode(data)
        *complete, self._partial[stream] = text.split("\n")
        with self._lock:
            for line in complete:
                if len(self.lines) == self.lines.maxlen:
                    self.dropped += 1
                self.lines.append(f"{STDERR_SGR}{line}{SGR_RESET}" if stream is Stream.STDERR else line)
        self._schedule()

    def finish(self, footer: str) -> None:
        for stream, rest in self._partial.items():
            if rest:
                self.feed(stream, b"\n")
        with self._lock:
            self.footer = footer
        self.flush()

    # Updates, at most ``rate_hz`` a second.
    def _schedule(self) -> None:
        with self._lock:
            if self._timer is not None:
                return
            delay = max(0.0, self._last + self._interval - time.monotonic())
            self._timer = threading.Timer(delay, self._timed_flush)
            self._timer.daemon = True
        self._timer.start()

    def _timed_flush(self) -> None:
        with self._lock:
            self._timer = None
        self.flush()

    def flush(self) -> None:
        with self._lock:
            self._last = time.monotonic()
        self._handle.update(self._bundle(), raw=True)

    # The background source.
    def run_in_background(self, source: Callable[[LiveArea], str]) -> None:
        """Run ``source(area)`` in a thread bound to this cell; its return value becomes the footer."""
        context = contextvars.copy_context()

        def target() -> None:
            try:
                footer = source(self)
            except Exception as exc:  # noqa: BLE001 - shown in the area, never raised into another cell
                footer = f"[error: {exc}]"
            self.finish(footer)
            with _registry_lock:
                _live.discard(self)

        self._thread = threading.Thread(target=context.run, args=(target,), daemon=True,
                                        name=f"kernelext-live-{self.title}")
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.stopped.set()
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if self._thread is not None:
            self._thread.join(timeout)


def stop_all() -> None:
    with _registry_lock:
        areas = list(_live)
        _live.clear()
    for area in areas:
        area.stop()


class _CellStream:
    """Writes container output to the cell's stdout/stderr, decoding UTF-8 across packets."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(self, data: bytes) -> None:
        self.target.write(self.decoder.decode(data))

    def close(self) -> None:
        rest = self.decoder.decode(b"", final=True)
        if rest:
            self.target.write(rest)
        self.target.flush()


def _after_nth_newline(data: bytes, n: int) -> int:
    """The index just past the n-th newline of ``data`` (its length if there are fewer)."""
    index = -1
    for _ in range(n):
        index = data.find(b"\n", index + 1)
        if index < 0:
            return len(data)
    return index + 1


def stream_attached(conn: AttachSocket, title: str, *, max_lines: int, rate_hz: float,
                    forward_interrupt: Callable[[], None]) -> bool:
    """Copy an attached container's output into the cell until it ends.

    The first KeyboardInterrupt (the notebook's stop button) calls
    ``forward_interrupt`` (podman's sig-proxy); if the stream has not ended
    within :data:`INTERRUPT_GRACE_S`, or on a second interrupt, we detach and
    the container keeps running. Returns True if the stream ended, False if
    detached: control always comes back within the grace period.
    """
    cell = {Stream.STDOUT: _CellStream(sys.stdout), Stream.STDERR: _CellStream(sys.stderr)}
    state: dict[str, Any] = {"lines": 0, "overflow": None}

    def on_output(stream: Stream, data: bytes) -> None:
        overflow: LiveArea | None = state["overflow"]
        if overflow is not None:
            overflow.feed(stream, data)
            return
        remaining = max_lines - state["lines"]
        cut = _after_nth_newline(data, remaining)
        state["lines"] += data.count(b"\n", 0, cut)
        cell[stream].write(data[:cut])
        if cut < len(data) or state["lines"] >= max_lines:
            cell[stream].close()
            sys.stdout.write(f"\n[kernelext] more than {max_lines} lines: the newest are shown below "
                             f"(all of them: %container logs {title})\n")
            sys.stdout.flush()
            state["overflow"] = LiveArea(title, max_lines=max_lines, rate_hz=rate_hz)
            if cut < len(data):
                state["overflow"].feed(stream, data[cut:])

    deadline: float | None = None
    ended = False
    try:
        while True:
            try:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    conn.sock.settimeout(remaining)
                packet = conn.recv()
            except KeyboardInterrupt:
                if deadline is not None:
                    return False
                forward_interrupt()
                deadline = time.monotonic() + INTERRUPT_GRACE_S
                continue
            except TimeoutError:
                return False
            if packet is None:
                ended = True
                return True
            on_output(*packet)
    finally:
        for stream in cell.values():
            stream.close()
        overflow = state["overflow"]
        if overflow is not None:
            overflow.finish("" if ended else "[detached]")
            with _registry_lock:
                _live.discard(overflow)
