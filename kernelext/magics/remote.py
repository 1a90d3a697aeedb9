"""``%container`` on a remote engine (``--connection``, ``--url``, ``ContainerMagics.connection``).

The same subcommands and values as on the local store, through the engine interface
(docs/architecture.md §16): a container is a :class:`~kernelext.domain.engine.ContainerRecord`
(what the service listed) rather than a live local ``Container``; output streams into the cell.
A subcommand the remote engine does not carry yet is one line naming the engine.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kernelext.cli.format import parse_interval, parse_time
from kernelext.cli.parser import (
    UsageError,
    checkpoint_options,
    copy_arguments,
    create_options,
    resource_options,
    restore_options,
    volume_create_options,
)
from kernelext.core.names import random_name
from kernelext.domain.containers import TOP_COLUMNS
from kernelext.domain.engine import ContainerRecord, Engine
from kernelext.domain.filters import parse_filters
from kernelext.domain.remoteterminal import RemoteAttachTerminal, RemoteExecTerminal, create_to_attach
from kernelext.domain.reports import InspectReport, Report, WaitReport
from kernelext.errors import NoSuchImageError
from kernelext.magics.display import Table

if TYPE_CHECKING:
    from kernelext.domain.remote import RemoteEngine
    from kernelext.domain.terminal import TerminalSession
    from kernelext.magics.container_magics import ContainerMagics

RemoteHandler = Callable[["ContainerMagics", Engine, argparse.Namespace], Any]
REMOTE_HANDLERS: dict[str, RemoteHandler] = {}


def remote(*keys: str) -> Callable[[RemoteHandler], RemoteHandler]:
    def register(fn: RemoteHandler) -> RemoteHandler:
        for key in keys:
            REMOTE_HANDLERS[key] = fn
        return fn
    return register


class RecordList(list[ContainerRecord]):
    """Containers of a remote engine: the local ``ps`` table's columns (each record names its engine)."""

    def __repr__(self) -> str:
        from kernelext.cli.format import table

        if not self:
            return "no containers"
        return table(["NAME", "IMAGE", "STATE", "EXIT CODE"],
                     [[r.name, r.image, r.state, str(r.exit_code) if r.exited else ""] for r in self])


def _write(stream: str, data: bytes) -> None:
    (sys.stderr if stream == "stderr" else sys.stdout).write(data.decode(errors="replace"))


def _one_or_list(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


def _records(m: ContainerMagics, engine: Engine, reports: Sequence[Report]) -> Any:
    """A command's containers as the service now lists them: one value for one container."""
    done = RecordList()
    for report in m._reported(reports):
        done.extend(engine.ps(all=True, filters={"id": [report.id]}))
    return done[0] if len(done) == 1 else done


@remote("run")
def _run(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    if args.detach:
        return _warned(engine.run(args.image, **create_options(args)))
    if args.tty and not args.attach:  # the container's TTY in a Terminal widget
        record = _warned(create_to_attach(engine, args.image, create_options(args)))
        return _terminal(m, engine, args, lambda remote: RemoteAttachTerminal(remote, record.id, start=True, remove=args.rm))
    if args.interactive and not args.tty:  # as locally: a cell has no stdin to send
        m._refuse_terminal("run", args.image)
    if args.tty or args.attach:
        raise engine_refusal(engine, "run -a")
    options = create_options(args)
    # the name the exit line shows: picked here when none was given (the service would pick one as randomly)
    options["name"] = options["name"] or random_name()
    m._report_exit(options["name"], engine.run_attached(args.image, output=_write, **options))
    return None


def _terminal(m: ContainerMagics, engine: Engine, args: argparse.Namespace,
              session: Callable[[RemoteEngine], TerminalSession]) -> Any:
    """A remote TTY in the Terminal widget, as the local ``-it`` lines give (kernelext/domain/remoteterminal.py)."""
    from kernelext.magics.terminal import widget

    remote = _remote(engine)
    return widget(lambda: session(remote), args.detach_keys, m._set_exit_code)


def _warned(record: ContainerRecord) -> ContainerRecord:
    for warning in record.warnings:
        print(warning, file=sys.stderr)
    return record


def engine_refusal(engine: Engine, what: str) -> Exception:
    from kernelext.domain.remote import refusal

    return refusal(engine.name, what)


@remote("create")
def _create(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    return _warned(engine.create(args.image, **create_options(args)))


@remote("start")
def _start(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    if args.attach or args.interactive:
        remote = _remote(engine)
        ident = remote.attach_target(args.containers, all=args.all, latest=args.latest)
        if remote.has_tty(ident):  # its terminal in the Terminal widget
            return _terminal(m, engine, args, lambda remote: RemoteAttachTerminal(remote, ident, start=True))
        # -i without a TTY: the output streamed, as the local line does (a cell has no stdin to send)
        name = args.containers[0] if args.containers else ident[:12]
        attachment = remote.attach_output(ident, start=True)
        again = f"--connection {remote.connection.name} " if remote.connection.name else f"--url {remote.connection.uri} "
        if m._stream_attached(attachment, name, lambda: _signal_quietly(engine, ident, "SIGINT"), prefix=again):
            m._report_exit(name, attachment.wait())
        return None
    return _records(m, engine, engine.start(args.containers, all=args.all, latest=args.latest,
                                            filters=parse_filters(args.filter)))


@remote("stop")
def _stop(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    return _records(m, engine, engine.stop(args.containers, all=args.all, latest=args.latest, ignore=args.ignore,
                                           filters=parse_filters(args.filter), timeout=args.time))


@remote("kill")
def _kill(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    return _records(m, engine, engine.kill(args.containers, signal=args.signal, all=args.all, latest=args.latest))


@remote("pause")
def _pause(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    return _records(m, engine, engine.pause(args.containers, all=args.all, latest=args.latest,
                                            filters=parse_filters(args.filter)))


@remote("unpause")
def _unpause(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    return _records(m, engine, engine.unpause(args.containers, all=args.all, latest=args.latest,
                                              filters=parse_filters(args.filter)))


@remote("restart")
def _restart(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    return _records(m, engine, engine.restart(args.containers, all=args.all, latest=args.latest,
                                              running=args.running, filters=parse_filters(args.filter),
                                              timeout=args.time))


@remote("rm")
def _rm(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> None:
    for report in m._reported(engine.rm(args.containers, all=args.all, latest=args.latest, ignore=args.ignore,
                                        force=args.force, filters=parse_filters(args.filter), timeout=args.time,
                                        volumes=args.volumes)):
        print(report.shown)


@remote("exists")
def _exists(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> bool:
    found = engine.exists(args.container)
    m._set_exit_code(0 if found else 1)
    return found


@remote("wait")
def _wait(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    reports = m._reported(engine.wait(args.containers, latest=args.latest, conditions=args.condition,
                                      interval=parse_interval(args.interval)))
    codes = [r.exit_code for r in reports if isinstance(r, WaitReport)]
    m._set_exit_code(codes[-1])
    return _one_or_list(codes)


@remote("attach")
def _attach(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    remote = _remote(engine)
    if remote.has_tty(args.container) and not args.no_stdin:
        return _terminal(m, engine, args, lambda remote: RemoteAttachTerminal(remote, args.container, start=False))
    attachment = remote.attach_output(args.container, start=False)
    return m.live_output(f"{args.container} attached").attach_stream(
        attachment, args.container, footer=lambda: f"[{args.container} exited with code {attachment.wait()}]")


def _remote(engine: Engine) -> RemoteEngine:
    from kernelext.domain.remote import RemoteEngine

    assert isinstance(engine, RemoteEngine), "remote lines run on a remote engine"
    return engine


def _signal_quietly(engine: Engine, ident: str, signal: str) -> None:
    """podman's sig-proxy for an interrupted cell: the signal to the container; one already gone is no error."""
    import contextlib

    from kernelext.errors import KernelextError

    with contextlib.suppress(KernelextError):
        engine.kill([ident], signal=signal)


@remote("exec")
def _exec(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    if not args.command:
        raise UsageError("exec requires at least 2 arguments: CONTAINER COMMAND")
    if args.detach:
        return engine.exec_detached(args.container, args.command, env=args.env, workdir=args.workdir,
                                    user=args.user)
    if args.tty:
        return _terminal(m, engine, args, lambda remote: RemoteExecTerminal(remote, args.container, args.command,
                                                                    env=args.env, workdir=args.workdir,
                                                                    user=args.user))
    if args.interactive:
        raise engine_refusal(engine, "exec -i")
    code = engine.exec(args.container, args.command, output=_write, env=args.env, workdir=args.workdir,
                       user=args.user)
    m._report_exit(f"exec in {args.container}", code)
    return None


@remote("logs")
def _logs(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> None:
    several = len(args.containers) > 1 and not args.follow
    for record, line in engine.logs(args.containers, latest=args.latest, since=parse_time(args.since),
                                    until=parse_time(args.until), tail=None if args.tail < 0 else args.tail,
                                    follow=args.follow):
        head = f"{record.name if args.names else record.short_id} ".encode() if several else b""
        _write(line.stream, head + line.render(args.timestamps))


@remote("ps")
def _ps(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    records = RecordList(engine.ps(all=args.all, latest=args.latest, last=args.last,
                                   filters=parse_filters(args.filter), sort=args.sort))
    if args.quiet:
        return [r.id if args.no_trunc else r.short_id for r in records]
    return records


@remote("inspect")
def _inspect(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    from kernelext.cli.template import Template

    template = Template.parse(args.format, "inspect") if args.format and args.format != "json" else None
    reports = m._reported(engine.inspect(args.containers, latest=args.latest, images=args.group is None))
    docs = [r.document for r in reports if isinstance(r, InspectReport) and r.document is not None]
    return _one_or_list([template.render(d) for d in docs] if template is not None else docs)


@remote("top")
def _top(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Table:
    return Table(engine.top(args.container, latest=args.latest), list(TOP_COLUMNS))


@remote("port")
def _port(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> list[str]:
    return engine.port(args.container, args.private)


@remote("cp")
def _cp(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> None:
    source, destination, archive = copy_arguments(args)
    engine.copy(source, destination, archive=archive, overwrite=args.overwrite)
    print(f"copied {source} to {destination}")


@remote("checkpoint")
def _checkpoint(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    """The containers checkpointed (podman keeps no checkpoint history: docs/architecture.md §4), or what
    ``--print-stats`` measured."""
    reports = m._reported(engine.checkpoint(args.containers, all=args.all, latest=args.latest,
                                            **checkpoint_options(args)))
    if args.print_stats:
        return _one_or_list([getattr(r, "statistics", None) for r in reports])
    return _records(m, engine, reports)


@remote("restore")
def _restore(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    if args.from_ is not None:
        raise engine_refusal(engine, "restore --from")
    if args.import_:
        record = engine.restore_import(args.import_, args.name, publish=args.publish or None,
                                       **restore_options(args))
        return record.statistics if args.print_stats else record
    reports = m._reported(engine.restore(args.containers, all=args.all, latest=args.latest, name=args.name,
                                         publish=args.publish or None, **restore_options(args)))
    if args.print_stats:
        return _one_or_list([getattr(r, "statistics", None) for r in reports])
    return _records(m, engine, reports)


@remote("image-ls")
def _images(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    from kernelext.cli.images import engine_images
    from kernelext.magics.container_magics import image_listing

    return image_listing(engine_images(engine, args), args)


@remote("image-pull")
def _pull(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> str:
    """The service pulls from where it stands, with its own credentials: the new image's ID (what podman's
    API answers; no local ``Image`` to show)."""
    for flag, given in (("--all-tags", args.all_tags), ("--authfile", args.authfile)):
        if given:
            raise engine_refusal(engine, f"pull {flag}")
    return engine.pull(args.image, tls_verify=args.tls_verify)


@remote("image-rm")
def _rmi(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> None:
    names = [image.id for image in reversed(engine.images())] if args.all else args.images
    if not names:
        raise UsageError("image name or ID must be specified")
    for name in names:
        try:
            lines = engine.remove_image(name, force=args.force)
        except NoSuchImageError:
            if args.ignore:
                continue
            raise
        print("\n".join(lines))


@remote("events")
def _events(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Table:
    if args.stream and args.until is None:
        raise UsageError("in a notebook, events needs --stream=false or --until (a stream never ends)")
    events = list(engine.events(filters=parse_filters(args.filter), since=parse_time(args.since),
                                until=parse_time(args.until)))
    return Table(({"TYPE": e.type, "STATUS": e.status, "NAME": e.name, "IMAGE": e.image} for e in events),
                 ["TYPE", "STATUS", "NAME", "IMAGE"])



# ------------------------------------- volumes, a container's filesystem, image archives (§16)
@remote("volume-create")
def _volume_create(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> str:
    return engine.volume_create(args.name, **volume_create_options(args))


@remote("volume-ls")
def _volume_ls(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Table:
    return Table(({"DRIVER": v["Driver"], "VOLUME NAME": v["Name"]} for v in engine.volumes(args.filter)),
                 ["DRIVER", "VOLUME NAME"])


@remote("volume-inspect")
def _volume_inspect(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    names = [v["Name"] for v in engine.volumes()] if args.all else args.volumes
    return _one_or_list([engine.volume_inspect(name) for name in names])


@remote("volume-rm")
def _volume_rm(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> None:
    for name in [v["Name"] for v in engine.volumes()] if args.all else args.volumes:
        print(engine.volume_remove(name, force=args.force))


@remote("volume-prune")
def _volume_prune(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> None:
    if not args.force:
        raise UsageError("a cell cannot ask for confirmation: use volume prune -f")
    for name in engine.volume_prune(args.filter):
        print(name)


@remote("volume-exists")
def _volume_exists(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> bool:
    return m._set_exit_code(0 if engine.volume_exists(args.volume) else 1) == 0  # the answer as $?, as the CLI


@remote("diff")
def _diff(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Table:
    return Table(({"KIND": c.kind.value, "PATH": c.path} for c in engine.diff(args.container, latest=args.latest)),
                 ["KIND", "PATH"])


@remote("export")
def _export(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> None:
    if not args.output:
        raise UsageError("in a notebook, export needs -o FILE")
    from kernelext.files.whole import whole_file

    with whole_file(args.output) as f:
        engine.export(args.container, f)
    print(f"exported to {args.output}")


@remote("update")
def _update(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    return engine.ps(all=True, filters={"id": [engine.update(args.container, **resource_options(args))]})[0]


@remote("commit")
def _commit(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> str:
    return engine.commit(args.container, args.image, changes=args.change, message=args.message, author=args.author,
                         pause=args.pause)


@remote("image-history")
def _image_history(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Table:
    from kernelext.cli.images import history_rows

    rows, _ = history_rows(engine, args.image, no_trunc=args.no_trunc, human=args.human)
    return Table(({"ID": r["ID"], "CREATED": r["Created"], "CREATED BY": r["CreatedBy"], "SIZE": r["Size"],
                   "COMMENT": r["Comment"]} for r in rows), ["ID", "CREATED", "CREATED BY", "SIZE", "COMMENT"])


@remote("image-save")
def _image_save(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> None:
    engine.save_image(args.image, args.output, format=args.format)


@remote("image-load")
def _image_load(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    if args.input == "-":
        raise UsageError("a cell has no stdin: give the archive with -i FILE")
    return _one_or_list(engine.load_image(args.input))


@remote("image-prune")
def _image_prune(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> list[str]:
    if not args.force:
        raise UsageError("a cell cannot answer the confirmation: add -f")
    from kernelext.cli.images import prune_filters

    return engine.prune_images(all=args.all, **prune_filters(args.filter))


@remote("image-untag")
def _image_untag(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> None:
    engine.untag(args.image, *args.names)


@remote("image-tree")
def _image_tree(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> None:
    print("\n".join(engine.image_tree(args.image, whatrequires=args.whatrequires)))


@remote("rename")
def _rename(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> None:
    engine.rename(args.container, args.name)


@remote("container-prune")
def _container_prune(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> list[str]:
    if not args.force:
        raise UsageError("a cell cannot answer the confirmation: add -f")
    return engine.prune_containers(args.filter)


@remote("stat")
def _stat(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    """The path's :class:`~kernelext.core.filecopy.FileInfo`, as the local line gives, from the service's."""
    from kernelext.core.filecopy import FileInfo

    return FileInfo.from_json(engine.stat(args.container, args.path))


@remote("system-df")
def _system_df(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Table:
    from kernelext.cli.checkpoints import usage_rows
    from kernelext.magics.display import usage_table

    return usage_table(usage_rows(engine))


@remote("image-import")
def _image_import(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> str:
    """The new image's ID (what podman's API answers, as ``pull``'s: no local ``Image`` to show)."""
    from kernelext.cli.images import import_command

    if args.tarball == "-":
        raise UsageError("a cell has no stdin: give the tarball as a FILE")
    return engine.import_image(args.tarball, args.name, cmd=import_command(args.change))


@remote("image-push")
def _image_push(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> str:
    """Pushed by the service from where it stands: the image's ID (as ``pull``'s; no progress: the service
    reports none)."""
    engine.push(args.image, args.destination, tls_verify=args.tls_verify, authfile=args.authfile)
    return str(engine.inspect_image(args.image)["Id"]).removeprefix("sha256:")


@remote("version")
def _version(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> str:
    import kernelext

    return kernelext.__version__  # kernelext's own, whichever engine

def run_remote(m: ContainerMagics, engine: Engine, args: argparse.Namespace) -> Any:
    """One line on a remote engine: its handler, or one line saying the engine does not carry it yet."""
    import contextlib
    import io

    handler = REMOTE_HANDLERS.get(args.cmd)
    if handler is None:
        raise engine_refusal(engine, args.cmd)
    with contextlib.redirect_stdout(io.StringIO()) if args.noout else contextlib.nullcontext():
        value = handler(m, engine, args)
    return None if args.noout else value


def run_remote_cell(m: ContainerMagics, engine: Engine, argv: list[str], cell: str | None) -> Any:
    """``%%container exec NAME`` and ``%%container run`` on a remote engine (the cell as a shell script);
    ``%%container write`` and the widgets read the local store: refused in one line naming the engine."""
    from kernelext.cli.parser import parse_args

    if cell is None or not argv or argv[0] not in ("exec", "run"):
        raise engine_refusal(engine, f"%{'%' if cell is not None else ''}container {argv[0] if argv else ''}".strip())
    sub, rest = argv[0], argv[1:]
    if sub == "exec":
        if len(rest) != 1:
            raise UsageError("usage: %%container exec CONTAINER")
        m._report_exit(f"exec in {rest[0]}", engine.exec(rest[0], ["sh", "-c", cell], output=_write))
        return None
    args = parse_args(["run", *rest, "sh", "-c", cell] if "-d" in rest or "--detach" in rest
                      else ["run", "--rm", *[a for a in rest if a != "--rm"], "sh", "-c", cell])
    return _run(m, engine, args)
