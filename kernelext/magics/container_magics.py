"""``%container`` / ``%%container`` (and ``%ctr``): the CLI's grammar in a cell.

A front end only: the line is parsed by :mod:`kernelext.cli.parser` and each
subcommand calls the core. Line magics return values (a ``Container``, a
list, a dict, an exit code) that render richly; attached runs stream into the
cell; ``attach`` and ``logs -f`` leave a live area behind and return at once.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, needs_local_scope, no_var_expand
from traitlets import Bool, Float, Instance, Integer, List, Unicode, observe

from kernelext.cli.format import parse_interval, parse_time
from kernelext.cli.parser import (
    HelpRequested,
    UsageError,
    checkpoint_options,
    clone_options,
    copy_arguments,
    create_options,
    parse_args,
    resource_options,
    restore_options,
    volume_create_options,
)
from kernelext.cli.template import Template
from kernelext.core.container import Container
from kernelext.core.runtime import Runtime
from kernelext.domain import checkpointinfo
from kernelext.domain import containers as domain
from kernelext.domain.filters import parse_filters
from kernelext.domain.reports import (
    CheckpointReport,
    InspectReport,
    Report,
    RestoreReport,
    WaitReport,
    errors_of,
    exit_code_of,
)
from kernelext.errors import KernelextError, NoSuchImageError
from kernelext.magics import live, terminal
from kernelext.magics.checkpointcard import CheckpointCard, CheckpointDiffCard
from kernelext.magics.display import ContainerList, Table

Handler = Callable[["ContainerMagics", argparse.Namespace], Any]
#: Subcommands that exist only in a notebook (they show a widget).
WIDGET_COMMANDS = ("panel", "diagram", "timeline", "monitor", "files", "dashboard", "imagelist")
#: The widgets that work on any engine (docs/architecture.md §16): with a connection, on it.
ENGINE_WIDGETS = ("panel", "dashboard", "monitor", "files", "imagelist")
#: The widgets that show what only kernelext's own store has, and why (the one line a remote engine gives).
LOCAL_WIDGETS = {
    "diagram": "it shows this host's runc and conmon processes, which a podman service's containers are not",
    "timeline": "it shows kernelext's own checkpoint history, which a podman service does not keep",
}
HANDLERS: dict[str, Handler] = {}


def handles(*keys: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for key in keys:
            HANDLERS[key] = fn
        return fn
    return register


class DebugError(RuntimeError):
    """Wraps a kernelext error to show its full traceback (``--debug`` / ``debug`` trait)."""


#: The global options that pick an engine, as ``--connection NAME`` (also before a widget command).
ENGINE_OPTIONS = {"--connection": "connection", "-c": "connection", "--url": "url", "--identity": "identity"}


def _connection_options(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The engine options in front of a command line, and the rest."""
    options = argparse.Namespace(connection=None, url=None, identity=None)
    rest = list(argv)
    while len(rest) > 1 and rest[0] in ENGINE_OPTIONS:
        setattr(options, ENGINE_OPTIONS[rest[0]], rest[1])
        rest = rest[2:]
    return options, rest


@magics_class
class ContainerMagics(Magics):
    """Drive containers from cells: ``%container run -d --name web busybox httpd -f``.

    Configure with ``%config ContainerMagics.<trait> = ...`` or ``ipython_config.py``.
    """

    store_root = Unicode("", help="Storage root (default: KERNELEXT_ROOT or the system store)").tag(config=True)
    run_root = Unicode("", help="Storage state directory (default: KERNELEXT_RUNROOT or the system one)"
                       ).tag(config=True)
    output_lines = Integer(1000, help="Lines an attached run streams into the cell, and the size of live "
                                      "areas' buffers").tag(config=True)
    update_rate = Float(5.0, help="Updates a second, at most, of a live output area").tag(config=True)
    debug = Bool(False, help="Show full tracebacks of kernelext errors").tag(config=True)
    connection = Unicode("", help="podman connection (system connection ls) the magics drive; empty: the "
                                  "local store").tag(config=True)
    dashboard_connections = List(Unicode(), help="podman connections `%container dashboard` shows beside the "
                                                 "local store (its -c/--all-connections replace them)"
                                 ).tag(config=True)
    runtime = Instance(Runtime, allow_none=True)
    #: The runtime of the line being run (its global options), else None: the configured store.
    _line_runtime: Runtime | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Stores a line named with --root/--runroot/--criu, kept open as the default one is.
        self.other_runtimes: dict[tuple[str | None, str | None, str | None], Runtime] = {}
        #: Remote engines by connection, kept open (an SSH tunnel each) as the runtimes are.
        self.remote_engines: dict[Any, Any] = {}

    @observe("store_root", "run_root")
    def _store_changed(self, change: Any) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None

    @property
    def _shell(self) -> Any:
        assert self.shell is not None, "the magics are registered with a shell"
        return self.shell

    @property
    def rt(self) -> Runtime:
        if self._line_runtime is not None:
            return self._line_runtime
        if self.runtime is None:
            self.runtime = Runtime(self.store_root or None, self.run_root or None)
        return self.runtime

    def close(self) -> None:
        if "kernelext.widgets" in sys.modules:  # imported only if a widget was ever shown
            sys.modules["kernelext.widgets"].close_all()
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        for other in self.other_runtimes.values():
            other.close()
        self.other_runtimes.clear()
        for engine in self.remote_engines.values():
            engine.close()
        self.remote_engines.clear()

    def _remote_engine(self, args: argparse.Namespace) -> Any:
        """The remote engine the line (``--connection``, ``--url``) or ``ContainerMagics.connection`` names,
        else None: the local store (docs/architecture.md §16)."""
        from kernelext.connections import resolve
        from kernelext.domain.engine import engine_for

        found = resolve(args.connection or (None if args.url else self.connection or None), args.url,
                        args.identity)
        if found is None:
            return None
        if found not in self.remote_engines:
            self.remote_engines[found] = engine_for(found)
        return self.remote_engines[found]

    @contextlib.contextmanager
    def _global_options(self, args: argparse.Namespace) -> Iterator[None]:
        """``--root``, ``--runroot``, ``--criu``, ``--log-level``, ``--events-backend`` and ``--noout`` mean in a
        cell what they mean on the command line: another store (as ``Runtime(root, runroot, criu=...)``: unset
        ones from the environment), the level of kernelext's log messages, whether events are recorded, and no
        output."""
        if args.root or args.runroot or args.criu:
            key = (args.root, args.runroot, args.criu)
            if key not in self.other_runtimes:
                self.other_runtimes[key] = Runtime(args.root, args.runroot, criu=args.criu)
            self._line_runtime = self.other_runtimes[key]
        logger = logging.getLogger("kernelext")
        level = logger.level
        logger.setLevel(args.log_level.upper())
        rt = self.rt
        try:
            domain.events_backend(rt, args.events_backend)
            with contextlib.redirect_stdout(io.StringIO()) if args.noout else contextlib.nullcontext():
                yield
        finally:
            rt.events.muted = False
            logger.setLevel(level)
            self._line_runtime = None

    # ----------------------------------------------------------- entry points
    @no_var_expand
    @needs_local_scope
    @line_cell_magic("container")  # type: ignore[arg-type]  # IPython's typing lacks the local_ns form
    def container(self, line: str, cell: str | None = None, local_ns: dict[str, Any] | None = None) -> Any:
        """Run a kernelext (podman-style) subcommand; `%container --help` lists them.

        Line magic: ``%container run -d --name web busybox httpd -f`` returns
        the value (Container, list, dict, exit code). Cell magics:
        ``%%container exec NAME`` and ``%%container run [flags] IMAGE`` run the
        cell as a shell script; ``%%container write NAME:/path`` writes the
        cell's text to that path in the container.
        """
        return self._dispatch(self._expand(line, local_ns), cell)

    @no_var_expand
    @needs_local_scope
    @line_cell_magic("ctr")  # type: ignore[arg-type]
    def ctr(self, line: str, cell: str | None = None, local_ns: dict[str, Any] | None = None) -> Any:
        """Short alias of ``%container``."""
        return self._dispatch(self._expand(line, local_ns), cell)

    def _expand(self, line: str, local_ns: dict[str, Any] | None) -> str:
        """IPython's ``$name``/``{expr}`` expansion, leaving Go templates (``{{.State.Status}}``) intact."""
        from IPython.utils.text import DollarFormatter

        namespace = {**self._shell.user_ns, **(local_ns or {})}
        protected = line.replace("{{", "{{{{").replace("}}", "}}}}")
        try:
            return DollarFormatter().vformat(protected, args=[], kwargs=namespace)
        except Exception:  # noqa: BLE001 - as IPython: an expansion that fails leaves the line as typed
            return line

    def _dispatch(self, line: str, cell: str | None) -> Any:
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise IPythonUsageError(f"%container: {exc}") from None
        debug = self.debug
        if "--debug" in argv:
            argv.remove("--debug")
            debug = True
        try:
            options, rest = _connection_options(argv) if cell is None else (None, [])
            if options is not None and rest and rest[0] in WIDGET_COMMANDS:
                return self._engine_widget(options, rest)
            if cell is not None:
                # no global options here: ContainerMagics.connection (or CONTAINER_HOST...) picks the engine
                engine = self._remote_engine(argparse.Namespace(connection=None, url=None, identity=None))
                if engine is not None:
                    from kernelext.magics.remote import run_remote_cell

                    return run_remote_cell(self, engine, argv, cell)
            if cell is not None:
                return self._cell(argv, cell)
            args = parse_args(argv)
            engine = self._remote_engine(args)
            if engine is not None:
                from kernelext.magics.remote import run_remote

                return run_remote(self, engine, args)
            handler = HANDLERS.get(args.cmd)
            if handler is None:
                raise UsageError(f"%container {args.cmd}: not available in a notebook")
            if getattr(args, "preserve_fds", 0):  # a kernel's descriptors 3.. are its own sockets, no caller's
                raise UsageError(f"%container {args.cmd}: --preserve-fds is not available in a notebook")
            with self._global_options(args):
                value = handler(self, args)
            return None if args.noout else value
        except HelpRequested as shown:
            print(shown.text)
            return None
        except UsageError as exc:
            raise IPythonUsageError(str(exc).splitlines()[0]) from None
        except KernelextError as exc:
            self._set_exit_code(exit_code_of(exc))
            if debug:
                raise DebugError(str(exc)) from exc
            raise

    def _widget(self, argv: list[str]) -> Any:
        """Notebook-only subcommands that show a widget: panel, diagram, timeline, monitor, files; dashboard,
        imagelist."""
        from kernelext import widgets

        command, rest = argv[0], argv[1:]
        if command == "imagelist":
            if rest:
                raise UsageError(f"usage: %container {command}")
            return widgets.ImageList(self.rt)
        snapshot = command == "diagram" and "--snapshot" in rest
        rest = [a for a in rest if a != "--snapshot"] if snapshot else rest
        if len(rest) != 1:
            raise UsageError(f"usage: %container {command} {'[--snapshot] ' if command == 'diagram' else ''}CONTAINER")
        ctr = self.rt.get(rest[0])
        if command == "panel":
            return widgets.ContainerPanel(ctr, max_lines=self.output_lines, update_rate=self.update_rate)
        if command == "timeline":
            return widgets.CheckpointTimeline(ctr)
        if command == "monitor":
            return widgets.ResourceMonitor(ctr)
        if command == "files":
            return widgets.FileBrowser(ctr)
        return widgets.LifecycleDiagram(ctr, frozen=snapshot)

    def _engine_widget(self, options: argparse.Namespace, argv: list[str]) -> Any:
        """``%container [--connection NAME] panel|monitor|files CONTAINER`` and ``dashboard``: on the connection
        (the line's, else ``ContainerMagics.connection``...) when there is one, else the local store. A remote
        panel can move its container to the local store and back; the dashboard shows both. The widgets of
        what only the local store has refuse a connection in one line, with the reason."""
        from kernelext import widgets
        from kernelext.domain.engine import unsupported
        from kernelext.domain.local import LocalEngine

        command, rest = argv[0], argv[1:]
        if command == "dashboard":
            return self._dashboard(options, rest)
        engine = self._remote_engine(options)
        if engine is None:
            return self._widget(argv)
        if command in LOCAL_WIDGETS:
            raise unsupported(engine.name, f"%container {command}", LOCAL_WIDGETS[command])
        if command == "imagelist":
            if rest:
                raise UsageError(f"usage: %container {command}")
            return widgets.ImageList(engine=engine)
        if len(rest) != 1:
            raise UsageError(f"usage: %container {command} CONTAINER")
        if command == "monitor":
            return widgets.ResourceMonitor(rest[0], engine=engine)
        if command == "files":
            return widgets.FileBrowser(engine.files(rest[0]))
        return widgets.ContainerPanel(rest[0], engine=engine, engines={"local": LocalEngine(self.rt)},
                                      max_lines=self.output_lines, update_rate=self.update_rate)

    def _dashboard(self, options: argparse.Namespace, argv: list[str]) -> Any:
        """``%container [--connection NAME] dashboard [-c NAME]... [--all-connections]``: the local store and the
        connections asked for, else ``ContainerMagics.dashboard_connections``, else the line's or configured one
        (docs/architecture.md §16). A named connection out of reach is an error; with ``--all-connections`` it
        is skipped with a line on stderr (a stale entry of podman's store does not hide the others)."""
        from kernelext import widgets
        from kernelext.cli.parser import NOTEBOOK_COMMANDS, command_parser
        from kernelext.connections import ConnectionStore
        from kernelext.errors import EngineUnreachableError

        args = command_parser("dashboard", table=NOTEBOOK_COMMANDS).parse_args(argv)
        every = [c.name for c in ConnectionStore().list()] if args.all_connections else []
        names = [*args.connections, *every] or list(self.dashboard_connections)
        engines = []
        line = self._remote_engine(options)
        if line is not None and (options.connection or options.url or not names):
            engines.append(line)
        for name in dict.fromkeys(names):
            try:
                engine = self._remote_engine(argparse.Namespace(connection=name, url=None, identity=None))
            except EngineUnreachableError as exc:
                if name not in every or name in args.connections:
                    raise
                print(f"dashboard: {name} skipped: {exc}", file=sys.stderr)
                continue
            if all(engine is not e for e in engines):
                engines.append(engine)
        return widgets.Dashboard(self.rt, connections=engines)

    def _cell(self, argv: list[str], cell: str) -> Any:
        if not argv:
            raise UsageError("%%container needs a subcommand: exec, run or write")
        sub, rest = argv[0], argv[1:]
        if sub == "exec":
            if len(rest) != 1:
                raise UsageError("usage: %%container exec CONTAINER")
            return self._exec_streamed(self.rt.get(rest[0]), ["sh", "-c", cell], tty=False, env=[], workdir=None,
                                       user=None)
        if sub == "run":
            args = parse_args(["run", *rest, "sh", "-c", cell] if "-d" in rest or "--detach" in rest
                              else ["run", "--rm", *[a for a in rest if a != "--rm"], "sh", "-c", cell])
            return HANDLERS["run"](self, args)
        if sub == "write":
            if len(rest) != 1 or ":" not in rest[0]:
                raise UsageError("usage: %%container write CONTAINER:/path")
            name, _, path = rest[0].partition(":")
            data = cell.encode()
            self.rt.get(name).write_file(path, data)
            print(f"wrote {len(data)} bytes to {name}:{path}")
            return None
        raise UsageError(f"unknown cell subcommand {sub!r}: use exec, run or write")

    # --------------------------------------------------------------- helpers
    def _set_exit_code(self, code: int) -> int:
        self._shell.user_ns["_exit_code"] = code
        return code

    def _report_exit(self, what: str, code: int) -> None:
        self._set_exit_code(code)
        print(f"[{what} exited with code {code}]")

    @staticmethod
    def _forward_interrupt(ctr: Container) -> Callable[[], None]:
        def forward() -> None:
            try:
                ctr.kill("SIGINT")
            except KernelextError:
                pass  # already gone
        return forward

    def _attached(self, ctr: Container, *, start: bool, remove: bool, run: bool = False) -> None:
        conn = domain.attach_and_start(ctr, start=start, remove=remove, run=run)
        if not self._stream_attached(conn, ctr.name, self._forward_interrupt(ctr)):
            return
        self._report_exit(ctr.name, ctr.wait())
        if remove:
            domain.remove_quietly(ctr, force=True)

    def _stream_attached(self, conn: Any, name: str, forward_interrupt: Callable[[], None], *,
                         prefix: str = "") -> bool:
        """An attachment's output (a local attach socket, a remote engine's attach stream) into the cell until
        it ends (True) or the user detaches (False: said in one line); ``prefix``: the engine options that
        reach the container again."""
        try:
            ended = live.stream_attached(conn, name, max_lines=self.output_lines, rate_hz=self.update_rate,
                                         forward_interrupt=forward_interrupt)
        finally:
            conn.close()
        if not ended:
            print(f"[detached from {name}: it did not stop on SIGINT and keeps running; "
                  f"%container {prefix}attach {name} or %container {prefix}stop {name}]")
        return ended

    def _exec_streamed(self, ctr: Container, command: list[str], *, tty: bool, env: list[str],
                       workdir: str | None, user: str | None) -> None:
        def write(stream: str, data: bytes) -> None:
            (sys.stderr if stream == "stderr" else sys.stdout).write(data.decode(errors="replace"))
        result = ctr.exec_run(command, tty=tty, env=env, workdir=workdir, user=user, on_output=write)
        self._report_exit(f"exec in {ctr.name}", result.exit_code)

    def _reported(self, reports: Sequence[Report]) -> list[Report]:
        """The successes; every failure but the last printed as one line, the last raised (as the CLI does)."""
        failures = errors_of(reports)
        for failure in failures[:-1]:
            print(f"Error: {failure}", file=sys.stderr)
        if failures:
            raise failures[-1]
        self._set_exit_code(0)
        return list(reports)

    def _containers(self, reports: Sequence[Report]) -> Container | ContainerList:
        """A command's containers as they are now: one value for one container, a list otherwise."""
        done = ContainerList()
        for report in self._reported(reports):
            ctr = report.container
            if ctr is not None:
                done.append(ctr.reload() if self.rt.exists(ctr.id) else ctr)
        return done[0] if len(done) == 1 else done

    @staticmethod
    def _refuse_terminal(command: str, name: str) -> None:
        """``-i`` without ``-t``: stdin with no terminal to type it in; one line saying what works instead."""
        raise UsageError(f"{command} -i needs a terminal: add -t for one in the cell ({command} -it), leave out -i "
                         f"(the output streams into the cell), or use %%container {command} {name} for a script")

    def live_output(self, title: str) -> Any:
        from kernelext.widgets import LiveOutput

        return LiveOutput(title, max_lines=self.output_lines, update_rate=self.update_rate)


# -------------------------------------------------------------- subcommands
@handles("run")
def _run(m: ContainerMagics, args: argparse.Namespace) -> Container | None:
    if args.log_driver == "passthrough":  # conmon would write to the kernel's own descriptors, not the cell
        raise UsageError("the passthrough logging driver needs a terminal: use k8s-file (the default) in a notebook")
    if args.detach:
        return _warned(domain.run(m.rt, args.image, **create_options(args)))
    if args.tty:  # the container's TTY in a terminal widget
        return terminal.attach(m._shell, _warned(m.rt.create(args.image, **create_options(args))), start=True,
                               remove=args.rm, detach_keys=args.detach_keys, on_exit=m._set_exit_code)
    if args.interactive:
        m._refuse_terminal("run", args.image)
    m._attached(_warned(m.rt.create(args.image, **create_options(args))), start=True, remove=args.rm, run=True)
    return None


@handles("create")
def _create(m: ContainerMagics, args: argparse.Namespace) -> Container:
    return _warned(m.rt.create(args.image, **create_options(args)))


def _warned(ctr: Container) -> Container:
    """create's warnings (ports discarded, ...) into the cell's stderr, as the CLI prints them."""
    for warning in ctr.warnings:
        print(warning, file=sys.stderr)
    return ctr


@handles("start")
def _start(m: ContainerMagics, args: argparse.Namespace) -> Any:
    if args.attach or args.interactive:
        ctr = domain.attach_target(m.rt, args.containers, all=args.all, latest=args.latest)
        if ctr.config.tty:
            return terminal.attach(m._shell, ctr, start=True, remove=False, detach_keys=args.detach_keys,
                                   on_exit=m._set_exit_code)
        m._attached(ctr, start=True, remove=False)
        return None
    return m._containers(domain.start(m.rt, args.containers, all=args.all, latest=args.latest,
                                      filters=parse_filters(args.filter)))


@handles("stop")
def _stop(m: ContainerMagics, args: argparse.Namespace) -> Container | ContainerList:
    return m._containers(domain.stop(m.rt, args.containers, all=args.all, latest=args.latest, ignore=args.ignore,
                                     filters=parse_filters(args.filter), timeout=args.time))


@handles("kill")
def _kill(m: ContainerMagics, args: argparse.Namespace) -> Container | ContainerList:
    return m._containers(domain.kill(m.rt, args.containers, signal=args.signal, all=args.all, latest=args.latest))


@handles("pause")
def _pause(m: ContainerMagics, args: argparse.Namespace) -> Container | ContainerList:
    return m._containers(domain.pause(m.rt, args.containers, all=args.all, latest=args.latest,
                                      filters=parse_filters(args.filter)))


@handles("unpause")
def _unpause(m: ContainerMagics, args: argparse.Namespace) -> Container | ContainerList:
    return m._containers(domain.unpause(m.rt, args.containers, all=args.all, latest=args.latest,
                                        filters=parse_filters(args.filter)))


@handles("restart")
def _restart(m: ContainerMagics, args: argparse.Namespace) -> Container | ContainerList:
    return m._containers(domain.restart(m.rt, args.containers, all=args.all, latest=args.latest,
                                        running=args.running, filters=parse_filters(args.filter), timeout=args.time))


@handles("rm")
def _rm(m: ContainerMagics, args: argparse.Namespace) -> None:
    for report in m._reported(domain.rm(m.rt, args.containers, all=args.all, latest=args.latest,
                                        ignore=args.ignore, force=args.force, filters=parse_filters(args.filter),
                                        timeout=args.time, volumes=args.volumes)):
        print(report.shown)


@handles("exists")
def _exists(m: ContainerMagics, args: argparse.Namespace) -> bool:
    found = domain.exists(m.rt, args.container)
    m._set_exit_code(0 if found else 1)
    return found


@handles("wait")
def _wait(m: ContainerMagics, args: argparse.Namespace) -> int | list[int]:
    reports = m._reported(domain.wait(m.rt, args.containers, latest=args.latest, conditions=args.condition,
                                      interval=parse_interval(args.interval)))
    codes = [r.exit_code for r in reports if isinstance(r, WaitReport)]
    m._set_exit_code(codes[-1])
    return codes[0] if len(codes) == 1 else codes


@handles("exec")
def _exec(m: ContainerMagics, args: argparse.Namespace) -> Any:
    if not args.command:
        raise UsageError("exec requires at least 2 arguments: CONTAINER COMMAND")
    if args.detach:
        return m.rt.get(args.container).exec_detached(args.command, env=args.env, workdir=args.workdir,
                                                      user=args.user)
    if args.tty:
        return terminal.exec_(m._shell, m.rt.get(args.container), args.command, env=args.env,
                              workdir=args.workdir, user=args.user, detach_keys=args.detach_keys,
                              on_exit=m._set_exit_code)
    if args.interactive:
        m._refuse_terminal("exec", args.container)
    m._exec_streamed(m.rt.get(args.container), args.command, tty=args.tty, env=args.env, workdir=args.workdir,
                     user=args.user)
    return None


@handles("logs")
def _logs(m: ContainerMagics, args: argparse.Namespace) -> Any:
    tail = None if args.tail < 0 else args.tail
    if args.follow:
        ctr = domain.follow_target(m.rt, args.containers, latest=args.latest)
        return m.live_output(f"{ctr.name} logs").follow(ctr)
    several = len(args.containers) > 1
    for record in domain.logs(m.rt, args.containers, latest=args.latest, since=parse_time(args.since),
                              until=parse_time(args.until), tail=tail):
        (sys.stderr if record.line.stream == "stderr" else sys.stdout).write(
            record.render(timestamps=args.timestamps, prefix=several, names=args.names).decode(errors="replace"))


@handles("attach")
def _attach(m: ContainerMagics, args: argparse.Namespace) -> Any:
    ctr = m.rt.get(args.container)
    if ctr.config.tty and not args.no_stdin:
        return terminal.attach(m._shell, ctr, start=False, remove=False, detach_keys=args.detach_keys,
                               on_exit=m._set_exit_code)
    return m.live_output(f"{ctr.name} attached").attach(ctr)


@handles("ps")
def _ps(m: ContainerMagics, args: argparse.Namespace) -> ContainerList | list[str]:
    containers = ContainerList(domain.ps(m.rt, all=args.all, latest=args.latest, last=args.last,
                                         filters=parse_filters(args.filter), sort=args.sort))
    if args.quiet:
        return [c.id if args.no_trunc else c.short_id for c in containers]
    return containers


@handles("inspect")
def _inspect(m: ContainerMagics, args: argparse.Namespace) -> Any:
    from kernelext.cli.template import Template

    template = Template.parse(args.format, "inspect") if args.format and args.format != "json" else None
    reports = m._reported(domain.inspect(m.rt, args.containers, latest=args.latest, images=args.group is None))
    docs = [r.document for r in reports if isinstance(r, InspectReport) and r.document is not None]
    if template is not None:
        values = [template.render(d) for d in docs]
        return values[0] if len(values) == 1 else values
    return docs[0] if len(docs) == 1 else docs


@handles("mount")
def _mount(m: ContainerMagics, args: argparse.Namespace) -> Path | list[Path]:
    paths = [m.rt.get(n).mount() for n in args.containers]
    return paths[0] if len(paths) == 1 else paths


@handles("umount")
def _umount(m: ContainerMagics, args: argparse.Namespace) -> Container | ContainerList:
    done = ContainerList()
    for name in args.containers:
        ctr = m.rt.get(name)
        ctr.unmount(force=args.force)
        done.append(ctr.reload())
    return done[0] if len(done) == 1 else done


@handles("export")
def _export(m: ContainerMagics, args: argparse.Namespace) -> None:
    if not args.output:
        raise UsageError("in a notebook, export needs -o FILE")
    from kernelext.files.whole import whole_file

    with whole_file(args.output) as f:  # a container that is not there leaves no file
        m.rt.get(args.container).export(f)
    print(f"exported to {args.output}")


@handles("events")
def _events(m: ContainerMagics, args: argparse.Namespace) -> Table:
    if args.stream and args.until is None:
        raise UsageError("in a notebook, events needs --stream=false or --until (a stream never ends)")
    events = list(domain.events(m.rt, filters=parse_filters(args.filter), since=parse_time(args.since),
                                until=parse_time(args.until)))
    return Table(({"TYPE": e.type, "STATUS": e.status, "NAME": e.name, "IMAGE": e.image} for e in events),
                 ["TYPE", "STATUS", "NAME", "IMAGE"])


@handles("stats")
def _stats(m: ContainerMagics, args: argparse.Namespace) -> Table | list[Any]:
    from kernelext.cli.template import Template
    from kernelext.units import STATS_COLUMNS, stats_row

    containers = [m.rt.get(n) for n in args.containers] if args.containers else m.rt.list(all=False)
    raw = [c.stats() for c in containers]
    if args.format and args.format != "json":  # raw values, as podman's --format
        template = Template.parse(args.format, "stats")
        return [template.render(r) for r in raw]
    if args.format == "json":
        return raw
    return Table((stats_row(r) for r in raw), list(STATS_COLUMNS))


@handles("update")
def _update(m: ContainerMagics, args: argparse.Namespace) -> Container:
    ctr = m.rt.get(args.container)
    ctr.update(**resource_options(args))
    return ctr


@handles("top")
def _top(m: ContainerMagics, args: argparse.Namespace) -> Table:
    return Table(domain.top(m.rt, args.container, latest=args.latest), list(domain.TOP_COLUMNS))


@handles("image-ls")
def _images(m: ContainerMagics, args: argparse.Namespace) -> Table | list[str] | None:
    """podman's columns, and the containers that use each image."""
    from kernelext.cli.images import listed_images

    return image_listing(listed_images(m.rt, args), args)


def image_listing(rows: list[dict[str, Any]], args: argparse.Namespace) -> Table | list[str] | None:
    """``images``' rows as the cell shows them (either engine's): IDs, template lines, or a table."""
    if args.quiet:
        return list(dict.fromkeys(row["ID"] for row in rows))
    if args.format and args.format != "json":  # a Go template: a line each, as the CLI prints them
        from kernelext.cli.template import Template

        template = Template.parse(args.format, "images")
        print("\n".join(template.render(row) for row in rows))
        return None
    return Table(({"REPOSITORY": r["Repository"], "TAG": r["Tag"], "IMAGE ID": r["ID"], "CREATED": r["CreatedSince"],
                   "SIZE": r["Size"], "CONTAINERS": ", ".join(r["UsedBy"])} for r in rows),
                 ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "CONTAINERS"])


@handles("image-history")
def _image_history(m: ContainerMagics, args: argparse.Namespace) -> Table:
    from kernelext.cli.images import history_rows
    from kernelext.domain.local import LocalEngine

    rows, _ = history_rows(LocalEngine(m.rt), args.image, no_trunc=args.no_trunc, human=args.human)
    return Table(({"ID": r["ID"], "CREATED": r["Created"], "CREATED BY": r["CreatedBy"], "SIZE": r["Size"],
                   "COMMENT": r["Comment"]} for r in rows), ["ID", "CREATED", "CREATED BY", "SIZE", "COMMENT"])


@handles("image-tree")
def _image_tree(m: ContainerMagics, args: argparse.Namespace) -> None:
    from kernelext.domain.imagetree import tree_lines

    print("\n".join(tree_lines(m.rt, args.image, whatrequires=args.whatrequires)))


@handles("image-tag")
def _image_tag(m: ContainerMagics, args: argparse.Namespace) -> None:
    m.rt.tag(args.image, *args.targets)


@handles("image-untag")
def _image_untag(m: ContainerMagics, args: argparse.Namespace) -> None:
    m.rt.untag(args.image, *args.names)


@handles("image-exists")
def _image_exists(m: ContainerMagics, args: argparse.Namespace) -> bool:
    return m.rt.image_exists(args.image)


@handles("image-prune")
def _image_prune(m: ContainerMagics, args: argparse.Namespace) -> list[str]:
    if not args.force:
        raise UsageError("a cell cannot answer the confirmation: add -f")
    from kernelext.cli.images import prune_filters

    return [removal.image.id for removal in m.rt.prune_images(all=args.all, **prune_filters(args.filter))]


@handles("commit")
def _commit(m: ContainerMagics, args: argparse.Namespace) -> str:
    """The new image's ID, as the CLI prints it."""
    return m.rt.commit(args.container, args.image, changes=args.change, message=args.message, author=args.author,
                       pause=args.pause).id


@handles("image-import")
def _image_import(m: ContainerMagics, args: argparse.Namespace) -> Any:
    from kernelext.cli.images import import_command

    if args.tarball == "-":
        raise UsageError("a cell has no stdin: give the tarball as a FILE")
    return m.rt.import_image(args.tarball, args.name, cmd=import_command(args.change))


@handles("image-pull")
def _image_pull(m: ContainerMagics, args: argparse.Namespace) -> Any:
    if args.all_tags:  # a list of images; the bar follows each pull in turn
        return _with_progress("Pulling", args.quiet, lambda progress: m.rt.pull_all_tags(
            args.image, tls_verify=args.tls_verify, authfile=args.authfile, progress=progress))
    return _with_progress("Pulling", args.quiet, lambda progress: m.rt.pull(
        args.image, tls_verify=args.tls_verify, authfile=args.authfile, progress=progress))


def _with_progress(title: str, quiet: bool, bring: Callable[[Any], Any]) -> Any:
    """``bring(progress)`` with a progress bar in the cell that leaves one summary line (none with -q)."""
    if quiet:
        return bring(None)
    from kernelext.magics.progressbar import ProgressBar

    bar = ProgressBar(title)
    image = None
    try:
        image = bring(bar)
    finally:
        done = title.removesuffix("ing") + "ed"
        bar.finish(None if image is None else
                   f"{done} {len(image)} images: {', '.join(i.name for i in image)}" if isinstance(image, list) else
                   f"{done} {image.name}: {len(image.config.layers)} layers, {image.config.size / 1e6:.1f} MB")
    return image


@handles("image-load")
def _image_load(m: ContainerMagics, args: argparse.Namespace) -> Any:
    if args.input == "-":
        raise UsageError("a cell has no stdin: give the archive with -i FILE")
    return _with_progress("Loading", args.quiet, lambda progress: m.rt.load(args.input, progress=progress))


@handles("image-push")
def _image_push(m: ContainerMagics, args: argparse.Namespace) -> Any:
    return _with_progress("Pushing", args.quiet, lambda progress: m.rt.push(
        args.image, args.destination, tls_verify=args.tls_verify, authfile=args.authfile, progress=progress))


@handles("image-save")
def _image_save(m: ContainerMagics, args: argparse.Namespace) -> None:
    m.rt.save(args.image, args.output, format=args.format)


@handles("image-inspect")
def _image_inspect(m: ContainerMagics, args: argparse.Namespace) -> Any:
    docs = [m.rt.image(name).inspect() for name in args.images]
    return docs[0] if len(docs) == 1 else docs


@handles("image-rm")
def _image_rm(m: ContainerMagics, args: argparse.Namespace) -> None:
    from kernelext.cli.images import removal_lines

    names = [image.id for image in reversed(m.rt.images())] if args.all else args.images
    if not names:
        raise UsageError("image name or ID must be specified")
    for name in names:
        try:
            removal = m.rt.remove_image(name, force=args.force)
        except NoSuchImageError:
            if args.ignore:
                continue
            raise
        print("\n".join(removal_lines(removal)))


@handles("volume-create")
def _volume_create(m: ContainerMagics, args: argparse.Namespace) -> str:
    return m.rt.volumes.create(args.name, **volume_create_options(args)).name


@handles("volume-ls")
def _volume_ls(m: ContainerMagics, args: argparse.Namespace) -> Table:
    return Table(({"DRIVER": "local", "VOLUME NAME": v.name} for v in m.rt.volumes.list(args.filter)),
                 ["DRIVER", "VOLUME NAME"])


@handles("volume-inspect")
def _volume_inspect(m: ContainerMagics, args: argparse.Namespace) -> Any:
    names = [v.name for v in m.rt.volumes.list()] if args.all else args.volumes
    docs = [m.rt.volumes.inspect(name) for name in names]
    return docs[0] if len(docs) == 1 else docs


@handles("volume-rm")
def _volume_rm(m: ContainerMagics, args: argparse.Namespace) -> None:
    for name in [v.name for v in m.rt.volumes.list()] if args.all else args.volumes:
        print(m.rt.volumes.remove(name, force=args.force).name)


@handles("volume-prune")
def _volume_prune(m: ContainerMagics, args: argparse.Namespace) -> None:
    if not args.force:
        raise UsageError("a cell cannot ask for confirmation: use volume prune -f")
    for volume in m.rt.volumes.prune(args.filter):
        print(volume.name)


@handles("volume-exists")
def _volume_exists(m: ContainerMagics, args: argparse.Namespace) -> bool:
    found = m.rt.volumes.exists(args.volume)
    m._set_exit_code(0 if found else 1)
    return found


@handles("info")
def _info(m: ContainerMagics, args: argparse.Namespace) -> dict[str, Any]:
    from kernelext.host import host_capabilities

    return host_capabilities(m.rt.opts).to_json()


@handles("cleanup")
def _cleanup(m: ContainerMagics, args: argparse.Namespace) -> Container | ContainerList:
    return m._containers(domain.cleanup(m.rt, args.containers, stopped_only=args.stopped_only, remove=args.rm))


@handles("checkpoint")
def _checkpoint(m: ContainerMagics, args: argparse.Namespace) -> Any:
    reports = domain.checkpoint(m.rt, args.containers, all=args.all, latest=args.latest, **checkpoint_options(args))
    if not args.print_stats:
        # The history entries made: each renders as a card (docs/architecture.md §4, "Checkpoint history").
        made = [r.entry for r in m._reported(reports) if isinstance(r, CheckpointReport) and r.entry is not None]
        return made[0] if len(made) == 1 else made
    results = [r.statistics for r in m._reported(reports) if isinstance(r, CheckpointReport)]
    return results[0] if len(results) == 1 else results


@handles("restore")
def _restore(m: ContainerMagics, args: argparse.Namespace) -> Any:
    options = restore_options(args)
    if args.from_ is not None:
        from kernelext.domain import checkpoints as history

        if args.name:
            ctr = history.branch(m.rt, args.containers[0], args.from_, args.name, args.publish or None, **options)
        else:
            ctr = history.restore_entry(m.rt, args.containers[0], args.from_, **options)
        return ctr.statistics if args.print_stats else ctr.reload()
    if args.import_:
        ctr = m.rt.restore_from_archive(args.import_, args.name, publish=args.publish or None, **options)
        return ctr.statistics if args.print_stats else ctr
    reports = domain.restore(m.rt, args.containers, all=args.all, latest=args.latest, name=args.name,
                             publish=args.publish or None, **options)
    if not args.print_stats:
        return m._containers(reports)
    results = [r.statistics for r in m._reported(reports) if isinstance(r, RestoreReport)]
    return results[0] if len(results) == 1 else results


@handles("checkpoint-ls")
def _checkpoint_ls(m: ContainerMagics, args: argparse.Namespace) -> Any:
    from kernelext.domain import checkpoints as history
    from kernelext.magics.display import CheckpointList

    return CheckpointList(history.entries(m.rt, args.container))


@handles("checkpoint-rm", "checkpoint-prune")
def _checkpoint_rm(m: ContainerMagics, args: argparse.Namespace) -> Any:
    from kernelext.domain import checkpoints as history

    reports = (history.remove(m.rt, args.container, args.entries) if args.cmd == "checkpoint-rm"
               else history.prune(m.rt, args.containers, all=args.all))
    return [r.entry for r in m._reported(reports) if isinstance(r, history.CheckpointRemoveReport) and r.entry]


@handles("port")
def _port(m: ContainerMagics, args: argparse.Namespace) -> None:
    for line in domain.port_lines(m.rt, args.container, args.private):
        print(line)


@handles("network-reload")
def _network_reload(m: ContainerMagics, args: argparse.Namespace) -> Container | ContainerList:
    return m._containers(domain.network_reload(m.rt, args.containers, all=args.all, latest=args.latest))


@handles("cp")
def _cp(m: ContainerMagics, args: argparse.Namespace) -> None:
    source, destination, archive = copy_arguments(args)
    if "-" in (source, destination):
        raise UsageError("in a notebook, cp copies between paths: '-' (a tar stream) is for the command line")
    m.rt.copy(source, destination, archive=archive, overwrite=args.overwrite)
    print(f"copied {source} to {destination}")


@handles("diff")
def _diff(m: ContainerMagics, args: argparse.Namespace) -> Table:
    return Table(({"KIND": c.kind.value, "PATH": c.path}
                  for c in domain.one(m.rt, args.container, latest=args.latest).diff()),
                 ["KIND", "PATH"])


@handles("stat")
def _stat(m: ContainerMagics, args: argparse.Namespace) -> Any:
    return m.rt.get(args.container).stat(args.path)


@handles("system-df")
def _system_df(m: ContainerMagics, args: argparse.Namespace) -> Any:
    from kernelext.cli.checkpoints import usage_rows
    from kernelext.domain.local import LocalEngine
    from kernelext.magics.display import usage_table

    return usage_table(usage_rows(LocalEngine(m.rt)))


@handles("version")
def _version(m: ContainerMagics, args: argparse.Namespace) -> str:
    import kernelext

    return kernelext.__version__


def _formatted(fmt: str | None, what: str, doc: dict[str, Any], card: Callable[[], Any]) -> Any:
    """``--format json`` (the document), a Go template (its text), or else the card."""
    if fmt == "json":
        return doc
    if fmt:
        return Template.parse(fmt, what).render(doc)
    return card()


@handles("checkpoint-inspect")
def _checkpoint_inspect(m: ContainerMagics, args: argparse.Namespace) -> Any:
    info = checkpointinfo.inspect(m.rt, [args.checkpoint, *filter(None, [args.entry])])
    return _formatted(args.format, "checkpoint inspect", info.to_dict(), lambda: CheckpointCard(info))


@handles("checkpoint-diff")
def _checkpoint_diff(m: ContainerMagics, args: argparse.Namespace) -> Any:
    diff = checkpointinfo.diff(m.rt, args.checkpoints)
    return _formatted(args.format, "checkpoint diff", diff.to_dict(), lambda: CheckpointDiffCard(diff))


@handles("clone")
def _clone(m: ContainerMagics, args: argparse.Namespace) -> Container:
    return domain.clone(m.rt, args.container, **clone_options(args))


@handles("rename")
def _rename(m: ContainerMagics, args: argparse.Namespace) -> None:
    m.rt.get(args.container).rename(args.name)


@handles("container-prune")
def _container_prune(m: ContainerMagics, args: argparse.Namespace) -> list[str]:
    """The IDs removed, as the CLI prints them (a cell cannot answer the prompt: ``-f``)."""
    from kernelext.domain.local import LocalEngine

    if not args.force:
        raise UsageError("a cell cannot answer the confirmation: add -f")
    return LocalEngine(m.rt).prune_containers(args.filter)
