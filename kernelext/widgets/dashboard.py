"""``Dashboard``: every container of the store as a live table; a row opens its panel."""

from __future__ import annotations

import threading
from typing import Any

import anywidget
import ipywidgets
from traitlets import List

from kernelext.core.runtime import Runtime
from kernelext.core.state import ContainerStatus
from kernelext.errors import KernelextError
from kernelext.widgets._assets import css, esm
from kernelext.widgets._registry import track
from kernelext.widgets.panel import ContainerPanel

REFRESH_S = 1.0


class ContainerTable(anywidget.AnyWidget):
    _esm = esm("controls.js", "dashboard.js")
    _css = css("dashboard.css")

    rows: List[Any] = List().tag(sync=True)

    def __repr__(self) -> str:
        return f"ContainerTable({len(self.rows)} containers)"


def _row(ctr: Any) -> dict[str, Any]:
    from kernelext.units import human_size, status_text

    row = {"name": ctr.name, "image": ctr.image, "status": ctr.status.value,
           "uptime": status_text(ctr), "cpu": "", "memory": ""}
    if ctr.status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED):
        try:
            stats = ctr.stats()
            row["cpu"] = f"{stats['CPU']:.2f}%"
            row["memory"] = human_size(stats["MemUsage"])
        except (KernelextError, OSError):
            pass  # it stopped meanwhile
    return row


class Dashboard(ipywidgets.VBox):  # type: ignore[misc]
    """All containers (name, image, state, uptime, CPU, memory), refreshed every second."""

    def __init__(self, runtime: Runtime | None = None) -> None:
        from kernelext.core.runtime import default_runtime

        self.runtime = runtime or default_runtime()
        self.table = ContainerTable()
        self.panel_area = ipywidgets.VBox()
        super().__init__(children=[self.table, self.panel_area])
        self.table.on_msg(self._on_message)
        self._stop = threading.Event()
        self.refresh()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kernelext-dashboard")
        self._thread.start()
        track(self)

    def __repr__(self) -> str:
        return "Dashboard()"

    def refresh(self) -> None:
        self.table.rows = [_row(c) for c in self.runtime.list()]

    def _loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self.refresh()

    def open_panel(self, name: str) -> ContainerPanel:
        for child in self.panel_area.children:
            child.close()
        panel = ContainerPanel(self.runtime.get(name))
        self.panel_area.children = [panel]
        return panel

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
        if content.get("type") == "open":
            try:
                self.open_panel(str(content["name"]))
            except KernelextError:
                self.refresh()

    def close(self) -> None:
        self._stop.set()
        for child in self.panel_area.children:
            child.close()
        self.table.close()
        super().close()
