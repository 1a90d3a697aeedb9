"""``ContainerPanel``: one container's state, its buttons and its live output, on any engine.

The badge follows the real state through the store's events (from any
process) or, for a container of podman's service, through the service's event
stream (docs/architecture.md §16); the buttons are enabled exactly when the
state machine allows the action, as the engine says (:meth:`Engine.state`: the
same rule on a local container and on podman's inspect of a remote one). A button runs the engine's call in a worker thread,
so the kernel stays responsive during a 10 s stop; an error shows in the panel
as one line and the panel stays usable. "move to" carries the running container
to another engine (:func:`kernelext.domain.migrate.move`) and the panel follows
it there.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import anywidget
import ipywidgets
from traitlets import Bool, Int, List, Unicode

from kernelext.core.container import Container
from kernelext.core.events import Event
from kernelext.core.state import ContainerConfig
from kernelext.domain import containers as domain
from kernelext.domain.engine import LOCAL, Engine, unsupported
from kernelext.domain.local import LocalEngine
from kernelext.domain.migrate import move
from kernelext.domain.reports import Report, raise_for
from kernelext.errors import KernelextError
from kernelext.widgets._assets import css, esm
from kernelext.widgets._follow import ContainerFollower, EngineFollower
from kernelext.widgets._registry import track
from kernelext.widgets.live_output import LiveOutput
from kernelext.widgets.terminal import Terminal

REMOVED = "removed"
#: How long a move waits for the old engine's output reader to end before following the new one.
MOVE_JOIN_S = 5.0


#: A button's action as the engine's operation (the CLI's and the magic's, on this one container).
ENGINE_OPERATIONS = {"start": "start", "stop": "stop", "kill": "kill", "pause": "pause", "unpause": "unpause",
                     "restart": "restart", "remove": "rm", "checkpoint": "checkpoint", "restore": "restore"}
#: The actions after which the container may run again: its output is followed anew.
RUNS_AGAIN = ("start", "restart", "restore", "unpause")


def _action(name: str) -> Callable[[Container], object]:
    """A button's command: the same domain function as the CLI's and the magic's, on this one container."""
    commands: dict[str, Callable[..., Sequence[Report]]] = {
        "start": domain.start, "stop": domain.stop, "kill": domain.kill, "pause": domain.pause,
        "unpause": domain.unpause, "restart": domain.restart, "remove": domain.rm,
        "checkpoint": domain.checkpoint, "restore": domain.restore,
    }
    return lambda ctr: raise_for(commands[name](ctr.runtime, [ctr.id]))


def engine_badge(engine: Engine) -> str:
    """The engine a panel or a dashboard row names: "local", or the connection's name (its URL's host, or the
    socket, when it has no name)."""
    if not engine.remote:
        return LOCAL
    connection = getattr(engine, "connection", None)
    if connection is not None and connection.name:
        return str(connection.name)
    parts = urllib.parse.urlsplit(connection.uri) if connection is not None else None
    return (parts.hostname or parts.path) if parts is not None else engine.name


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
    #: The engine the container lives on ("local" or the connection), and the engines it can move to.
    engine = Unicode(LOCAL).tag(sync=True)
    targets = List(Unicode()).tag(sync=True)

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
    """Name, image, engine, state badge, action buttons, exit code and error, live output.

    ``container`` is a local :class:`Container`, or a name on ``engine`` (a local or a remote engine).
    ``engines`` (badge → engine) are where "move to" may carry the container.
    """

    def __init__(self, container: Container | str, *, engine: Engine | None = None,
                 engines: Mapping[str, Engine] | None = None, max_lines: int = 1000, update_rate: float = 5.0) -> None:
        self.header = PanelHeader()
        self.output = LiveOutput("", max_lines=max_lines, update_rate=update_rate)
        self.output.interruptible = False  # the panel's view: an interrupt meant for logs -f areas leaves it
        super().__init__(children=[self.header, self.output])
        self.engines: dict[str, Engine] = dict(engines or {})
        # The action thread and the follower both set the header: one at a time, from fresh state, so
        # that a follower's view from before an action ended cannot overwrite its outcome.
        self._header_lock = threading.RLock()
        self._follower: ContainerFollower | EngineFollower | None = None
        self.header.on_msg(self._on_message)
        self._bind(container, engine)
        track(self)

    def __repr__(self) -> str:
        return f"ContainerPanel({self.header.name}: {self.header.status})"

    def _bind(self, container: Container | str, engine: Engine | None) -> None:
        """Show and follow the container on its engine (at creation, and after a move)."""
        if engine is not None and not engine.remote and not isinstance(container, Container):
            container = engine.local("panel").get(container)
        #: The local container (None on a remote engine, whose container is ``ident`` there).
        self.container: Container | None = container if isinstance(container, Container) else None
        if self.container is not None:
            ctr = self.container
            self.engine: Engine = engine if engine is not None else LocalEngine(ctr._runtime)
            self.ident = ctr.id
            with self.header.hold_sync():
                self.header.name, self.header.image, self.header.short_id = ctr.name, ctr.image, ctr.short_id
                self.header.mounts = [str(mount) for mount in ctr.config.mounts]
                self.header.limits, self.header.tty = limits_text(ctr.config), ctr.config.tty
            self._refresh(ctr)
        else:
            assert engine is not None, "a container name needs its engine"
            self.engine = engine
            doc = self._inspect(str(container))
            self.ident = doc["Id"]
            with self.header.hold_sync():
                self.header.name, self.header.image = doc["Name"], doc.get("ImageName", "")
                self.header.short_id, self.header.limits, self.header.tty = self.ident[:12], "", False
                self.header.mounts = [f"{m.get('Source', '')}:{m.get('Destination', '')}"
                                      for m in doc.get("Mounts") or []]
            self._refresh_remote()
        badge = engine_badge(self.engine)
        self.engines.setdefault(badge, self.engine)
        with self.header.hold_sync():
            self.header.engine = badge
            self.header.targets = [name for name in self.engines if name != badge]
        self.output.title = f"{self.header.name} output"
        self._follow_output()
        if self.container is not None:
            self._follower = ContainerFollower(self.container, self._changed)
        else:
            self._follower = EngineFollower(self.engine, self.ident, self._engine_event)

    def _inspect(self, name: str) -> dict[str, Any]:
        report = self.engine.inspect([name])
        raise_for(report)
        return cast("dict[str, Any]", report[0].document)

    def _follow_output(self) -> None:
        if self.container is not None:
            self.output.follow(self.container, across_runs=True)
        elif self.header.status in ("running", "paused"):
            self.output.follow_engine(self.engine, self.ident, footer=self._remote_footer)

    def _remote_footer(self) -> str:
        try:
            state = self._inspect(self.ident)["State"]
        except KernelextError:
            return f"[{self.header.name} removed]"
        if state.get("Checkpointed") and state.get("Status") != "running":
            return f"[{self.header.name} checkpointed]"
        return f"[{self.header.name} exited with code {state.get('ExitCode', 0)}]"

    def _refresh_now(self) -> None:
        if self.container is not None:
            self._refresh(self.container)
        else:
            self._refresh_remote()

    def _refresh(self, container: Container) -> None:
        with self._header_lock, self.header.hold_sync():
            st = container.reload().state
            self.header.status = st.status.value
            self.header.exit_code = st.exit_code
            self.header.exited = st.exited
            self.header.error = st.error
            self.header.oom_killed = st.oom_killed
            self.header.allowed = [] if self.header.busy else container.allowed_actions()

    def _refresh_remote(self) -> None:
        """The header from the engine's state of the container (the actions it allows are the engine's rule)."""
        with self._header_lock:
            state = self.engine.state(self.ident)
            with self.header.hold_sync():
                self.header.status = state.status
                self.header.exit_code = state.exit_code
                self.header.exited = state.exited
                self.header.error = state.error
                self.header.oom_killed = state.oom_killed
                self.header.allowed = [] if self.header.busy else list(state.allowed)

    def _changed(self, container: Container, event: Event | None) -> None:
        if event is not None and event.status == "remove":
            self._removed()
            return
        try:
            self._refresh(container)
        except KernelextError:
            pass  # removed meanwhile: its event follows

    def _engine_event(self, event: Event) -> None:
        """An event of the container on its (remote) engine: the header from fresh state, the output anew when
        it runs again (whoever started it)."""
        if event.status == "remove":
            self._removed()
            return
        try:
            self._refresh_remote()
        except KernelextError:
            return  # removed meanwhile: its event follows
        if self.header.status == "running":
            self.output.follow_engine(self.engine, self.ident, footer=self._remote_footer)

    def _removed(self) -> None:
        with self._header_lock:
            self.header.status, self.header.allowed = REMOVED, []
        self.stop()

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
        if content.get("type") == "action" and content.get("action") in self.header.allowed:
            self.run_action(str(content["action"]))
        elif content.get("type") == "move" and content.get("to") in self.header.targets:
            self.move_to(str(content["to"]))
        elif content.get("type") == "terminal":
            try:
                self.open_terminal()
            except KernelextError as exc:
                self.header.message = f"terminal failed: {exc}"

    def open_terminal(self) -> Terminal:
        """The container's terminal below the header (the "terminal" button); a live one is kept."""
        if self.container is None:
            raise unsupported(self.engine.name, "terminal")
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
        def act() -> None:
            if self.container is not None:
                _action(action)(self.container)
            else:
                raise_for(getattr(self.engine, ENGINE_OPERATIONS[action])([self.ident]))
        return self._work(action, act)

    def move_to(self, target: str) -> threading.Thread:
        """"move to": checkpoint here with export, restore with import on ``target``, remove here; the panel
        then follows the container on ``target`` (in a worker thread, as the buttons)."""
        def act() -> None:
            moved = move(self.engine, self.ident, self.engines[target])
            self.stop()
            self.output.halt()
            if self.output._thread is not None:
                self.output._thread.join(MOVE_JOIN_S)
            self._bind(moved.id, self.engines[target])
        return self._work("move", act)

    def _work(self, action: str, act: Callable[[], None]) -> threading.Thread:
        with self._header_lock, self.header.hold_sync():  # one message to the browser, not one a trait
            self.header.message, self.header.busy, self.header.allowed = "", action, []

        def work() -> None:
            message = ""
            try:
                act()
            except KernelextError as exc:
                message = f"{action} failed: {exc}"
            finally:
                # The new state goes out from here at once (no wait for the event), in one message.
                with self._header_lock, self.header.hold_sync():
                    self.header.message, self.header.busy = message, ""
                    try:
                        self._refresh_now()
                    except KernelextError:
                        pass  # removed
                if action in RUNS_AGAIN and self.header.status == "running":
                    self._follow_output()  # if its reader stopped it
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
