"""Container events: an append-only log shared by every process on a store.

Each event is one JSON line appended with a single ``write`` to an
``O_APPEND`` file, so lines from concurrent processes never interleave.
In-process subscribers (widgets) get events from this process at once;
:meth:`EventLog.follow` tails the file and so also sees other processes'
events (another kernel, the CLI, conmon's exit command).

The lines are podman's (its file backend's JSON: ``Name``, ``Status``, ``Time`` in RFC 3339...), so
either tool reads the other's log; a log over ``max_size`` bytes keeps its newer half, as podman's does
(docs/architecture.md §1).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

FOLLOW_POLL_S = 0.05
#: podman's event of a log cut to its newer half (type ``system``, named for the log's path).
ROTATE_STATUS = "log-rotation"
SYSTEM_TYPE = "system"
#: RFC 3339 with up to nanoseconds, as Go writes ``time.Time`` (``datetime`` reads microseconds).
_RFC3339 = re.compile(r"^(.{19})(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def _rfc3339(timestamp: float) -> str:
    """Go's RFC3339Nano in local time: trailing zeros of the fraction dropped."""
    moment = datetime.datetime.fromtimestamp(timestamp).astimezone()
    fraction = f"{round(timestamp % 1 * 1e9):09d}".rstrip("0")[:9]
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + \
        moment.strftime("%z")[:3] + ":" + moment.strftime("%z")[3:]


def _parse_rfc3339(text: str) -> float:
    match = _RFC3339.match(text)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    zone = "+00:00" if match[3] == "Z" else match[3]
    seconds = datetime.datetime.fromisoformat(match[1] + zone).timestamp()
    return seconds + float(f"0.{match[2] or 0}")


@dataclass(frozen=True)
class Event:
    time: float
    type: str  # "container" or "image"
    status: str  # create, init, start, stop, died, ...
    id: str
    name: str
    image: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """podman's JSON of an event (empty ``ID``, ``Image``, ``Name`` left out, as its ``omitempty``)."""
        document: dict[str, object] = {key: value for key, value in
                                       (("ID", self.id), ("Image", self.image), ("Name", self.name)) if value}
        document.update(Status=self.status, Time=_rfc3339(self.time), Type=self.type,
                        Attributes=self.attributes or None)
        return json.dumps(document, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Event:
        """A line of podman's log, or of kernelext's before it wrote podman's (lower-case keys, epoch time)."""
        data = json.loads(line)
        if "Status" not in data:
            return cls(**data)
        return cls(_parse_rfc3339(data["Time"]), data.get("Type", ""), data["Status"], data.get("ID", ""),
                   data.get("Name", ""), data.get("Image", ""),
                   {str(k): str(v) for k, v in (data.get("Attributes") or {}).items()})


Subscriber = Callable[[Event], None]


class EventLog:
    """``max_size``: podman's ``events_logfile_max_size`` (0: no limit)."""

    def __init__(self, path: Path, max_size: int = 0) -> None:
        self.path = path
        self.max_size = max_size
        #: True while a command runs with ``--events-backend none``.
        self.muted = False
        self._subscribers: list[Subscriber] = []
        self._watchers: list[Subscriber] = []
        self._watch_stop: threading.Event | None = None
        self._lock = threading.Lock()

    def emit(self, status: str, ctr_id: str, name: str, image: str = "", type_: str = "container",
             labels: dict[str, str] | None = None, **attributes: object) -> Event:
        """Record an event; a container's ``labels`` go into its attributes, as podman's do."""
        merged = {**(labels or {}), **{k: str(v) for k, v in attributes.items()}}
        event = Event(time.time(), type_, status, ctr_id, name, image, merged)
        if self.muted:  # podman's --events-backend none: nothing recorded, nothing told
            return event
        line = event.to_json() + "\n"
        if self.max_size:
            self._append_rotating(line)
        else:
            self._append(line)
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)
        return event

    def _append(self, line: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def _append_rotating(self, line: str) -> None:
        """podman's rotation: under its lock (``PATH.lock``), a log the line would take to ``max_size`` keeps
        what follows the first line end past its middle, then records the rotation."""
        with open(f"{self.path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = None
            if size is not None and size + len(line) - 1 >= self.max_size:  # podman counts the line's characters
                self._keep_newer_half(size)
                rotation = Event(time.time(), SYSTEM_TYPE, ROTATE_STATUS, "", str(self.path))
                self._append(rotation.to_json() + "\n")
            self._append(line)

    def _keep_newer_half(self, size: int) -> None:
        with self.path.open("rb") as original:
            original.seek(size // 2)
            original.readline()  # the line cut in two goes whole
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".events-")
            with os.fdopen(fd, "wb") as kept:
                while chunk := original.read(1 << 16):
                    kept.write(chunk)
        os.replace(temporary, self.path)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` for each event emitted by this process; returns the unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)
        return unsubscribe

    def watch(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` for each new event of any process; returns the function that stops it.

        One thread per log tails the file for all watchers, and ends with the last of them.
        """
        with self._lock:
            self._watchers.append(callback)
            if self._watch_stop is None:
                self._watch_stop = threading.Event()
                threading.Thread(target=self._tail, args=(self._watch_stop,), daemon=True,
                                 name="kernelext-events").start()

        def unwatch() -> None:
            with self._lock:
                if callback in self._watchers:
                    self._watchers.remove(callback)
                if not self._watchers and self._watch_stop is not None:
                    self._watch_stop.set()
                    self._watch_stop = None
        return unwatch

    def _tail(self, stop: threading.Event) -> None:
        for event in self.follow(stop=stop):
            with self._lock:
                watchers = list(self._watchers)
            for callback in watchers:
                try:
                    callback(event)
                except Exception:
                    logging.getLogger("kernelext").exception("event watcher failed")

    def read(self, since: float | None = None, until: float | None = None) -> list[Event]:
        try:
            with self.path.open() as f:
                events = [Event.from_json(line) for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []
        return [e for e in events if (since is None or e.time >= since) and (until is None or e.time <= until)]

    def follow(self, since: float | None = None, stop: threading.Event | None = None) -> Iterator[Event]:
        """Past events from ``since`` (none if None), then new ones from every process as they come."""
        self.path.touch(exist_ok=True)
        with self.path.open() as f:
            for line in f:
                if since is not None and line.endswith("\n"):
                    event = Event.from_json(line)
                    if event.time >= since:
                        yield event
            partial = ""
            while stop is None or not stop.is_set():
                line = f.readline()
                if not line:
                    time.sleep(FOLLOW_POLL_S)
                    continue
                partial += line
                if partial.endswith("\n"):
                    yield Event.from_json(partial)
                    partial = ""
