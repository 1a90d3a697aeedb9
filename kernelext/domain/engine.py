"""The engine seam: one interface for the front ends, a local and a remote implementation.

podman's ``pkg/domain`` has one ``ContainerEngine`` interface and two implementations:
``abi`` (libpod in this process) and ``tunnel`` (the REST service through its bindings).
kernelext does the same (docs/architecture.md §16): :class:`Engine` is what the CLI and the
magics call, :class:`~kernelext.domain.local.LocalEngine` wraps kernelext's own core and the
per-command functions of :mod:`kernelext.domain.containers`, and
:class:`~kernelext.domain.remote.RemoteEngine` speaks podman's libpod API through podman-py.
Both return the same reports (:mod:`kernelext.domain.reports`) and records (below).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar, runtime_checkable

from kernelext.domain import reports as rep
from kernelext.errors import EngineUnsupportedError

if TYPE_CHECKING:
    from kernelext.connections import Connection
    from kernelext.core.events import Event
    from kernelext.core.filecopy import FileInfo
    from kernelext.core.logs import LogLine
    from kernelext.core.runtime import Runtime
    from kernelext.domain.diskusage import UsageRow
    from kernelext.domain.filters import Filters
    from kernelext.storage.images import HistoryEntry
    from kernelext.storage.layerdiff import Change

#: ``on_output(stream, data)``: a chunk of a container's or an exec session's output; stream is
#: "stdout" or "stderr".
Output = Callable[[str, bytes], None]
T_co = TypeVar("T_co", covariant=True)
#: The engine name of kernelext's own core (a remote one is named after its connection).
LOCAL = "local"


@dataclass(frozen=True)
class ContainerRecord:
    """One container as ``ps`` lists it (podman's ``ListContainer``), whichever engine holds it."""

    id: str
    name: str
    image: str
    image_id: str
    command: list[str]
    created: float
    #: podman's state word: created, running, paused, exited, ...
    state: str
    #: ps's STATUS column: "Up 3 seconds", "Exited (0) 2 seconds ago", ...
    status: str
    exit_code: int = 0
    exited: bool = False
    pid: int = 0
    restart_count: int = 0
    started_at: float = 0.0
    auto_remove: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    #: ``podman port``'s lines: ``80/tcp -> 127.0.0.1:8080``.
    ports: Sequence[str] = ()
    #: The engine the container lives on: "local" or a connection's name (or URL).
    engine: str = LOCAL
    #: create's warnings, shown once by the front end (libpod's create warnings).
    warnings: Sequence[str] = ()
    #: What a restore asked with ``print_stats`` measured (None otherwise).
    statistics: Mapping[str, Any] | None = None

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True)
class StateRecord:
    """A container's state as a panel shows it, whichever engine holds it: podman's state word, how its last
    run ended, and the actions the state machine allows now (decided by the engine, rendered by the panel)."""

    status: str
    exit_code: int = 0
    exited: bool = False
    error: str = ""
    oom_killed: bool = False
    checkpointed: bool = False
    #: The panel's actions the state machine allows now (:func:`kernelext.core.state.allowed_actions`).
    allowed: Sequence[str] = ()


@dataclass(frozen=True)
class ImageRecord:
    """One image as ``images`` lists it (podman's ``ListImage``), whichever engine holds it."""

    id: str
    #: Its names (``localhost/busybox:latest``); none for a dangling image.
    names: Sequence[str]
    created: float
    size: int
    engine: str = LOCAL


class ContainerFiles(Protocol):
    """A container's files as the file browser uses them: a local ``Container`` is one, a remote engine's
    :class:`~kernelext.domain.remotefiles.RemoteFiles` another (docs/architecture.md §16)."""

    @property
    def name(self) -> str: ...

    def list_dir(self, path: str) -> list[FileInfo]: ...
    def stat(self, path: str) -> FileInfo: ...
    def get_archive(self, path: str) -> tuple[BinaryIO, FileInfo]: ...
    def write_file(self, path: str, data: bytes) -> None: ...
    def make_dir(self, path: str) -> None: ...
    def remove_path(self, path: str) -> None: ...


@runtime_checkable
class Stoppable(Protocol[T_co]):
    """A live stream a front end follows in a thread of its own: ``close()`` from any thread ends it (the
    blocked read returns; the iteration stops)."""

    def __iter__(self) -> Iterator[T_co]: ...
    def close(self) -> None: ...


@runtime_checkable
class Engine(Protocol):
    """What the front ends ask of an engine: podman's container and image commands.

    Names are what the user typed (names, IDs, ID prefixes). Per-container commands return a
    report per container, a failure in its report; a failure that stops the whole command
    (a name that matches nothing, an unreachable remote) is raised. ``timeout=None`` is each
    container's own setting. What an engine cannot do raises :class:`EngineUnsupportedError`
    naming the engine and why.
    """

    #: "local", or the connection's name (its URL when it has none).
    name: str
    #: True when the containers are on another machine's podman (no terminal of this machine reaches them).
    remote: bool

    def close(self) -> None: ...

    # ---------------------------------------------------------- lifecycle
    def create(self, image: str, **options: Any) -> ContainerRecord: ...
    def run(self, image: str, **options: Any) -> ContainerRecord: ...
    def run_attached(self, image: str, *, output: Output, **options: Any) -> int: ...
    def start(self, names: Sequence[str], *, all: bool = False, latest: bool = False,
              filters: Filters | None = None) -> list[rep.StartReport]: ...
    def stop(self, names: Sequence[str], *, all: bool = False, latest: bool = False, ignore: bool = False,
             filters: Filters | None = None, timeout: int | None = None) -> list[rep.StopReport]: ...
    def kill(self, names: Sequence[str], *, signal: str | int = "SIGKILL", all: bool = False,
             latest: bool = False) -> list[rep.KillReport]: ...
    def pause(self, names: Sequence[str], *, all: bool = False, latest: bool = False,
              filters: Filters | None = None) -> list[rep.PauseUnpauseReport]: ...
    def unpause(self, names: Sequence[str], *, all: bool = False, latest: bool = False,
                filters: Filters | None = None) -> list[rep.PauseUnpauseReport]: ...
    def restart(self, names: Sequence[str], *, all: bool = False, latest: bool = False, running: bool = False,
                filters: Filters | None = None, timeout: int | None = None) -> list[rep.RestartReport]: ...
    def rm(self, names: Sequence[str], *, all: bool = False, latest: bool = False, ignore: bool = False,
           force: bool = False, filters: Filters | None = None, timeout: int | None = None,
           volumes: bool = False) -> list[rep.RmReport]: ...
    def wait(self, names: Sequence[str], *, latest: bool = False, conditions: Sequence[str] = (),
             interval: float = 0.25) -> list[rep.WaitReport]: ...

    # ------------------------------------------------------------ looking
    def inspect(self, names: Sequence[str], *, latest: bool = False,
                images: bool = False) -> list[rep.InspectReport]: ...
    def ps(self, *, all: bool = False, latest: bool = False, last: int = -1, filters: Filters | None = None,
           sort: str = "created") -> list[ContainerRecord]: ...
    def exists(self, name: str) -> bool: ...
    def state(self, name: str) -> StateRecord:
        """The container's state now and the actions it allows (what a panel's header and buttons show)."""
        ...
    def logs(self, names: Sequence[str], *, latest: bool = False, since: float | None = None,
             until: float | None = None, tail: int | None = None,
             follow: bool = False) -> Iterator[tuple[ContainerRecord, LogLine]]: ...
    def events(self, *, filters: Filters | None = None, since: float | None = None, until: float | None = None,
               stream: bool = False) -> Iterator[Event]: ...
    def watch_events(self, *, filters: Filters | None = None) -> Stoppable[Event]:
        """The events from now on (podman's ``events --stream``), until ``close()``: what widgets follow."""
        ...
    def follow_logs(self, name: str, *, since: float | None = None) -> Stoppable[LogLine]:
        """One container's log (from ``since``) followed until it exits or ``close()``: a widget's live output."""
        ...
    def top(self, name: str | None, *, latest: bool = False) -> list[dict[str, str]]: ...
    def stats(self, names: Sequence[str], *, all: bool = False) -> list[dict[str, Any]]: ...
    def port(self, name: str, private: str | None = None) -> list[str]: ...

    # ------------------------------------------------------ inside a container
    def exec(self, name: str, command: list[str], *, output: Output, env: Sequence[str] = (),
             workdir: str | None = None, user: str | None = None, tty: bool = False) -> int: ...
    def exec_detached(self, name: str, command: list[str], *, env: Sequence[str] = (), workdir: str | None = None,
                      user: str | None = None) -> str: ...
    def copy(self, source: str, destination: str, *, archive: bool = True, overwrite: bool = False) -> None: ...
    def files(self, name: str) -> ContainerFiles:
        """One container's files, for the file browser: list a folder, stat, download, upload, make, remove."""
        ...

    # ------------------------------------------------- checkpoint and restore
    def checkpoint(self, names: Sequence[str], *, all: bool = False, latest: bool = False,
                   **options: Any) -> list[rep.CheckpointReport]: ...
    def restore(self, names: Sequence[str], *, all: bool = False, latest: bool = False,
                **options: Any) -> list[rep.RestoreReport]: ...
    def restore_import(self, archive: str, name: str | None = None, *, publish: Sequence[str] | None = None,
                       **options: Any) -> ContainerRecord: ...

    # -------------------------------------------------------------- images
    def images(self) -> list[ImageRecord]: ...
    def pull(self, reference: str, *, tls_verify: bool = True) -> str: ...
    def remove_image(self, name: str, *, force: bool = False) -> list[str]:
        """``rmi``: podman's lines for it (``Untagged: NAME``, ``Deleted: ID``)."""
        ...
    def inspect_image(self, name: str) -> dict[str, Any]: ...
    def image_exists(self, name: str) -> bool: ...
    def tag(self, name: str, *targets: str) -> None: ...

    def exec_with_input(self, name: str, command: list[str], stdin: BinaryIO, *, output: Output,
                        env: Sequence[str] = (), workdir: str | None = None, user: str | None = None) -> int:
        """``exec -i`` without a terminal: ``stdin`` fed to the command until its end, the output streamed;
        the command's exit code."""
        ...

    # ------------------------------------------- a container's filesystem (docs/architecture.md §16)
    def diff(self, name: str | None, *, latest: bool = False) -> list[Change]:
        """``diff``: what the container changed in its root filesystem, by path."""
        ...
    def export(self, name: str, out: BinaryIO) -> None:
        """``export``: the container's root filesystem as a tar stream written to ``out``."""
        ...
    def commit(self, container: str, image: str | None = None, *, changes: Sequence[str] = (), message: str = "",
               author: str = "", pause: bool = True) -> str:
        """``commit``: the new image's ID."""
        ...
    def update(self, name: str, **resources: Any) -> str:
        """``update``: new resource limits (``Resources.updated``'s keywords); the container's ID."""
        ...
    def rename(self, name: str, new_name: str) -> None: ...
    def prune_containers(self, filters: Sequence[str] = ()) -> list[str]:
        """``container prune``: the IDs removed (a failure raised after the others were removed)."""
        ...
    def stat(self, name: str, path: str) -> dict[str, Any]:
        """``stat``: podman's ``FileInfo`` of a path in the container (a link resolved), as JSON."""
        ...
    def disk_usage(self) -> list[UsageRow]:
        """``system df``'s rows."""
        ...

    # ------------------------------------------------------------- volumes
    def volume_create(self, name: str | None, *, labels: Mapping[str, str] | None = None,
                      options: Mapping[str, str] | None = None, ignore: bool = False) -> str: ...
    def volumes(self, filters: Sequence[str] = ()) -> list[dict[str, Any]]:
        """``volume ls --filter KEY=VALUE``: each volume's inspect document."""
        ...
    def volume_inspect(self, name: str) -> dict[str, Any]: ...
    def volume_remove(self, name: str, *, force: bool = False) -> str: ...
    def volume_prune(self, filters: Sequence[str] = ()) -> list[str]: ...
    def volume_exists(self, name: str) -> bool: ...

    # ------------------------------------------------------ image archives
    def image_history(self, name: str) -> tuple[list[str], list[HistoryEntry]]:
        """``history``: the image's names and its steps, newest first."""
        ...
    def save_image(self, name: str, output: str, *, format: str = "docker-archive") -> None: ...
    def load_image(self, archive: str | BinaryIO, *, progress: Any = None) -> list[str]:
        """``load``: the names loaded (``sha256:ID`` for an image without one)."""
        ...
    def prune_images(self, *, all: bool = False, until: float | None = None, labels: Sequence[str] = (),
                     not_labels: Sequence[str] = ()) -> list[str]:
        """``image prune``: the IDs removed."""
        ...
    def untag(self, name: str, *names: str) -> None:
        """``untag``: the names taken off the image (all of them without ``names``)."""
        ...
    def import_image(self, tarball: str | BinaryIO, name: str | None = None, *,
                     cmd: Sequence[str] | None = None) -> str:
        """``import``: a root filesystem tarball as a new image; its ID."""
        ...
    def image_tree(self, name: str, *, whatrequires: bool = False) -> list[str]: ...
    def push(self, name: str, destination: str | None = None, *, tls_verify: bool = True,
             authfile: str | None = None, progress: Any = None) -> None: ...

    # ------------------------------------------------------------ the seam's edge
    def local(self, what: str) -> Runtime:
        """The local core, for what only it can do yet (a terminal, mounts, volumes); a remote engine raises
        :class:`EngineUnsupportedError` naming ``what``."""
        ...


def unsupported(engine: str, what: str, reason: str = "not supported by the remote engine yet") -> EngineUnsupportedError:
    """The one line a front end shows for what an engine cannot do: the engine, the command, the reason."""
    return EngineUnsupportedError(f"{what}: {reason} (engine {engine!r})")


def engine_for(connection: Connection | None = None, *, runtime: Runtime | None = None,
               open_runtime: Callable[[], Runtime] | None = None) -> Engine:
    """The engine a command line (or a notebook's configuration) asks for: the remote one when a connection
    was resolved (:func:`kernelext.connections.resolve`), else the local core (``runtime``, or the one
    ``open_runtime`` opens; closed with the engine only when it opened it)."""
    if connection is not None:
        from kernelext.domain.remote import RemoteEngine

        return RemoteEngine(connection)
    from kernelext.domain.local import LocalEngine

    if runtime is not None:
        return LocalEngine(runtime)
    assert open_runtime is not None, "a local engine needs a runtime"
    return LocalEngine(open_runtime(), owned=True)
