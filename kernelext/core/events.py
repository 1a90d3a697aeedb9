"""Container events: an append-only log shared by every process on a store.

Each event is one JSON line appended with a single ``write`` to an
``O_APPEND`` file, so lines from concurrent processes never interleave.
In-process subscribers (widgets) get events from this process at once;
:meth:`EventLog.follow` tails the file and so also sees other processes'
events (another kernel, the CLI, conmon's exit command).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

FOLLOW_POLL_S = 0.05


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
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Event:
        return cls(**json.loads(line))


Subscriber = Callable[[Event], None]


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path
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
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, (event.to_json() + "\n").encode())
        finally:
            os.close(fd)
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)
        return event

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
