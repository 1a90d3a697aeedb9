"""Image layers: each unpacked once under ``<root>/layers/<diff ID>/``, shared by every image that has it.

A layer tar is hostile input. It is extracted with the copy engine's confined
sink (:class:`~kernelext.files.confined.FsSink`): ``..`` is refused, absolute
names stay inside the layer, hard links are looked up inside it, and symlinks
are created last so nothing is written through one. OCI whiteouts become
overlayfs' own forms once the tar is in: ``.wh.NAME`` a character device 0/0,
``.wh..wh..opq`` the opaque xattr on its directory (``user.`` when the overlay
is mounted rootless with ``userxattr``, ``trusted.`` as root). The layer's diff
ID (the sha256 of the uncompressed tar) is verified before it is put in place.
Extended attributes (PAX ``SCHILY.xattr.*``: ``security.capability``, ``user.*``)
are set once every entry is written (writing or chowning a file clears its
capability), except overlayfs' own, which a layer must not forge.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from kernelext.errors import CopyError, ImageFormatError
from kernelext.files.confined import DevicePolicy, FsSink, Root, SinkPolicy
from kernelext.files.copyrules import member_parts
from kernelext.files.rootpath import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2
from kernelext.files.tarformat import CHUNK, Member, TarReader, open_archive
from kernelext.rootless import Namespace
from kernelext.storage import staging

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR_ROOT = "trusted.overlay.opaque"
OPAQUE_XATTR_ROOTLESS = "user.overlay.opaque"
SHA256 = "sha256:"
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
#: Opened to set an entry's xattrs: never follows a final symlink (an entry's own xattrs only), never blocks.
_O_XATTR = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
PAX_XATTR = b"SCHILY.xattr."
KEPT_XATTR_PREFIXES = ("security.capability", "user.", "trusted.")
#: overlayfs' own metadata (opaque, redirect, metacopy): only the whiteout conversion above may set it.
FORBIDDEN_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


class _Hashing:
    """A read-only stream that hashes what passes through it (the uncompressed tar: the diff ID)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> None:
        """Hash the rest (the tar's end blocks and any padding after them)."""
        while self.read(CHUNK):
            pass


class _LayerReader(TarReader):
    """The members of a layer tar, whiteouts held back (as paths inside the layer) for overlayfs' forms."""

    empty_ok = True  # a step that changed no file (podman commits such layers too)

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__(stream)
        self.whiteouts: list[tuple[str, ...]] = []
        self.opaque: list[tuple[str, ...]] = []
        self.xattrs: list[tuple[tuple[str, ...], dict[str, bytes]]] = []
        self._pending: dict[str, bytes] = {}

    def _member(self, fields: tuple[bytes, ...], flag: bytes, size: int, overrides: dict[bytes, bytes]) -> Member:
        self._pending = {key[len(PAX_XATTR):].decode("utf-8", "surrogateescape"): value
                         for key, value in overrides.items() if key.startswith(PAX_XATTR)}
        return super()._member(fields, flag, size, overrides)

    def __next__(self) -> Member:
        while True:
            member = super().__next__()
            parts = member_parts(member.name)  # refuses ".." before anything is created
            if not parts or not parts[-1].startswith(WHITEOUT_PREFIX):
                kept = {k: v for k, v in self._pending.items()
                        if k.startswith(KEPT_XATTR_PREFIXES) and not k.startswith(FORBIDDEN_XATTR_PREFIXES)}
                if kept and parts:
                    self.xattrs.append((parts, kept))
                return member
            if parts[-1] == OPAQUE_MARKER:
                self.opaque.append(parts[:-1])
                continue
            hidden = parts[-1].removeprefix(WHITEOUT_PREFIX)
            if hidden in ("", ".", ".."):
                raise CopyError(f'refusing whiteout "{member.name}": it names no entry of its directory')
            self.whiteouts.append((*parts[:-1], hidden))


def layer_path(layers_dir: Path, diff_id: str) -> Path:
    return layers_dir / diff_id.removeprefix(SHA256)


def _open_dir(root_fd: int, parts: tuple[str, ...]) -> int:
    """The directory ``parts`` inside the layer (made when the tar did not), each step resolved inside it."""
    resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
    for depth in range(len(parts)):
        try:
            os.close(openat2(root_fd, "/".join(parts[:depth + 1]), _O_DIR, resolve=resolve))
        except FileNotFoundError:
            parent = openat2(root_fd, "/".join(parts[:depth]) or ".", _O_DIR, resolve=resolve)
            try:
                os.mkdir(parts[depth], 0o755, dir_fd=parent)
            finally:
                os.close(parent)
    return openat2(root_fd, "/".join(parts) or ".", _O_DIR, resolve=resolve)


def _apply_whiteouts(root_fd: int, reader: _LayerReader, opaque_xattr: str) -> None:
    for parts in reader.opaque:
        fd = _open_dir(root_fd, parts)
        try:
            os.setxattr(fd, opaque_xattr, b"y")
        finally:
            os.close(fd)
    for parts in reader.whiteouts:
        fd = _open_dir(root_fd, parts[:-1])
        try:
            os.mknod(parts[-1], stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=fd)
        except FileExistsError:
            raise CopyError(f'whiteout "{"/".join(parts)}" names an entry the layer itself has') from None
        finally:
            os.close(fd)


def _apply_xattrs(root_fd: int, reader: _LayerReader, rootless: bool) -> None:
    for parts, xattrs in reader.xattrs:
        if rootless:  # trusted.* needs CAP_SYS_ADMIN in the initial namespace: what a rootless store cannot keep
            xattrs = {k: v for k, v in xattrs.items() if not k.startswith("trusted.")}
        try:
            fd = openat2(root_fd, "/".join(parts), _O_XATTR, resolve=RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENXIO):
                continue  # a symlink (no xattrs of its own here), a socket, or an entry a later one replaced
            raise
        try:
            for name, value in xattrs.items():
                os.setxattr(fd, name, value)
        finally:
            os.close(fd)


def unpack(blob: Path, diff_id: str, layers_dir: Path, namespace: Namespace) -> Path:
    """The layer ``diff_id`` unpacked from ``blob`` (a tar, compressed or not); done at most once."""
    final = layer_path(layers_dir, diff_id)
    if final.is_dir():
        return final  # shared: another image brought it already
    if not diff_id.startswith(SHA256) or len(diff_id) != len(SHA256) + 64:
        raise ImageFormatError(f"unsupported layer diff ID {diff_id!r}")
    layers_dir.mkdir(parents=True, exist_ok=True)
    staging_dir = staging.make_dir(layers_dir)  # named after this process: garbage once it is gone
    try:
        os.chmod(staging_dir, 0o755)  # the image's "/" (a tar's "./" entry does not change the destination)
        _extract(blob, diff_id, staging_dir, namespace)
        try:
            os.rename(staging_dir, final)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            namespace.remove_tree(staging_dir)  # another process unpacked it meanwhile
    except BaseException:
        namespace.remove_tree(staging_dir)
        raise
    return final


def _extract(blob: Path, diff_id: str, dest: Path, namespace: Namespace) -> None:
    # Owners kept where the namespace has them (as root; rootless with subordinate IDs), else all its root's.
    policy = SinkPolicy(owner=None if namespace.keeps_owners else (0, 0), overwrite=True, devices=DevicePolicy.SKIP,
                        strip_setid=False,
                        where=f"layer {diff_id[:19]}")
    short = diff_id.removeprefix(SHA256)[:12]
    with blob.open("rb") as raw:
        stream = _Hashing(open_archive(raw))
        reader = _LayerReader(stream)  # type: ignore[arg-type]
        root = Root.open(dest)
        try:
            sink = FsSink(root, os.open(dest, _O_DIR), "/", policy)
            try:
                sink.put_archive(reader)
            finally:
                sink.close()
            _apply_whiteouts(root.fd, reader, OPAQUE_XATTR_ROOTLESS if namespace.rootless else OPAQUE_XATTR_ROOT)
            _apply_xattrs(root.fd, reader, namespace.rootless)
        except (CopyError, OSError) as exc:
            raise ImageFormatError(f"layer {short}: {exc}", operation="pull") from None
        finally:
            root.close()
        stream.drain()
    if f"{SHA256}{stream.digest.hexdigest()}" != diff_id:
        raise ImageFormatError(f"layer {short}: its content does not match its diff ID", operation="pull")


def remove_unused(layers_dir: Path, keep: set[str], candidates: list[str], namespace: Namespace) -> None:
    """Remove the layers among ``candidates`` that no image in ``keep`` still has."""
    for diff_id in candidates:
        if diff_id not in keep:
            path = layer_path(layers_dir, diff_id)
            if path.exists():
                namespace.remove_tree(path)
