"""Checkpoint and restore with CRIU through runc (docs/architecture.md §4).

Internal operations: they take a :class:`Container` whose lock the caller
holds (the public methods on ``Container`` and ``Runtime`` do that), and
never lock themselves.

* :func:`checkpoint`: ``runc checkpoint`` (CRIU dump) of a running container,
  then, unless it keeps running, the same clean-up as after an exit; with
  ``export`` an archive in podman's layout.
* :func:`restore`: ``runc restore`` under a fresh conmon (``conmon --restore``),
  so the log and the attach socket keep working, from the local checkpoint
  or an imported archive (whose container-layer changes are applied first).
* :func:`import_archive`: re-create the container of an archive (same ID, or a
  new one with ``name``) in state ``created``, ready for :func:`restore`.

Whatever fails leaves the container as it was: a failed checkpoint leaves it
running (thawed if CRIU died with it frozen), a failed restore leaves no
runc container, conmon or mount behind.
"""

from __future__ import annotations

import enum
import grp
import json
import logging
import os
import pwd
import re
import shutil
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernelext import faults
from kernelext.config import find_criu
from kernelext.core import history, libpod, podmanconf, ports
from kernelext.core.mounts import MountType
from kernelext.core.state import ContainerConfig, ContainerStatus, Intent, NetworkMode
from kernelext.errors import (
    ContainerStateError,
    InvalidArgumentError,
    KernelextError,
    NameInUseError,
    PermissionRequiredError,
    RuntimeFailure,
    tool_reason,
)
from kernelext.files.fdtree import remove_tree
from kernelext.files.whole import whole_path
from kernelext.oci import netns
from kernelext.oci import runtime as oci
from kernelext.oci.spec import SHM
from kernelext.rootless import is_rootless
from kernelext.storage.images import Image, PullPolicy
from kernelext.storage.layerdiff import ChangeKind
from kernelext.storage.volumes import Volume

if TYPE_CHECKING:
    from kernelext.core.container import Container
    from kernelext.core.runtime import Runtime

S = ContainerStatus
log = logging.getLogger("kernelext")

# The archive's (and the bundle's) entries, podman's names.
CONFIG_DUMP = "config.dump"
SPEC_DUMP = "spec.dump"
CHECKPOINT_DIR = "checkpoint"
PRE_CHECKPOINT_DIR = "pre-checkpoint"
ARTIFACTS_DIR = "artifacts"
LOG_FILE = "ctr.log"
ROOTFS_DIFF = "rootfs-diff.tar"
DELETED_FILES = "deleted.files"
#: podman's directory of one ``<volume>.tar`` per volume the container mounts.
VOLUMES_DIR = "volumes"
NETWORK_STATUS = "network.status"
STATS_DUMP = "stats-dump"
#: podman's /dev/shm content (its /dev/shm is a bind of a tmpfs beside the container, which CRIU leaves out).
DEVSHM_TAR = "devshm-checkpoint.tar"
#: podman's /dev/shm directory in the bundle, and its mode (/dev/shm's).
SHM_DIR = "shm"
SHM_MODE = 0o1777
#: kernelext's own configuration, in full (podman reads only config.dump and ignores this file).
KERNELEXT_CONFIG = "kernelext.config.json"
STATS_RESTORE = "stats-restore"
#: The layer's changes read while the dumped processes were still frozen, until the entry takes them.
FILES_AT_DUMP = ".files-at-dump"
DUMP_LOG = "dump.log"
RESTORE_LOG = "restore.log"
# runc's per-container CRIU configuration file (its annotation) and the file runc reads without one.
CRIU_CONFIG_ANNOTATION = "org.criu.config"
RUNC_CRIU_CONFIG = Path("/etc/criu/runc.conf")
CRIU_RESTORE_CONFIG = "criu-restore.conf"
INVENTORY = "inventory.img"
#: CRIU resolves a parent image directory relative to the image directory.
PARENT_PATH = f"../{PRE_CHECKPOINT_DIR}"

#: CRIU logs this on every run here (root lacks CAP_SYS_RESOURCE); it is not the cause of a failure.
BENIGN_CRIU_ERRORS = ("Can't setup RLIMIT_NOFILE for self",)
NO_MEMORY_TRACKING = "system (architecture/kernel/CRIU) does not support memory tracking"
#: How long conmon may take to notice that CRIU's dump ended the container.
CONMON_EXIT_TIMEOUT_S = 5.0
ARCHIVE_MODE = 0o600
_US = 1_000_000


class Compression(enum.Enum):
    """Archive compression (podman's ``--compress``)."""

    ZSTD = "zstd"
    GZIP = "gzip"
    NONE = "none"

    @classmethod
    def parse(cls, value: Compression | str) -> Compression:
        try:
            return value if isinstance(value, Compression) else cls(value.lower())
        except ValueError:
            raise InvalidArgumentError(f"selected compression algorithm ({value!r}) not supported. "
                                       "Please select one from: gzip, none, zstd") from None

    @property
    def tar_flags(self) -> list[str]:
        return {Compression.ZSTD: ["--zstd"], Compression.GZIP: ["--gzip"], Compression.NONE: []}[self]


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"


def _compression_of(archive: Path) -> Compression:
    with open(archive, "rb") as f:
        head = f.read(4)
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    if head.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    return Compression.NONE


# ------------------------------------------------------------------- options
@dataclass(frozen=True)
class CheckpointOptions:
    """podman's ``ContainerCheckpointOptions`` as used by a checkpoint."""

    keep: bool = False
    leave_running: bool = False
    tcp_established: bool = False
    file_locks: bool = False
    export: Path | None = None
    ignore_rootfs: bool = False
    ignore_volumes: bool = False
    pre_checkpoint: bool = False
    with_previous: bool = False
    compress: Compression = Compression.ZSTD
    print_stats: bool = False
    #: The history entry's name (``--name``; docs/architecture.md §4, "Checkpoint history").
    name: str | None = None

    @classmethod
    def build(cls, *, export: str | os.PathLike[str] | None = None, compress: Compression | str | None = None,
              name: str | None = None, **flags: bool) -> CheckpointOptions:
        """Validate as podman's CLI does; ``compress`` given means it was asked for."""
        if is_rootless():
            raise PermissionRequiredError("checkpointing a container requires root", operation="checkpoint")
        if export is None:
            for option, given in (("--compress", compress is not None), ("--ignore-rootfs", flags.get("ignore_rootfs")),
                                  ("--ignore-volumes", flags.get("ignore_volumes"))):
                if given:
                    raise InvalidArgumentError(f"{option} can only be used with --export", operation="checkpoint")
        if flags.get("with_previous") and flags.get("pre_checkpoint"):
            raise InvalidArgumentError("--with-previous can not be used with --pre-checkpoint", operation="checkpoint")
        if name and flags.get("pre_checkpoint"):
            raise InvalidArgumentError("--name can not be used with --pre-checkpoint: a pre-checkpoint is no "
                                       "history entry", operation="checkpoint")
        return cls(export=None if export is None else Path(export).absolute(),
                   compress=Compression.parse(compress or Compression.ZSTD), name=name or None, **flags)

    @property
    def image_dir(self) -> str:
        return PRE_CHECKPOINT_DIR if self.pre_checkpoint else CHECKPOINT_DIR

    @property
    def stops_container(self) -> bool:
        return not (self.leave_running or self.pre_checkpoint)


@dataclass(frozen=True)
class RestoreOptions:
    """podman's ``ContainerCheckpointOptions`` as used by a restore."""

    keep: bool = False
    tcp_established: bool = False
    tcp_close: bool = False
    file_locks: bool = False
    import_: Path | None = None
    ignore_rootfs: bool = False
    ignore_volumes: bool = False
    import_previous: Path | None = None
    print_stats: bool = False
    #: A history entry (a directory in the archive's layout) restored from where it is, never consumed.
    entry: Path | None = None
    #: Roll the container's file system back to the entry's (an in-place ``--from``).
    rollback: bool = False

    @classmethod
    def build(cls, *, import_: str | os.PathLike[str] | None = None,
              import_previous: str | os.PathLike[str] | None = None, name: str | None = None,
              from_: str | int | None = None, **flags: bool) -> RestoreOptions:
        if is_rootless():
            raise PermissionRequiredError("restoring a container requires root", operation="restore")
        if from_ is not None and (import_ is not None or import_previous is not None):
            raise InvalidArgumentError("--from cannot be used with --import or --import-previous", operation="restore")
        if import_ is None and from_ is None:
            for option, given in (("--import-previous", import_previous is not None),
                                  ("--ignore-rootfs", flags.get("ignore_rootfs")),
                                  ("--ignore-volumes", flags.get("ignore_volumes")), ("--name", name is not None)):
                if given:
                    raise InvalidArgumentError(f"{option} can only be used with image or --import",
                                               operation="restore")
        if name is not None and flags.get("tcp_established"):
            raise InvalidArgumentError("--tcp-established cannot be used with --name", operation="restore")
        return cls(import_=None if import_ is None else Path(import_).absolute(),
                   import_previous=None if import_previous is None else Path(import_previous).absolute(),
                   **flags)  # type: ignore[arg-type]  # the boolean flags only: ``entry`` is set by its callers


# ---------------------------------------------------------------- statistics
@dataclass
class Statistics:
    """Durations (µs) and CRIU's own counters of one checkpoint or restore."""

    container_id: str
    operation: str
    total_duration: int = 0
    runtime_duration: int = 0
    criu_statistics: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"Id": self.container_id, f"{self.operation}_duration": self.total_duration,
                f"runtime_{self.operation}_duration": self.runtime_duration, "criu_statistics": self.criu_statistics}


# CRIU's stats.proto: field numbers of StatsEntry.dump and StatsEntry.restore.
_DUMP_FIELDS = {1: "freezing_time", 2: "frozen_time", 3: "memdump_time", 4: "memwrite_time", 5: "pages_scanned",
                6: "pages_skipped_parent", 7: "pages_written", 8: "irmap_resolve", 9: "pages_lazy",
                10: "page_pipes", 11: "page_pipe_bufs", 12: "shpages_scanned", 13: "shpages_skipped_parent",
                14: "shpages_written"}
_RESTORE_FIELDS = {1: "pages_compared", 2: "pages_skipped_cow", 3: "forking_time", 4: "restore_time",
                   5: "pages_restored"}
#: A CRIU service image starts with two 32-bit magics, then a 32-bit length and the protobuf entry.
_IMAGE_HEADER = struct.Struct("<III")
_WIRE_VARINT, _WIRE_64BIT, _WIRE_LEN, _WIRE_32BIT = 0, 1, 2, 5


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _protobuf_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _WIRE_VARINT:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == _WIRE_LEN:
            size, pos = _varint(data, pos)
            yield number, data[pos:pos + size]
            pos += size
        elif wire in (_WIRE_64BIT, _WIRE_32BIT):
            pos += 8 if wire == _WIRE_64BIT else 4
        else:
            return


def read_criu_stats(path: Path) -> dict[str, int]:
    """CRIU's ``stats-dump`` / ``stats-restore`` as a flat dict (empty if absent or unreadable)."""
    try:
        data = path.read_bytes()
        _, _, size = _IMAGE_HEADER.unpack_from(data)
        entry = data[_IMAGE_HEADER.size:_IMAGE_HEADER.size + size]
        result: dict[str, int] = {}
        for number, value in _protobuf_fields(entry):
            names = {1: _DUMP_FIELDS, 2: _RESTORE_FIELDS}.get(number)
            if names is not None and isinstance(value, bytes):
                result.update({names[n]: v for n, v in _protobuf_fields(value) if n in names and isinstance(v, int)})
        return result
    except (OSError, struct.error, IndexError):
        return {}


# ------------------------------------------------------------------ helpers
def criu_binary(ctr: Container) -> str:
    binary = find_criu(ctr._runtime.opts.criu)
    if binary is None:
        raise RuntimeFailure("criu not found: run scripts/setup.sh, set KERNELEXT_CRIU or pass --criu",
                             container=ctr.name, operation="checkpoint")
    return binary




def criu_failure(ctr: Container, operation: str, runtime_message: str, default_log: Path) -> RuntimeFailure:
    """One line: CRIU's first real error and where its log is, or runc's own message."""
    match = re.search(r"log file: (\S+?)(?:\\n|\"|$)", runtime_message, re.MULTILINE)
    log_path = Path(match.group(1)) if match else default_log
    first_error = None
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                if "Error (" in line and not any(b in line for b in BENIGN_CRIU_ERRORS):
                    first_error = re.sub(r"^\([\d.]+\)\s*(\d+:\s*)?", "", line.strip())
                    break
    except OSError:
        pass
    if first_error is None:
        text = runtime_message.strip().splitlines()[-1] if runtime_message.strip() else "unknown error"
        text = re.sub(r'^time="[^"]*" level=\w+ msg="(.*)"$', r"\1", text).replace("\\n", " ")
        return RuntimeFailure(f"{operation} of container {ctr.name} failed: {text}", container=ctr.name,
                              operation=operation)
    return RuntimeFailure(f"{operation} of container {ctr.name} failed: CRIU: {first_error} (log: {log_path})",
                          container=ctr.name, operation=operation)


def _in_root(root: Path, work: Callable[[], None]) -> None:
    """Run ``work`` in a child process chrooted into ``root``.

    Every path, absolute symlinks and ``..`` included, then resolves inside
    the container's tree, never on the host (podman's chrootarchive).
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_fd)
        status = 0
        try:
            # Load the host's NSS configuration first: glibc never reloads it after a chroot,
            # so user and group lookups cannot load libraries from the container.
            pwd.getpwuid(0)
            grp.getgrgid(0)
            os.chroot(root)
            os.chdir("/")
            work()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_fd, f"{exc}".encode(errors="replace")[:4096])
            status = 1
        os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        message = reader.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeFailure(message or f"worker exited with status {status}")


def _layer_changes(ctr: Container) -> tuple[list[str], list[str]]:
    """podman's split of ``diff``: (added paths and modified non-directories, deleted paths)."""
    layer = ctr.layer
    changes = layer.changes()
    changed = [c.path for c in changes if c.kind is ChangeKind.ADDED or
               (c.kind is ChangeKind.CHANGED and not (layer.upper / c.path.lstrip("/")).is_dir())]
    return changed, [c.path for c in changes if c.kind is ChangeKind.DELETED]


def _write_rootfs_diff(ctr: Container, bundle: Path) -> None:
    """``rootfs-diff.tar`` (added and modified files) and ``deleted.files`` from the overlay upper dir."""
    changed, deleted = _layer_changes(ctr)
    (bundle / DELETED_FILES).write_text(json.dumps(deleted))
    if not changed:
        return
    with open(bundle / ROOTFS_DIFF, "wb") as out:
        def add() -> None:
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for path in changed:
                    tar.add(path, arcname=path.lstrip("/"), recursive=False)
            out.flush()  # the worker leaves with os._exit, which flushes nothing
        _in_root(ctr.layer.upper, add)


#: Unpacked inside the container's root (a chroot): nothing can land outside it. "fully_trusted" is what a
#: Python without extraction filters (before 3.11.4) does; later ones warn when it is not said.
_TRUSTED: dict[str, Any] = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


def _apply_rootfs_diff(ctr: Container, bundle: Path, rootfs: Path) -> None:
    """Remove what the container had deleted, then unpack what it had written (inside the container root)."""
    deleted_file, diff = bundle / DELETED_FILES, bundle / ROOTFS_DIFF
    deleted: list[str] = json.loads(deleted_file.read_text()) if deleted_file.exists() else []
    if deleted or diff.exists():
        _unpack_into(ctr, diff if diff.exists() else None, rootfs, "the root file system changes", deleted)


def _remove(*paths: Path) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _in_prepared_netns(ctr: Container, pid: int) -> bool:
    """Whether the restored process runs in the namespace kernelext prepared (the host's counts too)."""
    return ctr.netns_path is None or netns.holds(ctr.netns_path, pid)


def _tar(args: list[str], what: str, ctr: Container, operation: str) -> None:
    proc = subprocess.run(["tar", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeFailure(f"{what}: {tool_reason(proc.stderr, 'tar failed')}", container=ctr.name,
                             operation=operation)


def _volume_names(ctr: Container) -> list[str]:
    return [m.source for m in ctr.config.mounts if m.type is MountType.VOLUME]


def _write_volumes(ctr: Container, bundle: Path) -> None:
    """``volumes/<name>.tar`` for each volume the container mounts (podman's export layout)."""
    directory = bundle / VOLUMES_DIR
    _remove(directory)
    directory.mkdir(mode=0o700)
    for name in _volume_names(ctr):
        _tar(["--create", "--numeric-owner", "--xattrs", "-f", str(directory / f"{name}.tar"),
              "-C", str(ctr._runtime.volumes.path(name)), "."], f"exporting volume {name}", ctr, "checkpoint")


def _unpack_into(ctr: Container, archive: Path | None, directory: Path, what: str,
                 deleted: list[str] | None = None) -> None:
    """Remove the ``deleted`` paths, then unpack ``archive``, inside ``directory`` (a chroot: a hostile
    archive cannot reach outside it)."""
    source = open(archive, "rb") if archive is not None else None

    def apply() -> None:
        for path in deleted or []:
            remove_tree("/" + path.lstrip("/"), ignore_errors=True)
        if source is not None:
            with tarfile.open(fileobj=source, mode="r") as tar:
                tar.extractall("/", numeric_owner=True, **_TRUSTED)
    try:
        _in_root(directory, apply)
    except RuntimeFailure as exc:
        raise RuntimeFailure(f"restoring {what} of {ctr.name}: {exc}", container=ctr.name,
                             operation="restore") from None
    finally:
        if source is not None:
            source.close()


def _restore_volumes(ctr: Container, bundle: Path) -> None:
    """Unpack an imported archive's volumes into this store's volumes."""
    for name in _volume_names(ctr):
        archive = bundle / VOLUMES_DIR / f"{name}.tar"
        if archive.exists():
            _unpack_into(ctr, archive, ctr._runtime.volumes.path(name), f"volume {name}")


def _shm_bind(ctr: Container) -> bool:
    """Whether the container's /dev/shm is a directory in its bundle, as podman's is (an imported one)."""
    return any(m.type is MountType.BIND and m.destination == SHM and m.source == str(ctr.bundle / SHM_DIR)
               for m in ctr.config.mounts)


def _restore_devshm(ctr: Container, source: Path) -> None:
    """An imported archive's (or a history entry's) /dev/shm content into the container's /dev/shm directory."""
    archive = source / DEVSHM_TAR
    if archive.exists() and _shm_bind(ctr):
        _unpack_into(ctr, archive, ctr.bundle / SHM_DIR, SHM)


def _reset_layer(ctr: Container) -> None:
    """Back to the image's files, before an entry's changes are applied (an in-place ``restore --from``)."""
    if ctr.state.user_mounts:
        raise ContainerStateError(f"container {ctr.name}'s root file system is mounted by the user (mount): "
                                  "unmount it before rolling it back", container=ctr.name, operation="restore")
    ctr.layer.unmount()
    ctr.state.runtime_mounted = False
    ctr.layer.remove()
    ctr.layer.create()


# ---------------------------------------------------------------- checkpoint
def _write_config_dumps(ctr: Container, directory: Path) -> None:
    """``config.dump``, ``spec.dump``, ``kernelext.config.json`` and ``network.status`` into ``directory``."""
    # podman's restore reads libpod's ContainerConfig and the spec; kernelext reads its own config first.
    (directory / CONFIG_DUMP).write_text(json.dumps(libpod.to_config_dump(ctr.config)))
    # A /dev/shm beside the container is beside the imported one too: its path is the import's to fill in.
    own = replace(ctr.config, mounts=[replace(m, source="") if _shm_bind(ctr) and m.destination == SHM else m
                                      for m in ctr.config.mounts])
    (directory / KERNELEXT_CONFIG).write_text(json.dumps(own.to_json()))
    spec = json.loads((ctr.bundle / "config.json").read_text())
    (directory / SPEC_DUMP).write_text(json.dumps(libpod.to_spec_dump(spec, ctr.config, podmanconf.volume_source)))
    (directory / NETWORK_STATUS).write_text(json.dumps({}))  # network "none"/"host": no addresses to keep


def _files_at_dump(ctr: Container) -> str:
    """The layer's changes as the dump saw them (``rootfs-diff.tar``, ``deleted.files``) set aside in the
    bundle, and their fingerprint (docs/architecture.md §4, "Checkpoint history")."""
    snapshot = ctr.bundle / FILES_AT_DUMP
    _remove(snapshot)
    snapshot.mkdir(mode=0o700)
    files = history.fingerprint(ctr.layer.upper)
    _write_rootfs_diff(ctr, snapshot)
    return files


def _place_files_at_dump(ctr: Container, directory: Path, *, link: bool) -> bool:
    """The set-aside changes into ``directory`` (hard links, or moved); False when none were set aside."""
    snapshot = ctr.bundle / FILES_AT_DUMP
    if not (snapshot / DELETED_FILES).exists():
        return False
    for name in (ROOTFS_DIFF, DELETED_FILES):
        if (snapshot / name).exists():
            (os.link if link else os.rename)(snapshot / name, directory / name)
    return True


def _record_entry(ctr: Container, options: CheckpointOptions, runtime_duration: int,
                  criu_statistics: dict[str, int], files: str) -> history.CheckpointEntry:
    """The checkpoint as a history entry: the bundle's images moved into it (copied with ``--keep``, which
    keeps them in the bundle too), with podman's archive files beside them."""
    bundle = ctr.bundle

    def fill(entry: Path) -> None:
        _write_config_dumps(ctr, entry)
        _place_files_at_dump(ctr, entry, link=False)
        if _shm_bind(ctr):
            _tar(["--create", "--numeric-owner", "--xattrs", "-f", str(entry / DEVSHM_TAR), "-C",
                  str(bundle / SHM_DIR), "."], "keeping /dev/shm", ctr, "checkpoint")
        for kept in (STATS_DUMP, DUMP_LOG):
            if (bundle / kept).exists():
                shutil.copyfile(bundle / kept, entry / kept)
        if options.keep:
            subprocess.run(["cp", "-a", "--reflink=auto", str(bundle / CHECKPOINT_DIR), str(entry)], check=True,
                           stdin=subprocess.DEVNULL, capture_output=True)
        else:
            os.rename(bundle / CHECKPOINT_DIR, entry / CHECKPOINT_DIR)  # the same file system: no copy

    def undo(entry: Path) -> None:
        # A failed entry gives the images back to the bundle: the container stays restorable as before.
        if (entry / CHECKPOINT_DIR).exists() and not (bundle / CHECKPOINT_DIR).exists():
            os.rename(entry / CHECKPOINT_DIR, bundle / CHECKPOINT_DIR)

    return history.record(ctr, fill, undo, name=options.name, leave_running=options.leave_running,
                          export=options.export, runtime_duration=runtime_duration, criu_statistics=criu_statistics,
                          files_fingerprint=files)


def _export(ctr: Container, options: CheckpointOptions) -> None:
    """Write podman's archive layout from the bundle to ``options.export``."""
    assert options.export is not None
    bundle = ctr.bundle
    _write_config_dumps(ctr, bundle)
    if not options.ignore_rootfs and not _place_files_at_dump(ctr, bundle, link=True):
        _write_rootfs_diff(ctr, bundle)
    members = [CONFIG_DUMP, SPEC_DUMP, KERNELEXT_CONFIG, options.image_dir, NETWORK_STATUS]
    if _shm_bind(ctr):  # CRIU leaves a bind mount's content out
        _tar(["--create", "--numeric-owner", "--xattrs", "-f", str(bundle / DEVSHM_TAR), "-C", str(bundle / SHM_DIR),
              "."], "exporting /dev/shm", ctr, "checkpoint")
        members.append(DEVSHM_TAR)
    if not options.ignore_volumes and _volume_names(ctr):
        _write_volumes(ctr, bundle)
        members.append(VOLUMES_DIR)
    members += [m for m in (ARTIFACTS_DIR, LOG_FILE, STATS_DUMP, ROOTFS_DIFF, DELETED_FILES) if (bundle / m).exists()]
    if options.with_previous:
        members.append(PRE_CHECKPOINT_DIR)
    try:
        with whole_path(options.export) as partial:
            if partial != Path(options.export):
                os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, ARCHIVE_MODE))
            _tar(["--create", "--numeric-owner", "--xattrs", *options.compress.tar_flags, "-f", str(partial),
                  "-C", str(bundle), *members], f"exporting the checkpoint to {options.export}", ctr, "checkpoint")
    finally:
        _remove(bundle / ROOTFS_DIFF, bundle / DELETED_FILES, bundle / VOLUMES_DIR, bundle / DEVSHM_TAR)


def _thaw_if_frozen(ctr: Container) -> None:
    """CRIU freezes the container's cgroup; if it died meanwhile the container would stay frozen."""
    state = ctr._runtime.oci.container_state(ctr.id)
    if state is not None and state.get("status") == "paused" and ctr.state.status is S.RUNNING:
        ctr._runtime.oci.unpause_container(ctr.id, name=ctr.name)


def checkpoint(ctr: Container, options: CheckpointOptions) -> tuple[Statistics, history.CheckpointEntry | None]:
    """Dump the running container with CRIU (the caller holds the lock); the history entry it made (none
    for a pre-checkpoint)."""
    started = time.monotonic()
    st = ctr.state
    if st.status is not S.RUNNING:
        raise ContainerStateError(f'"{st.status.value}" is not running, cannot checkpoint: container state improper',
                                  container=ctr.name, operation="checkpoint")
    if ctr.config.auto_remove and options.export is None:
        raise InvalidArgumentError("cannot checkpoint containers that have been started with '--rm' unless "
                                   "'--export' is used", container=ctr.name, operation="checkpoint")
    criu = criu_binary(ctr)
    history.check_name(ctr, options.name)
    _reclaim_staged_images(ctr)
    history.discard_leftovers(ctr)
    if (options.pre_checkpoint or options.with_previous) and not ctr._runtime.oci.supports_memory_tracking(criu):
        raise RuntimeFailure(NO_MEMORY_TRACKING, container=ctr.name, operation="checkpoint")
    bundle = ctr.bundle
    if options.with_previous and not (bundle / PRE_CHECKPOINT_DIR / INVENTORY).exists():
        raise InvalidArgumentError(f"container {ctr.name} has no pre-checkpoint to use with --with-previous",
                                   container=ctr.name, operation="checkpoint")
    image_dir = bundle / options.image_dir
    _remove(image_dir, bundle / STATS_DUMP, bundle / DUMP_LOG)
    image_dir.mkdir(mode=0o700)
    dump = oci.CheckpointOptions(criu=criu, image_dir=image_dir, work_dir=bundle,
                                 leave_running=options.leave_running, tcp_established=options.tcp_established,
                                 file_locks=options.file_locks, pre_dump=options.pre_checkpoint,
                                 parent_path=PARENT_PATH if options.with_previous else None)
    ctr._begin(Intent.CHECKPOINT)
    # Left running, the processes stay frozen until their files are read too: an entry's files and
    # memory are of one moment (CRIU keeps a frozen cgroup frozen; a failed dump thaws it below).
    freeze = options.leave_running and not options.pre_checkpoint
    if freeze:
        ctr._runtime.oci.pause_container(ctr.id, name=ctr.name)
    runtime_started = time.monotonic()
    try:
        ctr._runtime.oci.checkpoint_container(ctr.id, dump, name=ctr.name)
        dump_error = None
    except RuntimeFailure as exc:
        dump_error = exc.message
    runtime_duration = time.monotonic() - runtime_started
    if dump_error is not None:
        failure = criu_failure(ctr, "checkpoint", dump_error, bundle / DUMP_LOG)
        _remove(image_dir)
        try:
            _thaw_if_frozen(ctr)
        except KernelextError:
            pass  # the failure above is what the caller needs to see
        raise failure
    if options.with_previous:
        # CRIU may store the parent link as an absolute path; a relative one survives export and moves.
        parent = image_dir / "parent"
        parent.unlink(missing_ok=True)
        parent.symlink_to(PARENT_PATH)
    faults.point("checkpoint:dumped")
    if options.stops_container:
        finish_stopped(ctr)
    stats = Statistics(ctr.id, "checkpoint", runtime_duration=int(runtime_duration * _US),
                       criu_statistics=read_criu_stats(bundle / STATS_DUMP))
    entry: history.CheckpointEntry | None = None
    try:
        files = ""
        if not options.pre_checkpoint:
            try:
                files = _files_at_dump(ctr)
            finally:
                if freeze:
                    ctr._runtime.oci.unpause_container(ctr.id, name=ctr.name)
        if options.export is not None:
            _export(ctr, options)
        if not options.pre_checkpoint:
            entry = _record_entry(ctr, options, stats.runtime_duration, stats.criu_statistics, files)
    finally:
        _remove(bundle / FILES_AT_DUMP)
        if not options.keep:
            _remove(bundle / DUMP_LOG, bundle / STATS_DUMP, bundle / CONFIG_DUMP, bundle / SPEC_DUMP,
                    bundle / KERNELEXT_CONFIG, bundle / NETWORK_STATUS)
        ctr.state.done()
        ctr._save()
        # The event records what a timeline of this container's checkpoints shows; ``entry``: its history entry.
        ctr._event("checkpoint", export=options.export or "", runtimeDuration=stats.runtime_duration,
                   pagesWritten=stats.criu_statistics.get("pages_written", ""),
                   leaveRunning=options.leave_running, preCheckpoint=options.pre_checkpoint,
                   entry=entry.number if entry else "", entryName=entry.name if entry else "")
    stats.total_duration = int((time.monotonic() - started) * _US)
    return stats, entry


def has_checkpoint(ctr: Container) -> bool:
    """Whether a complete local checkpoint of the container exists (CRIU writes its inventory last); the
    images of a checkpoint killed while its history entry was staged count (they go back to the bundle)."""
    _reclaim_staged_images(ctr)
    return (ctr.bundle / CHECKPOINT_DIR / INVENTORY).exists()


def _reclaim_staged_images(ctr: Container) -> None:
    """Give a killed checkpoint's images, moved into a ``.N.partial`` entry, back to the bundle: the
    dump happened, only the entry did not (the caller holds the lock)."""
    target = ctr.bundle / CHECKPOINT_DIR
    for staged in history.history_dir(ctr._runtime.opts, ctr.id).glob(f".*{history.PARTIAL_SUFFIX}"):
        if (staged / CHECKPOINT_DIR / INVENTORY).exists() and not target.exists():
            os.rename(staged / CHECKPOINT_DIR, target)


def finish_stopped(ctr: Container) -> None:
    """After a dump that ended the container: as after an exit, but ``Checkpointed`` (libpod's order)."""
    ctr._wait_for_exit_file(CONMON_EXIT_TIMEOUT_S)
    st = ctr.state
    now = time.time()
    st.status = S.STOPPED
    st.pid = 0
    st.checkpointed = True
    st.checkpointed_at = now
    st.restored = False
    st.restored_at = 0.0
    st.finished_at = now
    ctr._teardown_network()
    # runc removes its container after a dump that did not leave it running: skip a needless `runc delete`.
    if ctr._runtime.oci.has_container(ctr.id):
        ctr._runtime.oci.delete_container(ctr.id)
    ctr.config.cgroups.release(ctr.id)
    ctr._remove_netns()  # the restore joins a fresh one (CRIU dumped it as external)
    st.status = S.EXITED
    # The container layer stays mounted for the restore (removal or cleanup unmounts it): unmounting
    # overlayfs syncs its upper file system, which would write the just-dumped images to disk right
    # here (~0.3 s per 200 MB on these machines).
    ctr._save()
    ctr._event("cleanup")


# ------------------------------------------------------------------- restore
def _untar_into_bundle(ctr: Container, archive: Path, *, exclude: tuple[str, ...] = ()) -> None:
    compression = _compression_of(archive)
    _tar(["--extract", "--numeric-owner", "--xattrs", *compression.tar_flags, "-f", str(archive),
          "-C", str(ctr.bundle), *(f"--exclude={m}" for m in exclude)],
         f"importing {archive}", ctr, "restore")


def _pin_restore_cgroup(ctr: Container) -> None:
    """Name the container's own cgroup to CRIU (``cgroup-root``) where runc does not (cgroup v2, runc < 1.2),
    through runc's per-container CRIU configuration file: else CRIU restores the tasks into the cgroup in the
    images, the checkpointed container's, and a restore under a new name runs outside its own (systemd
    then removes the empty scope and the next checkpoint finds no freezer). docs/architecture.md §15."""
    root = ctr.config.cgroups.restore_root(ctr.id)
    if root is None:
        return
    config = ctr.bundle / CRIU_RESTORE_CONFIG
    spec_path = ctr.bundle / "config.json"
    document = json.loads(spec_path.read_text())
    annotations = document.setdefault("annotations", {})
    # The annotation replaces the file runc would give CRIU (the user's own, or runc's default): keep its lines.
    given = annotations.get(CRIU_CONFIG_ANNOTATION)
    source = RUNC_CRIU_CONFIG if given in (None, str(config)) else Path(given) if given else None  # "": none
    base = source.read_text() if source is not None and source.is_file() else ""
    config.write_text("".join(f"{line}\n" for line in (*base.splitlines(), f"cgroup-root={root}") if line))
    if annotations.get(CRIU_CONFIG_ANNOTATION) != str(config):
        annotations[CRIU_CONFIG_ANNOTATION] = str(config)
        spec_path.write_text(json.dumps(document))


def restore(ctr: Container, options: RestoreOptions) -> Statistics:
    """Restore the checkpointed container under a new conmon (the caller holds the lock)."""
    started = time.monotonic()
    st = ctr.state
    if st.status not in (S.CONFIGURED, S.EXITED):
        raise ContainerStateError(f"container {ctr.id} is running or paused, cannot restore: container state improper",
                                  container=ctr.name, operation="restore")
    criu = criu_binary(ctr)
    bundle = ctr.bundle
    if options.import_previous is not None:
        _remove(bundle / PRE_CHECKPOINT_DIR)
        _untar_into_bundle(ctr, options.import_previous)
    if options.import_ is not None:
        _remove(bundle / CHECKPOINT_DIR, bundle / ROOTFS_DIFF, bundle / DELETED_FILES, bundle / VOLUMES_DIR,
                bundle / DEVSHM_TAR)
        _untar_into_bundle(ctr, options.import_, exclude=(CONFIG_DUMP, SPEC_DUMP, KERNELEXT_CONFIG))
    # The run descends from: the entry asked for; else the bundle's own images (the newest dump, or an
    # import's), else the newest entry of the history (docs/architecture.md §4, "Checkpoint history").
    prior = history.head(ctr)
    source = history.read_entry(options.entry) if options.entry is not None else None
    if options.entry is not None and source is None:
        raise ContainerStateError(f"checkpoint {options.entry.name} of {ctr.name} is gone, cannot restore",
                                  container=ctr.name, operation="restore")
    if source is None and options.import_ is None and not (bundle / CHECKPOINT_DIR / INVENTORY).exists():
        newest = history.entries(ctr._runtime.opts, ctr.id)
        if newest:
            source, prior = newest[-1], newest[-1].ref
    image_dir = source.path / CHECKPOINT_DIR if source is not None else bundle / CHECKPOINT_DIR
    # An entry's files are applied unless the layer is still exactly as the entry saw it (a rollback
    # right after a checkpoint that stopped the container): then the reset's unmount, which syncs the
    # file system holding the fresh images, is spared.
    entry_files = options.entry is not None and not (
        options.rollback and source is not None and source.files_fingerprint
        and history.fingerprint(ctr.layer.upper) == source.files_fingerprint)
    if not (image_dir / INVENTORY).exists():
        raise ContainerStateError("a complete checkpoint for this container cannot be found, cannot restore: "
                                  f"{image_dir / INVENTORY} is missing", container=ctr.name,
                                  operation="restore")
    _remove(bundle / RESTORE_LOG, bundle / STATS_RESTORE)
    ctr._remove_conmon_files()
    if ctr._runtime.oci.has_container(ctr.id):
        ctr._runtime.oci.delete_container(ctr.id)  # a leftover of an earlier failed attempt would block the restore
    with ports.bound(ctr.config.ports) as sockets:  # a taken port fails before CRIU runs
        try:
            if options.rollback and entry_files:
                _reset_layer(ctr)
            rootfs = ctr._mount_storage(Intent.RESTORE)
            if options.import_ is not None and not options.ignore_rootfs:
                _apply_rootfs_diff(ctr, bundle, rootfs)
            if options.import_ is not None and not options.ignore_volumes:
                _restore_volumes(ctr, bundle)
            if options.import_ is not None:
                _restore_devshm(ctr, bundle)
            if entry_files:  # an entry asked for: the files as they were then too
                assert options.entry is not None
                _apply_rootfs_diff(ctr, options.entry, rootfs)
                _restore_devshm(ctr, options.entry)
            # With its loopback up before CRIU connects restored TCP sockets back over it.
            ctr._create_netns()
            if options.import_ is not None or not (bundle / "config.json").exists():
                ctr._write_spec(rootfs)  # in place, the spec the container was checkpointed with is still there
            _pin_restore_cgroup(ctr)
            restore_from = oci.RestoreOptions(criu=criu, image_dir=image_dir,
                                              tcp_established=options.tcp_established,
                                              tcp_close=options.tcp_close, file_locks=options.file_locks)
            runtime_started = time.monotonic()
            try:
                launched = ctr._runtime.oci.restore_container(ctr._conmon_options(), restore_from)
            except RuntimeFailure as exc:
                raise criu_failure(ctr, "restore", exc.message, bundle / RESTORE_LOG) from None
            runtime_duration = time.monotonic() - runtime_started
        except BaseException:
            ctr._runtime.oci.delete_container(ctr.id)
            ctr._remove_netns()
            ctr._remove_conmon_files()
            ctr._unmount_storage()
            ctr.state.done()
            ctr._save()
            raise
        try:
            prepared = _in_prepared_netns(ctr, launched.pid)
            if not prepared and ctr.netns_path is not None:
                # Checkpointed in a namespace runc made (an older kernelext, podman's --network none): CRIU
                # made a new one, with its loopback down (docs/architecture.md §4). It is held on the path
                # the spec names instead of ours, where runc's next checkpoint looks for it.
                netns.adopt(ctr.netns_path, launched.pid)
            if sockets or not prepared:
                ctr._setup_network(launched.pid, sockets)
        except BaseException:
            ctr._abandon_launch(launched.conmon_pid)
            raise
    faults.point("restore:launched")
    now = time.time()
    st.new_run(launched.pid, launched.conmon_pid, launched.conmon_start_time)
    st.status = S.RUNNING
    st.done()
    st.started_at = now
    st.checkpointed_at = 0.0
    st.restored = True
    st.restored_at = now
    history.set_head(ctr, source.ref if source is not None else None if options.import_ is not None else prior)
    stats = Statistics(ctr.id, "restore", runtime_duration=int(runtime_duration * _US),
                       criu_statistics=read_criu_stats(bundle / STATS_RESTORE) if options.print_stats else {})
    if not options.keep:
        # Off the critical path: unlinking freshly written images costs ~0.2 s per 200 MB here.
        for consumed in (bundle / CHECKPOINT_DIR, bundle / PRE_CHECKPOINT_DIR):
            ctr._runtime.trash.put(consumed)
        _remove(bundle / RESTORE_LOG, bundle / DUMP_LOG,
                bundle / STATS_RESTORE, bundle / STATS_DUMP, bundle / NETWORK_STATUS, bundle / ROOTFS_DIFF,
                bundle / DELETED_FILES, bundle / VOLUMES_DIR, bundle / DEVSHM_TAR)
    ctr._save()
    ctr._event("restore")
    stats.total_duration = int((time.monotonic() - started) * _US)
    return stats


# -------------------------------------------------------------------- import
def _read_archive_config(archive: Path) -> tuple[ContainerConfig, list[str]]:
    """The archive's container: kernelext's own config when it has one (or its older ``config.dump``),
    else podman's (libpod's ``config.dump`` and ``spec.dump``); and what a podman config leaves out."""
    if archive.is_dir():  # a history entry: the archive's layout, unpacked
        return _read_layout_config(archive, archive)
    if not archive.is_file():
        raise InvalidArgumentError(f"failed to open checkpoint archive {archive} for import: no such file",
                                   operation="restore")
    with tempfile.TemporaryDirectory(prefix="kernelext-import-") as tmp:
        # tar fails on the members an archive lacks (podman's have no kernelext.config.json) but extracts the rest.
        subprocess.run(["tar", "--extract", *_compression_of(archive).tar_flags, "-f", str(archive), "-C", tmp,
                        CONFIG_DUMP, SPEC_DUMP, KERNELEXT_CONFIG], stdin=subprocess.DEVNULL, capture_output=True)
        return _read_layout_config(Path(tmp), archive)


def archive_container_name(archive: Path) -> str:
    """The name of the container an exported archive holds (what an import without ``--name`` makes)."""
    return _read_archive_config(archive)[0].name


def _read_layout_config(here: Path, archive: Path) -> tuple[ContainerConfig, list[str]]:
    """The container of a directory in the archive's layout (``archive``: what the user named, for errors)."""
    if not (here / CONFIG_DUMP).exists():
        raise InvalidArgumentError(f"{archive} is not a checkpoint archive: it has no {CONFIG_DUMP}",
                                   operation="restore")
    try:
        if (here / KERNELEXT_CONFIG).exists():
            return ContainerConfig.from_json(json.loads((here / KERNELEXT_CONFIG).read_text())), []
        data = json.loads((here / CONFIG_DUMP).read_text())
        if "image_id" in data:  # kernelext's own schema, as archives before libpod's config.dump had it
            return ContainerConfig.from_json(data), []
        spec = json.loads((here / SPEC_DUMP).read_text()) if (here / SPEC_DUMP).exists() else {}
        return libpod.from_config_dump(data, spec)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidArgumentError(f"{archive}: unreadable {CONFIG_DUMP}: {exc}", operation="restore") from None


def _archive_image(runtime: Runtime, config: ContainerConfig) -> Image:
    """The image the archive records: by ID; by name (here under another ID: imported again); from
    podman's store on this host (as root: the image podman checkpointed with, podman's ID); or pulled
    as podman does (policy "missing"; registries.conf says which registries are plain HTTP)."""
    for known in (config.image_id, config.image_name):
        if known and runtime.images.exists(known):  # exists: the built-in busybox is not assembled for it
            return runtime.images.get(known)
    reference = None if is_rootless() else podmanconf.image_reference(config.image_name)
    if reference is not None:
        try:
            return runtime.pull(reference)
        except KernelextError:
            pass  # not there either: the built-in busybox's or a registry's turn
    return runtime.image_for(config.image_name, PullPolicy.MISSING)


def import_archive(runtime: Runtime, archive: Path, name: str | None,
                   publish: list[ports.PortMapping] | None = None) -> Container:
    """Re-create an archive's container in state ``created``: its ID, or a new ID with ``name``.

    ``archive`` may also be a history entry (a directory in the archive's layout): a branch.

    ``publish`` replaces the archive's port mappings.
    """

    config, ignored = _read_archive_config(archive)
    if ignored:
        log.warning("%s: restoring without what kernelext does not support: %s", config.name, ", ".join(ignored))
    image = _archive_image(runtime, config)
    config.image_id, config.image_name = image.id, image.name
    if publish is not None:
        config.ports = ports.publish(publish, host_network=config.network is NetworkMode.HOST)
        if publish and not config.ports:
            log.warning(ports.PORTS_DISCARDED)
    if name is not None:
        config.id = os.urandom(32).hex()
        config.name = name
    elif runtime.db.get_container(config.id) is not None:
        raise NameInUseError(f"container with ID {config.id} already exists: remove it or restore with --name",
                             container=config.name, operation="restore")
    # podman's /dev/shm is a bind of a directory beside the container (kernelext.core.libpod): so is ours.
    shm_dir = runtime.opts.userdata(config.id) / SHM_DIR
    config.mounts = [replace(m, source=str(shm_dir)) if m.destination == SHM and not m.source else m
                     for m in config.mounts]
    created: list[Volume] = []  # podman creates the volumes an imported container mounts
    try:
        runtime.volumes.materialize([replace(m, anonymous=False) for m in config.mounts], created)
        container = runtime.add(config, operation="restore")
    except BaseException:
        runtime.volumes.discard(created)
        raise
    if _shm_bind(container):
        try:
            shm_dir.mkdir(mode=0o700)
            shm_dir.chmod(SHM_MODE)  # /dev/shm's own mode; mkdir's is cut by the umask
        except BaseException:
            container.remove(force=True)
            raise
    return container


def branch(source: Container, which: str | int, name: str, publish: Iterable[str | ports.PortMapping] | None,
           flags: dict[str, bool]) -> Container:
    """A new container ``name`` restored from an entry of ``source``'s history, running beside it (podman's
    ``restore --import -n`` from the entry's directory; ``publish`` replaces the entry's ports)."""
    runtime = source._runtime
    mappings = None if publish is None else ports.parse_all(publish)
    options = RestoreOptions.build(**flags)  # type: ignore[arg-type]  # only the boolean flags
    with source._locked():  # the entry cannot be deleted meanwhile
        entry = history.find(runtime.opts, source.id, source.name, which)
        created = import_archive(runtime, entry.path, name, mappings)
        try:
            with created._locked():
                stats = restore(created, replace(options, entry=entry.path))
        except BaseException:
            created.remove(force=True)
            raise
    created.statistics = stats.to_dict() if options.print_stats else None
    return created


def export_entry(ctr: Container, entry: history.CheckpointEntry, target: Path,
                 compress: Compression = Compression.ZSTD) -> Path:
    """An archive of a history entry (podman's layout, as ``checkpoint --export`` writes), written beside
    ``target`` first and renamed: ``restore --import`` on any host brings it back."""
    members = sorted(m for m in os.listdir(entry.path) if m not in (history.ENTRY_FILE, DUMP_LOG))
    with whole_path(target) as partial:
        if partial != Path(target):
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, ARCHIVE_MODE))
        _tar(["--create", "--numeric-owner", "--xattrs", *compress.tar_flags, "-f", str(partial),
              "-C", str(entry.path), *members], f"exporting checkpoint {entry.number} to {target}", ctr, "checkpoint")
    return target
