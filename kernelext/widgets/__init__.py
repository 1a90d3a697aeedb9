"""Interactive widgets (anywidget): see and drive containers in a notebook.

The Python side lives here and only calls the core and follows its events;
the browser side is in the top-level ``widgets/`` folder (ES modules, CSS).
"""

from __future__ import annotations

from kernelext.widgets._registry import close_all, halt_all
from kernelext.widgets.dashboard import Dashboard
from kernelext.widgets.diagram import LifecycleDiagram, lifecycle_svg
from kernelext.widgets.files import FileBrowser
from kernelext.widgets.images import ImageList
from kernelext.widgets.live_output import LiveOutput
from kernelext.widgets.monitor import ResourceMonitor
from kernelext.widgets.panel import ContainerPanel
from kernelext.widgets.terminal import Terminal
from kernelext.widgets.timeline import CheckpointTimeline

__all__ = ["CheckpointTimeline", "ContainerPanel", "Dashboard", "FileBrowser", "ImageList", "LifecycleDiagram",
           "LiveOutput", "ResourceMonitor", "Terminal", "close_all", "halt_all", "lifecycle_svg"]
