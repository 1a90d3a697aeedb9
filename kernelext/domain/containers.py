"""One function per podman container command (podman's ``pkg/domain/infra/abi/containers.go``).

Each takes the runtime, the names the user gave and podman's options, resolves
the targets (names, ``--all``, ``--latest``, ``--filter``), applies podman's
rules once, carries on past one container's failure and returns a report per
container. The CLI renders the reports as text and an exit code, the magics as
values, the widgets as a line in a panel: none of them holds a rule
(docs/architecture.md §1). ``timeout=None`` always means the container's own
setting.
"""

from __future__ import annotations

import enum
import signal as signal_mod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kernelext.core.container import Container
from kernelext.core.events import Event
from kernelext.core.logs import LogLine
from kernelext.core.ports import select as select_ports
from kernelext.core.state import ContainerStatus
from kernelext.domain import reports as rep
from kernelext.domain.filters import Filters, matcher, sort_key
from kernelext.errors import (
    ContainerRemovedError,
    ContainerStateError,
    ContainerStoppedError,
    InvalidArgumentError,
    KernelextError,
    NetworkError,
    NoSuchContainerError,
    RuntimeFailure,
)
from kernelext.oci.attach import AttachSocket
from kernelext.storage.images import Image

if TYPE_CHECKING:
    from kernelext.core.runtime import Runtime

R = TypeVar("R", bound=rep.Report)
#: What one container's failure can be; anything else is a bug and propagates.
FAILURES = (KernelextError, OSError)
#: podman's exit codes of ``rm``: a name that matches nothing, a container in the wrong state.
RM_NO_SUCH_EXIT = 1
RM_STATE_EXIT = 2
#: podman's exit code of ``run`` when the container cannot be started (define.ExecErrorCodeCannotInvoke).
RUN_START_EXIT = 126
#: podman's message of checkpoint and restore given names and --all or --latest.
CHECKPOINT_CONFLICT = "--all or --latest and containers cannot be used together"
#: The highest signal number Linux has (podman: "valid signals are 1 through 64").
MAX_SIGNAL = 64


@dataclass(frozen=True)
class Target:
    container: Container
    raw_input: str  # what the user typed; "" when the container was selected by --all/--latest/--filter


def targets(rt: Runtime, names: Sequence[str], *, all: bool = False, latest: bool = False,
            ignore: bool = False, filters: Filters | None = None,
            conflict: str | None = None) -> list[Target]:
    """podman's ``getContainersAndInputByContext``: filters (the named containers among the matches, or all
    matches), ``--all``, ``--latest``, or the names — every name looked up before anything is done, so a typo
    acts on nothing; with ``ignore`` a missing one is skipped. ``conflict`` replaces podman's message for
    ``--all``/``--latest`` with names (``start``, ``checkpoint`` and ``restore`` have their own)."""
    if names and (all or latest):
        raise InvalidArgumentError(conflict or ("--latest and containers cannot be used together" if latest
                                                else "no arguments are needed with --all"))
    if all and latest:
        raise InvalidArgumentError("--all and --latest cannot be used together")
    if filters:
        match = matcher(rt, filters)
        chosen = [c for c in rt.list() if match(c)]
        if names:
            chosen = [c for c in chosen if c.id in names or c.name in names]
        return [Target(c, "") for c in chosen]
    if all:
        return [Target(c, "") for c in rt.list()]
    if latest:
        containers = rt.list()
        return [Target(containers[-1], "")] if containers else []
    if not names:
        raise InvalidArgumentError("you must provide at least one name or id")
    found, missing = [], None
    for name in names:
        try:
            found.append(Target(rt.get(name), name))
        except NoSuchContainerError as exc:
            missing = missing or exc
    if missing is not None and not ignore:
        raise missing
    return found


def _each(kind: type[R], chosen: Iterable[Target], action: Callable[[Container], object], *,
          skip: Callable[[Container, Exception], bool] = lambda _c, _e: False, result: str | None = None) -> list[R]:
    """``action`` per target, its failure in the report (``skip``: a failure that leaves no report at all);
    ``result``: the report's field that keeps what ``action`` returned."""
    done: list[R] = []
    for target in chosen:
        ctr = target.container
        try:
            value = action(ctr)
        except FAILURES as exc:
            if not skip(ctr, exc):
                done.append(kind(ctr.id, target.raw_input, exc, ctr))
            continue
        done.append(kind(ctr.id, target.raw_input, None, ctr, **({result: value} if result else {})))
    return done


def _state_error_when(all_: bool) -> Callable[[Container, Exception], bool]:
    """With ``--all``, a container in a state the command cannot act on is passed over quietly (podman)."""
    return lambda _c, exc: all_ and isinstance(exc, ContainerStateError)


# ------------------------------------------------------------------ lifecycle
def start_one(ctr: Container) -> None:
    """``podman start`` of one container: a failed start of an ``--rm`` container removes it."""
    try:
        ctr.start()
    except KernelextError:
        if ctr.config.auto_remove:
            remove_quietly(ctr, force=True)
        raise


def start(rt: Runtime, names: Sequence[str], *, all: bool = False, latest: bool = False,
          filters: Filters | None = None) -> list[rep.StartReport]:
    """``podman start``: a running container is passed over (no report, nothing printed)."""
    chosen = targets(rt, names, all=all, latest=latest, filters=filters,
                     conflict="either start all containers or the container(s) provided in the arguments")
    waiting = [t for t in chosen if t.container.status is not ContainerStatus.RUNNING]
    reports = _each(rep.StartReport, waiting, start_one)
    for report in reports:
        if isinstance(report.error, KernelextError):
            report.error.exit_code = rep.GENERIC_EXIT  # podman's start fails with 125, whatever run would give
    return reports


def attach_target(rt: Runtime, names: Sequence[str], *, all: bool = False,
                  latest: bool = False) -> Container:
    """``podman start --attach``: exactly one container."""
    if all:
        raise InvalidArgumentError("you cannot start and attach all containers at once")
    if len(names) > 1:
        raise InvalidArgumentError("you cannot start and attach multiple containers at once")
    return one(rt, names[0] if names else None, latest=latest)


def stop_one(ctr: Container, timeout: int | None = None, *, quiet_state: bool = False) -> None:
    """``podman stop`` of one container: idempotent, then cleanup — or removal of an ``--rm`` container.
    A container never started is not an error (docker's rule, podman's too); one that another command removed
    meanwhile (``rm -f`` beside this stop) is stopped as asked."""
    try:
        ctr.stop(timeout)
    except ContainerStoppedError:
        pass
    except ContainerRemovedError:
        return
    except ContainerStateError:
        if not (quiet_state or ctr.status is ContainerStatus.CONFIGURED):
            raise
    if ctr.config.auto_remove:
        remove_quietly(ctr, force=True)  # conmon's exit command (cleanup --rm) may have got there first
        return
    try:
        ctr.cleanup()
    except (ContainerStateError, ContainerRemovedError):
        pass  # restarted by its policy, or cleaned up by the exit command meanwhile


def stop(rt: Runtime, names: Sequence[str], *, all: bool = False, latest: bool = False,
         ignore: bool = False, filters: Filters | None = None,
         timeout: int | None = None) -> list[rep.StopReport]:
    """``podman stop``: ``timeout=None`` is each container's own ``--stop-timeout``."""
    if timeout is not None and timeout < 0:
        raise InvalidArgumentError("stop timeout must be a non-negative number of seconds")
    chosen = targets(rt, names, all=all, latest=latest, ignore=ignore, filters=filters)
    return _each(rep.StopReport, chosen, lambda c: stop_one(c, timeout, quiet_state=all))


def parse_signal(sig: str | int) -> signal_mod.Signals:
    """podman's signal parsing: ``9``, ``KILL``, ``SIGKILL``, ``-KILL``; refused before any lookup."""
    text = str(sig).strip()
    text = text.removeprefix("-")
    if text.isdigit() and int(text) > MAX_SIGNAL:
        raise InvalidArgumentError(f"valid signals are 1 through {MAX_SIGNAL}")
    name = text.upper()
    try:
        if text.isdigit():
            return signal_mod.Signals(int(text))
        return signal_mod.Signals[name if name.startswith("SIG") else "SIG" + name]
    except (KeyError, ValueError):
        raise InvalidArgumentError(f"invalid signal: {text}") from None


def kill_one(ctr: Container, sig: signal_mod.Signals) -> None:
    """``podman kill`` of one container: after a signal that ended it, its cleanup is done at once, as conmon's
    exit command would a moment later, so ``inspect`` right after says ``exited`` as podman's does."""
    ctr.kill(sig)
    if ctr.status is not ContainerStatus.STOPPED:
        return  # a signal it survives (or handles and exits from later): conmon's exit command settles it
    if ctr.config.auto_remove:
        remove_quietly(ctr, force=True)  # as the exit command's cleanup --rm would
        return
    try:
        ctr.cleanup(only_stopped=True)
    except (ContainerStateError, ContainerRemovedError):
        pass  # the exit command got there first


def kill(rt: Runtime, names: Sequence[str], *, signal: str | int = "SIGKILL", all: bool = False,
         latest: bool = False) -> list[rep.KillReport]:
    """``podman kill``: the signal is checked before any lookup; ``--all`` passes over what is not running."""
    sig = parse_signal(signal)
    chosen = targets(rt, names, all=all, latest=latest)
    return _each(rep.KillReport, chosen, lambda c: kill_one(c, sig), skip=_state_error_when(all))


def pause(rt: Runtime, names: Sequence[str], *, all: bool = False, latest: bool = False,
          filters: Filters | None = None) -> list[rep.PauseUnpauseReport]:
    chosen = targets(rt, names, all=all, latest=latest, filters=filters)
    return _each(rep.PauseUnpauseReport, chosen, Container.pause, skip=_state_error_when(all))


def unpause(rt: Runtime, names: Sequence[str], *, all: bool = False, latest: bool = False,
            filters: Filters | None = None) -> list[rep.PauseUnpauseReport]:
    chosen = targets(rt, names, all=all, latest=latest, filters=filters)
    return _each(rep.PauseUnpauseReport, chosen, Container.unpause, skip=_state_error_when(all))


def restart(rt: Runtime, names: Sequence[str], *, all: bool = False, latest: bool = False,
            running: bool = False, filters: Filters | None = None,
            timeout: int | None = None) -> list[rep.RestartReport]:
    """``podman restart``: ``--running`` restarts only the running ones; ``timeout=None`` is each one's own."""
    if running:
        chosen = [Target(c, "") for c in rt.list(all=False)]
    else:
        chosen = targets(rt, names, all=all, latest=latest, filters=filters)
    return _each(rep.RestartReport, chosen, lambda c: c.restart(timeout))


def remove_quietly(ctr: Container, *, force: bool = False, volumes: bool = False) -> None:
    """Remove one container; one removed by another command before this one got its lock is removed as asked
    (podman's ContainerRm ignores ErrCtrRemoved). After an ``--rm`` run, conmon's exit command
    (``cleanup --rm``) may have got there first the same way."""
    try:
        ctr.remove(force=force, volumes=volumes)
    except ContainerRemovedError:
        pass


def _remove_one(ctr: Container, force: bool, timeout: int | None, volumes: bool) -> None:
    if force and timeout is not None and ctr.status in (ContainerStatus.RUNNING, ContainerStatus.STOPPING):
        stop_one(ctr, timeout)  # rm -f -t N: the stop signal first, SIGKILL after N seconds
    try:
        remove_quietly(ctr, force=force, volumes=volumes)
    except ContainerStateError as exc:
        exc.exit_code = RM_STATE_EXIT
        raise


def rm(rt: Runtime, names: Sequence[str], *, all: bool = False, latest: bool = False,
       ignore: bool = False, force: bool = False, filters: Filters | None = None,
       timeout: int | None = None, volumes: bool = False) -> list[rep.RmReport]:
    """``podman rm``: a name that matches nothing fails with exit code 1 (ignored with ``ignore`` or, as
    podman, ``force``), a running container without ``force`` with 2; ``volumes``: its anonymous volumes go
    too."""
    try:
        chosen = targets(rt, names, all=all, latest=latest, ignore=ignore or force, filters=filters)
    except NoSuchContainerError as exc:
        exc.exit_code = RM_NO_SUCH_EXIT
        raise
    return _each(rep.RmReport, chosen, lambda c: _remove_one(c, force, timeout, volumes))


def wait(rt: Runtime, names: Sequence[str], *, latest: bool = False, conditions: Sequence[str] = (),
         interval: float = 0.25) -> list[rep.WaitReport]:
    """``podman wait``: each container's exit code (or -1 for a non-exit condition)."""
    return _each(rep.WaitReport, targets(rt, names, latest=latest),
                 lambda c: c.wait_for(conditions, interval=interval), result="exit_code")


def cleanup(rt: Runtime, names: Sequence[str], *, stopped_only: bool = False,
            remove: bool = False) -> list[rep.CleanupReport]:
    """``podman container cleanup [--rm]``, which conmon's exit command runs: the restart policy restarts the
    container, or it is cleaned up — and removed with ``remove``. A container already gone is no failure; with
    ``stopped_only`` (the exit command) nor is one someone else already handled."""
    done = []
    for name in names:
        try:
            ctr = rt.get(name)
            restarted = ctr.cleanup(only_stopped=stopped_only)
            if remove and not restarted:
                ctr.remove(force=False)
        except (NoSuchContainerError, ContainerRemovedError):
            continue
        except FAILURES as exc:
            if not stopped_only:
                done.append(rep.CleanupReport(name, name, exc))
            continue
        done.append(rep.CleanupReport(ctr.id, name, None, ctr))
    return done


def inspect(rt: Runtime, names: Sequence[str], *, latest: bool = False,
            images: bool = False) -> list[rep.InspectReport]:
    """``podman container inspect``; with ``images`` (the top-level ``podman inspect``) a name no container
    has may be an image's. Every name gets a report: the ones found are shown even when others are not."""
    if latest:
        return _each(rep.InspectReport, targets(rt, names, latest=True), Container.inspect, result="document")
    if not names:
        raise InvalidArgumentError("you must provide at least one name or id")
    return rep.inspect_names(
        names, lambda name: _each(rep.InspectReport, [Target(rt.get(name), name)], Container.inspect,
                                  result="document")[0],
        (lambda name: rep.InspectReport((image := rt.image(name)).id, name, None, None, document=image.inspect()))
        if images else None)


def exists(rt: Runtime, name: str) -> bool:
    """``podman container exists``."""
    return rt.exists(name)


def checkpoint(rt: Runtime, names: Sequence[str], *, all: bool = False, latest: bool = False,
               **options: Any) -> list[rep.CheckpointReport]:
    """``podman container checkpoint``: ``--all`` means every running container; one archive, one container."""
    chosen = targets(rt, names, all=all, latest=latest, conflict=CHECKPOINT_CONFLICT)
    if all:
        chosen = [t for t in chosen if t.container.status is ContainerStatus.RUNNING]
    if options.get("export") and len(chosen) > 1:
        raise InvalidArgumentError("--export can only be used with one container")
    create_image = options.pop("create_image", None)
    if create_image and len(chosen) > 1:
        raise InvalidArgumentError("--create-image can only be used with one container")

    def act(ctr: Container) -> Any:
        if create_image:
            from kernelext.core.checkpointimage import checkpoint_to_image

            return checkpoint_to_image(ctr, create_image, **options)[0]
        return ctr.checkpoint(**options)

    done = _each(rep.CheckpointReport, chosen, act, result="entry")
    for report in done:  # Container.checkpoint returns the statistics when asked for them, else its entry
        if report.error is None and report.container is not None:
            report.statistics = report.container.statistics
            if options.get("print_stats"):
                listed = report.container.checkpoints() if report.container.runtime.exists(report.id) else []
                report.entry = listed[-1] if listed else None
    return done


def _as_checkpoint_image(rt: Runtime, reference: str) -> Image | None:
    """The local image ``reference`` names, if it is a checkpoint image."""
    from kernelext.core.checkpointimage import is_checkpoint_image

    image = rt.images.get(reference) if rt.images.exists(reference) else None
    return image if image is not None and is_checkpoint_image(image) else None


def _checkpoint_image(rt: Runtime, names: Sequence[str]) -> Image | None:
    """The checkpoint image ``restore NAME`` means: one name, no container of that name, an image's."""
    return _as_checkpoint_image(rt, names[0]) if len(names) == 1 and not rt.exists(names[0]) else None


def restore(rt: Runtime, names: Sequence[str], *, all: bool = False, latest: bool = False, name: str | None = None,
            publish: list[str] | None = None, **options: Any) -> list[rep.RestoreReport]:
    """``podman container restore``: ``--all`` means every checkpointed, exited container; a name that is
    no container but a checkpoint image restores a new container from it (``name``, ``publish``)."""
    image = _checkpoint_image(rt, names) if not (all or latest) else None
    if image is not None:
        from kernelext.core.checkpointimage import restore_from_image

        ctr = restore_from_image(rt, image, name, publish=publish, **options)
        return [rep.RestoreReport(ctr.id, names[0], None, ctr, statistics=ctr.statistics)]
    for option, given in (("--name", name), ("--publish", publish)):
        if given:
            raise InvalidArgumentError(f"{option} can only be used with image or --import", operation="restore")
    chosen = targets(rt, names, all=all, latest=latest, conflict=CHECKPOINT_CONFLICT)
    if all:
        chosen = [t for t in chosen if t.container.state.checkpointed and
                  t.container.status is ContainerStatus.EXITED]
    return _each(rep.RestoreReport, chosen, lambda c: c.restore(**options), result="statistics")


def network_reload(rt: Runtime, names: Sequence[str], *, all: bool = False,
                   latest: bool = False) -> list[rep.NetworkReloadReport]:
    """``podman network reload``: ``--all`` means every running container; podman prints IDs."""
    chosen = targets(rt, names, all=all, latest=latest)
    if all:
        chosen = [t for t in chosen if t.container.status is ContainerStatus.RUNNING]
    reports = _each(rep.NetworkReloadReport, chosen, Container.reload_network)
    for report in reports:
        report.raw_input = ""
    return reports


# ---------------------------------------------------------------- listing
def ps(rt: Runtime, *, all: bool = False, latest: bool = False, last: int = -1,
       filters: Filters | None = None, sort: str = "created") -> list[Container]:
    """``podman ps``: running containers unless ``all`` (or a ``status`` filter, or ``last``), oldest first
    or by ``sort``."""
    filters = dict(filters or {})
    match = matcher(rt, filters)
    every = all or bool(filters.get("status")) or last > 0
    containers = [c for c in rt.list(all=every) if match(c)]
    if latest:
        containers = containers[-1:]
    if last > 0:
        containers = containers[-last:]
    if sort != "created":
        containers.sort(key=sort_key(sort))
    return containers


def port_lines(rt: Runtime, name: str, private: str | None = None) -> list[str]:
    """``podman port``: ``80/tcp -> 127.0.0.1:8080`` per mapping, or ``127.0.0.1:8080`` for one port."""
    ctr = rt.get(name)
    if private is None:
        return [str(mapping) for mapping in ctr.ports]
    return [f"{mapping.host_ip}:{mapping.host_port}" for mapping in select_ports(ctr.ports, private)]


def _as_run_failure(exc: KernelextError) -> None:
    """podman's ``run``: a container the OCI runtime could not start (or whose ports could not be bound) ends
    the command with 126 (a command not found keeps its 127); a refused argument stays 125."""
    if isinstance(exc, (RuntimeFailure, NetworkError)) and exc.exit_code == rep.GENERIC_EXIT:
        exc.exit_code = RUN_START_EXIT


def run(rt: Runtime, image: str, **options: Any) -> Container:
    """``podman run -d``: create, then start; the container stays (podman leaves it) unless ``--rm``.
    A checkpoint image is restored instead (its own command and configuration; ``name``, ``publish``)."""
    checkpointed = _as_checkpoint_image(rt, image)
    if checkpointed is not None:
        from kernelext.core.checkpointimage import restore_from_image

        return restore_from_image(rt, checkpointed, options.get("name"), publish=options.get("publish") or None)
    ctr = rt.create(image, **options)
    try:
        start_one(ctr)
    except KernelextError as exc:
        _as_run_failure(exc)
        raise
    return ctr


def attach_and_start(ctr: Container, *, start: bool, remove: bool, tty_size: tuple[int, int] | None = None,
                     run: bool = False) -> AttachSocket:
    """Attach (starting if asked); a failed start of an ``--rm`` container removes it; ``run``: as ``run``."""
    try:
        return ctr.attach(start=start, tty_size=tty_size)
    except KernelextError as exc:
        if remove:
            remove_quietly(ctr, force=True)  # conmon's exit command (cleanup --rm) may have got there first
        if run:
            _as_run_failure(exc)
        raise


def wait_and_remove(ctr: Container, *, remove: bool) -> int:
    """The end of an attached ``run``/``start``: the container's exit code, once it has exited; ``remove``
    (``--rm``): then removed, as conmon's exit command (``cleanup --rm``) may already have done."""
    code = ctr.wait()
    if remove:
        remove_quietly(ctr, force=True)
    return code


def one(rt: Runtime, name: str | None, *, latest: bool = False) -> Container:
    """The single container of ``diff``, ``top``, ``port``...: named, or the newest with ``latest``."""
    chosen = targets(rt, [name] if name else [], latest=latest)
    if not chosen:
        raise NoSuchContainerError("no containers to act on", container=name)
    return chosen[0].container


def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration`` prints it (``0s``, ``1.5s``, ``2m3.25s``, ``1h0m0s``), as podman
    top shows ELAPSED and TIME."""
    if seconds <= 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    return f"{int(minutes)}m{text}" if minutes else text


#: podman top's default columns (``user,pid,ppid,pcpu,etime,tty,time,args``).
TOP_COLUMNS = ("USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND")


def top(rt: Runtime, name: str | None, *, latest: bool = False) -> list[dict[str, str]]:
    """``podman top``: one row per process, podman's columns as podman formats them."""
    rows = one(rt, name, latest=latest).top()
    return [{"USER": str(r["USER"]), "PID": str(r["PID"]), "PPID": str(r["PPID"]), "%CPU": f"{r['%CPU']:.3f}",
             "ELAPSED": go_duration(r["ELAPSED"]), "TTY": "?", "TIME": go_duration(int(r["TIME"])),
             "COMMAND": r["COMMAND"]} for r in rows]


@dataclass(frozen=True)
class LogRecord:
    """A log line and its container, for ``logs`` of several containers."""

    container: Container
    line: LogLine

    def render(self, *, timestamps: bool, prefix: bool, names: bool) -> bytes:
        """podman's line: with several containers, the short ID (or the name) first."""
        head = f"{self.container.name if names else self.container.short_id} ".encode() if prefix else b""
        return head + self.line.render(timestamps)


def follow_target(rt: Runtime, names: Sequence[str], *, latest: bool = False) -> Container:
    """``podman logs --follow``: kernelext follows one container's log at a time."""
    if len(names) > 1:
        raise InvalidArgumentError("--follow takes one container here")
    return one(rt, names[0] if names else None, latest=latest)


def logs(rt: Runtime, names: Sequence[str], *, latest: bool = False, since: float | None = None,
         until: float | None = None, tail: int | None = None) -> list[LogRecord]:
    """``podman logs`` of one or more containers (not following): their lines merged in time order."""
    records = [LogRecord(t.container, line) for t in targets(rt, names, latest=latest)
               for line in t.container.logs(since=since, until=until, tail=tail)]
    records.sort(key=lambda r: r.line.timestamp)
    return records


#: ``events --filter`` keys and what they compare.
EVENT_FILTERS: dict[str, Callable[[Event, str], bool]] = {
    "container": lambda e, v: e.type == "container" and (v in (e.name, e.id) or e.id.startswith(v)),
    "event": lambda e, v: e.status == v,
    "status": lambda e, v: e.status == v,
    "image": lambda e, v: e.image == v,
    "label": lambda e, v: v.partition("=")[0] in e.attributes and (
        "=" not in v or e.attributes[v.partition("=")[0]] == v.partition("=")[2]),
    "type": lambda e, v: e.type == v,
}


def event_matcher(filters: Filters) -> Callable[[Event], bool]:
    """``podman events --filter``: values of one key match any, keys must all match."""
    for key in filters:
        if key not in EVENT_FILTERS:
            raise InvalidArgumentError(f"{key} is an invalid filter")
    return lambda event: all(any(EVENT_FILTERS[key](event, value) for value in values)
                             for key, values in filters.items())


class EventsBackend(enum.Enum):
    """podman's ``--events-backend``: kernelext records events in a file in the store."""

    FILE = "file"
    JOURNALD = "journald"
    NONE = "none"


def events_backend(rt: Runtime, name: str) -> EventsBackend:
    """Apply a command's ``--events-backend``: ``none`` records nothing; journald does not exist here."""
    backend = EventsBackend(name)
    if backend is EventsBackend.JOURNALD:
        raise InvalidArgumentError('the "journald" events backend is not available: kernelext records events '
                                   'in a file ("file")')
    rt.events.muted = backend is EventsBackend.NONE
    return backend


def events(rt: Runtime, *, filters: Filters | None = None, since: float | None = None, until: float | None = None,
           stream: bool = False) -> Iterator[Event]:
    """``podman events``: the recorded events that match, then (``stream`` without ``until``) new ones as they
    come."""
    if rt.events.muted:
        raise InvalidArgumentError('cannot read events with the "none" backend')
    wanted = event_matcher(filters or {})
    found = rt.events.follow(since=since) if stream and until is None else iter(rt.events.read(since, until))
    return (event for event in found if wanted(event))


#: The states ``rm`` refuses without ``--force`` (checked before a ``clone --destroy`` makes anything).
_NEEDS_FORCE_TO_REMOVE = (ContainerStatus.RUNNING, ContainerStatus.PAUSED, ContainerStatus.STOPPING,
                          ContainerStatus.CREATED)


def clone(rt: Runtime, source: str, *, name: str | None = None, image: str | None = None, destroy: bool = False,
          force: bool = False, run: bool = False, **resources: Any) -> Container:
    """podman's ``container clone``: a new container with ``source``'s configuration; ``destroy`` removes
    the original (a running one only with ``force``, refused before anything is made), ``run`` starts the clone."""
    from kernelext.core.clone import clone as clone_config

    original = rt.get(source)
    if force and not destroy:
        raise InvalidArgumentError("cannot set --force without --destroy")
    if destroy and not force and original.status in _NEEDS_FORCE_TO_REMOVE:
        raise ContainerStateError(f"cannot remove container {original.id} as it is {original.status.value} - "
                                  "running or paused containers cannot be removed without force: container "
                                  "state improper", container=original.name, operation="clone")
    ctr = clone_config(rt, original, name=name, image=image, **resources)
    if destroy:
        original.remove(force=force)
    if run:
        start_one(ctr)
    return ctr


def prune(rt: Runtime, filters: Filters | None = None) -> list[rep.RmReport]:
    """podman's ``container prune``: every container that is not running, paused or initialized (of those
    ``filters`` match) removed, each in its report; one removed meanwhile is no failure."""
    chosen = [c.id for c in ps(rt, all=True, filters=filters) if c.status not in _NEEDS_FORCE_TO_REMOVE]
    return rm(rt, chosen, ignore=True) if chosen else []
