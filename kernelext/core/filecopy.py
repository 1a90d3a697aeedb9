"""Files in and out of containers: podman cp, put/get archive, stat and diff (docs/architecture.md §5).

Container paths are resolved and written inside the container's root through
:mod:`kernelext.files.confined` in this process. A running or paused
container is reached through ``/proc/<pid>/root`` (its mount namespace's view,
tmpfs mounts included); any other is mounted for the copy, holding a mount
reference that is dropped afterwards (so a rootfs that was mounted stays
mounted). The container lock is held while the root is acquired and released,
not while data flows.

Rootless with subordinate IDs, files given to a user other than the
container's root cannot be written from here (the host user cannot chown to
those IDs, nor then chmod them): such a copy runs as ``kernelext cp`` inside
the store's user namespace, whose root can.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, BinaryIO

from kernelext.core.mounts import Mount, MountType, under
from kernelext.core.state import ContainerStatus
from kernelext.errors import ContainerRemovedError, CopyError, KernelextError, NoSuchImageError
from kernelext.files.confined import (
    O_DIR,
    ChunkStream,
    DevicePolicy,
    Entry,
    FsSink,
    Resolved,
    Root,
    SinkPolicy,
    tar_chunks,
    tree_entries,
)
from kernelext.files.copyrules import (
    NOT_FOUND,
    STDIN_NEEDS_DIR,
    Found,
    PathForm,
    parse_copy_args,
    path_form,
    plan_copy,
    with_ending,
)
from kernelext.files.tarformat import CHUNK, NOT_AN_ARCHIVE, TarReader, open_archive
from kernelext.rootless import Namespace
from kernelext.storage.layerdiff import Change
from kernelext.storage.users import ExecUser, resolve_user
from kernelext.units import format_time

if TYPE_CHECKING:
    from kernelext.core.container import Container
    from kernelext.core.runtime import Runtime

#: Copied without their contents when walking a container: the kernel's views, not files.
PSEUDO_DIRS = ("dev", "proc", "sys")
#: Mode of a file written from a notebook cell (``%%container write``).
FILE_MODE = 0o644
HOST = "the host"
#: Go's os.FileMode type bits, used by podman's and Docker's stat (``X-Docker-Container-Path-Stat``).
_GO_TYPE_BITS = {stat.S_IFDIR: 1 << 31, stat.S_IFLNK: 1 << 27, stat.S_IFBLK: 1 << 26,
                 stat.S_IFCHR: 1 << 26 | 1 << 21, stat.S_IFIFO: 1 << 25, stat.S_IFSOCK: 1 << 24}
_GO_SETUID, _GO_SETGID, _GO_STICKY = 1 << 23, 1 << 22, 1 << 20


@dataclass(frozen=True)
class FileInfo:
    """podman's ``FileInfo`` of a container path; ``link_target`` is the path it resolves to."""

    name: str
    size: int
    mode: int  # st_mode: type and permission bits
    mtime: float
    link_target: str
    is_dir: bool

    def to_json(self) -> dict[str, Any]:
        """podman's JSON form: ``mode`` as Go's os.FileMode, ``mtime`` in RFC 3339."""
        go_mode = stat.S_IMODE(self.mode) & 0o777 | _GO_TYPE_BITS.get(stat.S_IFMT(self.mode), 0)
        go_mode |= (_GO_SETUID if self.mode & stat.S_ISUID else 0) | (_GO_SETGID if self.mode & stat.S_ISGID else 0)
        go_mode |= _GO_STICKY if self.mode & stat.S_ISVTX else 0
        return {"name": self.name, "size": self.size, "mode": go_mode, "mtime": format_time(self.mtime),
                "isDir": self.is_dir, "linkTarget": self.link_target}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FileInfo:
        """podman's JSON form (a remote service's ``X-Docker-Container-Path-Stat``) back to a FileInfo."""
        from kernelext.core.logs import parse_timestamp

        go_mode = int(doc.get("mode") or 0)
        # a character device's bits include a block device's: the type with the most bits set wins
        kind = max((st for st, bits in _GO_TYPE_BITS.items() if go_mode & bits == bits),
                   key=lambda st: _GO_TYPE_BITS[st].bit_count(), default=stat.S_IFREG)
        mode = kind | go_mode & 0o777 | (stat.S_ISUID if go_mode & _GO_SETUID else 0)
        mode |= (stat.S_ISGID if go_mode & _GO_SETGID else 0) | (stat.S_ISVTX if go_mode & _GO_STICKY else 0)
        mtime = str(doc.get("mtime") or "")
        return cls(str(doc.get("name", "")), int(doc.get("size") or 0), mode,
                   parse_timestamp(mtime.replace("Z", "+00:00")) if mtime else 0.0, str(doc.get("linkTarget", "")),
                   bool(doc.get("isDir")))


# ---------------------------------------------------------------- the root
def _namespace_root(ctr: Container) -> Root | None:
    """The running container's root as its processes see it, or None if its PID is not it."""
    try:
        proc = os.open(f"/proc/{ctr.state.pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fd = os.open("root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
    except OSError:
        return None
    finally:
        os.close(proc)
    # A recycled PID would show another root: it must be the container's overlay root.
    ours, theirs = os.stat(ctr.layer.merged_view), os.fstat(fd)
    if (ours.st_dev, ours.st_ino) != (theirs.st_dev, theirs.st_ino):
        os.close(fd)
        return None
    return Root(fd)


@contextmanager
def container_root(ctr: Container) -> Iterator[Root]:
    """The container's root directory for the duration of a copy (any state)."""
    reference = False
    with ctr._locked():
        root = None
        if ctr.state.status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED) and ctr.state.pid:
            root = _namespace_root(ctr)
        if root is None:
            ctr.layer.mount()
            ctr.state.user_mounts += 1
            reference = True
            ctr._save()
            root = Root.open(ctr.layer.merged_view)
    try:
        yield root
    finally:
        root.close()
        if reference:
            _drop_mount_reference(ctr)


def mount_source(ctr: Container, path: str) -> tuple[str, str] | None:
    """podman cp resolves mounts: the host directory behind the innermost bind mount or volume that holds
    the container path ``path``, and the path inside it (None: the container's own root). tmpfs mounts
    have no host side; they are the container's root."""
    best: Mount | None = None
    for mount in ctr.config.mounts:
        if mount.type is not MountType.TMPFS and under(path, mount.destination) and (
                best is None or len(mount.destination) > len(best.destination)):
            best = mount
    if best is None:
        return None
    source = best.source if best.type is MountType.BIND else str(ctr._runtime.volumes.path(best.source))
    inside = "/" + path[len(best.destination):].lstrip("/")
    if not os.path.isdir(source):  # a file bind-mounted: its directory, confined to that one name
        return posixpath.dirname(source), posixpath.join("/", posixpath.basename(source), inside.lstrip("/"))
    return source, inside


@contextmanager
def root_at(ctr: Container, form: PathForm) -> Iterator[tuple[Root, PathForm, bool]]:
    """The root that ``form`` is resolved in and the form inside it, and whether it is the container's
    own root: a mount's source for a path under a bind mount or a volume, as podman resolves it."""
    found = mount_source(ctr, form.path)
    if found is None:
        with container_root(ctr) as root:
            yield root, form, True
        return
    root = Root.open(found[0])
    try:
        yield root, replace(form, path=found[1]), False
    finally:
        root.close()


def _drop_mount_reference(ctr: Container) -> None:
    try:
        with ctr._locked():
            ctr.state.user_mounts = max(0, ctr.state.user_mounts - 1)
            if not ctr.state.mounted:
                ctr.layer.unmount()
            ctr._save()
    except ContainerRemovedError:
        pass  # removed during the copy: its storage is gone already


def _pseudo_dirs(root: Root) -> frozenset[tuple[int, int]]:
    found = set()
    for name in PSEUDO_DIRS:
        try:
            fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root.fd)
        except OSError:
            continue
        st = os.fstat(fd)
        os.close(fd)
        found.add((st.st_dev, st.st_ino))
    return frozenset(found)


def _configured_user(ctr: Container) -> str:
    """The user the container runs as, as configured (``--user``, else the image's)."""
    try:
        image_user = ctr._runtime.images.get(ctr.config.image_id).config.user
    except NoSuchImageError:
        image_user = ""
    return ctr.config.user or image_user


def container_user(ctr: Container, root: Root) -> ExecUser:
    """The container's user, from its own /etc/passwd and /etc/group read as data."""
    return resolve_user(f"/proc/self/fd/{root.fd}", _configured_user(ctr))


def container_policy(ctr: Container, root: Root | None, *, chown: bool, overwrite: bool) -> SinkPolicy:
    """Writing into a container: its user owns what arrives (``chown``), device nodes are
    refused (no kernelext container has CAP_MKNOD), and setuid/setgid bits survive only
    on files the container user owns or when that user is root anyway. ``root``: the container's
    own root, where its users are looked up (None: writing into a mount's source, see :func:`root_at`)."""
    if root is None:
        with container_root(ctr) as own:
            user = container_user(ctr, own)
    else:
        user = container_user(ctr, root)
    namespace = ctr._runtime.namespace

    def host_ids(uid: int, gid: int) -> tuple[int, int]:
        ids = namespace.host_ids(uid, gid)
        if ids is None:
            raise CopyError(f"potentially insufficient UIDs or GIDs available in user namespace (requested "
                            f"{uid}:{gid}): check /etc/subuid and /etc/subgid", container=ctr.name, operation="copy")
        return ids

    return SinkPolicy(owner=(user.uid, user.gid) if chown else None, overwrite=overwrite,
                      devices=DevicePolicy.REFUSE, strip_setid=not chown and user.uid != 0,
                      where=f"container {ctr.name}", host_ids=host_ids)


def host_policy(*, overwrite: bool) -> SinkPolicy:
    """Writing onto the host (podman): owned by the caller, devices skipped; setuid/setgid bits
    are dropped too, so a container cannot plant a set-ID program owned by the caller."""
    return SinkPolicy(owner=(os.geteuid(), os.getegid()), overwrite=overwrite, devices=DevicePolicy.SKIP,
                      strip_setid=True, where=HOST)


# --------------------------------------------------------------- resolving
def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def resolve_existing(root: Root, form: PathForm, display: str, where: str) -> Resolved:
    """``form`` resolved inside ``root``; podman's "could not be found" when it is not there."""
    try:
        found = root.resolve(form.path)
    except OSError as exc:
        raise CopyError(f'"{display}" could not be found on {where}: {_reason(exc)}') from None
    if found.st is None:
        found.close()
        raise CopyError(f'"{display}" could not be found on {where}: {NOT_FOUND}')
    if (form.trailing_slash or form.contents) and not found.is_dir:
        found.close()
        raise CopyError(f'"{display}" could not be found on {where}: not a directory')
    return found


def file_info(found: Resolved, form: PathForm) -> FileInfo:
    assert found.st is not None
    st = found.st
    return FileInfo(name=posixpath.basename(found.path) or "/", size=st.st_size, mode=st.st_mode,
                    mtime=st.st_mtime, link_target=with_ending(form, found.path), is_dir=found.is_dir)


def _where(ctr: Container) -> str:
    return f"container {ctr.name}"


# ------------------------------------------------------------ container API
def stat_path(ctr: Container, path: str) -> FileInfo:
    form = path_form(path, ctr.config.workdir)
    with container_root(ctr) as root:
        found = resolve_existing(root, form, path, _where(ctr))
        try:
            return file_info(found, form)
        finally:
            found.close()


def list_dir(ctr: Container, path: str) -> list[FileInfo]:
    """The entries of the directory ``path``, sorted by name; symlinks are listed, not followed."""
    form = path_form(path, ctr.config.workdir)
    with container_root(ctr) as root:
        found = resolve_existing(root, form, path, _where(ctr))
        try:
            if not found.is_dir:
                raise CopyError(f'"{path}" on container {ctr.name} is not a directory', container=ctr.name,
                                operation="list")
            fd = found.open(O_DIR)
            try:
                entries = []
                with os.scandir(fd) as it:
                    for entry in it:
                        st = entry.stat(follow_symlinks=False)
                        target = os.readlink(entry.name, dir_fd=fd) if entry.is_symlink() else ""
                        entries.append(FileInfo(entry.name, st.st_size, st.st_mode, st.st_mtime, target,
                                                stat.S_ISDIR(st.st_mode)))
            finally:
                os.close(fd)
            return sorted(entries, key=lambda info: info.name)
        finally:
            found.close()


def diff(ctr: Container) -> list[Change]:
    """The layer's changes, mount points left out (podman: what is mounted is not the container's)."""
    with ctr._locked():
        changes = ctr.layer.changes()
    destinations = [m.destination for m in ctr.config.mounts]
    return [c for c in changes if not any(under(c.path, d) for d in destinations)]


def _extract_into(root: Root, found: Resolved, policy: SinkPolicy, stream: BinaryIO) -> None:
    sink = FsSink(root, found.open(O_DIR), found.path, policy)
    try:
        sink.put_archive(TarReader(open_archive(stream)))
    finally:
        sink.close()


#: Users that are the container's root: files given to them are the rootless user's own.
_ROOT_USERS = ("", "0", "root", "0:0", "root:root", "root:0", "0:root")


def _owners_need_namespace(ctr: Container, *, chown: bool) -> bool:
    """Whether writing into ``ctr`` may give files to IDs this process cannot set (see module doc)."""
    namespace = ctr._runtime.namespace
    if namespace.direct or not namespace.keeps_owners:
        return False
    if not chown:
        return True  # the archive's owners, whoever they are
    return _configured_user(ctr) not in _ROOT_USERS


def _copy_in_namespace(rt: Runtime, src: str, dst: str, *, archive: bool, overwrite: bool,
                       stdin: BinaryIO | None) -> None:
    """The same copy in the store's user namespace, where the container's IDs can be set: in a forked
    child of this process that joined it (no new program); host paths made absolute first (joining the
    mount namespace moves the working directory to its root)."""
    if src != "-" and parse_copy_args(src, dst)[0].container is None:
        src = os.path.join(os.getcwd(), src)

    def inside() -> None:
        from kernelext.core.runtime import Runtime

        with Runtime(options=rt.opts) as inner:
            copy(inner, src, dst, archive=archive, overwrite=overwrite, stdin=stdin)

    try:
        rt.namespace.call(inside)
    except KernelextError as exc:
        if isinstance(exc, CopyError):
            raise
        raise CopyError(exc.message, operation="copy") from None


def put_archive(ctr: Container, path: str, stream: BinaryIO, *, chown: bool, overwrite: bool) -> None:
    """Extract a (compressed) tar stream into the existing directory ``path``."""
    if _owners_need_namespace(ctr, chown=chown):
        return _copy_in_namespace(ctr._runtime, "-", f"{ctr.id}:{path}", archive=chown, overwrite=overwrite,
                                  stdin=stream)
    with root_at(ctr, path_form(path, ctr.config.workdir)) as (root, form, own):
        found = resolve_existing(root, form, path, _where(ctr))
        try:
            if not found.is_dir:
                raise CopyError(f'"{path}" on container {ctr.name} is not a directory: '
                                "an archive is extracted into a directory")
            policy = container_policy(ctr, root if own else None, chown=chown, overwrite=overwrite)
            _extract_into(root, found, policy, stream)
        finally:
            found.close()


def write_file(ctr: Container, path: str, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Write ``data`` to the file ``path`` (its directory must exist), as a one-entry archive."""
    import tarfile  # an entry built here, from bytes: no host user lookups

    directory, _, name = path.rstrip("/").rpartition("/")
    if not name or path.endswith("/"):
        raise CopyError(f'"{path}" is not a file name', container=ctr.name, operation="write")
    entry = tarfile.TarInfo(name)
    entry.size, entry.mode, entry.mtime = len(data), mode, int(time.time())
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(entry, io.BytesIO(data))
    archive.seek(0)
    put_archive(ctr, directory or ("/" if path.startswith("/") else "."), archive, chown=True, overwrite=False)


def make_dir(ctr: Container, path: str) -> None:
    """Create the directory ``path`` (its parent must exist), owned by the container's user."""
    import tarfile  # an entry built here: no host user lookups

    directory, _, name = path.rstrip("/").rpartition("/")
    if not name or name in (".", ".."):
        raise CopyError(f'"{path}" is not a directory name', container=ctr.name, operation="mkdir")
    with container_root(ctr) as root:
        found = root.resolve(path_form(path, ctr.config.workdir).path, follow=False)
        exists = found.st is not None
        found.close()
    if exists:
        raise CopyError(f'"{path}" already exists on {_where(ctr)}', container=ctr.name, operation="mkdir")
    entry = tarfile.TarInfo(name)
    entry.type, entry.mode, entry.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(entry)
    archive.seek(0)
    put_archive(ctr, directory or ("/" if path.startswith("/") else "."), archive, chown=True, overwrite=False)


def remove_path(ctr: Container, path: str) -> None:
    """``rm -rf`` of ``path`` inside the container: a symlink itself is removed, never what it points to."""
    from kernelext.files.fdtree import remove_entry

    form = path_form(path, ctr.config.workdir)
    with container_root(ctr) as root:
        found = root.resolve(form.path, follow=False)
        try:
            if found.st is None:
                raise CopyError(f'"{path}" could not be found on {_where(ctr)}: {NOT_FOUND}')
            if not found.name:
                raise CopyError(f"refusing to remove the root of {_where(ctr)}", container=ctr.name,
                                operation="remove")
            try:
                remove_entry(found.parent, found.name)
            except OSError as exc:
                raise CopyError(f'removing "{path}" on {_where(ctr)}: {_reason(exc)}', container=ctr.name,
                                operation="remove") from None
        finally:
            found.close()


def get_archive(ctr: Container, path: str) -> tuple[BinaryIO, FileInfo]:
    """A tar stream of ``path`` (named by its resolved base name; ``dir/.``: the contents)."""
    with ExitStack() as stack:
        root, form, own = stack.enter_context(root_at(ctr, path_form(path, ctr.config.workdir)))
        found = resolve_existing(root, form, path, _where(ctr))
        stack.callback(found.close)
        info = file_info(found, form)
        entries = _with_container_ids(tree_entries(found, info.name, contents=form.contents,
                                                   excluded=_pseudo_dirs(root) if own else frozenset()),
                                      ctr._runtime.namespace)
        cleanup = stack.pop_all()
    return io.BufferedReader(ChunkStream(tar_chunks(entries), cleanup.close), CHUNK), info


def _with_container_ids(entries: Iterator[Entry], namespace: Namespace) -> Iterator[Entry]:
    """Owners as the container sees them: rootless, this process sees the host's IDs."""
    if namespace.direct:
        yield from entries
        return
    for e in entries:
        if e.kind is not None:
            uid, gid = namespace.container_ids(e.meta.uid, e.meta.gid)
            e = e._replace(meta=e.meta._replace(uid=uid, gid=gid))
        yield e


# ------------------------------------------------------------------ podman cp
@dataclass
class _Side:
    """One side of a copy: a root, the path's form, and names for messages."""

    root: Root
    form: PathForm
    display: str
    where: str
    excluded: frozenset[tuple[int, int]] = frozenset()
    namespace: Namespace = field(default_factory=Namespace)  # whose IDs a container side's owners are in
    own: bool = True  # the container's own root, not a mount's source (root_at)


def _check_host_destination(dst: _Side) -> None:
    """podman: an existing host destination is a directory or a regular file (so not /dev/stdout).
    The host's own lookup, magic links included: this side is trusted."""
    try:
        mode = os.stat(dst.form.path).st_mode
    except OSError:
        return
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise CopyError(f'invalid destination: "{dst.display}" must be a directory or a regular file')


def _copy_tree(src: _Side, dst: _Side, policy: SinkPolicy) -> None:
    if dst.where == HOST:
        _check_host_destination(dst)
    source = resolve_existing(src.root, src.form, src.display, src.where)
    try:
        try:
            target = dst.root.resolve(dst.form.path)
        except OSError as exc:
            raise CopyError(f'"{dst.display}" could not be found on {dst.where}: {_reason(exc)}') from None
        try:
            if target.st is not None and (dst.form.trailing_slash or dst.form.contents) and not target.is_dir:
                raise CopyError(f'"{dst.display}" could not be found on {dst.where}: not a directory')
            plan = plan_copy(Found(True, source.is_dir, source.path), src.form,
                             Found(target.st is not None, target.is_dir, target.path), dst.form, dst.display,
                             dst.where)
            # The destination directory is the target itself or the parent it was resolved in.
            dest_fd = target.open(O_DIR) if plan.dest_dir == target.path else os.open(".", O_DIR,
                                                                                        dir_fd=target.parent)
        finally:
            target.close()
        sink = FsSink(dst.root, dest_fd, plan.dest_dir, policy, shown_dir="/" if dst.where == HOST else None)
        try:
            for entry in tree_entries(source, plan.name, contents=plan.contents, excluded=src.excluded):
                sink.feed(entry)
            sink.finish()
        finally:
            sink.close()
    finally:
        source.close()


def _from_stdin(dst: _Side, policy: SinkPolicy, stdin: BinaryIO) -> None:
    try:
        target = dst.root.resolve(dst.form.path)
    except OSError:
        raise CopyError(STDIN_NEEDS_DIR) from None
    try:
        if not target.is_dir:
            raise CopyError(STDIN_NEEDS_DIR)
        try:
            _extract_into(dst.root, target, policy, stdin)
        except CopyError as exc:
            if str(exc).startswith(NOT_AN_ARCHIVE):
                raise CopyError(f"{NOT_AN_ARCHIVE} when copying from stdin") from None
            raise
    finally:
        target.close()


def _to_stdout(src: _Side, stdout: BinaryIO) -> None:
    source = resolve_existing(src.root, src.form, src.display, src.where)
    try:
        name = posixpath.basename(source.path) or "/"
        entries = tree_entries(source, name, contents=src.form.contents, excluded=src.excluded)
        stdout.writelines(tar_chunks(_with_container_ids(entries, src.namespace)))
        stdout.flush()
    finally:
        source.close()


@contextmanager
def _container_side(ctr: Container, path: str) -> Iterator[_Side]:
    with root_at(ctr, path_form(path, ctr.config.workdir)) as (root, form, own):
        yield _Side(root, form, path, _where(ctr), _pseudo_dirs(root) if own else frozenset(),
                    ctr._runtime.namespace, own)


@contextmanager
def _host_side(path: str) -> Iterator[_Side]:
    root = Root.open("/")
    try:
        yield _Side(root, path_form(path, os.getcwd()), path, HOST)
    finally:
        root.close()


def copy(rt: Runtime, source: str, destination: str, *, archive: bool, overwrite: bool,
         stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
    """podman cp: ``[container:]path`` on both sides, ``-`` for a tar stream on stdin/stdout."""
    src, dst = parse_copy_args(source, destination)
    src_ctr = rt.get(src.container) if src.container is not None else None
    dst_ctr = rt.get(dst.container) if dst.container is not None else None
    with ExitStack() as stack:
        if dst_ctr is None:  # container → host or stdout
            assert src_ctr is not None
            side = stack.enter_context(_container_side(src_ctr, src.path))
            if dst.is_stream:
                _to_stdout(side, stdout or sys.stdout.buffer)
                return
            _copy_tree(side, stack.enter_context(_host_side(dst.path)), host_policy(overwrite=overwrite))
            return
        if _owners_need_namespace(dst_ctr, chown=archive):
            return _copy_in_namespace(rt, source, destination, archive=archive, overwrite=overwrite,
                                      stdin=(stdin or sys.stdin.buffer) if src.is_stream else None)
        to = stack.enter_context(_container_side(dst_ctr, dst.path))
        policy = container_policy(dst_ctr, to.root if to.own else None, chown=archive, overwrite=overwrite)
        if src.is_stream:
            _from_stdin(to, policy, stdin or sys.stdin.buffer)
        elif src_ctr is None:
            _copy_tree(stack.enter_context(_host_side(src.path)), to, policy)
        else:
            _copy_tree(stack.enter_context(_container_side(src_ctr, src.path)), to, policy)
