"""A container's checkpoint history (docs/architecture.md §4, "Checkpoint history").

Every checkpoint that can be restored (in place, ``--leave-running``, exported) becomes an *entry*: a
directory ``<root>/containers/<id>/checkpoints/<N>`` in podman's archive layout (``checkpoint/`` images,
``rootfs-diff.tar``, ``deleted.files``, ``stats-dump``, ``config.dump``, ``spec.dump``,
``kernelext.config.json``) plus ``entry.json``: its number, name, time, CRIU's figures, size and parent.

Rules:

* An entry is made in ``.N.partial`` and renamed into place last, so a killed checkpoint leaves no half
  entry (the next operation under the container's lock removes the leftover). Entries are never changed
  afterwards, so they are read without the lock.
* Entries share no file: deleting one frees its space and cannot damage another.
* The parent of an entry is the entry its process descends from: the last one taken or restored from in
  the same run (``HEAD.json``, tied to the run by its start time), possibly another container's (a
  branch). Numbers are never reused (``last`` keeps the highest given).

Internal operations: the caller holds the container's lock, except for the readers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernelext import faults
from kernelext.errors import InvalidArgumentError, NameInUseError, NoSuchCheckpointError
from kernelext.units import human_size

if TYPE_CHECKING:
    from kernelext.config import StoreConfig
    from kernelext.core.container import Container

HISTORY_DIR = "checkpoints"
ENTRY_FILE = "entry.json"
HEAD_FILE = "HEAD.json"
LAST_FILE = "last"
PARTIAL_SUFFIX = ".partial"
DELETING_SUFFIX = ".deleting"
#: Entry names: podman's name rule; all digits would be taken for a number.
NAME_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
ENTRY_MODE = 0o700
#: The CRIU figures the listings show (``--print-stats``' dump fields).
SHOWN_FIGURES = ("freezing_time", "frozen_time", "memdump_time", "memwrite_time", "pages_scanned",
                 "pages_written")


@dataclass(frozen=True)
class EntryRef:
    """An entry of some container's history (a parent may belong to another container: a branch)."""

    container_id: str
    number: int

    def to_json(self) -> dict[str, Any]:
        return {"container": self.container_id, "entry": self.number}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> EntryRef | None:
        return None if not data or "container" not in data else cls(str(data["container"]), int(data["entry"]))


@dataclass
class CheckpointEntry:
    """One checkpoint kept in a container's history."""

    container_id: str
    container_name: str
    number: int
    name: str
    created: float
    parent: EntryRef | None
    leave_running: bool
    export: str
    size: int
    runtime_duration: int  #: µs CRIU's dump took through runc
    criu_statistics: dict[str, int] = field(default_factory=dict)
    path: Path = Path()
    #: The container layer's files as they were (:func:`fingerprint`): a rollback to them is then free.
    files_fingerprint: str = ""

    @property
    def label(self) -> str:
        """How listings name it: its name, else its number."""
        return self.name or str(self.number)

    @property
    def ref(self) -> EntryRef:
        return EntryRef(self.container_id, self.number)

    def parent_label(self, container_names: dict[str, str] | None = None) -> str:
        """The parent's number, ``NAME:N`` when it is another container's entry (a branch)."""
        if self.parent is None:
            return ""
        if self.parent.container_id == self.container_id:
            return str(self.parent.number)
        other = (container_names or {}).get(self.parent.container_id, self.parent.container_id[:12])
        return f"{other}:{self.parent.number}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(parent=self.parent.to_json() if self.parent else None, path=str(self.path))
        return data

    def inspect(self) -> dict[str, Any]:
        """podman-style keys for ``--format``/json: ``{{.Entry}}``, ``{{.Name}}``, ``{{.Size}}``..."""
        stats = self.criu_statistics
        return {"Entry": self.number, "Name": self.name, "Container": self.container_id,
                "ContainerName": self.container_name, "Parent": self.parent_label(),
                "Created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.created)),
                "CreatedAt": self.created, "Size": self.size, "LeaveRunning": self.leave_running,
                "Export": self.export, "RuntimeDuration": self.runtime_duration,
                "FrozenTime": stats.get("frozen_time", 0), "PagesWritten": stats.get("pages_written", 0),
                "CriuStatistics": stats, "Path": str(self.path)}

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path) -> CheckpointEntry:
        return cls(container_id=data["container_id"], container_name=data["container_name"],
                   number=int(data["number"]), name=data.get("name", ""), created=float(data["created"]),
                   parent=EntryRef.from_json(data.get("parent")), leave_running=bool(data.get("leave_running")),
                   export=data.get("export", ""), size=int(data.get("size", 0)),
                   runtime_duration=int(data.get("runtime_duration", 0)),
                   criu_statistics={k: int(v) for k, v in data.get("criu_statistics", {}).items()}, path=path,
                   files_fingerprint=data.get("files_fingerprint", ""))

    def __repr__(self) -> str:
        return f"<CheckpointEntry {self.container_name}#{self.number}{' ' + self.name if self.name else ''}>"

    def __str__(self) -> str:
        stats = self.criu_statistics
        parent = f", parent {self.parent_label()}" if self.parent else ""
        return (f"checkpoint {self.number}{' (' + self.name + ')' if self.name else ''} of {self.container_name}"
                f"{parent}: {human_size(self.size)}, frozen {stats.get('frozen_time', 0) / 1000:.1f} ms, "
                f"{stats.get('pages_written', 0)} pages written, "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.created))}")

    @property
    def frozen_ms(self) -> float | None:
        """How long CRIU kept the processes frozen, in ms (None: CRIU did not say)."""
        frozen = self.criu_statistics.get("frozen_time")
        return None if frozen is None else frozen / 1000


# ------------------------------------------------------------------ reading
def history_dir(opts: StoreConfig, ctr_id: str) -> Path:
    """Beside the bundle in the container's directory: removed with the container."""
    return opts.userdata(ctr_id).parent / HISTORY_DIR


def read_entry(directory: Path) -> CheckpointEntry | None:
    try:
        return CheckpointEntry.from_json(json.loads((directory / ENTRY_FILE).read_text()), directory)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # deleted meanwhile (entries are renamed away before removal)


def entries(opts: StoreConfig, ctr_id: str) -> list[CheckpointEntry]:
    """The container's entries, oldest first (no lock: entries appear and go by renames)."""
    try:
        names = [n for n in os.listdir(history_dir(opts, ctr_id)) if n.isdigit()]
    except FileNotFoundError:
        return []
    found = (read_entry(history_dir(opts, ctr_id) / n) for n in sorted(names, key=int))
    return [e for e in found if e is not None]


def find(opts: StoreConfig, ctr_id: str, container_name: str, which: str | int) -> CheckpointEntry:
    """An entry by number or name."""
    key = str(which)
    for entry in entries(opts, ctr_id):
        if str(entry.number) == key or (entry.name and entry.name == key):
            return entry
    raise NoSuchCheckpointError(f"no checkpoint {key!r} in the history of container {container_name}",
                                container=container_name, operation="checkpoint")


def store_size(opts: StoreConfig) -> tuple[int, int]:
    """(entries, bytes) of every container's history in the store."""
    count = total = 0
    try:
        ids = os.listdir(opts.root / "containers")
    except FileNotFoundError:
        return 0, 0
    for ctr_id in ids:
        for entry in entries(opts, ctr_id):
            count += 1
            total += entry.size
    return count, total


def fingerprint(upper: Path) -> str:
    """A digest of every path, type, size, mtime and ctime under a container layer's own files: equal
    means nothing was written since (ctime cannot be set back from user space)."""
    digest = hashlib.sha256()
    for top, dirs, files in os.walk(upper):
        dirs.sort()
        for name in [".", *sorted(files), *dirs]:
            path = os.path.join(top, name)
            st = os.lstat(path)
            digest.update(f"{os.path.relpath(path, upper)}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0"
                          f"{st.st_ctime_ns}\n".encode(errors="surrogateescape"))
    return digest.hexdigest()


def disk_usage(path: Path) -> int:
    """Bytes allocated under ``path`` (du's figure: what deleting it frees)."""
    total = 0
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total + os.lstat(path).st_blocks * 512


# ------------------------------------------------------------------ writing
def check_name(ctr: Container, name: str | None) -> None:
    """Refuse a bad or taken entry name before anything is dumped."""
    if not name:
        return
    if not NAME_PATTERN.fullmatch(name) or name.isdigit():
        raise InvalidArgumentError(f"invalid checkpoint name {name!r}: it must match [a-zA-Z0-9][a-zA-Z0-9_.-]* "
                                   "and not be a number", container=ctr.name, operation="checkpoint")
    if any(e.name == name for e in entries(ctr._runtime.opts, ctr.id)):
        raise NameInUseError(f"the checkpoint name {name!r} is already in use in the history of {ctr.name}",
                             container=ctr.name, operation="checkpoint")


def discard_leftovers(ctr: Container) -> None:
    """Remove what a killed checkpoint or deletion left (the caller holds the lock: no one else writes)."""
    directory = history_dir(ctr._runtime.opts, ctr.id)
    if directory.is_dir():
        for name in os.listdir(directory):
            if name.endswith((PARTIAL_SUFFIX, DELETING_SUFFIX)):
                shutil.rmtree(directory / name, ignore_errors=True)


def _next_number(directory: Path) -> int:
    last = directory / LAST_FILE
    used = [int(n) for n in os.listdir(directory) if n.isdigit()]
    try:
        used.append(int(last.read_text()))
    except (OSError, ValueError):
        pass
    return max(used, default=0) + 1


def head(ctr: Container) -> EntryRef | None:
    """The entry the container's current run descends from (None after a fresh start)."""
    try:
        data = json.loads((history_dir(ctr._runtime.opts, ctr.id) / HEAD_FILE).read_text())
    except (OSError, ValueError):
        return None
    return EntryRef.from_json(data) if data.get("run") == ctr.state.started_at else None


def set_head(ctr: Container, ref: EntryRef | None) -> None:
    """Record that the current run descends from ``ref`` (written atomically)."""
    directory = history_dir(ctr._runtime.opts, ctr.id)
    directory.mkdir(mode=ENTRY_MODE, parents=True, exist_ok=True)
    tmp = directory / f".{HEAD_FILE}.tmp"
    tmp.write_text(json.dumps({**(ref.to_json() if ref else {}), "run": ctr.state.started_at}))
    os.replace(tmp, directory / HEAD_FILE)


def record(ctr: Container, fill: Callable[[Path], None], undo: Callable[[Path], None], *, name: str | None,
           leave_running: bool, export: Path | None, runtime_duration: int,
           criu_statistics: dict[str, int], files_fingerprint: str = "") -> CheckpointEntry:
    """Make entry N: ``fill(staging)`` writes its files (images last), then the entry appears by a rename;
    on failure ``undo(staging)`` takes back what ``fill`` moved in, and the staging directory goes."""
    directory = history_dir(ctr._runtime.opts, ctr.id)
    directory.mkdir(mode=ENTRY_MODE, parents=True, exist_ok=True)
    discard_leftovers(ctr)
    number = _next_number(directory)
    staging = directory / f".{number}{PARTIAL_SUFFIX}"
    staging.mkdir(mode=ENTRY_MODE)
    try:
        fill(staging)
        entry = CheckpointEntry(container_id=ctr.id, container_name=ctr.name, number=number, name=name or "",
                                created=time.time(), parent=head(ctr), leave_running=leave_running,
                                export=str(export or ""), size=0, runtime_duration=runtime_duration,
                                criu_statistics=criu_statistics, path=directory / str(number),
                                files_fingerprint=files_fingerprint)
        entry.size = disk_usage(staging)
        (staging / ENTRY_FILE).write_text(json.dumps(entry.to_json()))
        (directory / LAST_FILE).write_text(str(number))
        faults.point("checkpoint:entry-staged")
        os.rename(staging, entry.path)
    except BaseException:
        undo(staging)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    set_head(ctr, entry.ref)
    return entry


def remove(ctr: Container, entry: CheckpointEntry) -> None:
    """Delete an entry and free its space now (renamed away first: readers never see half an entry)."""
    doomed = entry.path.with_name(f".{entry.number}{DELETING_SUFFIX}")
    os.rename(entry.path, doomed)
    shutil.rmtree(doomed)
