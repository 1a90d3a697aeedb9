"""What a checkpoint holds, read from its files (docs/architecture.md §4, "Looking inside a checkpoint").

podman's ``checkpointctl inspect`` shows, for a checkpoint in podman's layout
(a directory, or an exported archive of it), the container it was taken
from, CRIU's statistics, the process tree with commands, each process's open
files and sockets, its memory, its namespaces and the container's filesystem
changes. :func:`read_checkpoint` gives the same as dataclasses;
:func:`diff_checkpoints` compares two of them.

CRIU's images are protobuf messages (CRIU's ``images/*.proto``, which keeps
its field numbers stable across releases). They are decoded here by hand, for
the few fields shown, with the reader :mod:`kernelext.core.checkpoint` uses
for ``stats-dump``: no code from the checkpoint or its container is loaded,
and no protobuf compiler is needed.

An archive is read into a private temporary directory: only the metadata
files and CRIU's images are written there, by name, as new regular files; a
member with an absolute or ``..`` path, or a link pointing out of the
archive, makes the whole archive refused before anything is read from it.
"""

from __future__ import annotations

import enum
import gzip
import ipaddress
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from kernelext.core.checkpoint import (
    CHECKPOINT_DIR,
    CONFIG_DUMP,
    DELETED_FILES,
    ROOTFS_DIFF,
    SPEC_DUMP,
    STATS_DUMP,
    Compression,
    _compression_of,
    _protobuf_fields,
    _varint,
    read_criu_stats,
)
from kernelext.errors import InvalidArgumentError

PAGE_SIZE = 4096
#: The first 32-bit word of every CRIU image but inventory.img; the image's own magic follows it.
IMG_COMMON_MAGIC = 0x54564319
IMG_SERVICE_MAGIC = 0x55105940
_U32 = 4
#: Metadata files read beside CRIU's images (``rootfs-diff.tar`` is listed, never unpacked).
METADATA_FILES = (CONFIG_DUMP, SPEC_DUMP, STATS_DUMP, DELETED_FILES)
#: CRIU's image names (``core-7.img``, ``pages-1.img``, ``tmpfs-dev-44.tar.gz.img``): nothing else is unpacked.
_IMAGE_NAME = re.compile(r"[A-Za-z0-9_.-]+\.img")
#: The images read here (the rest of ``checkpoint/`` is not unpacked from an archive).
_NEEDED_IMAGE = re.compile(r"(inventory|pstree|files|(core|mm|pagemap|pages|ids|fdinfo)-\d+)\.img")
#: Memory pages unpacked from an archive at most (read only for the argv): past it, a process shows its
#: ``comm`` alone rather than the inspection writing gigabytes to a temporary directory.
MAX_PAGES_UNPACKED = 256 << 20
#: An argv longer than this is cut (a process's argument area is at most a few pages).
MAX_CMDLINE = 64 * 1024
_CHUNK = 1 << 20


# ---------------------------------------------------------------- protobuf
def _message(data: bytes) -> dict[int, list[int | bytes]]:
    """A protobuf message's fields by number (repeated fields keep their order)."""
    fields: dict[int, list[int | bytes]] = {}
    for number, value in _protobuf_fields(data):
        fields.setdefault(number, []).append(value)
    return fields


def _int(msg: dict[int, list[int | bytes]], number: int, default: int = 0) -> int:
    values = msg.get(number)
    return values[-1] if values and isinstance(values[-1], int) else default


def _ints(msg: dict[int, list[int | bytes]], number: int) -> list[int]:
    """A repeated integer field, packed (one length-delimited run of varints) or not."""
    result: list[int] = []
    for value in msg.get(number, []):
        if isinstance(value, int):
            result.append(value)
            continue
        pos = 0
        while pos < len(value):
            item, pos = _varint(value, pos)
            result.append(item)
    return result


def _bytes(msg: dict[int, list[int | bytes]], number: int) -> bytes:
    values = msg.get(number)
    return values[-1] if values and isinstance(values[-1], bytes) else b""


def _sub(msg: dict[int, list[int | bytes]], number: int) -> dict[int, list[int | bytes]]:
    return _message(_bytes(msg, number))


def _text(msg: dict[int, list[int | bytes]], number: int) -> str:
    return _bytes(msg, number).decode("utf-8", "replace")


def read_image(path: Path) -> list[dict[int, list[int | bytes]]]:
    """The entries of one CRIU image: its magic(s), then ``u32 size`` + message, repeated."""
    data = _read_regular(path)
    pos = _U32
    if len(data) >= _U32 and int.from_bytes(data[:_U32], "little") in (IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC):
        pos += _U32  # inventory.img alone has only its own magic
    entries = []
    try:
        while pos + _U32 <= len(data):
            size = int.from_bytes(data[pos:pos + _U32], "little")
            pos += _U32
            if pos + size > len(data):
                raise InvalidArgumentError(f"{path.name}: truncated CRIU image")
            entries.append(_message(data[pos:pos + size]))
            pos += size
    except IndexError:
        raise InvalidArgumentError(f"{path.name}: not a CRIU image") from None
    return entries


def _read_regular(path: Path, limit: int | None = None) -> bytes:
    """A regular file's bytes, never through a symbolic link (a checkpoint directory is not trusted)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidArgumentError(f"{path.name}: not a regular file")
        return f.read() if limit is None else f.read(limit)


# CRIU's image fields (images/*.proto), by message.
class _F:
    PSTREE_PID, PSTREE_PPID, PSTREE_PGID, PSTREE_SID, PSTREE_THREADS = 1, 2, 3, 4, 5
    CORE_TC, CORE_IDS = 3, 4
    TC_STATE, TC_EXIT_CODE, TC_COMM = 1, 2, 6
    MM_START_STACK, MM_ARG_START, MM_ARG_END, MM_VMAS = 5, 8, 9, 14
    VMA_START, VMA_END, VMA_STATUS = 1, 2, 7
    PAGEMAP_PAGES_ID = 1
    PME_VADDR, PME_COMPAT_NR_PAGES, PME_IN_PARENT, PME_FLAGS, PME_NR_PAGES = 1, 2, 3, 4, 5
    FDINFO_ID, FDINFO_FLAGS, FDINFO_TYPE, FDINFO_FD = 1, 2, 3, 4
    FILE_TYPE, FILE_ID = 1, 2
    REG_NAME, REG_POS, REG_SIZE = 6, 3, 8
    INET_FAMILY, INET_TYPE, INET_PROTO, INET_STATE = 3, 4, 5, 6
    INET_SRC_PORT, INET_DST_PORT, INET_SRC_ADDR, INET_DST_ADDR = 7, 8, 11, 12
    UNIX_INO, UNIX_TYPE, UNIX_STATE, UNIX_PEER, UNIX_NAME = 2, 3, 4, 8, 11
    PIPE_PIPE_ID = 2
    INVENTORY_VERSION, INVENTORY_ROOT_IDS = 1, 3


#: task_kobj_ids_entry's namespace fields, by the names podman's inspect and /proc/PID/ns use.
NAMESPACE_FIELDS = {"pid": 5, "net": 6, "ipc": 7, "uts": 8, "mnt": 9, "user": 10, "cgroup": 11, "time": 12}
_IDS_VM, _IDS_FILES = 1, 2
#: pagemap flags (CRIU's criu/include/pagemap.h).
PE_PARENT, PE_LAZY, PE_PRESENT = 1 << 0, 1 << 1, 1 << 2


class FileKind(enum.Enum):
    """What an open descriptor refers to (CRIU's fd_types, the kinds shown by name)."""

    FILE = "file"
    PIPE = "pipe"
    FIFO = "fifo"
    INET = "inet"
    UNIX = "unix"
    EVENTFD = "eventfd"
    EVENTPOLL = "eventpoll"
    INOTIFY = "inotify"
    SIGNALFD = "signalfd"
    PACKET = "packet"
    TTY = "tty"
    NETLINK = "netlink"
    NAMESPACE = "ns"
    TIMERFD = "timerfd"
    MEMFD = "memfd"
    OTHER = "other"


#: CRIU's fd_types numbers; file_entry's field holding each kind's details.
_FD_TYPES = {1: FileKind.FILE, 2: FileKind.PIPE, 3: FileKind.FIFO, 4: FileKind.INET, 5: FileKind.UNIX,
             6: FileKind.EVENTFD, 7: FileKind.EVENTPOLL, 8: FileKind.INOTIFY, 9: FileKind.SIGNALFD,
             10: FileKind.PACKET, 11: FileKind.TTY, 13: FileKind.NETLINK, 14: FileKind.NAMESPACE,
             17: FileKind.TIMERFD, 18: FileKind.MEMFD}
_FILE_FIELD = {FileKind.FILE: 3, FileKind.INET: 4, FileKind.UNIX: 16, FileKind.FIFO: 17, FileKind.PIPE: 18,
               FileKind.TTY: 19, FileKind.MEMFD: 20}


class MemoryKind(enum.Enum):
    """A mapping's kind, from CRIU's VMA status bits (criu/include/image.h)."""

    STACK = "stack"
    HEAP = "heap"
    ANONYMOUS = "anonymous"
    SHARED = "shared"
    FILE = "file"
    FILE_SHARED = "file-shared"
    SYSTEM = "system"  # vdso, vvar, vsyscall: the kernel's


_VMA_STACK, _VMA_VSYSCALL, _VMA_VDSO, _VMA_HEAP = 1 << 1, 1 << 2, 1 << 3, 1 << 5
_VMA_FILE_PRIVATE, _VMA_FILE_SHARED, _VMA_ANON_SHARED, _VMA_ANON_PRIVATE, _VMA_VVAR = (
    1 << 6, 1 << 7, 1 << 8, 1 << 9, 1 << 12)
#: First match wins: a stack or heap is also anonymous-private.
_VMA_KINDS = ((_VMA_STACK, MemoryKind.STACK), (_VMA_HEAP, MemoryKind.HEAP),
              (_VMA_VDSO | _VMA_VVAR | _VMA_VSYSCALL, MemoryKind.SYSTEM),
              (_VMA_FILE_SHARED, MemoryKind.FILE_SHARED), (_VMA_FILE_PRIVATE, MemoryKind.FILE),
              (_VMA_ANON_SHARED, MemoryKind.SHARED), (_VMA_ANON_PRIVATE, MemoryKind.ANONYMOUS))
_TASK_STATES = {1: "Alive", 2: "Dead", 3: "Stopped", 6: "Zombie"}
_SOCK_TYPES: dict[int, str] = {int(socket.SOCK_STREAM): "stream", int(socket.SOCK_DGRAM): "dgram",
                               int(socket.SOCK_SEQPACKET): "seqpacket", int(socket.SOCK_RAW): "raw"}
_TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
               7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}
_IP_PROTOCOLS = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp", socket.IPPROTO_ICMP: "icmp"}


# ------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class OpenFile:
    """One open descriptor of a process."""

    fd: int
    kind: FileKind
    #: What it is: a path, ``pipe:[ID]``, a socket's addresses.
    name: str
    #: Byte offset of a regular file.
    position: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"fd": self.fd, "type": self.kind.value, "name": self.name, "position": self.position}


@dataclass(frozen=True)
class Mapping:
    """Memory of one kind in one process: its address-space size and the bytes CRIU dumped."""

    kind: MemoryKind
    mappings: int
    virtual: int
    dumped: int

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "mappings": self.mappings, "virtual": self.virtual, "dumped": self.dumped}


@dataclass
class Process:
    """One task of the checkpoint (its PID as seen in the container)."""

    pid: int
    ppid: int
    comm: str
    args: list[str]
    state: str
    threads: list[int]
    files: list[OpenFile] = field(default_factory=list)
    memory: list[Mapping] = field(default_factory=list)
    namespaces: dict[str, int] = field(default_factory=dict)
    children: list[Process] = field(default_factory=list)

    @property
    def command(self) -> str:
        return " ".join(self.args) if self.args else self.comm

    def memory_of(self, kind: MemoryKind) -> Mapping | None:
        return next((m for m in self.memory if m.kind is kind), None)

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "ppid": self.ppid, "comm": self.comm, "args": self.args, "state": self.state,
                "threads": self.threads, "files": [f.to_dict() for f in self.files],
                "memory": [m.to_dict() for m in self.memory], "namespaces": self.namespaces}


@dataclass(frozen=True)
class FileChange:
    """One member of ``rootfs-diff.tar``: a file the container wrote."""

    path: str
    size: int
    mode: int
    mtime: int
    type: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckpointInfo:
    """A checkpoint, as podman's ``checkpointctl inspect`` shows it."""

    source: str
    container_name: str
    container_id: str
    image: str
    image_id: str
    runtime: str
    created: str
    command: list[str]
    criu_version: int
    statistics: dict[str, int]
    namespaces: dict[str, int]
    processes: list[Process]
    changed_files: list[FileChange]
    deleted_files: list[str]
    size: int
    memory_pages_size: int

    @property
    def tree(self) -> list[Process]:
        """The processes whose parent is not in the checkpoint (normally the container's PID 1)."""
        pids = {p.pid for p in self.processes}
        return [p for p in self.processes if p.ppid not in pids]

    def process(self, pid: int) -> Process:
        return next(p for p in self.processes if p.pid == pid)

    def to_dict(self) -> dict[str, Any]:
        return {"Source": self.source, "Name": self.container_name, "ID": self.container_id, "Image": self.image,
                "ImageID": self.image_id, "Runtime": self.runtime, "Created": self.created,
                "Command": self.command, "CRIUImageVersion": self.criu_version,
                "Size": self.size, "MemoryPagesSize": self.memory_pages_size,
                "Statistics": self.statistics, "Namespaces": self.namespaces,
                "Processes": [p.to_dict() for p in self.processes],
                "ChangedFiles": [c.to_dict() for c in self.changed_files], "DeletedFiles": self.deleted_files}


# ------------------------------------------------------------ the images
def _namespaces(ids: dict[int, list[int | bytes]]) -> dict[str, int]:
    return {name: _int(ids, number) for name, number in NAMESPACE_FIELDS.items() if number in ids}


def _socket_name(kind: FileKind, entry: dict[int, list[int | bytes]]) -> str:
    if kind is FileKind.UNIX:
        raw = _bytes(entry, _F.UNIX_NAME)
        # An abstract name starts with NUL (shown as "@", as ss does); a path's may end with one.
        name = "@" + raw[1:].decode("utf-8", "replace") if raw.startswith(b"\0") else \
            raw.rstrip(b"\0").decode("utf-8", "replace")
        kind_name = _SOCK_TYPES.get(_int(entry, _F.UNIX_TYPE), "unknown")
        return f"{kind_name} {name or '(unnamed)'} ino={_int(entry, _F.UNIX_INO)} peer={_int(entry, _F.UNIX_PEER)}"
    family = _int(entry, _F.INET_FAMILY)

    def address(number: int, port: int) -> str:
        words = _ints(entry, number)
        raw = b"".join(w.to_bytes(4, "little") for w in words)  # CRIU keeps the network-order words as read
        try:
            host = str(ipaddress.ip_address(raw)) if raw else ("::" if family == socket.AF_INET6 else "0.0.0.0")
        except ValueError:
            host = raw.hex()
        return f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"

    proto = _IP_PROTOCOLS.get(_int(entry, _F.INET_PROTO), str(_int(entry, _F.INET_PROTO)))
    state = _TCP_STATES.get(_int(entry, _F.INET_STATE), str(_int(entry, _F.INET_STATE)))
    v = "6" if family == socket.AF_INET6 else ""
    return (f"{proto}{v} {address(_F.INET_SRC_ADDR, _int(entry, _F.INET_SRC_PORT))} -> "
            f"{address(_F.INET_DST_ADDR, _int(entry, _F.INET_DST_PORT))} ({state})")


def _files_table(images: Path) -> dict[int, tuple[FileKind, str, int | None]]:
    """files.img: every open file description of the dump, by its ID."""
    table: dict[int, tuple[FileKind, str, int | None]] = {}
    path = images / "files.img"
    if not path.exists():
        return table
    for entry in read_image(path):
        kind = _FD_TYPES.get(_int(entry, _F.FILE_TYPE), FileKind.OTHER)
        detail = _sub(entry, _FILE_FIELD[kind]) if kind in _FILE_FIELD else {}
        position: int | None = None
        if kind in (FileKind.FILE, FileKind.MEMFD):
            name, position = _text(detail, _F.REG_NAME), _int(detail, _F.REG_POS)
        elif kind in (FileKind.PIPE, FileKind.FIFO):
            name = f"pipe:[{_int(detail, _F.PIPE_PIPE_ID)}]"
            if kind is FileKind.FIFO:
                name = f"fifo:[{_int(detail, _F.PIPE_PIPE_ID)}]"
        elif kind in (FileKind.UNIX, FileKind.INET):
            name = _socket_name(kind, detail)
        else:
            name = f"{kind.value}:[{_int(entry, _F.FILE_ID)}]"
        table[_int(entry, _F.FILE_ID)] = (kind, name, position)
    return table


def _open_files(images: Path, files_id: int, table: dict[int, tuple[FileKind, str, int | None]]) -> list[OpenFile]:
    path = images / f"fdinfo-{files_id}.img"
    if not path.exists():
        return []
    result = []
    for entry in read_image(path):
        kind, name, position = table.get(_int(entry, _F.FDINFO_ID),
                                         (_FD_TYPES.get(_int(entry, _F.FDINFO_TYPE), FileKind.OTHER), "?", None))
        result.append(OpenFile(_int(entry, _F.FDINFO_FD), kind, name, position))
    return sorted(result, key=lambda f: f.fd)


@dataclass(frozen=True)
class _PageRun:
    """Pages of one pagemap entry: where they start in memory and in ``pages-N.img`` (None: not there)."""

    vaddr: int
    pages: int
    offset: int | None


def _page_runs(images: Path, pid: int) -> tuple[int, list[_PageRun]]:
    path = images / f"pagemap-{pid}.img"
    if not path.exists():
        return 0, []
    head, *entries = read_image(path)
    runs, offset = [], 0
    for entry in entries:
        pages = _int(entry, _F.PME_NR_PAGES) or _int(entry, _F.PME_COMPAT_NR_PAGES)
        flags = _int(entry, _F.PME_FLAGS, PE_PARENT if _int(entry, _F.PME_IN_PARENT) else PE_PRESENT)
        present = bool(flags & PE_PRESENT)
        runs.append(_PageRun(_int(entry, _F.PME_VADDR), pages, offset if present else None))
        if present:
            offset += pages * PAGE_SIZE
    return _int(head, _F.PAGEMAP_PAGES_ID), runs


def _read_memory(images: Path, pages_id: int, runs: list[_PageRun], start: int, end: int) -> bytes:
    """Bytes start..end of the process's memory from the pages image (what CRIU did not dump reads as empty)."""
    if end <= start or end - start > MAX_CMDLINE:
        end = start + MAX_CMDLINE if end > start else start
    result = bytearray()
    path = images / f"pages-{pages_id}.img"
    if not path.exists():
        return b""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        address = start
        while address < end:
            run = next((r for r in runs if r.vaddr <= address < r.vaddr + r.pages * PAGE_SIZE), None)
            if run is None or run.offset is None:
                break
            stop = min(end, run.vaddr + run.pages * PAGE_SIZE)
            chunk = os.pread(fd, stop - address, run.offset + address - run.vaddr)
            if not chunk:
                break
            result += chunk
            address += len(chunk)
    finally:
        os.close(fd)
    return bytes(result)


def _memory(mm: dict[int, list[int | bytes]], runs: list[_PageRun]) -> list[Mapping]:
    # CRIU marks only some stacks with VMA_AREA_STACK; the main thread's is the mapping holding mm_start_stack.
    stack = _int(mm, _F.MM_START_STACK)
    totals: dict[MemoryKind, list[int]] = {}
    for raw in mm.get(_F.MM_VMAS, []):
        if not isinstance(raw, bytes):
            continue
        vma = _message(raw)
        start, end, status = _int(vma, _F.VMA_START), _int(vma, _F.VMA_END), _int(vma, _F.VMA_STATUS)
        kind = MemoryKind.STACK if start <= stack < end else next((k for bits, k in _VMA_KINDS if status & bits), None)
        if kind is None:
            continue
        dumped = sum(max(0, min(end, r.vaddr + r.pages * PAGE_SIZE) - max(start, r.vaddr)) for r in runs)
        count = totals.setdefault(kind, [0, 0, 0])
        count[0] += 1
        count[1] += end - start
        count[2] += dumped
    return [Mapping(kind, *totals[kind]) for kind in MemoryKind if kind in totals]


def _process(images: Path, entry: dict[int, list[int | bytes]],
             table: dict[int, tuple[FileKind, str, int | None]]) -> Process:
    pid = _int(entry, _F.PSTREE_PID)
    core = read_image(images / f"core-{pid}.img")[0] if (images / f"core-{pid}.img").exists() else {}
    tc = _sub(core, _F.CORE_TC)
    ids_path = images / f"ids-{pid}.img"
    ids = read_image(ids_path)[0] if ids_path.exists() else _sub(core, _F.CORE_IDS)
    process = Process(pid=pid, ppid=_int(entry, _F.PSTREE_PPID), comm=_text(tc, _F.TC_COMM), args=[],
                      state=_TASK_STATES.get(_int(tc, _F.TC_STATE), str(_int(tc, _F.TC_STATE))),
                      threads=_ints(entry, _F.PSTREE_THREADS), namespaces=_namespaces(ids))
    if process.state != "Alive":
        return process
    process.files = _open_files(images, _int(ids, _IDS_FILES), table)
    mm_path = images / f"mm-{pid}.img"
    if mm_path.exists():
        mm = read_image(mm_path)[0]
        pages_id, runs = _page_runs(images, pid)
        process.memory = _memory(mm, runs)
        argv = _read_memory(images, pages_id, runs, _int(mm, _F.MM_ARG_START), _int(mm, _F.MM_ARG_END))
        process.args = [a.decode("utf-8", "replace") for a in argv.rstrip(b"\0").split(b"\0")] if argv else []
    return process


# --------------------------------------------------------- podman's files
def _rootfs_changes(path: Path) -> list[FileChange]:
    """The members of ``rootfs-diff.tar``, listed (never unpacked)."""
    if not path.exists():
        return []
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        return _list_tar(f)


def _list_tar(f: IO[bytes]) -> list[FileChange]:
    kinds = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
             tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}
    try:
        with tarfile.open(fileobj=f, mode="r|") as tar:
            return [FileChange("/" + m.name.lstrip("./").rstrip("/") if m.name not in (".", "./") else "/",
                               m.size, m.mode, int(m.mtime), kinds.get(m.type, "other")) for m in tar]
    except tarfile.TarError as exc:
        raise InvalidArgumentError(f"{ROOTFS_DIFF}: {exc}") from None


def _json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(_read_regular(path))
    except ValueError as exc:
        raise InvalidArgumentError(f"{path.name}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _deleted(path: Path) -> list[str]:
    if not path.exists():
        return []
    try:
        data = json.loads(_read_regular(path) or b"[]")
    except ValueError as exc:
        raise InvalidArgumentError(f"{DELETED_FILES}: {exc}") from None
    return sorted("/" + str(p).lstrip("/") for p in data) if isinstance(data, list) else []


def _tree_size(directory: Path) -> tuple[int, int]:
    """Bytes of the checkpoint's files, and of its memory pages alone."""
    total = pages = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            size = os.lstat(os.path.join(root, name)).st_size
            total += size
            if name.startswith("pages-"):
                pages += size
    return total, pages


def _read_directory(directory: Path, source: str, size: int | None = None,
                    pages_size: int | None = None) -> CheckpointInfo:
    images = directory / CHECKPOINT_DIR
    if not (images / "pstree.img").exists() and not (directory / CONFIG_DUMP).exists():
        raise InvalidArgumentError(f"{source} is not a checkpoint: it has no {CONFIG_DUMP} "
                                   f"and no {CHECKPOINT_DIR}/pstree.img")
    config, spec = _json(directory / CONFIG_DUMP), _json(directory / SPEC_DUMP)
    inventory = read_image(images / "inventory.img")[0] if (images / "inventory.img").exists() else {}
    table = _files_table(images)
    pstree = read_image(images / "pstree.img") if (images / "pstree.img").exists() else []
    processes = [_process(images, entry, table) for entry in pstree]
    by_pid = {p.pid: p for p in processes}
    for p in processes:
        if p.ppid in by_pid:
            by_pid[p.ppid].children.append(p)
    total, pages = _tree_size(directory)
    annotations = spec.get("annotations") or {}
    return CheckpointInfo(
        source=source, container_name=str(config.get("name") or annotations.get("io.kernelext.name", "")),
        container_id=str(config.get("id", "")),
        image=str(config.get("rootfsImageName") or config.get("RawImageName") or ""),
        image_id=str(config.get("rootfsImageID", "")), runtime=str(config.get("runtime", "")),
        created=str(config.get("createdTime", "")),
        command=list(config.get("command") or (spec.get("process") or {}).get("args") or []),
        criu_version=_int(inventory, _F.INVENTORY_VERSION),
        statistics=read_criu_stats(directory / STATS_DUMP) if (directory / STATS_DUMP).exists() else {},
        namespaces=_namespaces(_sub(inventory, _F.INVENTORY_ROOT_IDS)), processes=processes,
        changed_files=_rootfs_changes(directory / ROOTFS_DIFF), deleted_files=_deleted(directory / DELETED_FILES),
        size=total if size is None else size, memory_pages_size=pages if pages_size is None else pages_size)


# ------------------------------------------------------------ archives
def _wanted(name: str) -> str | None:
    """Where an archive member goes in the temporary directory, or None if it is not read."""
    parts = PurePosixPath(name).parts
    parts = parts[1:] if parts[:1] == (".",) else parts
    if len(parts) == 1 and parts[0] in (*METADATA_FILES, ROOTFS_DIFF):
        return parts[0]
    if len(parts) == 2 and parts[0] == CHECKPOINT_DIR and _NEEDED_IMAGE.fullmatch(parts[1]):
        return f"{CHECKPOINT_DIR}/{parts[1]}"
    return None


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse an archive that would write or point outside its root (podman's archives never do)."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise InvalidArgumentError(f"{archive}: unsafe path in archive: {member.name!r}")
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        base = name.parent if member.issym() else PurePosixPath()
        if target.is_absolute() or ".." in (base / target).parts:
            raise InvalidArgumentError(f"{archive}: link {member.name!r} points outside the archive: "
                                       f"{member.linkname!r}")


def _stream(archive: Path, compression: Compression) -> tuple[IO[bytes], subprocess.Popen[bytes] | None]:
    """The archive's tar stream: zstd through the zstd tool (the standard library has none), gzip and plain here."""
    if compression is Compression.ZSTD:
        proc = subprocess.Popen(["zstd", "-dcq", "--", str(archive)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        return proc.stdout, proc
    if compression is Compression.GZIP:  # gzip.open's file owns (and closes) the archive's descriptor
        return cast(IO[bytes], gzip.open(archive, "rb")), None
    return open(archive, "rb"), None


def _unpack(archive: Path, into: Path) -> int:
    """The metadata and CRIU's images of ``archive`` into ``into`` (private), each as a new regular file;
    the size of its memory pages."""
    (into / CHECKPOINT_DIR).mkdir(mode=0o700)
    stream, proc = _stream(archive, _compression_of(archive))
    pages = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                _check_member(member, archive)
                target = _wanted(member.name)
                if target is None or not member.isfile():
                    continue
                if PurePosixPath(target).name.startswith("pages-"):
                    pages += member.size
                    if pages > MAX_PAGES_UNPACKED:
                        continue
                source = tar.extractfile(member)
                assert source is not None
                fd = os.open(into / target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
    except (tarfile.TarError, EOFError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidArgumentError(f"{archive} is not a checkpoint archive: {reason}") from None
    finally:
        stream.close()
        if proc is not None:
            proc.wait()
    return pages


def read_checkpoint(path: Path) -> CheckpointInfo:
    """What the checkpoint at ``path`` holds: a directory in podman's layout, or an exported archive of one."""
    path = Path(path)
    try:
        if path.is_dir():
            return _read_directory(path, str(path))
        if not path.is_file():
            raise InvalidArgumentError(f"{path}: no such checkpoint archive or directory")
        with tempfile.TemporaryDirectory(prefix="kernelext-ckinspect-") as tmp:
            pages = _unpack(path, Path(tmp))
            return _read_directory(Path(tmp), str(path), size=path.stat().st_size, pages_size=pages)
    except OSError as exc:  # a file of the checkpoint that is a link, a directory, unreadable
        where = exc.filename if exc.filename else path
        raise InvalidArgumentError(f"{path}: cannot read {where}: {exc.strerror or exc}") from None


# ----------------------------------------------------------------- diff
@dataclass
class ProcessChange:
    """How one process (same PID and command in both) changed."""

    pid: int
    comm: str
    memory: dict[str, int]
    opened: list[OpenFile]
    closed: list[OpenFile]

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "comm": self.comm, "memory": self.memory,
                "opened": [f.to_dict() for f in self.opened], "closed": [f.to_dict() for f in self.closed]}


@dataclass
class CheckpointDiff:
    """What changed from checkpoint ``a`` to checkpoint ``b``."""

    a: str
    b: str
    files_added: list[str]
    files_changed: list[str]
    files_removed: list[str]
    deleted_added: list[str]
    deleted_removed: list[str]
    processes_started: list[Process]
    processes_ended: list[Process]
    processes_changed: list[ProcessChange]

    @property
    def empty(self) -> bool:
        return not any((self.files_added, self.files_changed, self.files_removed, self.deleted_added,
                        self.deleted_removed, self.processes_started, self.processes_ended, self.processes_changed))

    def to_dict(self) -> dict[str, Any]:
        return {"A": self.a, "B": self.b,
                "Files": {"Added": self.files_added, "Changed": self.files_changed, "Removed": self.files_removed},
                "Deleted": {"Added": self.deleted_added, "Removed": self.deleted_removed},
                "Processes": {"Started": [p.to_dict() for p in self.processes_started],
                              "Ended": [p.to_dict() for p in self.processes_ended],
                              "Changed": [c.to_dict() for c in self.processes_changed]}}


def _key(p: Process) -> tuple[int, str]:
    """A process is the same in two checkpoints when its PID and its name are (a reused PID is a new process)."""
    return p.pid, p.comm


def _file_key(f: OpenFile) -> tuple[int, str, str]:
    return f.fd, f.kind.value, f.name


def diff_checkpoints(a: CheckpointInfo, b: CheckpointInfo) -> CheckpointDiff:
    """Files changed, processes started and ended, memory grown or shrunk, files opened and closed."""
    files_a = {c.path: c for c in a.changed_files if c.type != "dir"}
    files_b = {c.path: c for c in b.changed_files if c.type != "dir"}
    changed = sorted(p for p in files_a.keys() & files_b.keys()
                     if (files_a[p].size, files_a[p].mtime, files_a[p].mode) !=
                     (files_b[p].size, files_b[p].mtime, files_b[p].mode))
    procs_a, procs_b = {_key(p): p for p in a.processes}, {_key(p): p for p in b.processes}
    processes_changed = []
    for key in sorted(procs_a.keys() & procs_b.keys()):
        pa, pb = procs_a[key], procs_b[key]
        memory = {}
        for kind in MemoryKind:
            ma, mb = pa.memory_of(kind), pb.memory_of(kind)
            delta = (mb.dumped if mb else 0) - (ma.dumped if ma else 0)
            if delta:
                memory[kind.value] = delta
        fa, fb = {_file_key(f): f for f in pa.files}, {_file_key(f): f for f in pb.files}
        opened = [fb[k] for k in sorted(fb.keys() - fa.keys())]
        closed = [fa[k] for k in sorted(fa.keys() - fb.keys())]
        if memory or opened or closed:
            processes_changed.append(ProcessChange(pa.pid, pa.comm, memory, opened, closed))
    deleted_a, deleted_b = set(a.deleted_files), set(b.deleted_files)
    return CheckpointDiff(
        a=a.source, b=b.source, files_added=sorted(files_b.keys() - files_a.keys()), files_changed=changed,
        files_removed=sorted(files_a.keys() - files_b.keys()),
        deleted_added=sorted(deleted_b - deleted_a), deleted_removed=sorted(deleted_a - deleted_b),
        processes_started=[procs_b[k] for k in sorted(procs_b.keys() - procs_a.keys())],
        processes_ended=[procs_a[k] for k in sorted(procs_a.keys() - procs_b.keys())],
        processes_changed=processes_changed)


def iter_tree(roots: list[Process], depth: int = 0) -> Iterator[tuple[int, Process]]:
    """The process tree depth first, with each process's depth."""
    for p in sorted(roots, key=lambda p: p.pid):
        yield depth, p
        yield from iter_tree(p.children, depth + 1)
