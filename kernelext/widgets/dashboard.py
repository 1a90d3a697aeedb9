"""``Dashboard``: every container of one or several engines as a live table; a row opens its panel.

With a connection (or several), each engine is a section of its own, named by its badge ("local", the
connection's name), and a running container's row offers "move to" another engine
(:func:`kernelext.domain.migrate.move`, docs/architecture.md §16).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import anywidget
import ipywidgets
from traitlets import List, Unicode

from kernelext.core.runtime import Runtime
from kernelext.core.state import ContainerStatus
from kernelext.domain.engine import LOCAL, ContainerRecord, Engine
from kernelext.domain.local import LocalEngine
from kernelext.domain.migrate import move
from kernelext.errors import KernelextError
from kernelext.units import human_size
from kernelext.widgets._assets import css, esm
from kernelext.widgets._registry import track
from kernelext.widgets.panel import ContainerPanel, engine_badge

REFRESH_S = 1.0
#: The states whose CPU and memory are measured (a cgroup with processes).
MEASURED = (ContainerStatus.RUNNING.value, ContainerStatus.PAUSED.value)


class ContainerTable(anywidget.AnyWidget):
    _esm = esm("controls.js", "dashboard.js")
    _css = css("dashboard.css")

    rows: List[Any] = List().tag(sync=True)
    #: The engines shown, in order (their badges): one section each when there are several.
    engines = List(Unicode(), [LOCAL]).tag(sync=True)
    #: The last "move to" that failed, one line.
    message = Unicode("").tag(sync=True)

    def __repr__(self) -> str:
        return f"ContainerTable({len(self.rows)} containers)"


def _row(ctr: Any, engine: str = LOCAL) -> dict[str, Any]:
    from kernelext.units import status_text

    row = {"name": ctr.name, "image": ctr.image, "status": ctr.status.value,
           "uptime": status_text(ctr), "cpu": "", "memory": "", "engine": engine}
    if ctr.status.value in MEASURED:
        try:
            stats = ctr.stats()
            row["cpu"] = f"{stats['CPU']:.2f}%"
            row["memory"] = human_size(stats["MemUsage"])
        except (KernelextError, OSError):
            pass  # it stopped meanwhile
    return row


def _engine_rows(engine: Engine, badge: str) -> list[dict[str, Any]]:
    """A remote engine's containers (``ps -a``) with the service's CPU and memory of the running ones."""
    records: list[ContainerRecord] = engine.ps(all=True)
    measured = [r.id for r in records if r.state in MEASURED]
    stats = {s.get("ContainerID", ""): s for s in (engine.stats(measured) if measured else [])}
    rows = []
    for record in records:
        found = stats.get(record.id, {})
        rows.append({"name": record.name, "image": record.image, "status": record.state, "uptime": record.status,
                     "cpu": f"{found['CPU']:.2f}%" if "CPU" in found else "",
                     "memory": human_size(found["MemUsage"]) if "MemUsage" in found else "", "engine": badge})
    return rows


class Dashboard(ipywidgets.VBox):  # type: ignore[misc]
    """All containers (name, image, state, uptime, CPU, memory) of the local store and of ``connections``
    (remote engines), refreshed every second; ``local=False`` shows only the connections."""

    def __init__(self, runtime: Runtime | None = None, *, connections: Sequence[Engine] = (),
                 local: bool = True) -> None:
        from kernelext.core.runtime import default_runtime

        if runtime is None and local:
            runtime = default_runtime()
        self.runtime = runtime
        engines = ([LocalEngine(self.runtime)] if self.runtime is not None and local else []) + list(connections)
        #: badge → engine, in the order shown.
        self.engines: dict[str, Engine] = {engine_badge(engine): engine for engine in engines}
        self.table = ContainerTable(engines=list(self.engines))
        self.panel_area = ipywidgets.VBox()
        super().__init__(children=[self.table, self.panel_area])
        self.table.on_msg(self._on_message)
        self._stop = threading.Event()
        self.refresh()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kernelext-dashboard")
        self._thread.start()
        track(self)

    def __repr__(self) -> str:
        return "Dashboard()" if list(self.engines) == [LOCAL] else f"Dashboard({', '.join(self.engines)})"

    def refresh(self) -> None:
        rows: list[dict[str, Any]] = []
        for badge, engine in self.engines.items():
            try:
                if isinstance(engine, LocalEngine):
                    rows += [_row(c, badge) for c in engine.runtime.list()]
                else:
                    rows += _engine_rows(engine, badge)
            except KernelextError:
                pass  # a service out of reach: its section stays empty until it answers
        self.table.rows = rows

    def _loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self.refresh()

    def open_panel(self, name: str, engine: str = LOCAL) -> ContainerPanel:
        for child in self.panel_area.children:
            child.close()
        panel = ContainerPanel(name, engine=self.engines[engine], engines=self.engines)
        self.panel_area.children = [panel]
        return panel

    def move(self, name: str, engine: str, to: str) -> threading.Thread:
        """A row's "move to": the container checkpointed on ``engine``, restored on ``to`` (in a worker thread)."""
        def work() -> None:
            try:
                move(self.engines[engine], name, self.engines[to])
                self.table.message = ""
            except KernelextError as exc:
                self.table.message = f"move {name} to {to} failed: {exc}"
            self.refresh()
        self.table.message = ""
        thread = threading.Thread(target=work, daemon=True, name=f"kernelext-move-{name}")
        thread.start()
        return thread

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
        engine = str(content.get("engine") or LOCAL)
        if engine not in self.engines:
            return
        if content.get("type") == "open":
            try:
                self.open_panel(str(content["name"]), engine)
            except KernelextError:
                self.refresh()
        elif content.get("type") == "move" and content.get("to") in self.engines:
            self.move(str(content["name"]), engine, str(content["to"]))

    def close(self) -> None:
        self._stop.set()
        for child in self.panel_area.children:
            child.close()
        self.table.close()
        super().close()
