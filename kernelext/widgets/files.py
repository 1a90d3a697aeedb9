"""``FileBrowser``: a container's files, confined to its root: browse, refresh,
download (a file as itself, a folder as a tar), upload, new folder, delete.

Every operation goes through the core's confined copy calls: nothing here
touches the container's root directly. Downloads and uploads move in chunks
with a progress bar. On a remote engine the same calls go to podman's archive
endpoints (``engine.files(name)``: kernelext/domain/remotefiles.py).
"""

from __future__ import annotations

import posixpath
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anywidget
from traitlets import Float, List, Unicode

from kernelext.domain.engine import ContainerFiles
from kernelext.errors import CopyError, KernelextError
from kernelext.units import human_size
from kernelext.widgets._assets import css, esm
from kernelext.widgets._registry import track

#: Bytes per message, each way: big transfers show progress and never sit in one message.
CHUNK = 1 << 20


class FileBrowser(anywidget.AnyWidget):
    _esm = esm("controls.js", "files.js")
    _css = css("files.css")

    cwd = Unicode("/").tag(sync=True)
    entries: List[Any] = List().tag(sync=True)
    message = Unicode("").tag(sync=True)
    progress = Float(0.0).tag(sync=True)

    def __init__(self, container: ContainerFiles, path: str = "/", **kwargs: Any) -> None:
        """``container``: a local ``Container``, or an engine's ``files(name)`` (a remote one's)."""
        super().__init__(**kwargs)
        self.container = container
        self._uploads: dict[str, Any] = {}
        # One action at a time, in the order the browser asked: a slow delete's refresh must not blank the
        # error of the one after it, and a relative path means the folder the action before left.
        self._actions = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kernelext-files")
        self.on_msg(self._on_message)
        self.browse(path)
        track(self)

    def __repr__(self) -> str:
        return f"FileBrowser({self.container.name}:{self.cwd})"

    def browse(self, path: str) -> None:
        """Show the directory ``path`` (inside the container)."""
        target = posixpath.normpath(posixpath.join(self.cwd, path))
        try:
            listing = self.container.list_dir(target)
        except KernelextError as exc:
            self.message = str(exc)
            return
        with self.hold_sync():
            self.cwd = target
            self.message = ""
            self.entries = [{"name": f.name, "dir": f.is_dir, "size": f.size, "link": f.link_target,
                             "human_size": "" if f.is_dir else human_size(f.size),
                             "mode": stat.filemode(f.mode)} for f in listing]

    def download(self, name: str) -> None:
        """Send ``name`` to the browser in chunks: a file as itself, a folder as a tar."""
        path = posixpath.join(self.cwd, name)
        stream, info = self.container.get_archive(path)
        with stream:
            if info.is_dir:
                self._send_download(f"{info.name}.tar", "application/x-tar", max(info.size, 1), iter(
                    lambda: stream.read(CHUNK), b""))
                return
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # one member: the file (a link: its target)
                member = tar.next()
                data = tar.extractfile(member) if member is not None and member.isfile() else None
                if member is None or data is None:
                    raise CopyError(f'"{path}" is not a regular file or folder', container=self.container.name)
                self._send_download(info.name, "application/octet-stream", max(member.size, 1), iter(
                    lambda: data.read(CHUNK), b""))

    def _send_download(self, name: str, mime: str, total: int, chunks: Iterator[bytes]) -> None:
        sent = 0
        self.send({"type": "download-start", "name": name, "mime": mime})
        for chunk in chunks:
            sent += len(chunk)
            self.progress = min(sent / total, 1.0)
            self.send({"type": "download-chunk"}, buffers=[chunk])
        self.send({"type": "download-end"})
        self.progress = 1.0

    def make_dir(self, name: str) -> None:
        """A new folder ``name`` in the current one."""
        self.container.make_dir(posixpath.join(self.cwd, posixpath.basename(name)))
        self.browse(".")

    def delete(self, name: str) -> None:
        """Remove ``name`` (a file, a link or a folder with its contents) from the current folder."""
        self.container.remove_path(posixpath.join(self.cwd, posixpath.basename(name)))
        self.browse(".")

    def _upload(self, content: dict[str, Any], buffers: list[Any]) -> None:
        name = posixpath.basename(str(content["name"]))
        spool = self._uploads.setdefault(name, tempfile.SpooledTemporaryFile(max_size=CHUNK * 8))
        for buffer in buffers:
            spool.write(bytes(buffer))
        total = max(int(content.get("total", 1)), 1)
        self.progress = min(spool.tell() / total, 1.0)
        if content.get("last"):
            del self._uploads[name]
            with spool:
                spool.seek(0)
                self.container.write_file(posixpath.join(self.cwd, name), spool.read())
            self.browse(".")

    def _on_message(self, _widget: Any, content: dict[str, Any], buffers: list[Any]) -> None:
        kind = content.get("type")

        def work() -> None:
            try:
                if kind == "open":
                    self.browse(str(content["path"]))
                elif kind == "refresh":
                    self.browse(".")
                elif kind == "download":
                    self.download(str(content["name"]))
                elif kind == "mkdir":
                    self.make_dir(str(content["name"]))
                elif kind == "delete":
                    self.delete(str(content["name"]))
            except KernelextError as exc:
                self.message = str(exc)
        if kind == "upload":
            try:
                self._upload(content, buffers)  # in order, in the kernel's message thread
            except KernelextError as exc:
                self.message = str(exc)
        else:
            self._actions.submit(work)

    def close(self) -> None:
        self._actions.shutdown(wait=False, cancel_futures=True)
        for spool in self._uploads.values():
            spool.close()
        self._uploads.clear()
        super().close()
