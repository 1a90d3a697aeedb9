"""``ContainerPanel``: one container's state, its buttons and its live output.

The badge follows the real state through the store's events (from any
process); the buttons are enabled exactly when the state machine allows the
action (:meth:`kernelext.core.container.Container.allowed_actions`). A button runs the core
call in a worker thread, so the kernel stays responsive during a 10 s stop;
an error shows in the panel as one line and the panel stays usable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

import anywidget
import ipywidgets
from traitlets import Bool, Int, List, Unicode

from kernelext.core.container import Container
from kernelext.core.events import Event
from kernelext.core.state import ContainerConfig
from kernelext.domain import containers as domain
from kernelext.domain.reports import Report, raise_for
from kernelext.errors import KernelextError
from kernelext.widgets._assets import css, esm
from kernelext.widgets._follow import ContainerFollower
from kernelext.widgets._registry import track
from kernelext.widgets.live_output import LiveOutput
from kernelext.widgets.terminal import Terminal

REMOVED = "removed"


def _action(name: str) -> Callable[[Container], object]:
    """A button's command: the same domain function as the CLI's and the magic's, on this one container."""
    commands: dict[str, Callable[..., Sequence[Report]]] = {
        "start": domain.start, "stop": domain.stop, "kill": domain.kill, "pause": domain.pause,
        "unpause": domain.unpause, "restart": domain.restart, "remove": domain.rm,
        "checkpoint": domain.checkpoint, "restore": domain.restore,
    }
    return lambda ctr: raise_for(commands[name](ctr.runtime, [ctr.id]))


class PanelHeader(anywidget.AnyWidget):
    _esm = esm("controls.js", "panel.js")
    _css = css("panel.css")

    name = Unicode("").tag(sync=True)
    image = Unicode("").tag(sync=True)
    short_id = Unicode("").tag(sync=True)
    status = Unicode("").tag(sync=True)
    exit_code = Int(0).tag(sync=True)
    exited = Bool(False).tag(sync=True)
    error = Unicode("").tag(sync=True)
    message = Unicode("").tag(sync=True)
    busy = Unicode("").tag(sync=True)
    allowed = List(Unicode()).tag(sync=True)
    #: The container's mounts, podman's ``-v`` form (fixed at create).
    mounts = List(Unicode()).tag(sync=True)
    #: What the container was given (memory, CPUs, pids, read-only, privileged), one line.
    limits = Unicode("").tag(sync=True)
    oom_killed = Bool(False).tag(sync=True)
    #: A TTY container: the header offers a terminal on it.
    tty = Bool(False).tag(sync=True)

    def __repr__(self) -> str:
        return f"PanelHeader({self.name}: {self.status})"


def limits_text(config: ContainerConfig) -> str:
    """The panel's line of limits: only what differs from an unconfined container's defaults."""
    res, sec = config.resources, config.security
    parts = []
    if res.memory:
        parts.append(f"memory {res.memory / 2**20:g} MiB")
    quota, period = res.quota_period
    if quota and period:
        parts.append(f"{quota / period:g} CPUs")
    if res.cpuset_cpus:
        parts.append(f"CPUs {res.cpuset_cpus}")
    parts.append(f"pids {res.pids_limit}" if res.pids_limit else "pids unlimited")
    parts += [label for label, on in (("read-only", sec.read_only), ("privileged", sec.privileged)) if on]
    return " · ".join(parts)


class ContainerPanel(ipywidgets.VBox):  # type: ignore[misc]
    """Name, image, state badge, action buttons, exit code and error, live output."""

    def __init__(self, container: Container, *, max_lines: int = 1000, update_rate: float = 5.0) -> None:
        self.container = container
        self.header = PanelHeader(name=container.name, image=container.image, short_id=container.short_id,
                                  mounts=[str(mount) for mount in container.config.mounts],
                                  limits=limits_text(container.config), tty=container.config.tty)
        self.output = LiveOutput(f"{container.name} output", max_lines=max_lines, update_rate=update_rate)
        self.output.interruptible = False  # the panel's view: an interrupt meant for logs -f areas leaves it
        super().__init__(children=[self.header, self.output])
        # The action thread and the follower both set the header: one at a time, from fresh state, so
        # that a follower's view from before an action ended cannot overwrite its outcome.
        self._header_lock = threading.RLock()
        self._refresh(container)
        self.header.on_msg(self._on_message)
        self.output.follow(container, across_runs=True)
        self._follower: ContainerFollower | None = ContainerFollower(container, self._changed)
        track(self)

    def __repr__(self) -> str:
        return f"ContainerPanel({self.container.name}: {self.header.status})"

    def _refresh(self, container: Container) -> None:
        with self._header_lock, self.header.hold_sync():
            st = container.reload().state
            self.header.status = st.status.value
            self.header.exit_code = st.exit_code
            self.header.exited = st.exited
            self.header.error = st.error
            self.header.oom_killed = st.oom_killed
            self.header.allowed = [] if self.header.busy else container.allowed_actions()

    def _changed(self, container: Container, event: Event | None) -> None:
        if event is not None and event.status == "remove":
            with self._header_lock:
                self.header.status, self.header.allowed = REMOVED, []
            self.stop()
            return
        try:
            self._refresh(container)
        except KernelextError:
            pass  # removed meanwhile: its event follows

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
        if content.get("type") == "action" and content.get("action") in self.header.allowed:
            self.run_action(str(content["action"]))
        elif content.get("type") == "terminal":
            try:
                self.open_terminal()
            except KernelextError as exc:
                self.header.message = f"terminal failed: {exc}"

    def open_terminal(self) -> Terminal:
        """The container's terminal below the header (the "terminal" button); a live one is kept."""
        shown = self._terminals()
        if shown and shown[0].live:
            return shown[0]
        term = Terminal(self.container._runtime.get(self.container.id))  # a container object of its own
        self.children = [self.header, term, self.output]
        return term

    def _terminals(self) -> list[Terminal]:
        children = cast("tuple[Any, ...]", self.children)  # ipywidgets is untyped
        return [child for child in children if isinstance(child, Terminal)]

    def run_action(self, action: str) -> threading.Thread:
        """Run a button's action in a worker thread (also what the buttons call)."""
        with self._header_lock, self.header.hold_sync():  # one message to the browser, not one a trait
            self.header.message, self.header.busy, self.header.allowed = "", action, []

        def work() -> None:
            message = ""
            try:
                _action(action)(self.container)
            except KernelextError as exc:
                message = f"{action} failed: {exc}"
            finally:
                # The new state goes out from here at once (no wait for the event), in one message.
                with self._header_lock, self.header.hold_sync():
                    self.header.message, self.header.busy = message, ""
                    try:
                        self._refresh(self.container)
                    except KernelextError:
                        pass  # removed
                if action in ("start", "restart", "restore", "unpause") and self.header.status == "running":
                    self.output.follow(self.container, across_runs=True)  # if its reader stopped it
        thread = threading.Thread(target=work, daemon=True, name=f"kernelext-action-{action}")
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop following the container (threads, event subscription); the view stays."""
        if self._follower is not None:
            self._follower.stop()
            self._follower = None

    def close(self) -> None:
        self.stop()
        for term in self._terminals():
            term.close()  # detaches: the container keeps running
        self.output.close()
        self.header.close()
        super().close()

