"""A remote container's files through podman's archive endpoints: what the file browser asks of a container.

podman's API has a path's stat (``HEAD .../archive``: the ``X-Docker-Container-Path-Stat`` header), a
path's tar (``GET``) and an upload of a tar into a directory (``PUT``); it has no listing and no removal.
A folder is listed from its tar's headers (the entries one level down; the bytes still cross the
connection, so a big folder lists slowly), a file or folder is written as a one-entry tar, and a removal
is an exec of ``rm -rf`` in the (running) container: nothing here touches a path of this machine. The
calls have the shape of :class:`~kernelext.core.container.Container`'s file calls, so the browser uses
either (docs/architecture.md §16).
"""

from __future__ import annotations

import contextlib
import io
import posixpath
import stat
import tarfile
import time
from typing import TYPE_CHECKING, Any, BinaryIO

from kernelext.core.filecopy import FILE_MODE, FileInfo
from kernelext.errors import ContainerStateError, CopyError

if TYPE_CHECKING:
    from kernelext.domain.remote import RemoteEngine

NOT_FOUND = "no such file or directory"
DIR_MODE = 0o755
#: A tar entry's type as the st_mode type bits (what a local listing reports).
TAR_TYPES = {tarfile.DIRTYPE: stat.S_IFDIR, tarfile.SYMTYPE: stat.S_IFLNK, tarfile.CHRTYPE: stat.S_IFCHR,
             tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: stat.S_IFIFO}
#: Reads of a streamed archive (urllib3's default reads are small).
READ_BUFFER = 1 << 20


def _entry_name(name: str) -> str:
    """A tar entry's path without the leading ``/`` or ``./`` podman may give it."""
    name = name.rstrip("/")
    while name.startswith(("/", "./")):
        name = name[1:] if name.startswith("/") else name[2:]
    return "" if name == "." else name


def _info(member: tarfile.TarInfo, name: str) -> FileInfo:
    """A tar header as a listing's entry: a link's size is its target's length (as ``lstat`` says); a folder's
    is 0 (a tar records none; the browser shows no size for folders)."""
    kind = TAR_TYPES.get(member.type, stat.S_IFREG)
    size = len(member.linkname.encode()) if member.issym() else member.size
    return FileInfo(name, size, kind | stat.S_IMODE(member.mode), float(member.mtime),
                    member.linkname if member.issym() else "", kind == stat.S_IFDIR)


class RemoteFiles:
    """One remote container's files (``engine.files(name)``)."""

    def __init__(self, engine: RemoteEngine, name: str) -> None:
        doc = engine.inspect_container(name)
        self.engine = engine
        self.id = str(doc["Id"])
        self.name = str(doc.get("Name") or name)

    def __repr__(self) -> str:
        return f"RemoteFiles({self.name} on {self.engine.name})"

    def _where(self) -> str:
        return f"container {self.name} (engine {self.engine.name!r})"

    def stat(self, path: str) -> FileInfo:
        """The path's stat as the service gives it (symlinks resolved inside the container)."""
        found = self.engine._path_stat(self.id, path)
        if found is None:
            raise CopyError(f'"{path}" could not be found on {self._where()}: {NOT_FOUND}', container=self.name)
        return FileInfo.from_json(found)

    def _archive(self, path: str) -> Any:
        return self.engine._request("GET", f"/containers/{self.id}/archive", params={"path": path}, name=self.name,
                                    stream=True)

    def list_dir(self, path: str) -> list[FileInfo]:
        """The folder's entries, sorted by name, from its tar's headers; symlinks are listed, not followed."""
        if not self.stat(path).is_dir:
            raise CopyError(f'"{path}" on {self._where()} is not a directory', container=self.name, operation="list")
        entries: list[FileInfo] = []
        with contextlib.closing(self._archive(path)) as response, \
                tarfile.open(fileobj=io.BufferedReader(response.raw, READ_BUFFER), mode="r|") as tar:
            top: str | None = None
            for member in tar:
                name = _entry_name(member.name)
                if top is None:  # the folder itself comes first
                    top = name
                elif posixpath.dirname(name) == top:
                    entries.append(_info(member, posixpath.basename(name)))
        return sorted(entries, key=lambda info: info.name)

    def get_archive(self, path: str) -> tuple[BinaryIO, FileInfo]:
        """A tar stream of ``path`` and its stat; close the stream."""
        from kernelext.files.confined import ChunkStream

        info = self.stat(path)
        response = self._archive(path)
        return io.BufferedReader(ChunkStream(response.iter_content(READ_BUFFER), response.close), READ_BUFFER), info

    def _put_entry(self, path: str, entry: tarfile.TarInfo, data: bytes = b"") -> None:
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(entry, io.BytesIO(data) if entry.isfile() else None)
        directory = posixpath.dirname(path.rstrip("/")) or "/"
        self.engine._request("PUT", f"/containers/{self.id}/archive", params={"path": directory},
                             data=archive.getvalue(), name=self.name, headers={"content-type": "application/x-tar"})

    def write_file(self, path: str, data: bytes) -> None:
        """Write ``data`` to the file ``path`` (its folder must exist), as a one-entry tar."""
        name = posixpath.basename(path.rstrip("/"))
        if not name or path.endswith("/"):
            raise CopyError(f'"{path}" is not a file name', container=self.name, operation="write")
        entry = tarfile.TarInfo(name)
        entry.size, entry.mode, entry.mtime = len(data), FILE_MODE, int(time.time())
        self._put_entry(path, entry, data)

    def make_dir(self, path: str) -> None:
        """Create the folder ``path`` (its parent must exist)."""
        name = posixpath.basename(path.rstrip("/"))
        if not name or name in (".", ".."):
            raise CopyError(f'"{path}" is not a directory name', container=self.name, operation="mkdir")
        if self.engine._path_stat(self.id, path) is not None:
            raise CopyError(f'"{path}" already exists on {self._where()}', container=self.name, operation="mkdir")
        entry = tarfile.TarInfo(name)
        entry.type, entry.mode, entry.mtime = tarfile.DIRTYPE, DIR_MODE, int(time.time())
        self._put_entry(path, entry)

    def remove_path(self, path: str) -> None:
        """``rm -rf`` of ``path`` by an exec in the container (podman's API removes nothing): it must be running
        and have ``rm``; a symlink itself is removed, never what it points to."""
        if posixpath.normpath("/" + path) == "/":
            raise CopyError(f"refusing to remove the root of {self._where()}", container=self.name,
                            operation="remove")
        said: list[bytes] = []
        try:
            code = self.engine.exec(self.id, ["rm", "-rf", "--", path], output=lambda _stream, data: said.append(data))
        except ContainerStateError:
            raise CopyError(f'removing "{path}" on {self._where()}: the container must be running (podman\'s API '
                            f"removes files only through an exec)", container=self.name, operation="remove") from None
        if code != 0:
            reason = b"".join(said).decode(errors="replace").strip().splitlines()
            raise CopyError(f'removing "{path}" on {self._where()}: {reason[-1] if reason else f"rm exited with {code}"}',
                            container=self.name, operation="remove")
