"""Reading conmon's k8s-file container log.

One record a line: ``<RFC3339Nano timestamp> <stdout|stderr> <F|P> <bytes>``;
``P`` marks a partial record (no newline yet) that the next records complete.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

FOLLOW_POLL_S = 0.05
READ_SIZE = 1 << 16
BURST_READ_SIZE = 1 << 23
_PARTIAL = b"P"


@dataclass(frozen=True, slots=True)
class LogLine:
    timestamp: str
    stream: str  # "stdout" or "stderr"
    data: bytes  # the line, with its newline unless the log ends mid-line

    @property
    def time(self) -> float:
        return parse_timestamp(self.timestamp)

    def render(self, timestamps: bool = False) -> bytes:
        return (self.timestamp.encode() + b" " + self.data) if timestamps else self.data


def parse_timestamp(text: str) -> float:
    """RFC 3339 with nanoseconds (Python parses at most microseconds)."""
    from datetime import datetime

    date, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{date}.{rest[:min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    return datetime.fromisoformat(text).timestamp()


class _Assembler:
    """Joins partial records into whole lines, per stream."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[str, bytes]] = {}
        self.rest = b""  # the start of a record not yet complete in the file

    def feed(self, record: bytes) -> LogLine | None:
        parts = record.rstrip(b"\n").split(b" ", 3)
        if len(parts) < 3:
            return None
        timestamp, stream, flag = parts[0].decode(), parts[1].decode(), parts[2]
        content = parts[3] if len(parts) == 4 else b""
        first_ts, pending = self._pending.pop(stream, (timestamp, b""))
        if flag == _PARTIAL:
            self._pending[stream] = (first_ts, pending + content)
            return None
        return LogLine(first_ts, stream, pending + content + b"\n")

    def reset(self) -> None:
        """Forget partial lines (their start was skipped)."""
        self._pending.clear()

    def flush(self) -> list[LogLine]:
        lines = [LogLine(ts, stream, data) for stream, (ts, data) in self._pending.items() if data]
        self._pending.clear()
        return lines


@dataclass
class LogCursor:
    """Where a follower is in a log, and how much it may skip.

    ``offset`` is the byte offset just past the last record read (a later
    follow resumes there); with ``newest`` set, a burst of more records than
    that is read by parsing only its newest ``newest`` records (the rest
    would fall out of a bounded view anyway), counted in ``skipped``.
    """

    newest: int | None = None
    offset: int = 0
    skipped: int = 0
    #: Seconds between reads while output keeps coming: a viewer that redraws five times a
    #: second reads five times a second, in bigger (so cheaper, skippable) batches.
    interval: float = 0.0


#: How complete (non-partial) records look, for counting the ones a cursor skips without parsing them.
_COMPLETE_MARKS = (b" stdout F ", b" stderr F ")


def _in_window(line: LogLine, since: float | None, until: float | None) -> bool:
    if since is None and until is None:
        return True
    t = line.time
    return (since is None or t >= since) and (until is None or t <= until)


def _record_time(record: bytes) -> float | None:
    try:
        return parse_timestamp(record.split(b" ", 1)[0].decode())
    except (ValueError, UnicodeDecodeError):
        return None


def _offset_since(f: BinaryIO, size: int, since: float) -> int:
    """A record boundary at or before the first record written at ``since`` or later: records are
    in time order, so a binary search over the file finds it in a few reads of a big log."""
    low, high = 0, size
    while high - low > READ_SIZE:
        middle = (low + high) // 2
        f.seek(middle)
        f.readline()  # the rest of the record the seek landed in
        when = _record_time(f.readline())
        if when is None or when >= since:
            high = middle
        else:
            low = middle
    if low:
        f.seek(low)
        f.readline()
        return f.tell()
    return 0


def _offset_of_tail(f: BinaryIO, size: int, tail: int) -> int:
    """The offset of the records that make the last ``tail`` lines, found by reading backwards: a line
    is its stream's partial records up to a full one (``F``), so the search stops past ``tail + 1``
    full records (one more for the line a trailing partial record may still make)."""
    position, found, carry = size, 0, b""
    while position > 0:
        step = min(READ_SIZE, position)
        position -= step
        f.seek(position)
        block = f.read(step) + carry
        records = block.split(b"\n")
        carry = records[0] if position else b""  # may be the end of a record that starts further back
        offset = position + len(records[0]) + 1 if position else 0
        starts = []
        for record in records[1:] if position else records:
            starts.append((offset, record))
            offset += len(record) + 1
        for start, record in reversed(starts):
            if record.split(b" ", 3)[2:3] == [b"F"]:
                found += 1
                if found > tail + 1:
                    return start + len(record) + 1
    return 0


def read_log(path: Path, *, since: float | None = None, until: float | None = None,
             tail: int | None = None) -> list[LogLine]:
    """The log's lines, filtered by time window, the last ``tail`` of them if given.

    A big log is never read from its start for ``tail`` or ``since``: ``tail`` reads backwards from the
    end to the records it needs, ``since`` searches for its first record (records are in time order).
    """
    assembler = _Assembler()
    bounded = tail is not None and tail >= 0
    lines: deque[LogLine] = deque(maxlen=tail if bounded else None)
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            start = 0
            if since is not None:
                start = _offset_since(f, size, since)
            if bounded and until is None:
                start = max(start, _offset_of_tail(f, size, tail or 0))
            f.seek(start)
            for record in f:
                line = assembler.feed(record)
                if line is None:
                    continue
                if until is not None and line.time > until:
                    break  # in time order: nothing later is inside the window
                if _in_window(line, since, until):
                    lines.append(line)
            else:
                lines.extend(line for line in assembler.flush() if _in_window(line, since, until))
    except FileNotFoundError:
        return []
    return list(lines)


def follow_log(path: Path, done: Callable[[], bool], *, since: float | None = None, until: float | None = None,
               tail: int | None = None, cursor: LogCursor | None = None) -> Iterator[LogLine]:
    """The log so far (as :func:`read_log`), then new lines until ``done()`` and the file is drained.

    With a ``cursor``, reading starts at its offset and keeps it up to date.
    """
    assembler = _Assembler()
    cursor = cursor or LogCursor()
    path.touch(exist_ok=True)
    with path.open("rb") as f:
        f.seek(cursor.offset)
        if tail is None or tail < 0:
            yield from (line for line in _records(f, assembler, cursor) if _in_window(line, since, until))
        else:
            yield from deque((line for line in _records(f, assembler, cursor) if _in_window(line, since, until)),
                             maxlen=max(tail, 0))
        while True:
            finished = done()  # checked before reading, so nothing written before the end is missed
            got = False
            for line in _records(f, assembler, cursor):
                got = True
                if until is not None and line.time > until:
                    return
                if since is None or line.time >= since:
                    yield line
            if finished:
                yield from assembler.flush()
                return
            if not got or cursor.interval:
                time.sleep(max(cursor.interval, 0.0 if got else FOLLOW_POLL_S))


def _records(f: BinaryIO, assembler: _Assembler, cursor: LogCursor) -> Iterator[LogLine]:
    """The complete records readable now; a record still being written waits in ``assembler.rest``."""
    # A cursor that may skip reads a whole burst at once: all but its newest records go unparsed.
    while chunk := f.read(READ_SIZE if cursor.newest is None else BURST_READ_SIZE):
        complete, newline, assembler.rest = (assembler.rest + chunk).rpartition(b"\n")
        if not newline:
            assembler.rest = complete + assembler.rest
            continue
        cursor.offset = f.tell() - len(assembler.rest)
        records = complete.split(b"\n")
        if cursor.newest is not None and len(records) > cursor.newest:
            passed = b"\n".join(records[:-cursor.newest]) + b"\n"
            cursor.skipped += sum(passed.count(mark) for mark in _COMPLETE_MARKS)
            assembler.reset()
            records = records[-cursor.newest:]
        for record in records:
            line = assembler.feed(record)
            if line is not None:
                yield line
