"""A pull's or load's progress in a cell: a bar updated in place, then one summary line.

The bar is shown with an empty ``text/plain`` form and blanked when done, so a
notebook's stored output holds only the summary line whatever the timing
(nbval ignores the widget view and compares the text; docs/architecture.md §6).
"""

from __future__ import annotations

import time

from kernelext.storage.progress import Phase, Progress


class ProgressBar:
    """Call it with :class:`Progress` events; :meth:`finish` leaves the summary."""

    def __init__(self, title: str) -> None:
        import ipywidgets
        from IPython.display import display

        self._bar = ipywidgets.FloatProgress(value=0.0, min=0.0, max=1.0, description=title)
        self._label = ipywidgets.Label(value="")
        self._box = ipywidgets.HBox([self._bar, self._label])
        bundle = {**self._box._repr_mimebundle_(), "text/plain": ""}
        self._handle = display(bundle, raw=True, display_id=True)  # type: ignore[no-untyped-call]
        self._started = time.monotonic()

    def __call__(self, event: Progress) -> None:
        if event.phase is Phase.BYTES and event.total:
            self._bar.value = min(event.done / event.total, 1.0) * 0.9  # the rest: unpacking
            self._label.value = f"{event.done / 1e6:.1f} / {event.total / 1e6:.1f} MB"
        elif event.phase is Phase.BYTES:
            self._label.value = f"{event.done / 1e6:.1f} MB"
        elif event.phase is Phase.STEP:
            self._label.value = event.message[:60]
        elif event.phase is Phase.UNPACK and event.total:
            self._bar.value = 0.9 + 0.1 * event.done / event.total
            self._label.value = f"unpacking layer {event.done + 1} of {event.total}"
        elif event.phase is Phase.DONE:
            self._bar.value = 1.0

    def finish(self, summary: str | None) -> None:
        """Remove the bar; print ``summary`` (None: the operation failed, its error says why)."""
        self._box.close()
        if self._handle is not None:
            self._handle.update({"text/plain": ""}, raw=True)
        if summary is not None:
            print(f"{summary} in {time.monotonic() - self._started:.1f}s")
