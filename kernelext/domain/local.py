"""The local engine: kernelext's own core behind the engine interface (podman's ``abi``).

Every method is the per-command function of :mod:`kernelext.domain.containers` (or the core
call the CLI made before the seam existed) on this engine's runtime: the rules stay where they
were, this module only adapts the shapes (docs/architecture.md §16).
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Generic, TypeVar

from kernelext.domain import containers as domain
from kernelext.domain import reports as rep
from kernelext.domain.engine import LOCAL, ContainerRecord, ImageRecord, Output, StateRecord
from kernelext.oci.attach import Stream, pump
from kernelext.units import status_text

if TYPE_CHECKING:
    from kernelext.core.container import Container
    from kernelext.core.events import Event
    from kernelext.core.logs import LogLine
    from kernelext.core.runtime import Runtime
    from kernelext.domain.diskusage import UsageRow
    from kernelext.domain.filters import Filters
    from kernelext.storage.images import HistoryEntry
    from kernelext.storage.layerdiff import Change

T = TypeVar("T")


def record_of(ctr: Container, engine: str = LOCAL) -> ContainerRecord:
    """A local container as ``ps`` lists it."""
    return ContainerRecord(
        id=ctr.id, name=ctr.name, image=ctr.image, image_id=ctr.config.image_id, command=list(ctr.config.args),
        created=ctr.config.created_at, state=ctr.status.value, status=status_text(ctr), exit_code=ctr.exit_code,
        exited=ctr.state.exited, pid=ctr.state.pid, restart_count=ctr.state.restart_count,
        started_at=ctr.state.started_at, auto_remove=ctr.config.auto_remove, labels=dict(ctr.config.labels),
        ports=[str(mapping) for mapping in ctr.ports], engine=engine, warnings=list(ctr.warnings))


class _Queued(Generic[T]):
    """A stream fed by a thread (or a store's watcher): iterated until ``None`` arrives or ``close()``."""

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self.closed = threading.Event()
        self.closer: Callable[[], None] = lambda: None

    def put(self, item: T | None) -> None:
        self._items.put(item)

    def __iter__(self) -> Iterator[T]:
        while not self.closed.is_set():
            item = self._items.get()
            if item is None:
                return
            yield item

    def close(self) -> None:
        self.closed.set()
        self.closer()
        self._items.put(None)


class LocalEngine:
    """kernelext's core as an :class:`~kernelext.domain.engine.Engine`."""

    name = LOCAL
    remote = False

    def __init__(self, runtime: Runtime, *, owned: bool = False) -> None:
        self.runtime = runtime
        self._owned = owned

    def close(self) -> None:
        if self._owned:
            self.runtime.close()

    def local(self, what: str) -> Runtime:
        return self.runtime

    # ---------------------------------------------------------- lifecycle
    def create(self, image: str, **options: Any) -> ContainerRecord:
        return record_of(self.runtime.create(image, **options))

    def run(self, image: str, **options: Any) -> ContainerRecord:
        return record_of(domain.run(self.runtime, image, **options))

    def run_attached(self, image: str, *, output: Output, **options: Any) -> int:
        """``run`` without a terminal or stdin: the output streamed to ``output``, then the exit code."""
        ctr = self.runtime.create(image, **options)
        remove = bool(options.get("auto_remove"))
        conn = domain.attach_and_start(ctr, start=True, remove=remove, run=True)
        try:
            pump(conn, lambda stream, data: output("stderr" if stream is Stream.STDERR else "stdout", data))
        finally:
            conn.close()
        return domain.wait_and_remove(ctr, remove=remove)

    def start(self, names: Sequence[str], **options: Any) -> list[rep.StartReport]:
        return domain.start(self.runtime, names, **options)

    def stop(self, names: Sequence[str], **options: Any) -> list[rep.StopReport]:
        return domain.stop(self.runtime, names, **options)

    def kill(self, names: Sequence[str], **options: Any) -> list[rep.KillReport]:
        return domain.kill(self.runtime, names, **options)

    def pause(self, names: Sequence[str], **options: Any) -> list[rep.PauseUnpauseReport]:
        return domain.pause(self.runtime, names, **options)

    def unpause(self, names: Sequence[str], **options: Any) -> list[rep.PauseUnpauseReport]:
        return domain.unpause(self.runtime, names, **options)

    def restart(self, names: Sequence[str], **options: Any) -> list[rep.RestartReport]:
        return domain.restart(self.runtime, names, **options)

    def rm(self, names: Sequence[str], **options: Any) -> list[rep.RmReport]:
        return domain.rm(self.runtime, names, **options)

    def wait(self, names: Sequence[str], **options: Any) -> list[rep.WaitReport]:
        return domain.wait(self.runtime, names, **options)

    # ------------------------------------------------------------ looking
    def inspect(self, names: Sequence[str], **options: Any) -> list[rep.InspectReport]:
        return domain.inspect(self.runtime, names, **options)

    def ps(self, **options: Any) -> list[ContainerRecord]:
        return [record_of(ctr) for ctr in domain.ps(self.runtime, **options)]

    def exists(self, name: str) -> bool:
        return domain.exists(self.runtime, name)

    def logs(self, names: Sequence[str], *, latest: bool = False, since: float | None = None,
             until: float | None = None, tail: int | None = None,
             follow: bool = False) -> Iterator[tuple[ContainerRecord, LogLine]]:
        if follow:
            ctr = domain.follow_target(self.runtime, names, latest=latest)
            record = record_of(ctr)
            return ((record, line) for line in ctr.logs(since=since, until=until, tail=tail, follow=True))
        records = domain.logs(self.runtime, names, latest=latest, since=since, until=until, tail=tail)
        seen: dict[str, ContainerRecord] = {}
        return ((seen.setdefault(r.container.id, record_of(r.container)), r.line) for r in records)

    def events(self, **options: Any) -> Iterator[Event]:
        return domain.events(self.runtime, **options)

    def watch_events(self, *, filters: Filters | None = None) -> _Queued[Event]:
        """The store's events of every process as they come (its watcher thread), until ``close()``."""
        wanted = domain.event_matcher(filters or {})
        stream: _Queued[Event] = _Queued()
        stream.closer = self.runtime.events.watch(lambda event: stream.put(event) if wanted(event) else None)
        return stream

    def follow_logs(self, name: str, *, since: float | None = None) -> _Queued[LogLine]:
        ctr = self.runtime.get(name)
        stream: _Queued[LogLine] = _Queued()

        def pump_lines() -> None:
            for line in ctr.logs(since=since, follow=True, stop=stream.closed.is_set):
                stream.put(line)
            stream.put(None)
        threading.Thread(target=pump_lines, daemon=True, name=f"kernelext-logs-{ctr.name}").start()
        return stream

    def top(self, name: str | None, *, latest: bool = False) -> list[dict[str, str]]:
        return domain.top(self.runtime, name, latest=latest)

    def stats(self, names: Sequence[str], *, all: bool = False) -> list[dict[str, Any]]:
        from kernelext.core.state import ContainerStatus

        chosen = [self.runtime.get(n) for n in names] if names else self.runtime.list(all=all)
        return [c.stats() for c in chosen if c.status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED)]

    def port(self, name: str, private: str | None = None) -> list[str]:
        return domain.port_lines(self.runtime, name, private)

    # ------------------------------------------------------ inside a container
    def exec(self, name: str, command: list[str], *, output: Output, env: Sequence[str] = (),
             workdir: str | None = None, user: str | None = None, tty: bool = False) -> int:
        return self.runtime.get(name).exec_run(command, tty=tty, env=env, workdir=workdir, user=user,
                                               on_output=output).exit_code

    def exec_detached(self, name: str, command: list[str], *, env: Sequence[str] = (), workdir: str | None = None,
                      user: str | None = None) -> str:
        return self.runtime.get(name).exec_detached(command, env=env, workdir=workdir, user=user)

    def copy(self, source: str, destination: str, *, archive: bool = True, overwrite: bool = False) -> None:
        self.runtime.copy(source, destination, archive=archive, overwrite=overwrite)

    def state(self, name: str) -> StateRecord:
        ctr = self.runtime.get(name)
        st = ctr.state
        return StateRecord(st.status.value, st.exit_code, st.exited, st.error, st.oom_killed, st.checkpointed,
                           ctr.allowed_actions())

    def files(self, name: str) -> Container:
        return self.runtime.get(name)  # a Container's own file calls are the browser's

    # ------------------------------------------------- checkpoint and restore
    def checkpoint(self, names: Sequence[str], **options: Any) -> list[rep.CheckpointReport]:
        return domain.checkpoint(self.runtime, names, **options)

    def restore(self, names: Sequence[str], **options: Any) -> list[rep.RestoreReport]:
        return domain.restore(self.runtime, names, **options)

    def restore_import(self, archive: str, name: str | None = None, *, publish: Sequence[str] | None = None,
                       **options: Any) -> ContainerRecord:
        ctr = self.runtime.restore_from_archive(archive, name, publish=publish, **options)
        return dataclasses.replace(record_of(ctr), statistics=ctr.statistics)

    # -------------------------------------------------------------- images
    def images(self) -> list[ImageRecord]:
        return [ImageRecord(image.id, list(image.names), image.config.created, image.config.size)
                for image in self.runtime.images()]

    def pull(self, reference: str, *, tls_verify: bool = True) -> str:
        return self.runtime.pull(reference, tls_verify=tls_verify).id

    def remove_image(self, name: str, *, force: bool = False) -> list[str]:
        return self.runtime.remove_image(name, force=force).lines()

    def inspect_image(self, name: str) -> dict[str, Any]:
        return self.runtime.image(name).inspect()

    def image_exists(self, name: str) -> bool:
        return self.runtime.image_exists(name)

    def tag(self, name: str, *targets: str) -> None:
        self.runtime.tag(name, *targets)

    def exec_with_input(self, name: str, command: list[str], stdin: BinaryIO, *, output: Output,
                        env: Sequence[str] = (), workdir: str | None = None, user: str | None = None) -> int:
        return self.runtime.get(name).exec_run(command, stdin=stdin, env=env, workdir=workdir, user=user,
                                               on_output=output).exit_code

    # ----------------------------------------------------- a container's filesystem
    def diff(self, name: str | None, *, latest: bool = False) -> list[Change]:
        return domain.one(self.runtime, name, latest=latest).diff()

    def export(self, name: str, out: BinaryIO) -> None:
        self.runtime.get(name).export(out)

    def commit(self, container: str, image: str | None = None, *, changes: Sequence[str] = (), message: str = "",
               author: str = "", pause: bool = True) -> str:
        return self.runtime.commit(container, image, changes=changes, message=message, author=author,
                                   pause=pause).id

    def update(self, name: str, **resources: Any) -> str:
        ctr = self.runtime.get(name)
        ctr.update(**resources)
        return ctr.id

    def rename(self, name: str, new_name: str) -> None:
        self.runtime.get(name).rename(new_name)

    def prune_containers(self, filters: Sequence[str] = ()) -> list[str]:
        from kernelext.domain.filters import parse_filters

        reports = domain.prune(self.runtime, parse_filters(filters))
        failed = [r.error for r in reports if r.error is not None]
        if failed:
            raise failed[0]
        return [r.id for r in reports]

    def stat(self, name: str, path: str) -> dict[str, Any]:
        return self.runtime.get(name).stat(path).to_json()

    def disk_usage(self) -> list[UsageRow]:
        from kernelext.domain.diskusage import disk_usage

        return disk_usage(self.runtime)

    # ------------------------------------------------------------- volumes
    def volume_create(self, name: str | None, *, labels: Mapping[str, str] | None = None,
                      options: Mapping[str, str] | None = None, ignore: bool = False) -> str:
        return self.runtime.volumes.create(name, labels=dict(labels or {}), options=dict(options or {}),
                                           ignore=ignore).name

    def volumes(self, filters: Sequence[str] = ()) -> list[dict[str, Any]]:
        return [self.runtime.volumes.inspect(v.name) for v in self.runtime.volumes.list(filters)]

    def volume_inspect(self, name: str) -> dict[str, Any]:
        return self.runtime.volumes.inspect(name)

    def volume_remove(self, name: str, *, force: bool = False) -> str:
        return self.runtime.volumes.remove(name, force=force).name

    def volume_prune(self, filters: Sequence[str] = ()) -> list[str]:
        return [volume.name for volume in self.runtime.volumes.prune(filters)]

    def volume_exists(self, name: str) -> bool:
        return self.runtime.volumes.exists(name)

    # ------------------------------------------------------ image archives
    def image_history(self, name: str) -> tuple[list[str], list[HistoryEntry]]:
        return list(self.runtime.image(name).repo_tags), self.runtime.history(name)

    def save_image(self, name: str, output: str, *, format: str = "docker-archive") -> None:
        self.runtime.save(name, output, format=format)

    def load_image(self, archive: str | BinaryIO, *, progress: Any = None) -> list[str]:
        from kernelext.storage.images import repo_tag

        with self._spooled(archive, ".load-") as path:
            image = self.runtime.load(path, progress=progress)
        return [":".join(repo_tag(image.name)) if image.names else f"sha256:{image.id}"]

    def prune_images(self, *, all: bool = False, until: float | None = None, labels: Sequence[str] = (),
                     not_labels: Sequence[str] = ()) -> list[str]:
        return [removal.image.id for removal in self.runtime.prune_images(all=all, until=until, labels=labels,
                                                                           not_labels=not_labels)]

    def untag(self, name: str, *names: str) -> None:
        self.runtime.untag(name, *names)

    def import_image(self, tarball: str | BinaryIO, name: str | None = None, *,
                     cmd: Sequence[str] | None = None) -> str:
        with self._spooled(tarball, ".import-") as path:
            return self.runtime.import_image(path, name, cmd=list(cmd) if cmd is not None else None).id

    def image_tree(self, name: str, *, whatrequires: bool = False) -> list[str]:
        from kernelext.domain.imagetree import tree_lines

        return tree_lines(self.runtime, name, whatrequires=whatrequires)

    def push(self, name: str, destination: str | None = None, *, tls_verify: bool = True,
             authfile: str | None = None, progress: Any = None) -> None:
        self.runtime.push(name, destination, tls_verify=tls_verify, authfile=authfile, progress=progress)

    @contextlib.contextmanager
    def _spooled(self, source: str | BinaryIO, prefix: str) -> Iterator[str]:
        """``source``'s path; a stream (stdin) spooled in the store first (skopeo and tar read files)."""
        if isinstance(source, str):
            yield source
            return
        with tempfile.NamedTemporaryFile(dir=self.runtime.opts.root, prefix=prefix) as spool:
            shutil.copyfileobj(source, spool)
            spool.flush()
            yield spool.name
