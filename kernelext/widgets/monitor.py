"""``ResourceMonitor``: a container's CPU and memory over time, as a small live plot."""

from __future__ import annotations

import threading
from typing import Any

import anywidget
from traitlets import Int, List, Unicode

from kernelext.core.container import Container
from kernelext.errors import KernelextError
from kernelext.widgets._assets import css, esm
from kernelext.widgets._registry import track

SAMPLE_S = 1.0


class ResourceMonitor(anywidget.AnyWidget):
    """Samples ``Container.stats()`` every ``interval`` seconds; keeps the last ``window`` samples."""

    _esm = esm("monitor.js")
    _css = css("monitor.css")

    name = Unicode("").tag(sync=True)
    window = Int(60).tag(sync=True)
    #: [elapsed seconds, CPU %, memory bytes] per sample, oldest first.
    samples: List[Any] = List().tag(sync=True)

    def __init__(self, container: Container, *, interval: float = SAMPLE_S, window: int = 60) -> None:
        super().__init__(name=container.name, window=window)
        self.container = container
        self._interval = interval
        self._stop = threading.Event()
        self._previous: tuple[float, int] | None = None
        self.sample()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"kernelext-monitor-{container.name}")
        self._thread.start()
        track(self)

    def __repr__(self) -> str:
        return f"ResourceMonitor({self.container.name})"

    def sample(self) -> None:
        try:
            stats = self.container.stats()
        except KernelextError:
            return  # not running: the plot keeps its last samples
        uptime, cpu_ns = stats["UpTime"], stats["CPUNano"]
        # CPU % over the last interval (the average since start hides bursts).
        if self._previous is not None and uptime > self._previous[0]:
            cpu = 100.0 * (cpu_ns - self._previous[1]) / ((uptime - self._previous[0]) * 1e9)
        else:
            cpu = stats["CPU"]
        self._previous = (uptime, cpu_ns)
        self.samples = [*self.samples[-(self.window - 1):], [round(uptime, 1), round(cpu, 1), stats["MemUsage"]]]

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def close(self) -> None:
        self._stop.set()
        super().close()
