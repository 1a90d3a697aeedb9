"""The kernel's interrupt (the notebook's stop button) while no cell runs stops the live areas.

``logs -f`` and ``attach`` return at once and leave a live area following the
container; an interrupt then reaches an idle kernel, which ipykernel ignores
(it restores its idle SIGINT handler after every cell). We become that idle
handler: an interrupt stops every live area's follow or attach, and the
containers keep running. During a cell, the cell gets the interrupt as usual.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

Handler = Any  # what signal.signal accepts and returns


def _halt_live_areas(_signum: int, _frame: FrameType | None) -> None:
    if "kernelext.widgets" in sys.modules:  # imported only if a widget was ever shown
        sys.modules["kernelext.widgets"].halt_all()


def install(ip: Any) -> Handler | None:
    """Make the idle kernel's SIGINT handler stop live areas; returns the handler it replaced (for :func:`remove`)."""
    kernel = getattr(ip, "kernel", None)
    if kernel is None or threading.current_thread() is not threading.main_thread():
        return None  # a terminal IPython: Ctrl-C already means KeyboardInterrupt
    previous = getattr(kernel, "saved_sigint_handler", signal.SIG_IGN)
    kernel.saved_sigint_handler = _halt_live_areas  # restored by ipykernel after the current cell
    return previous


def remove(ip: Any, previous: Handler | None) -> None:
    kernel = getattr(ip, "kernel", None)
    if kernel is not None and previous is not None and getattr(kernel, "saved_sigint_handler", None) is _halt_live_areas:
        kernel.saved_sigint_handler = previous
