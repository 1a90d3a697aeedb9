"""The widgets that own threads or subscriptions, so ``%unload_ext`` can close them all."""

from __future__ import annotations

import weakref
from typing import Any

_open: weakref.WeakSet[Any] = weakref.WeakSet()


def track(widget: Any) -> None:
    _open.add(widget)


def close_all() -> None:
    for widget in list(_open):
        widget.close()
    _open.clear()


def halt_all() -> int:
    """Stop every interruptible live area's follow or attach (an interrupt while no cell runs); how many."""
    halted = 0
    for widget in list(_open):
        if getattr(widget, "interruptible", False) and getattr(widget, "live", False):
            widget.halt()
            halted += 1
    return halted
