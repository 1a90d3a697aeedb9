"""File trees inside a root directory, walked and written through file descriptors only.

The copy engine of ``cp``, ``put_archive`` and ``get_archive`` (docs/architecture.md §5).
Everything runs in this (host) process, and nothing from a container root is
ever loaded or executed. Safety comes from how paths are looked up:

* :meth:`Root.resolve` walks a path one component at a time with
  ``openat(parent_fd, name, O_PATH|O_NOFOLLOW)``: a symlink is read as text and
  its target resolved again *inside the root* (absolute targets start at the
  root, ``..`` stops at it, more than 40 links is ``ELOOP``);
* every later operation is relative to a directory fd obtained that way and
  names a single component without following it (``O_NOFOLLOW``, ``O_EXCL``,
  ``AT_SYMLINK_NOFOLLOW``, ``unlinkat``), or goes through ``openat2`` with
  ``RESOLVE_IN_ROOT``.

A container process swapping directories and symlinks meanwhile can make a
copy fail, or land elsewhere inside its own root, but never reach the host.

The walk (:func:`tree_entries`) yields :class:`Entry` events (a directory,
its children, its end), consumed by :class:`FsSink` (create them under a
directory) or :func:`tar_chunks` (a tar stream; :func:`tar_pieces` the same
with files' data by descriptor); :meth:`FsSink.put_member` extracts members
of a tar stream.
"""

from __future__ import annotations

import enum
import errno
import io
import os
import queue
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from kernelext.errors import CopyError
from kernelext.files.copyrules import member_parts
from kernelext.files.fdtree import DirStack, remove_entry
from kernelext.files.rootpath import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2
from kernelext.files.tarformat import (
    CHUNK,
    END_OF_ARCHIVE,
    Kind,
    Member,
    Meta,
    TarReader,
    header,
    padding,
)

MAX_SYMLINKS = 40  # the kernel's limit on links followed in one lookup
O_LOOKUP = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: O_NONBLOCK: a FIFO swapped in for a file must not block the copy.
O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
SETID_BITS = stat.S_ISUID | stat.S_ISGID
#: Directory fds kept open while extracting a tar stream (members come depth first).
MAX_CACHED_DIRS = 256
#: Threads writing the regular files of a walk (one per core, a few at most). Creating a small file in an
#: overlay is mostly kernel time with the GIL released: they create files side by side while the walk goes on.
FILE_WORKERS = min(4, os.cpu_count() or 1)
#: Files handed to a worker at once; a walk with fewer files writes them itself, starting no thread.
FILE_BATCH = 32
#: Batches waiting for a worker: each file holds its source fd open until it is written.
MAX_QUEUED_BATCHES = 4
#: Files up to this size are copied with one read and one write: cheaper than sendfile's splice into an overlay.
SMALL_FILE = 1 << 16


def _error(err: int, path: str) -> OSError:
    return OSError(err, os.strerror(err), path)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    return 0o022


@dataclass
class Resolved:
    """A path resolved inside a root; the caller closes ``parent``."""

    path: str  # canonical path inside the root, "/" for the root itself
    parent: int  # O_PATH fd of the parent directory (of the root itself for "/")
    name: str  # final component, "" for the root
    st: os.stat_result | None  # None: the final component does not exist

    @property
    def is_dir(self) -> bool:
        return self.st is not None and stat.S_ISDIR(self.st.st_mode)

    def close(self) -> None:
        os.close(self.parent)

    def open(self, flags: int) -> int:
        """Open the resolved object itself, checking it is still the inode resolution found."""
        assert self.st is not None
        fd = os.open(self.name or ".", flags, dir_fd=self.parent)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (self.st.st_dev, self.st.st_ino):
            os.close(fd)
            raise CopyError(f'"{self.path}" changed while it was being copied')
        return fd


class Root:
    """A directory treated as ``/`` for every lookup; owns ``fd``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Root:
        return cls(os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))

    def close(self) -> None:
        os.close(self.fd)

    def resolve(self, path: str, *, follow: bool = True) -> Resolved:
        """Resolve ``path`` inside the root; a missing final component is not an error.

        ``follow``: follow a symlink in the final component too (a dangling one
        then resolves to its missing target). Raises OSError (ENOENT, ENOTDIR,
        ELOOP) when an intermediate component is missing or not a directory.
        """
        todo = [p for p in reversed(path.split("/")) if p and p != "."]
        # The components resolved so far from the root (its own frame first), with bounded open fds.
        stack = DirStack(_Component(os.dup(self.fd), ""), reopen=O_LOOKUP | os.O_DIRECTORY)
        hops = 0
        try:
            while todo:
                name = todo.pop()
                if name == "..":
                    if len(stack) > 1:
                        stack.pop()
                    continue
                try:
                    fd = os.open(name, O_LOOKUP, dir_fd=stack.top.fd)
                except FileNotFoundError:
                    if todo:
                        raise _error(errno.ENOENT, _joined(stack, name)) from None
                    return Resolved(_joined(stack, name), os.dup(stack.top.fd), name, None)
                st = os.fstat(fd)
                if stat.S_ISLNK(st.st_mode) and (todo or follow):
                    try:
                        target = os.readlink("", dir_fd=fd)
                    finally:
                        os.close(fd)
                    hops += 1
                    if hops > MAX_SYMLINKS:
                        raise _error(errno.ELOOP, _joined(stack, name))
                    if target.startswith("/"):
                        while len(stack) > 1:
                            stack.pop()
                    todo.extend(p for p in reversed(target.split("/")) if p and p != ".")
                    continue
                if todo and not stat.S_ISDIR(st.st_mode):
                    os.close(fd)
                    raise _error(errno.ENOTDIR, _joined(stack, name))
                stack.push(_Component(fd, name))
            if len(stack) == 1:
                return Resolved("/", os.dup(self.fd), "", os.fstat(self.fd))
            last = stack.top
            st = os.fstat(last.fd)
            path = _joined(stack, None)
            stack.pop()
            return Resolved(path, os.dup(stack.top.fd), last.name, st)
        finally:
            stack.close()


@dataclass
class _Component:
    fd: int
    name: str


def _joined(stack: DirStack[_Component], name: str | None) -> str:
    """The path inside the root of the components on ``stack`` (and ``name``)."""
    names = [stack[i].name for i in range(1, len(stack))]
    return "/" + "/".join(names if name is None else [*names, name])


# ---------------------------------------------------------------- the walk
class Entry(NamedTuple):
    """One event of a walk: ``kind`` None ends the directory opened last.

    ``fd`` is a FILE's readable fd, valid until the next event; ``link`` is a
    symlink's target or, for a hard link, the path (relative to the copy's
    destination) of the first copy of the file.
    """

    kind: Kind | None
    name: str = ""
    meta: Meta = Meta(0, 0, 0, 0)
    fd: int = -1
    link: str = ""


END = Entry(None)


def _meta(st: os.stat_result, size: int = 0) -> Meta:
    return Meta(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime), size,
                os.major(st.st_rdev), os.minor(st.st_rdev))


#: Removed, or swapped for a symlink or a non-directory, while we walked: skipped (as tar warns and goes on).
_VANISHED = frozenset({errno.ENOENT, errno.ELOOP, errno.ENOTDIR})


@dataclass
class _Level:
    """A directory of a walk: its fd and the children not walked yet (last first)."""

    fd: int
    prefix: str  # its path relative to the walk's top, with a trailing "/" ("" for the top's contents)
    where: str  # its path in the source root, for messages
    pending: list[tuple[str, bool, bool]]  # name, is a file, is a directory


def _read_error(exc: OSError, path: str) -> CopyError:
    """An entry of the source that cannot be read: one line, as podman's (not Python's ``[Errno 13] ...``)."""
    return CopyError(f'error reading "{path}": {(exc.strerror or str(exc)).lower()}')


class _Walk:
    def __init__(self, excluded: frozenset[tuple[int, int]], ignore_devices: bool) -> None:
        self.excluded = excluded
        self.ignore_devices = ignore_devices
        self.links: dict[tuple[int, int], str] = {}

    def file(self, fd: int, name: str, rel: str) -> Iterator[Entry]:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return  # swapped for something else since the directory was read: skip it
        meta = Meta(st.st_mode & 0o7777, st.st_uid, st.st_gid, int(st.st_mtime), st.st_size)
        if st.st_nlink > 1:
            first = self.links.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                yield Entry(Kind.HARDLINK, name, meta, link=first)
                return
        yield Entry(Kind.FILE, name, meta, fd)

    def _level(self, fd: int, prefix: str, where: str, st: os.stat_result, *, top: bool = False) -> _Level:
        """``fd``'s level with its children listed: none for an excluded directory, unless its contents are
        what was asked for."""
        if not top and (st.st_dev, st.st_ino) in self.excluded:
            return _Level(fd, prefix, where, [])
        with os.scandir(fd) as it:
            found = [(e.name, e.is_file(follow_symlinks=False), e.is_dir(follow_symlinks=False)) for e in it]
        found.reverse()
        return _Level(fd, prefix, where, found)

    def tree(self, fd: int, name: str | None, where: str) -> Iterator[Entry]:
        """The directory ``fd`` (``where`` in the source) as ``name``, or only its children when ``name`` is
        None; takes ``fd``.

        Depth first with an explicit stack: a tree may be deeper than any recursion limit.
        """
        try:
            st = os.fstat(fd)
            first = self._level(fd, "" if name is None else name + "/", where, st, top=name is None)
        except OSError as exc:
            os.close(fd)
            raise _read_error(exc, where) from None
        except BaseException:
            os.close(fd)
            raise
        if name is not None:
            yield Entry(Kind.DIR, name, _meta(st))
        stack = DirStack(first)
        try:
            while len(stack):
                level = stack.top
                if not level.pending:
                    if len(stack) > 1 or name is not None:
                        yield END
                    stack.pop()
                    continue
                child, is_file, is_dir = level.pending.pop()
                try:
                    if is_file:
                        yield from self._child_file(level, child)
                    elif is_dir:
                        below = self._open_level(level, child)
                        yield Entry(Kind.DIR, child, _meta(os.fstat(below.fd)))
                        stack.push(below)
                    else:
                        yield from self.other(level.fd, child)
                except OSError as exc:
                    if exc.errno not in _VANISHED:
                        raise _read_error(exc, f"{level.where.rstrip('/')}/{child}") from None
        finally:
            stack.close()

    def _open_level(self, parent: _Level, name: str) -> _Level:
        fd = os.open(name, O_DIR, dir_fd=parent.fd)
        try:
            return self._level(fd, f"{parent.prefix}{name}/", f"{parent.where.rstrip('/')}/{name}", os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise

    def _child_file(self, level: _Level, name: str) -> Iterator[Entry]:
        fd = os.open(name, O_READ, dir_fd=level.fd)
        try:
            st = os.fstat(fd)
            if st.st_nlink == 1 and stat.S_ISREG(st.st_mode):  # the common case, inlined
                yield Entry(Kind.FILE, name, Meta(st.st_mode & 0o7777, st.st_uid, st.st_gid, int(st.st_mtime),
                                                  st.st_size), fd)
            else:
                yield from self.file(fd, name, level.prefix + name)
        finally:
            os.close(fd)

    def other(self, dfd: int, name: str, top: str | None = None) -> Iterator[Entry]:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        name, link_name = top or name, name
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            yield Entry(Kind.SYMLINK, name, _meta(st), link=os.readlink(link_name, dir_fd=dfd))
        elif stat.S_ISFIFO(mode):
            yield Entry(Kind.FIFO, name, _meta(st))
        elif (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and not self.ignore_devices:
            yield Entry(Kind.CHAR if stat.S_ISCHR(mode) else Kind.BLOCK, name, _meta(st))
        # sockets cannot be copied (tar ignores them too)


def tree_entries(src: Resolved, top: str, *, contents: bool, excluded: frozenset[tuple[int, int]] = frozenset(),
                 ignore_devices: bool = True) -> Iterator[Entry]:
    """Walk ``src`` (resolved, existing): as ``top``, or only its children with ``contents``.

    ``excluded`` directories (device, inode) are copied without their children
    (a container's /dev, /proc and /sys).
    """
    walk = _Walk(excluded, ignore_devices)
    assert src.st is not None
    if stat.S_ISDIR(src.st.st_mode):
        try:
            fd = src.open(O_DIR)
        except OSError as exc:
            raise _read_error(exc, src.path) from None
        yield from walk.tree(fd, None if contents else top, src.path)
    elif stat.S_ISREG(src.st.st_mode):
        try:
            fd = src.open(O_READ)
        except OSError as exc:
            raise _read_error(exc, src.path) from None
        try:
            yield from walk.file(fd, top, top)
        finally:
            os.close(fd)
    else:
        yield from walk.other(src.parent, src.name, top)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view):]


def copy_fd(src: int, dst: int, size: int, offset: int = 0) -> int:
    """Copy up to ``size`` bytes in the kernel (a file that shrank meanwhile ends early); the offset reached."""
    while offset < size:
        sent = os.sendfile(dst, src, offset, size - offset)
        if sent == 0:
            break
        offset += sent
    return offset


# ------------------------------------------------------------------ tar out
class FileData(NamedTuple):
    """A regular file's data in a tar stream: ``size`` bytes of ``fd`` (valid until the next piece)."""

    fd: int
    size: int


def tar_pieces(entries: Iterator[Entry]) -> Iterator[bytes | FileData]:
    """The tar stream of a walk as headers and padding (bytes) and files' data (:class:`FileData`), so a
    writer can move the data in the kernel (``sendfile``) rather than through Python."""
    prefixes = [""]
    for e in entries:
        if e.kind is None:
            prefixes.pop()
            continue
        name = prefixes[-1] + e.name
        if e.kind is Kind.DIR:
            prefixes.append(name + "/")
            yield header(Kind.DIR, os.fsencode(name + "/"), e.meta)
        elif e.kind is Kind.FILE:
            yield header(Kind.FILE, os.fsencode(name), e.meta)
            yield FileData(e.fd, e.meta.size)
            yield padding(e.meta.size)
        else:
            yield header(e.kind, os.fsencode(name), e.meta, os.fsencode(e.link))
    yield END_OF_ARCHIVE


def tar_chunks(entries: Iterator[Entry]) -> Iterator[bytes]:
    """The tar stream of a walk, in chunks of about :data:`CHUNK` bytes."""
    buf = bytearray()
    for piece in tar_pieces(entries):
        if isinstance(piece, FileData):
            yield from _file_data(buf, piece.fd, piece.size)
        else:
            buf += piece
        if len(buf) >= CHUNK:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


def _file_data(buf: bytearray, fd: int, size: int) -> Iterator[bytes]:
    """Append ``size`` bytes of ``fd`` to the stream; a file that shrank is padded with zeros."""
    left = size
    while left:
        if len(buf) >= CHUNK:
            yield bytes(buf)
            buf.clear()
        data = os.read(fd, min(left, CHUNK))
        if not data:
            buf += bytes(left)
            break
        buf += data
        left -= len(data)


class ChunkStream(io.RawIOBase):
    """A readable stream over chunks; ``on_close`` runs once the stream is closed."""

    def __init__(self, chunks: Iterator[bytes], on_close: Callable[[], None]) -> None:
        self._chunks = chunks
        self._on_close = on_close
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                close = getattr(self._chunks, "close", None)
                if close is not None:
                    close()
            finally:
                self._on_close()
        super().close()


# ------------------------------------------------------------------ writing
_FileJob = tuple[int, "_Dir", str, Meta, int]  # walk order, parent, name, meta, source fd (the job's own)


class _FileWriter:
    """Writes regular files in batches on worker threads; the first failure in walk order is raised.

    Every file is still created by ``write`` with a single name relative to its
    parent's directory fd, exactly as without threads: only the timing changes.
    """

    def __init__(self, write: Callable[[_Dir, str, Meta, int], None]) -> None:
        self._write = write
        self._batch: list[_FileJob] = []
        self._seq = 0
        self._queue: queue.Queue[list[_FileJob] | None] = queue.Queue(MAX_QUEUED_BATCHES)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._failed: tuple[int, BaseException] | None = None

    def put(self, parent: _Dir, name: str, meta: Meta, fd: int) -> None:
        """Write ``fd``'s data as ``name`` in ``parent`` (kept open until :meth:`drain`); takes ``fd``."""
        self._batch.append((self._seq, parent, name, meta, fd))
        self._seq += 1
        if len(self._batch) >= FILE_BATCH:
            if not self._threads:
                self._threads = [threading.Thread(target=self._work, name="kernelext-copy", daemon=True)
                                 for _ in range(FILE_WORKERS)]
                for thread in self._threads:
                    thread.start()
            self._queue.put(self._batch)
            self._batch = []
            if self._failed is not None:
                self.drain()

    def drain(self) -> None:
        """Wait until every file handed over is written; raise the first that failed."""
        batch, self._batch = self._batch, []
        self._run(batch)  # a last partial batch: written here
        self._queue.join()
        if self._failed is not None:
            raise self._failed[1]

    def close(self) -> None:
        """Stop the workers; files not written yet are dropped (after a failure)."""
        with self._lock:
            self._failed = self._failed or (-1, CopyError("copy interrupted"))
        for _, _, _, _, fd in self._batch:
            os.close(fd)
        self._batch = []
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def _work(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                self._run(batch)
            finally:
                self._queue.task_done()

    def _run(self, batch: list[_FileJob]) -> None:
        for seq, parent, name, meta, fd in batch:
            try:
                failed = self._failed
                if failed is None or seq < failed[0]:  # what comes after a failure is not written
                    self._write(parent, name, meta, fd)
            except BaseException as exc:  # noqa: BLE001 - re-raised by drain() in the walk's thread
                with self._lock:
                    if self._failed is None or seq < self._failed[0]:
                        self._failed = (seq, exc)
            finally:
                os.close(fd)


class DevicePolicy(enum.Enum):
    """What to do with device nodes: a container without CAP_MKNOD refuses them, the host skips them."""

    REFUSE = "refuse"
    SKIP = "skip"


@dataclass(frozen=True)
class SinkPolicy:
    """How :class:`FsSink` creates what it receives.

    ``owner``: (uid, gid) for everything created, or None to keep the source's.
    ``strip_setid``: drop setuid/setgid bits from files.
    ``where``: the destination in messages (``container web``, ``the host``).
    ``host_ids``: the destination's (uid, gid) as this process must set them (rootless, the
    container's IDs are mapped); raises :class:`CopyError` for IDs that do not exist there.
    """

    owner: tuple[int, int] | None
    overwrite: bool
    devices: DevicePolicy
    strip_setid: bool
    where: str
    host_ids: Callable[[int, int], tuple[int, int]] = lambda uid, gid: (uid, gid)


@dataclass
class _Dir:
    fd: int  # O_RDONLY directory fd
    path: str  # its path inside the root, for messages and symlink resolution
    rel: str  # relative to the destination, "" for the destination itself
    new_gid: int  # the group new entries get (the directory's own when it is setgid)
    meta: Meta | None = None  # times to set once its children are written (None: leave them)


class FsSink:
    """Creates entries under ``dest`` (an existing directory inside ``root``); owns ``dest_fd``."""

    def __init__(self, root: Root, dest_fd: int, dest_path: str, policy: SinkPolicy,
                 shown_dir: str | None = None) -> None:
        self._root = root
        # What messages call the destination: podman copies onto the host rooted at the destination
        # directory, so its messages name host paths from there ("/foo"), container paths in full.
        self._shown_dir = shown_dir
        self._policy = policy
        self._umask = _umask()
        self._uid, self._gid = os.geteuid(), os.getegid()
        self._top = _Dir(dest_fd, dest_path.rstrip("/") or "/", "", self._gid_for(os.fstat(dest_fd)))
        # The directories a walk is in (the destination first); an ancestor's fd may be closed meanwhile,
        # once the files queued in it are written.
        self._stack = DirStack(self._top, on_close=lambda d: self._files.drain())
        self._cache: dict[str, _Dir] = {}  # directories of a tar stream by their "rel", least recently used first
        self._deferred: list[tuple[tuple[str, ...], Member]] = []
        self._dir_times: list[tuple[str, Meta]] = []
        self._pending_links: set[str] = set()
        self._files = _FileWriter(self._write_file)
        self._host_ids: dict[tuple[int, int], tuple[int, int]] = {}

    def _gid_for(self, st: os.stat_result) -> int:
        return st.st_gid if st.st_mode & stat.S_ISGID else self._gid

    def close(self) -> None:
        self._files.close()
        for d in self._cache.values():
            os.close(d.fd)
        self._cache.clear()
        self._stack.close()  # the destination's fd too

    def _path(self, parent: _Dir, name: str) -> str:
        return f"{parent.path.rstrip('/')}/{name}"

    def _shown(self, parent: _Dir, name: str) -> str:
        if self._shown_dir is None:
            return self._path(parent, name)
        return "/" + "/".join(part for part in (self._shown_dir.strip("/"), parent.rel, name) if part)

    def _fail(self, exc: OSError, parent: _Dir, name: str, action: str = "creating") -> CopyError:
        reason = (exc.strerror or str(exc)).lower()
        return CopyError(f'error {action} "{self._shown(parent, name)}": {reason}')

    # ---------------------------------------------------- walk events (nested)
    def feed(self, e: Entry) -> None:
        parent = self._stack.top
        if e.kind is Kind.FILE:
            self._files.put(parent, e.name, e.meta, os.dup(e.fd))
            return
        if e.kind is None:
            self._files.drain()  # its files are in before its times are set and its fd closed
            self._set_dir_times(self._stack.top)
            self._stack.pop()
            return
        try:
            if e.kind is Kind.DIR:
                self._stack.push(self._make_dir(parent, e.name, e.meta))
            else:
                if e.kind is Kind.HARDLINK:
                    self._files.drain()  # its target may still be on its way
                self._make_other(parent, e.name, Member(e.kind, e.name, e.meta, e.link))
        except (CopyError, OSError) as exc:
            self._files.drain()  # a file that failed before this entry is the error to report
            if isinstance(exc, CopyError):
                raise
            raise self._fail(exc, parent, e.name) from None

    def _write_file(self, parent: _Dir, name: str, meta: Meta, fd: int) -> None:
        try:
            self._make_file(parent, name, meta, fd)
        except CopyError:
            raise
        except OSError as exc:
            raise self._fail(exc, parent, name) from None

    def finish(self) -> None:
        """Create deferred links, then set directory times (creating entries changes them)."""
        self._files.drain()
        for parts, member in self._deferred:
            parent = self._dir_for(parts[:-1])
            try:
                self._make_other(parent, parts[-1], member)
            except CopyError:
                raise
            except OSError as exc:
                raise self._fail(exc, parent, parts[-1]) from None
        for rel, meta in reversed(self._dir_times):
            try:
                d = self._dir_for(tuple(rel.split("/")))
            except (CopyError, OSError):
                continue  # removed meanwhile
            os.utime(d.fd, ns=(meta.mtime * 10**9, meta.mtime * 10**9))

    # ---------------------------------------------------------- tar members
    def put_archive(self, reader: TarReader) -> None:
        for member in reader:
            parts = member_parts(member.name)
            if not parts:
                continue  # the destination itself ("./"): its metadata stays as it is
            if member.kind is Kind.SYMLINK or (member.kind is Kind.HARDLINK and
                                                "/".join(member_parts(member.link)) in self._pending_links):
                # Created last, so no later member can be written through a link the archive made.
                self._deferred.append((parts, member))
                self._pending_links.add("/".join(parts))
                continue
            if self._pending_links:
                self._supersede("/".join(parts))
            parent = self._dir_for(parts[:-1])
            name = parts[-1]
            try:
                if member.kind is Kind.DIR:
                    d = self._make_dir(parent, name, member.meta)
                    self._remember(d)
                    if d.meta is not None:
                        self._dir_times.append((d.rel, d.meta))
                elif member.kind is Kind.FILE:
                    self._make_file(parent, name, member.meta, reader=reader)
                else:
                    self._make_other(parent, name, member)
            except CopyError:
                raise
            except OSError as exc:
                raise self._fail(exc, parent, name) from None
        self.finish()

    def _supersede(self, rel: str) -> None:
        """A member named as a link still to be created replaces it: in a stream the later entry wins."""
        if rel in self._pending_links:
            self._pending_links.discard(rel)
            self._deferred = [(parts, m) for parts, m in self._deferred if "/".join(parts) != rel]

    def _remember(self, d: _Dir) -> None:
        old = self._cache.pop(d.rel, None)
        if old is not None and old is not d:
            os.close(old.fd)
        elif old is None and len(self._cache) >= MAX_CACHED_DIRS:
            os.close(self._cache.pop(next(iter(self._cache))).fd)  # the least recently used
        self._cache[d.rel] = d

    def _cached(self, rel: str) -> _Dir | None:
        if not rel:
            return self._top
        d = self._cache.pop(rel, None)
        if d is not None:
            self._cache[rel] = d  # now the most recently used
        return d

    def _dir_for(self, parts: tuple[str, ...]) -> _Dir:
        """The directory ``parts`` below the destination, created (0755) when the archive did not.

        Down from its nearest known ancestor, one level at a time (a stream may be deeper than any recursion).
        """
        known = len(parts)
        while (d := self._cached("/".join(parts[:known]))) is None:
            known -= 1
        for name in parts[known:]:
            parent = d
            try:
                d = self._open_dir(parent, name)
                if d is None:
                    d = self._make_dir(parent, name, Meta(0o755, self._uid, self._gid, 0), times=False)
            except CopyError:
                raise
            except OSError as exc:
                raise self._fail(exc, parent, name) from None
            self._remember(d)
        return d

    def _open_dir(self, parent: _Dir, name: str) -> _Dir | None:
        """An existing directory (also through a symlink, resolved inside the root); None if missing."""
        rel = f"{parent.rel}/{name}" if parent.rel else name
        try:
            fd = os.open(name, O_DIR, dir_fd=parent.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            return self._through_symlink(parent, name, rel)
        return _Dir(fd, self._path(parent, name), rel, self._gid_for(os.fstat(fd)))

    def _through_symlink(self, parent: _Dir, name: str, rel: str) -> _Dir | None:
        st = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            return None
        target = self._root.resolve(self._path(parent, name))
        try:
            if not target.is_dir:
                return None
            fd = target.open(O_DIR)
            return _Dir(fd, target.path, rel, self._gid_for(os.fstat(fd)))
        finally:
            target.close()

    # ------------------------------------------------------------- creating
    def _clear(self, parent: _Dir, name: str, *, for_dir: bool) -> None:
        """Make room for a new entry where one exists (podman's --overwrite rules)."""
        is_dir = stat.S_ISDIR(os.stat(name, dir_fd=parent.fd, follow_symlinks=False).st_mode)
        if (is_dir or for_dir) and not self._policy.overwrite:  # a non-directory replaces another freely
            path = self._shown(parent, name)
            raise CopyError(f'error creating "{path}": {"mkdir" if for_dir else "creat"} {path}: file exists')
        if is_dir:
            remove_entry(parent.fd, name)
        else:
            os.unlink(name, dir_fd=parent.fd)

    def _owner(self, meta: Meta) -> tuple[int, int]:
        ids = self._policy.owner or (meta.uid, meta.gid)
        host = self._host_ids.get(ids)
        if host is None:  # a copy's files mostly share one owner: map it once
            host = self._host_ids[ids] = self._policy.host_ids(*ids)
        return host

    def _fix_owner_mode(self, fd: int, parent: _Dir, meta: Meta, mode: int) -> None:
        uid, gid = self._owner(meta)
        if uid != self._uid or gid != parent.new_gid:
            os.fchown(fd, uid, gid)  # before chmod: chown clears setuid/setgid bits
        if mode & ~0o777 or mode & self._umask:
            os.fchmod(fd, mode)

    def _make_file(self, parent: _Dir, name: str, meta: Meta, src: int = -1, reader: TarReader | None = None) -> None:
        """A regular file with the data of the fd ``src`` or of the current member of ``reader``."""
        mode = meta.mode & ~SETID_BITS if self._policy.strip_setid else meta.mode
        try:
            fd = os.open(name, O_CREATE, mode & 0o777, dir_fd=parent.fd)
        except FileExistsError:
            self._clear(parent, name, for_dir=False)
            fd = os.open(name, O_CREATE, mode & 0o777, dir_fd=parent.fd)
        try:
            if reader is not None:
                reader.copy_data(lambda chunk: _write_all(fd, chunk))
            elif meta.size > SMALL_FILE:
                copy_fd(src, fd, meta.size)
            elif meta.size:
                data = os.read(src, meta.size)
                _write_all(fd, data)
                if len(data) < meta.size:  # a short read: the rest, if the file did not shrink
                    copy_fd(src, fd, meta.size, len(data))
            self._fix_owner_mode(fd, parent, meta, mode)
            mtime = meta.mtime * 1_000_000_000
            os.utime(fd, ns=(mtime, mtime))
        except BaseException:
            _unlink_if_same(parent.fd, name, fd)  # nothing half-written stays (a truncated stream, a full disk)
            raise
        finally:
            os.close(fd)

    def _make_dir(self, parent: _Dir, name: str, meta: Meta, *, times: bool = True) -> _Dir:
        rel = f"{parent.rel}/{name}" if parent.rel else name
        mode = meta.mode & 0o7777
        try:
            os.mkdir(name, mode & 0o777, dir_fd=parent.fd)
        except FileExistsError:
            existing = self._open_dir(parent, name)
            if existing is not None:
                if existing.path == self._path(parent, name):  # a real directory: tar updates it
                    self._update_dir(existing, meta, mode)
                    existing.meta = meta if times else None
                return existing
            self._clear(parent, name, for_dir=True)
            os.mkdir(name, mode & 0o777, dir_fd=parent.fd)
        fd = os.open(name, O_DIR, dir_fd=parent.fd)
        gid = self._owner(meta)[1]
        d = _Dir(fd, self._path(parent, name), rel, gid if mode & stat.S_ISGID else self._gid, meta if times else None)
        self._fix_owner_mode(fd, parent, meta, mode)
        return d

    def _update_dir(self, d: _Dir, meta: Meta, mode: int) -> None:
        st = os.fstat(d.fd)
        uid, gid = self._owner(meta)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(d.fd, uid, gid)
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(d.fd, mode)

    def _set_dir_times(self, d: _Dir) -> None:
        if d.meta is not None:
            os.utime(d.fd, ns=(d.meta.mtime * 10**9, d.meta.mtime * 10**9))

    def _make_other(self, parent: _Dir, name: str, member: Member) -> None:
        kind, meta = member.kind, member.meta
        if kind is Kind.SYMLINK:
            self._retry_exists(parent, name, lambda: os.symlink(member.link, name, dir_fd=parent.fd))
            uid, gid = self._owner(meta)
            if uid != self._uid or gid != parent.new_gid:
                os.chown(name, uid, gid, dir_fd=parent.fd, follow_symlinks=False)
            os.utime(name, ns=(meta.mtime * 10**9, meta.mtime * 10**9), dir_fd=parent.fd, follow_symlinks=False)
        elif kind is Kind.HARDLINK:
            self._make_hardlink(parent, name, member.link)
        elif kind is Kind.FIFO:
            self._retry_exists(parent, name, lambda: os.mkfifo(name, meta.mode & 0o777, dir_fd=parent.fd))
            fd = os.open(name, O_READ, dir_fd=parent.fd)  # a FIFO opens at once with O_NONBLOCK
            try:
                if stat.S_ISFIFO(os.fstat(fd).st_mode):
                    self._fix_owner_mode(fd, parent, meta, meta.mode & 0o7777)
                    os.utime(fd, ns=(meta.mtime * 10**9, meta.mtime * 10**9))
            finally:
                os.close(fd)
        elif self._policy.devices is DevicePolicy.REFUSE:
            raise CopyError(f'refusing to create device node "{self._path(parent, name)}": '
                            f"{self._policy.where} is unprivileged (no CAP_MKNOD)")

    def _retry_exists(self, parent: _Dir, name: str, create: Callable[[], None]) -> None:
        try:
            create()
        except FileExistsError:
            self._clear(parent, name, for_dir=False)
            create()

    def _make_hardlink(self, parent: _Dir, name: str, target: str) -> None:
        """A hard link to an earlier entry, looked up inside the destination only."""
        parts = member_parts(target)
        if not parts:
            raise CopyError(f'refusing hard link "{self._path(parent, name)}" to the destination itself')
        try:
            tdir = openat2(self._top.fd, "/".join(parts[:-1]) or ".", os.O_PATH | os.O_DIRECTORY,
                           resolve=RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        except OSError as exc:
            raise self._fail(exc, parent, name, f'linking to "{target}" at') from None
        try:
            self._retry_exists(parent, name, lambda: os.link(parts[-1], name, src_dir_fd=tdir,
                                                             dst_dir_fd=parent.fd, follow_symlinks=False))
        except FileNotFoundError as exc:
            raise self._fail(exc, parent, name, f'linking to "{target}" at') from None
        finally:
            os.close(tdir)


def _unlink_if_same(dir_fd: int, name: str, fd: int) -> None:
    """Remove ``name`` if it is still the file open as ``fd`` (not what another process put there since)."""
    try:
        st, ours = os.stat(name, dir_fd=dir_fd, follow_symlinks=False), os.fstat(fd)
        if (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino):
            os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass  # gone already, or not ours to remove: the error being raised is what matters
