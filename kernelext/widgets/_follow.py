"""Following a container's real state from a widget.

Events from every process (this kernel, another kernel, the CLI, conmon's
exit command) arrive through the store's event log; a slow poll catches what
emits no event (a conmon killed from outside is only noticed by a sync). A
container of podman's service is followed through the service's event stream
(:class:`EngineFollower`, docs/architecture.md §16).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from kernelext.core.container import Container
from kernelext.core.events import Event
from kernelext.errors import KernelextError

if TYPE_CHECKING:
    from kernelext.domain.engine import Engine

POLL_S = 1.0
#: How long stop() waits for a refresh in flight (it takes the container lock, which others may hold a while).
STOP_TIMEOUT_S = 10.0


class ContainerFollower:
    """Calls ``on_change(container, event)`` when the container may have changed; ``event`` is None on a poll."""

    def __init__(self, container: Container, on_change: Callable[[Container, Event | None], None]) -> None:
        self.container = container
        self._on_change = on_change
        self._stop = threading.Event()
        self._unwatch = container._runtime.events.watch(self._event)
        self._poller = threading.Thread(target=self._poll, daemon=True, name=f"kernelext-poll-{container.name}")
        self._poller.start()

    def _event(self, event: Event) -> None:
        if event.id == self.container.id and not self._stop.is_set():
            self._refresh(event)

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            self._refresh(None)

    def _refresh(self, event: Event | None) -> None:
        if event is None or event.status != "remove":
            try:
                self.container.reload()
            except KernelextError:
                pass  # removed: the event (or the next poll) says so
        self._on_change(self.container, event)

    def stop(self) -> None:
        self._stop.set()
        self._unwatch()
        # Its refresh in flight ends first: the caller may close the runtime (the database) next.
        if self._poller is not threading.current_thread():
            self._poller.join(STOP_TIMEOUT_S)


class EngineFollower:
    """Calls ``on_event(event)`` for each event of one container on an engine (its event stream, read in a
    thread of its own); ``stop()`` closes the stream, which wakes the thread."""

    def __init__(self, engine: Engine, ident: str, on_event: Callable[[Event], None]) -> None:
        self._stream = engine.watch_events(filters={"container": [ident]})
        self._on_event = on_event
        self._stopped = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"kernelext-events-{ident[:12]}")
        self._reader.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                if self._stopped.is_set():
                    return
                if event.type == "container":
                    self._on_event(event)
        except (KernelextError, OSError):
            pass  # the service went away: the panel keeps its last state

    def stop(self) -> None:
        self._stopped.set()
        self._stream.close()
        if self._reader is not threading.current_thread():
            self._reader.join(STOP_TIMEOUT_S)
