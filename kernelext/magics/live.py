"""An attached container's output streamed into the running cell.

Output streams into the cell (stdout as stdout, stderr as stderr, ANSI kept)
and the call blocks like ``!cmd``. Past ``max_lines`` the rest goes to a
bounded :class:`~kernelext.widgets.LiveOutput` of the newest lines, so the
stored notebook stays small. (``attach`` and ``logs -f``, which return at
once, show a ``LiveOutput`` directly.)
"""

from __future__ import annotations

import codecs
import sys
import time
from collections.abc import Callable
from typing import Any

from kernelext.oci.attach import AttachSocket, Stream

#: After forwarding an interrupt, how long the stream may take to end before we detach.
INTERRUPT_GRACE_S = 0.5
STREAM_NAMES = {Stream.STDOUT: "stdout", Stream.STDERR: "stderr"}

class _CellStream:
    """Writes container output to the cell's stdout/stderr, decoding UTF-8 across packets."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(self, data: bytes) -> None:
        self.target.write(self.decoder.decode(data))

    def end(self) -> None:
        """Write what is left of a character cut short; not flushed, so it leaves with what follows."""
        rest = self.decoder.decode(b"", final=True)
        if rest:
            self.target.write(rest)

    def close(self) -> None:
        self.end()
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
    from IPython.display import display

    from kernelext.widgets.live_output import LiveOutput

    cell = {Stream.STDOUT: _CellStream(sys.stdout), Stream.STDERR: _CellStream(sys.stderr)}
    state: dict[str, Any] = {"lines": 0, "overflow": None}

    def on_output(stream: Stream, data: bytes) -> None:
        overflow: LiveOutput | None = state["overflow"]
        if overflow is not None:
            overflow.feed(STREAM_NAMES[stream], data)
            return
        remaining = max_lines - state["lines"]
        cut = _after_nth_newline(data, remaining)
        state["lines"] += data.count(b"\n", 0, cut)
        cell[stream].write(data[:cut])
        if cut < len(data) or state["lines"] >= max_lines:
            cell[stream].end()
            sys.stdout.write(f"\n[kernelext] more than {max_lines} lines: the newest are shown below "
                             f"(all of them: %container logs {title})\n")
            state["overflow"] = LiveOutput(title, max_lines=max_lines, update_rate=rate_hz)
            display(state["overflow"])  # type: ignore[no-untyped-call]  # flushes the lines above first
            if cut < len(data):
                state["overflow"].feed(STREAM_NAMES[stream], data[cut:])

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
