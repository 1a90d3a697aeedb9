"""``ResourceMonitor``: a container's CPU and memory over time, as a small live plot.

Samples come from the container's engine (``Engine.stats``: the local core's cgroups, or a podman
service's stats endpoint), so the monitor works on either (docs/architecture.md §16).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import anywidget
from traitlets import Int, List, Unicode

from kernelext.errors import KernelextError
from kernelext.widgets._assets import css, esm
from kernelext.widgets._registry import track

if TYPE_CHECKING:
    from kernelext.core.container import Container
    from kernelext.domain.engine import Engine

SAMPLE_S = 1.0
NS_PER_S = 1e9


class ResourceMonitor(anywidget.AnyWidget):
    """Samples the container's stats every ``interval`` seconds; keeps the last ``window`` samples."""

    _esm = esm("monitor.js")
    _css = css("monitor.css")

    name = Unicode("").tag(sync=True)
    window = Int(60).tag(sync=True)
    #: [seconds since the monitor began, CPU %, memory bytes] per sample, oldest first.
    samples: List[Any] = List().tag(sync=True)

    def __init__(self, container: Container | str, *, engine: Engine | None = None, interval: float = SAMPLE_S,
                 window: int = 60) -> None:
        """``container``: a local ``Container``, or a name on ``engine`` (a remote one's)."""
        from kernelext.domain.local import LocalEngine

        if isinstance(container, str):
            assert engine is not None, "a container named without its engine"
            name = container
        else:
            engine, name = LocalEngine(container._runtime), container.id
        super().__init__(name=container if isinstance(container, str) else container.name, window=window)
        self.engine: Engine = engine
        self._ident = name
        self._interval = interval
        self._stop = threading.Event()
        self._began = time.monotonic()
        self._previous: tuple[float, int] | None = None
        self.sample()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"kernelext-monitor-{self.name}")
        self._thread.start()
        track(self)

    def __repr__(self) -> str:
        return f"ResourceMonitor({self.name})"

    def sample(self) -> None:
        try:
            found = self.engine.stats([self._ident])
        except KernelextError:
            return  # not running, or out of reach: the plot keeps its last samples
        if not found or not found[0].get("PIDs"):
            self._previous = None  # podman reports a stopped container's stats as zeros: nothing to plot
            return
        stats, now = found[0], time.monotonic()
        cpu_ns, previous = int(stats["CPUNano"]), self._previous
        self._previous = (now, cpu_ns)
        # CPU % over the last interval, measured here from the CPU time both engines report: the average since
        # the start hides bursts, and podman 4.3's own CPU and UpTime are not that (its UpTime is the CPU time).
        # The first sample is the baseline.
        if previous is None or now <= previous[0]:
            return
        cpu = 100.0 * (cpu_ns - previous[1]) / ((now - previous[0]) * NS_PER_S)
        self.samples = [*self.samples[-(self.window - 1):],
                        [round(now - self._began, 1), round(cpu, 1), int(stats["MemUsage"])]]

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def close(self) -> None:
        self._stop.set()
        super().close()
