"""``FileBrowser``: a container's files, confined to its root, with download and upload.

Listing, downloading (a tar of a file or folder) and uploading go through the
core's confined copy calls: nothing here touches the container's root
directly. Downloads and uploads move in chunks with a progress bar.
"""

from __future__ import annotations

import posixpath
import stat
import tempfile
import threading
from typing import Any

import anywidget
from traitlets import Float, List, Unicode

from kernelext.core.container import Container
from kernelext.errors import KernelextError
from kernelext.widgets._assets import asset, esm
from kernelext.widgets._registry import track

#: Bytes per message, each way: big transfers show progress and never sit in one message.
CHUNK = 1 << 20


class FileBrowser(anywidget.AnyWidget):
    _esm = esm("files.js")
    _css = asset("panel.css")

    cwd = Unicode("/").tag(sync=True)
    entries: List[Any] = List().tag(sync=True)
    message = Unicode("").tag(sync=True)
    progress = Float(0.0).tag(sync=True)

    def __init__(self, container: Container, path: str = "/", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.container = container
        self._uploads: dict[str, Any] = {}
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
                             "mode": stat.filemode(f.mode)} for f in listing]

    def download(self, name: str) -> None:
        """Send ``name`` (a file or a folder, as a tar) to the browser in chunks."""
        path = posixpath.join(self.cwd, name)
        stream, info = self.container.get_archive(path)
        total = max(info.size, 1)
        sent = 0
        with stream:
            self.send({"type": "download-start", "name": f"{info.name}.tar"})
            while chunk := stream.read(CHUNK):
                sent += len(chunk)
                self.progress = min(sent / total, 1.0)
                self.send({"type": "download-chunk"}, buffers=[chunk])
        self.send({"type": "download-end"})
        self.progress = 1.0

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
                elif kind == "download":
                    self.download(str(content["name"]))
            except KernelextError as exc:
                self.message = str(exc)
        if kind == "upload":
            try:
                self._upload(content, buffers)  # in order, in the kernel's message thread
            except KernelextError as exc:
                self.message = str(exc)
        else:
            threading.Thread(target=work, daemon=True, name="kernelext-files").start()

    def close(self) -> None:
        for spool in self._uploads.values():
            spool.close()
        self._uploads.clear()
        super().close()
