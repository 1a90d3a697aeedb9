"""``CheckpointTimeline``: a container's checkpoints, restores and exported archives.

Built from the store's event log (every process's checkpoints, with the
duration and pages CRIU wrote), with buttons to restore the latest
checkpoint and to export a new archive while the container keeps running,
into the folder shown (and editable) beside the button.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import anywidget
from traitlets import List, Unicode

from kernelext.core.container import Container
from kernelext.core.events import Event
from kernelext.domain import containers as domain
from kernelext.domain.reports import raise_for
from kernelext.errors import KernelextError
from kernelext.units import human_size
from kernelext.widgets._assets import css, esm
from kernelext.widgets._follow import ContainerFollower
from kernelext.widgets._registry import track

TIMELINE_EVENTS = ("checkpoint", "restore")


def _entry(event: Event) -> dict[str, Any]:
    archive = event.attributes.get("export", "")
    size = os.path.getsize(archive) if archive and os.path.exists(archive) else None
    runtime_us = event.attributes.get("runtimeDuration", "")
    return {"time": time.strftime("%H:%M:%S", time.localtime(event.time)), "kind": event.status,
            "archive": archive, "size": size, "human_size": "" if size is None else human_size(size), "duration_ms": int(runtime_us) // 1000 if runtime_us else None,
            "pages": event.attributes.get("pagesWritten", ""),
            "leave_running": event.attributes.get("leaveRunning") == "True"}


class CheckpointTimeline(anywidget.AnyWidget):
    _esm = esm("controls.js", "timeline.js")
    _css = css("timeline.css")

    entries: List[Any] = List().tag(sync=True)
    status = Unicode("").tag(sync=True)
    allowed = List(Unicode()).tag(sync=True)
    message = Unicode("").tag(sync=True)
    #: Where "export" writes its archive; the browser shows it and may change it.
    export_dir = Unicode("").tag(sync=True)

    def __init__(self, container: Container, *, export_dir: str | os.PathLike[str] = ".", **kwargs: Any) -> None:
        super().__init__(export_dir=str(Path(export_dir).absolute()), **kwargs)
        self.container = container
        self.refresh()
        self.on_msg(self._on_message)
        self._follower = ContainerFollower(container, lambda c, e: self.refresh())
        track(self)

    def __repr__(self) -> str:
        return f"CheckpointTimeline({self.container.name}: {len(self.entries)} entries)"

    def refresh(self) -> None:
        events = [e for e in self.container._runtime.events.read() if e.id == self.container.id
                  and e.status in TIMELINE_EVENTS]
        st = self.container.state
        with self.hold_sync():
            self.entries = [_entry(e) for e in events]
            self.status = st.status.value
            # The state machine's rules, with "export" standing for a leave-running checkpoint.
            allowed = self.container.allowed_actions()
            self.allowed = (["restore"] if "restore" in allowed else []) + (
                ["export"] if "checkpoint" in allowed else [])

    def export(self) -> Path:
        """Checkpoint to a new archive, leaving the container running."""
        folder = Path(self.export_dir).expanduser()
        if not folder.is_dir():
            raise NotADirectoryError(f"export folder {folder} does not exist")
        target = (folder / f"{self.container.name}-{time.strftime('%Y%m%d-%H%M%S')}.tar.zst").absolute()
        raise_for(domain.checkpoint(self.container.runtime, [self.container.id], export=target, leave_running=True))
        return target

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
        action = content.get("type")
        if action not in self.allowed:
            return

        if action == "export" and content.get("folder"):
            self.export_dir = str(content["folder"])

        def work() -> None:
            self.message = ""
            try:
                if action == "export":
                    self.message = f"exported to {self.export()}"
                else:
                    raise_for(domain.restore(self.container.runtime, [self.container.id]))
            except (KernelextError, OSError) as exc:
                self.message = f"{action} failed: {exc}"
            self.refresh()
        threading.Thread(target=work, daemon=True, name=f"kernelext-timeline-{action}").start()

    def close(self) -> None:
        self._follower.stop()
        super().close()
