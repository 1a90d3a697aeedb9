"""The CLI's subcommands: parse results in, core calls, text out.

Nothing here decides anything about the lifecycle; each handler calls the
core and prints what podman prints. Handlers return the process exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import termios
import threading
import time
import tty as tty_mod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from kernelext.cli.connections import system_connection
from kernelext.cli.format import (
    parse_interval,
    parse_time,
    table,
)
from kernelext.cli.parser import (
    UsageError,
    checkpoint_options,
    clone_options,
    copy_arguments,
    create_options,
    resource_options,
    restore_options,
    volume_create_options,
)
from kernelext.cli.template import Template
from kernelext.core.events import Event
from kernelext.domain.engine import ContainerRecord, Engine
from kernelext.domain.filters import parse_filters
from kernelext.domain.reports import InspectReport, Report, WaitReport, errors_of, exit_code
from kernelext.errors import KernelextError, NoSuchContainerError, NoSuchVolumeError
from kernelext.oci.attach import (
    ATTACH_BUFFER,
    DEFAULT_DETACH_KEYS,
    Detached,
    DetachFilter,
    Stream,
    parse_detach_keys,
    pump,
)
from kernelext.units import STATS_COLUMNS, format_time, human_duration, stats_row

if TYPE_CHECKING:  # the core's modules are imported where a local command uses them: a remote one never does
    from kernelext.core.container import Container
    from kernelext.core.runtime import Runtime
    from kernelext.domain.remote import RemoteAttachment

Handler = Callable[[Any, argparse.Namespace], int]
COMMANDS: dict[str, Handler] = {}
#: Commands whose handler takes an engine (docs/architecture.md §16), local or remote; the others take the
#: local runtime (a remote engine refuses them with one line).
ENGINE_COMMANDS: set[str] = set()
#: Commands that open no store and reach no engine (``version``: kernelext's own, whichever engine).
STORELESS_COMMANDS: set[str] = {"system-connection", "version"}
#: Signals an attached CLI forwards to the container (podman's sig-proxy).
#: What create's warnings are printed from: a local container or an engine's record.
CreatedT = TypeVar("CreatedT", "Container", ContainerRecord)
PROXIED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def command(name: str, *, engine: bool = False) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = fn
        if engine:
            ENGINE_COMMANDS.add(name)
        return fn
    return register


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _for_each(names: list[str], action: Callable[[str], str], *, ignore_missing: bool = False) -> int:
    """Run ``action`` per name and print what it returns; an error is one line and exit code 125."""
    code = 0
    for name in names:
        try:
            out(action(name))
        except NoSuchContainerError as exc:
            if not ignore_missing:
                err(f"Error: {exc}")
                code = 125
        except (KernelextError, OSError) as exc:  # one container's failure: report it, go on with the rest
            err(f"Error: {exc}")
            code = 125
    return code


def _each(rt: Runtime, names: list[str], action: Callable[[Container], Any], *, ignore_missing: bool = False,
          show: Callable[[str, Any], str] = lambda name, _result: name) -> int:
    """Apply ``action`` to each named container and print ``show(name, result)`` (podman prints the name)."""
    return _for_each(names, lambda name: show(name, action(rt.get(name))), ignore_missing=ignore_missing)


# ------------------------------------------------------------------- creation
@command("create", engine=True)
def cmd_create(engine: Engine, args: argparse.Namespace) -> int:
    out(_created(engine.create(args.image, **create_options(args), **_pull_progress(engine, args))).id)
    return 0


def _pull_progress(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    """The lines of a pull that ``create`` or ``run`` needs, on stderr as ``pull`` prints them (the local
    engine's pulls; podman's service pulls on its own side)."""
    if engine.remote:
        return {}
    from kernelext.cli.images import terminal_progress

    return {"progress": terminal_progress(args.quiet)}


def _created(ctr: CreatedT) -> CreatedT:
    """podman prints create's warnings on stderr, one plain line each, before the container runs."""
    for warning in ctr.warnings:
        sys.stderr.write(f"{warning}\n")
    sys.stderr.flush()
    return ctr


@command("run", engine=True)
def cmd_run(engine: Engine, args: argparse.Namespace) -> int:
    from kernelext.domain import containers as domain
    from kernelext.oci.monitoring import LogDriver

    passthrough = args.log_driver == LogDriver.PASSTHROUGH.value
    if args.detach:
        if passthrough or args.attach:
            raise UsageError("passthrough logging driver is not supported in detached mode" if passthrough
                             else "you cannot use --attach with --detach")
        out(_created(engine.run(args.image, **create_options(args), **_pull_progress(engine, args))).id)
        return 0
    if engine.remote and not (passthrough or args.attach or args.interactive or args.tty):
        return engine.run_attached(args.image, output=_write_output, **create_options(args))
    if engine.remote and args.tty and args.interactive and not (passthrough or args.attach):
        from kernelext.domain.remoteterminal import create_to_attach

        record = _created(create_to_attach(engine, args.image, create_options(args)))
        return _remote_attach(engine, record.id, start=True, detach_keys=args.detach_keys, remove=args.rm)
    if engine.remote and args.interactive and not (passthrough or args.attach):  # run -i: stdin, no terminal
        record = _created(engine.create(args.image, **create_options(args)))  # --rm: the service's own
        return _remote_output(engine, record.id, start=True, stdin=True, detach_keys=args.detach_keys)
    rt = engine.local("run -i/-t/-a/--log-driver passthrough")
    ctr = _created(rt.create(args.image, **create_options(args), **_pull_progress(engine, args)))
    if passthrough:  # conmon writes the container's output to this process's own stdout and stderr
        domain.start_one(ctr)
        return domain.wait_and_remove(ctr, remove=args.rm)
    streams = frozenset(Stream[name.upper()] for name in args.attach) if args.attach else None
    # stdin only to a container made with -i (podman's run drops its input stream otherwise; -a stdin alone
    # had the pump wait on an input the container never reads)
    return attach_and_wait(ctr, start=True, stdin=args.interactive,
                           detach_keys=args.detach_keys, remove=args.rm, streams=streams, run=True)


def _terminal_size(raw: bool) -> tuple[int, int] | None:
    """The size of the real terminal a TTY container is attached to, if it is."""
    if not (raw and sys.stdin.isatty()):
        return None
    size = os.get_terminal_size(sys.stdin.fileno())
    return size.lines, size.columns


@contextmanager
def _terminal(resize_to: Callable[[int, int], object], raw: bool) -> Iterator[None]:
    """Raw mode on a real terminal for a TTY container; a resize of the terminal is passed on (``resize_to``)."""
    if _terminal_size(raw) is None:
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def resize(*_: object) -> None:
        size = os.get_terminal_size(fd)
        threading.Thread(target=_quietly, args=(resize_to, size.lines, size.columns), daemon=True).start()
    tty_mod.setraw(fd)
    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextmanager
def _signal_proxy(kill: Callable[[int], object], enabled: bool) -> Iterator[None]:
    """Forward signals to the container (``kill(signum)``); the lock must not be taken in the handler, nor a
    remote request made there, hence a thread."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, _frame: object) -> None:
        threading.Thread(target=_quietly, args=(kill, signum), daemon=True).start()
    previous = {sig: signal.signal(sig, forward) for sig in PROXIED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _quietly(action: Callable[..., object], *args: object) -> None:
    """A signal's action on the container, in a thread: one that has exited meanwhile is no error."""
    try:
        action(*args)
    except KernelextError:
        pass


def _write_packet(stream: Stream, data: bytes) -> None:
    target = sys.stderr.buffer if stream is Stream.STDERR else sys.stdout.buffer
    target.write(data)
    target.flush()


def _write_output(stream: str, data: bytes) -> None:
    """An engine's output chunk ("stdout"/"stderr") to this process's stream."""
    _write_packet(Stream.STDERR if stream == "stderr" else Stream.STDOUT, data)


def attach_and_wait(ctr: Container, *, start: bool, stdin: bool, detach_keys: str | None, remove: bool,
                    streams: frozenset[Stream] | None = None, run: bool = False) -> int:
    """podman's attached run / start -a / attach: stream (only ``streams`` when given: ``run -a``), then
    the container's exit code; ``run``: a start that fails ends as podman's run does (126)."""
    from kernelext.domain import containers as domain


    def write(stream: Stream, data: bytes) -> None:
        if streams is None or stream in streams:
            _write_packet(stream, data)

    keys = parse_detach_keys(DEFAULT_DETACH_KEYS if detach_keys is None else detach_keys)
    raw = ctr.config.tty and stdin
    conn = domain.attach_and_start(ctr, start=start, remove=remove, tty_size=_terminal_size(raw), run=run)
    if streams is not None and not streams & {Stream.STDOUT, Stream.STDERR}:
        out(ctr.id)  # podman: with neither output stream attached, the container's ID is what run prints
    try:
        with _terminal(ctr.resize, raw), _signal_proxy(ctr.kill, not ctr.config.tty):
            pump(conn, write, stdin=sys.stdin.buffer if stdin else None, detach_keys=keys if stdin else b"")
    except Detached:
        return 0
    finally:
        conn.close()
    return domain.wait_and_remove(ctr, remove=remove)


# ------------------------------------------------------------------ lifecycle
def render(reports: Sequence[Report], show: Callable[[Report], str] = lambda r: r.shown) -> int:
    """podman's output of a per-container command: a line per success; every failure but the last as an
    ``Error:`` line, the last one raised (one more ``Error:`` line and its exit code)."""
    for report in reports:
        if report.error is None:
            out(show(report))
    failures = errors_of(reports)
    for failure in failures[:-1]:
        err(f"Error: {failure}")
    if failures:
        raise failures[-1]
    return 0


@command("start", engine=True)
def cmd_start(engine: Engine, args: argparse.Namespace) -> int:
    from kernelext.domain import containers as domain

    filters = parse_filters(args.filter)
    if engine.remote and (args.attach or args.interactive):
        return _remote_start_attached(engine, args)
    if args.attach or args.interactive:
        ctr = domain.attach_target(engine.local("start --attach"), args.containers, all=args.all,
                                   latest=args.latest)
        return attach_and_wait(ctr, start=True, stdin=args.interactive, detach_keys=args.detach_keys, remove=False)
    return render(engine.start(args.containers, all=args.all, latest=args.latest, filters=filters))


@command("stop", engine=True)
def cmd_stop(engine: Engine, args: argparse.Namespace) -> int:
    return render(engine.stop(args.containers, all=args.all, latest=args.latest, ignore=args.ignore,
                              filters=parse_filters(args.filter), timeout=args.time))


@command("kill", engine=True)
def cmd_kill(engine: Engine, args: argparse.Namespace) -> int:
    return render(engine.kill(args.containers, signal=args.signal, all=args.all, latest=args.latest))


@command("pause", engine=True)
def cmd_pause(engine: Engine, args: argparse.Namespace) -> int:
    return render(engine.pause(args.containers, all=args.all, latest=args.latest,
                               filters=parse_filters(args.filter)))


@command("unpause", engine=True)
def cmd_unpause(engine: Engine, args: argparse.Namespace) -> int:
    return render(engine.unpause(args.containers, all=args.all, latest=args.latest,
                                 filters=parse_filters(args.filter)))


@command("restart", engine=True)
def cmd_restart(engine: Engine, args: argparse.Namespace) -> int:
    return render(engine.restart(args.containers, all=args.all, latest=args.latest, running=args.running,
                                 filters=parse_filters(args.filter), timeout=args.time))


@command("wait", engine=True)
def cmd_wait(engine: Engine, args: argparse.Namespace) -> int:
    return render(engine.wait(args.containers, latest=args.latest, conditions=args.condition,
                              interval=parse_interval(args.interval)),
                  show=lambda r: str(r.exit_code) if isinstance(r, WaitReport) else r.shown)


@command("cleanup")
def cmd_cleanup(rt: Runtime, args: argparse.Namespace) -> int:
    """Run by conmon's exit command: applies the restart policy, or cleans up (and removes with --rm)."""
    from kernelext.domain import containers as domain

    reports = domain.cleanup(rt, args.containers, stopped_only=args.stopped_only, remove=args.rm)
    for failure in errors_of(reports):
        err(f"Error: {failure}")
    return exit_code(reports)


@command("rm", engine=True)
def cmd_rm(engine: Engine, args: argparse.Namespace) -> int:
    return render(engine.rm(args.containers, all=args.all, latest=args.latest, ignore=args.ignore,
                            force=args.force, filters=parse_filters(args.filter), timeout=args.time,
                            volumes=args.volumes))


@command("exists", engine=True)
def cmd_exists(engine: Engine, args: argparse.Namespace) -> int:
    return 0 if engine.exists(args.container) else 1


# ------------------------------------------------------------- i/o and state
@command("attach", engine=True)
def cmd_attach(engine: Engine, args: argparse.Namespace) -> int:
    if engine.remote:
        from kernelext.cli.terminalsession import remote_engine

        if remote_engine(engine).has_tty(args.container):
            return _remote_attach(engine, args.container, start=False, detach_keys=args.detach_keys)
        return _remote_output(engine, args.container, start=False, stdin=not args.no_stdin,
                              detach_keys=args.detach_keys)
    ctr = engine.local("attach").get(args.container)
    stdin = ctr.config.stdin and not args.no_stdin
    return attach_and_wait(ctr, start=False, stdin=stdin, detach_keys=args.detach_keys, remove=False)


def _remote_attach(engine: Engine, name: str, *, start: bool, detach_keys: str | None, remove: bool = False) -> int:
    """A remote TTY container's terminal on this one (kernelext/cli/terminalsession.py)."""
    from kernelext.cli import terminalsession as remote_tty
    from kernelext.domain.remoteterminal import RemoteAttachTerminal

    return remote_tty.session_and_wait(RemoteAttachTerminal(remote_tty.remote_engine(engine), name, start=start,
                                                            remove=remove, size=remote_tty.size()), detach_keys)


def _remote_start_attached(engine: Engine, args: argparse.Namespace) -> int:
    """``start -a`` on a remote engine: a TTY container's terminal, else its output as it comes."""
    from kernelext.cli.terminalsession import remote_engine

    remote = remote_engine(engine)
    ident = remote.attach_target(args.containers, all=args.all, latest=args.latest)
    if remote.has_tty(ident):
        return _remote_attach(engine, ident, start=True, detach_keys=args.detach_keys)
    return _remote_output(engine, ident, start=True, stdin=args.interactive, detach_keys=args.detach_keys)


def _remote_output(engine: Engine, name: str, *, start: bool, stdin: bool = False,
                   detach_keys: str | None = None) -> int:
    """A remote container's output here as it comes (podman's sig-proxy: this process's signals sent to it),
    then its exit code; ``stdin`` (for a container made with ``-i``): this process's stdin sent up until its
    end or the detach sequence (then 0, the container runs on), as podman's remote client."""
    from kernelext.cli.terminalsession import remote_engine

    remote = remote_engine(engine)
    keys = parse_detach_keys(DEFAULT_DETACH_KEYS if detach_keys is None else detach_keys)
    # the proxy from before the attach: a signal once the service has attached is never lost
    with _signal_proxy(lambda signum: remote.kill([name], signal=signum), True):
        attachment = remote.attach_output(name, start=start, stdin=stdin, detach_keys=detach_keys)
        detached = threading.Event()
        if stdin:
            threading.Thread(target=_feed_remote, args=(attachment, keys, detached), daemon=True,
                             name="kernelext-attach-stdin").start()
        try:
            for stream, data in attachment.packets():
                _write_packet(stream, data)
        finally:
            attachment.close()
    return 0 if detached.is_set() else attachment.wait()


def _feed_remote(attachment: RemoteAttachment, keys: bytes, detached: threading.Event) -> None:
    """This process's stdin up a remote attach: its end half-closes the connection (the container's stdin
    ends), the detach sequence closes it (the output loop ends, the container runs on)."""
    filt = DetachFilter(keys)
    fd = sys.stdin.fileno()
    try:
        while data := os.read(fd, ATTACH_BUFFER):
            if data := filt.feed(data):
                attachment.send(data)
        attachment.close_stdin()
    except Detached:
        detached.set()
        attachment.close()
    except OSError:  # the container has exited and the connection is gone: nothing more to send
        pass


@command("exec", engine=True)
def cmd_exec(engine: Engine, args: argparse.Namespace) -> int:
    if not args.command:
        raise UsageError("exec requires at least 2 arguments: CONTAINER COMMAND")
    if args.detach and not args.preserve_fds:  # podman prints the session's ID
        out(engine.exec_detached(args.container, args.command, env=args.env, workdir=args.workdir, user=args.user))
        return 0
    if not (args.detach or args.interactive or args.preserve_fds):
        return engine.exec(args.container, args.command, output=_write_output, env=args.env, workdir=args.workdir,
                           user=args.user, tty=args.tty)
    if args.interactive and not (args.tty or args.detach or args.preserve_fds):  # stdin without a terminal
        return engine.exec_with_input(args.container, args.command, sys.stdin.buffer, output=_write_output,
                                      env=args.env, workdir=args.workdir, user=args.user)
    if engine.remote and args.tty and not (args.detach or args.preserve_fds):  # exec -it
        from kernelext.cli import terminalsession as remote_tty
        from kernelext.domain.remoteterminal import RemoteExecTerminal

        return remote_tty.session_and_wait(
            RemoteExecTerminal(remote_tty.remote_engine(engine), args.container, args.command, env=args.env,
                               workdir=args.workdir, user=args.user, size=remote_tty.size()), args.detach_keys)
    ctr = engine.local("exec --preserve-fds").get(args.container)
    if args.detach:  # podman prints the session's ID
        out(ctr.exec_detached(args.command, env=args.env, workdir=args.workdir, user=args.user,
                              preserve_fds=args.preserve_fds))
        return 0
    result = ctr.exec_run(args.command, tty=args.tty, stdin=sys.stdin.buffer if args.interactive else None,
                          env=args.env, workdir=args.workdir, user=args.user, preserve_fds=args.preserve_fds,
                          on_output=lambda s, d: _write_packet(Stream.STDERR if s == "stderr" else Stream.STDOUT, d))
    return result.exit_code


@command("logs", engine=True)
def cmd_logs(engine: Engine, args: argparse.Namespace) -> int:
    since, until, tail = parse_time(args.since), parse_time(args.until), None if args.tail < 0 else args.tail
    several = len(args.containers) > 1 and not args.follow
    for record, line in engine.logs(args.containers, latest=args.latest, since=since, until=until, tail=tail,
                                    follow=args.follow):
        # podman's line: with several containers, the short ID (or the name) first
        head = f"{record.name if args.names else record.short_id} ".encode() if several else b""
        _write_output(line.stream, head + line.render(args.timestamps))
    return 0


def ps_row(ctr: ContainerRecord) -> dict[str, Any]:
    return {
        "Id": ctr.id, "ID": ctr.short_id, "Names": [ctr.name], "Image": ctr.image, "ImageID": ctr.image_id,
        "Command": ctr.command, "Created": int(ctr.created), "CreatedAt": format_time(ctr.created),
        "State": ctr.state, "Status": ctr.status, "ExitCode": ctr.exit_code, "Exited": ctr.exited,
        "Pid": ctr.pid, "RestartCount": ctr.restart_count, "StartedAt": int(ctr.started_at),
        "AutoRemove": ctr.auto_remove, "Labels": dict(ctr.labels),
    }


@command("ps", engine=True)
def cmd_ps(engine: Engine, args: argparse.Namespace) -> int:
    containers = engine.ps(all=args.all, latest=args.latest, last=args.last,
                           filters=parse_filters(args.filter), sort=args.sort)
    if args.quiet:
        for ctr in containers:
            out(ctr.id if args.no_trunc else ctr.short_id)
        return 0
    template = _template(args, "ps")
    rows = [ps_row(c) for c in containers]
    if args.format == "json":
        out(json.dumps(rows, indent=4))
    elif template is not None:
        for row in rows:
            # podman's ps report: the names and the command as text, the whole ID with --no-trunc
            out(template.render({**row, "Names": row["Names"][0], "Command": " ".join(row["Command"]),
                                 "ID": row["Id"] if args.no_trunc else row["ID"],
                                 "RunningFor": human_duration(time.time() - row["Created"]) + " ago"}))
    else:
        lines = table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"],
                      [[r["Id"] if args.no_trunc else r["ID"], r["Image"], _truncate(" ".join(r["Command"]), 20),
                        human_duration(time.time() - r["Created"]) + " ago", r["Status"], r["Names"][0]]
                       for r in rows]).split("\n")
        for line in lines[1:] if args.noheading else lines:
            out(line)
    return 0


@command("port", engine=True)
def cmd_port(engine: Engine, args: argparse.Namespace) -> int:
    for line in engine.port(args.container, args.private):
        out(line)
    return 0


@command("network-reload")
def cmd_network_reload(rt: Runtime, args: argparse.Namespace) -> int:
    from kernelext.domain import containers as domain

    return render(domain.network_reload(rt, args.containers, all=args.all, latest=args.latest))


def _template(args: argparse.Namespace, name: str) -> Template | None:
    """``--format``'s Go template, parsed before anything is shown (None: a table, or "json")."""
    return Template.parse(args.format, name) if args.format and args.format != "json" else None


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


@command("inspect", engine=True)
def cmd_inspect(engine: Engine, args: argparse.Namespace) -> int:
    """podman's inspect: the documents found as one JSON array (or a template's line each), then the errors."""
    template = _template(args, "inspect")
    reports = engine.inspect(args.containers, latest=args.latest, images=args.group is None)
    docs = [r.document for r in reports if isinstance(r, InspectReport) and r.document is not None]
    if template is not None:
        for doc in docs:
            out(template.render(doc))
    else:
        out(json.dumps(docs, indent=4))
    return render([r for r in reports if r.error is not None])


def _inspect_each(args: argparse.Namespace, names: list[str], inspect: Callable[[str], dict[str, Any]]) -> int:
    """One JSON array (or a template's line each) of what ``inspect`` gives; the names it refuses as errors."""
    template = _template(args, "inspect")
    docs, code = [], 0
    for name in names:
        try:
            docs.append(inspect(name))
        except KernelextError as exc:
            err(f"Error: {exc}")
            code = 125
    if template is not None:
        for doc in docs:
            out(template.render(doc))
    else:
        out(json.dumps(docs, indent=4))
    return code


@command("mount")
def cmd_mount(rt: Runtime, args: argparse.Namespace) -> int:
    if not args.containers:
        for ctr in rt.list():
            if ctr.state.mounted:
                out(f"{ctr.id if args.notruncate else ctr.short_id}  {ctr.layer.merged_view}")
        return 0
    from kernelext.core.container import Container

    return _each(rt, args.containers, Container.mount, show=lambda _name, path: str(path))


@command("umount")
def cmd_umount(rt: Runtime, args: argparse.Namespace) -> int:
    return _each(rt, args.containers, lambda c: c.unmount(force=args.force))


@command("export", engine=True)
def cmd_export(engine: Engine, args: argparse.Namespace) -> int:
    if args.output:
        from kernelext.files.whole import whole_file

        with whole_file(args.output) as f:  # a container that is not there leaves no file
            engine.export(args.container, f)
    else:
        if sys.stdout.isatty():
            raise UsageError("refusing to export to terminal. Use -o flag or redirect")
        sys.stdout.flush()
        engine.export(args.container, sys.stdout.buffer)
    return 0




@command("cp", engine=True)
def cmd_cp(engine: Engine, args: argparse.Namespace) -> int:
    source, destination, archive = copy_arguments(args)
    sys.stdout.flush()
    engine.copy(source, destination, archive=archive, overwrite=args.overwrite)
    return 0


@command("diff", engine=True)
def cmd_diff(engine: Engine, args: argparse.Namespace) -> int:
    changes = engine.diff(args.container, latest=args.latest)
    if args.format == "json":
        groups: dict[str, list[str]] = {"changed": [], "added": [], "deleted": []}
        keys = {"C": "changed", "A": "added", "D": "deleted"}
        for change in changes:
            groups[keys[change.kind.value]].append(change.path)
        out(json.dumps({k: v for k, v in groups.items() if v}, indent=4))
    elif args.format:
        raise UsageError(f"unsupported --format {args.format!r}: only 'json'")
    else:
        for change in changes:
            out(str(change))
    return 0


@command("stat", engine=True)
def cmd_stat(engine: Engine, args: argparse.Namespace) -> int:
    template = _template(args, "stat")
    doc = engine.stat(args.container, args.path)
    if template is not None:
        out(template.render(doc))
    else:
        out(json.dumps(doc, indent=4))
    return 0


def _render_checkpoints(run: Callable[[], Sequence[Report]], print_stats: bool, duration_key: str) -> int:
    """Checkpoint/restore reports: the names (or the statistics as JSON), errors as for every command."""
    started = time.monotonic()
    reports = run()
    if not print_stats:
        return render(reports)
    out(json.dumps({duration_key: int((time.monotonic() - started) * 1e6),
                    "container_statistics": [getattr(r, "statistics", None) for r in reports if r.error is None]},
                   indent=4))
    return render([r for r in reports if r.error is not None])


@command("checkpoint", engine=True)
def cmd_checkpoint(engine: Engine, args: argparse.Namespace) -> int:
    options = checkpoint_options(args)
    return _render_checkpoints(lambda: engine.checkpoint(args.containers, all=args.all, latest=args.latest,
                                                         **options), args.print_stats, "checkpoint_duration")


@command("restore", engine=True)
def cmd_restore(engine: Engine, args: argparse.Namespace) -> int:
    options = restore_options(args)
    if args.from_ is not None:
        from kernelext.cli.checkpoints import restore_from

        return restore_from(engine.local("restore --from"), args, options)
    if args.import_:
        started = time.monotonic()
        ctr = engine.restore_import(args.import_, args.name, publish=args.publish or None, **options)
        if args.print_stats:
            out(json.dumps({"restore_duration": int((time.monotonic() - started) * 1e6),
                            "container_statistics": [ctr.statistics]}, indent=4))
        else:
            out(ctr.id)
        return 0
    return _render_checkpoints(lambda: engine.restore(args.containers, all=args.all, latest=args.latest,
                                                      name=args.name, publish=args.publish or None, **options),
                               args.print_stats, "restore_duration")


def _event_line(event: Event, fmt: Template | None, *, as_json: bool = False, no_trunc: bool = True) -> str:
    if as_json:
        return event.to_json()
    if fmt:
        return fmt.render({"Time": event.time, "Type": event.type, "Status": event.status, "ID": event.id,
                                     "Name": event.name, "Image": event.image, "Attributes": event.attributes})
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.time)) + f".{int(event.time % 1 * 1e9):09d}"
    head = f"{stamp} {time.strftime('%z')} {event.type} {event.status}"
    shown_id = event.id if no_trunc else event.id[:12]  # --no-trunc leaves --format's ID whole (podman)
    if event.type == "image":  # podman's line per type: an image's ID and name, a system event's name
        return f"{head} {shown_id} {event.name}"
    if event.type != "container":
        return f"{head} {event.name}" if event.name else head
    attrs = ", ".join([f"image={event.image}", f"name={event.name}"] +
                      [f"{k}={v}" for k, v in sorted(event.attributes.items())])
    return f"{head} {shown_id} ({attrs})"


@command("events", engine=True)
def cmd_events(engine: Engine, args: argparse.Namespace) -> int:
    template = _template(args, "events")
    for event in engine.events(filters=parse_filters(args.filter), since=parse_time(args.since),
                               until=parse_time(args.until), stream=args.stream):
        out(_event_line(event, template, as_json=args.format == "json", no_trunc=args.no_trunc))
        sys.stdout.flush()
    return 0


@command("rename", engine=True)
def cmd_rename(engine: Engine, args: argparse.Namespace) -> int:
    """podman's ``rename``: nothing printed."""
    engine.rename(args.container, args.name)
    return 0


@command("container-prune", engine=True)
def cmd_container_prune(engine: Engine, args: argparse.Namespace) -> int:
    if not args.force and not confirmed("WARNING! This will remove all non running containers.\n"):
        return 0
    for ident in engine.prune_containers(args.filter):
        out(ident)
    return 0


@command("update", engine=True)
def cmd_update(engine: Engine, args: argparse.Namespace) -> int:
    out(engine.update(args.container, **resource_options(args)))
    return 0


def render_rows(args: argparse.Namespace, template: Template | None, rows: Sequence[dict[str, Any]],
                table_text: Callable[[Sequence[dict[str, Any]]], str]) -> None:
    """A listing's ``--format json`` (the rows), Go template (a line per row) or table (``table_text(rows)``)."""
    if args.format == "json":
        out(json.dumps(list(rows), indent=4))
    elif template is not None:
        for row in rows:
            out(template.render(row))
    else:
        out(table_text(rows))


@command("stats", engine=True)
def cmd_stats(engine: Engine, args: argparse.Namespace) -> int:
    template = _template(args, "stats")
    while True:
        rows = engine.stats(args.containers, all=args.all)
        render_rows(args, template, rows, lambda shown: table(list(STATS_COLUMNS), [list(stats_row(r).values())
                                                                                     for r in shown]))
        if args.no_stream:
            return 0
        sys.stdout.flush()
        time.sleep(1)


@command("top", engine=True)
def cmd_top(engine: Engine, args: argparse.Namespace) -> int:
    from kernelext.domain import containers as domain

    rows = engine.top(args.container, latest=args.latest)
    out(table(list(domain.TOP_COLUMNS), [[row[column] for column in domain.TOP_COLUMNS] for row in rows]))
    return 0


# -------------------------------------------------------------------- volumes
@command("volume-create", engine=True)
def cmd_volume_create(engine: Engine, args: argparse.Namespace) -> int:
    out(engine.volume_create(args.name, **volume_create_options(args)))
    return 0


@command("volume-ls", engine=True)
def cmd_volume_ls(engine: Engine, args: argparse.Namespace) -> int:
    template = _template(args, "volumes")
    volumes = engine.volumes(args.filter)
    if args.quiet:
        for volume in volumes:
            out(volume["Name"])
    elif args.format == "json":
        out(json.dumps(volumes, indent=4))
    elif template is not None:
        for volume in volumes:
            out(template.render(volume))
    else:
        shown = table(["DRIVER", "VOLUME NAME"], [[v["Driver"], v["Name"]] for v in volumes]).split("\n")
        for line in shown[1:] if args.noheading else shown:
            out(line)
    return 0


@command("volume-inspect", engine=True)
def cmd_volume_inspect(engine: Engine, args: argparse.Namespace) -> int:
    names = [v["Name"] for v in engine.volumes()] if args.all else args.volumes
    if not names:
        raise UsageError("provide one or more volume names or use --all")
    return _inspect_each(args, names, engine.volume_inspect)


@command("volume-rm", engine=True)
def cmd_volume_rm(engine: Engine, args: argparse.Namespace) -> int:
    names = [v["Name"] for v in engine.volumes()] if args.all else args.volumes
    if not names and not args.all:
        raise UsageError("choose either one or more volumes or all")
    code = 0
    for name in names:  # podman: 1 when one did not exist, 2 when one is in use, 125 otherwise
        try:
            out(engine.volume_remove(name, force=args.force))
        except KernelextError as exc:
            if args.force and isinstance(exc, NoSuchVolumeError):  # podman's --force: no such volume, no error
                continue
            err(f"Error: {exc}")
            failed = 1 if isinstance(exc, NoSuchVolumeError) else exc.exit_code
            code = failed if code in (0, 1) else code
    return code


def confirmed(warning: str) -> bool:
    """podman's prompt before a prune: the warning, then ``y``/``yes`` on stdin goes on."""
    sys.stdout.write(f"{warning}Are you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


@command("volume-prune", engine=True)
def cmd_volume_prune(engine: Engine, args: argparse.Namespace) -> int:
    if not args.force:
        unused = [v["Name"] for v in engine.volumes([*args.filter, "dangling=true"])]
        if not confirmed("WARNING! This will remove all volumes not used by at least one container. "
                         "The following volumes will be removed:\n" + "".join(f"{n}\n" for n in unused)):
            return 0
    for name in engine.volume_prune(args.filter):
        out(name)
    return 0


@command("volume-exists", engine=True)
def cmd_volume_exists(engine: Engine, args: argparse.Namespace) -> int:
    return 0 if engine.volume_exists(args.volume) else 1


# ---------------------------------------------------------------------- host
@command("info")
def cmd_info(rt: Runtime, args: argparse.Namespace) -> int:
    from kernelext.host import host_capabilities

    template = _template(args, "info")
    caps = host_capabilities(rt.opts)
    doc = caps.to_json()
    doc["store"] = {"root": str(rt.opts.root), "runroot": str(rt.opts.runroot),  # and as podman names them:
                    "graphRoot": str(rt.opts.root), "runRoot": str(rt.opts.runroot),
                    "graphDriverName": rt.storage_driver.value,
                    "containers": len(rt.db.all_containers()), "images": len(rt.db.all_images())}
    from kernelext.domain.checkpoints import history_size

    doc["store"]["checkpoints"], doc["store"]["checkpointSize"] = history_size(rt)
    if template is not None:  # podman's templates name the fields as Go does: {{.Host.LogDriver}}
        out(template.render({**doc, **{key.capitalize(): {k[:1].upper() + k[1:]: v for k, v in value.items()}
                                       for key, value in doc.items()}}))
    elif args.format == "json":
        out(json.dumps(doc, indent=4))
    else:
        _print_yaml(doc, sys.stdout)
    return 0


def _print_yaml(value: Any, stream: TextIO, indent: int = 0) -> None:
    pad = "  " * indent
    for key, item in value.items():
        if isinstance(item, dict):
            stream.write(f"{pad}{key}:\n")
            _print_yaml(item, stream, indent + 1)
        else:
            stream.write(f"{pad}{key}: {json.dumps(item) if not isinstance(item, str) else item}\n")


@command("version")
def cmd_version(_rt: None, args: argparse.Namespace) -> int:
    import kernelext

    out(f"kernelext version {kernelext.__version__}")
    return 0


@command("system-connection")
def cmd_system_connection(_rt: None, args: argparse.Namespace) -> int:
    return system_connection(args, out)


# The image and checkpoint-history commands live in their own modules; importing them registers them.
from kernelext.cli import checkpoints as _checkpoint_commands  # noqa: F401
from kernelext.cli import images as _image_commands  # noqa: F401


@command("checkpoint-inspect")
def cmd_checkpoint_inspect(rt: Runtime, args: argparse.Namespace) -> int:
    """``checkpoint inspect ARCHIVE|DIR|CONTAINER ENTRY``: checkpointctl's tree, or podman's ``--format``."""
    from kernelext.cli.checkpointtree import inspect_text
    from kernelext.domain import checkpointinfo

    template = _template(args, "checkpoint inspect")
    info = checkpointinfo.inspect(rt, [args.checkpoint, *filter(None, [args.entry])])
    if template is not None:
        out(template.render(info.to_dict()))
    else:
        out(json.dumps([info.to_dict()], indent=4) if args.format == "json" else inspect_text(info))
    return 0


@command("checkpoint-diff")
def cmd_checkpoint_diff(rt: Runtime, args: argparse.Namespace) -> int:
    """``checkpoint diff A B``: what changed from checkpoint A to checkpoint B."""
    from kernelext.cli.checkpointtree import diff_text
    from kernelext.domain import checkpointinfo

    template = _template(args, "checkpoint diff")
    diff = checkpointinfo.diff(rt, args.checkpoints)
    if template is not None:
        out(template.render(diff.to_dict()))
    else:
        out(json.dumps(diff.to_dict(), indent=4) if args.format == "json" else diff_text(diff))
    return 0


@command("clone")
def cmd_clone(rt: Runtime, args: argparse.Namespace) -> int:
    """podman's ``container clone``: the new container's ID."""
    from kernelext.domain import containers as domain

    out(domain.clone(rt, args.container, **clone_options(args)).id)
    return 0
