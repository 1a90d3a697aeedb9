"""The built-in ``busybox`` image: the host's busybox-static as a one-layer OCI image (docs/architecture.md §11).

It is made on first use, so kernelext works offline on a fresh machine, and
is then an image like any pulled one: its layer under ``<root>/layers/<diff
ID>``, an OCI layout (config, manifest) for ``save``, ``history`` and
``inspect``, and an ID that is its config's digest. The layer's tree is
written twice from one list of entries, once as files (the layer directory)
and once as a tar (the blob), never read back: building it costs what the
old flat directory cost plus a hash. Every field of the tar and the config
comes from the binary (its content and mtime), so the same host binary gives
the same diff ID and image ID in every store.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import posixpath
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kernelext.errors import NoSuchImageError
from kernelext.files.tarformat import END_OF_ARCHIVE, Kind, Meta, header, padding

NAME = "busybox"
CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
BINARY = "bin/busybox"
#: ``created_by`` of the image's one history step.
CREATED_BY = "kernelext: the host's busybox-static as one layer"
DIRECTORIES = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755, "root": 0o700,
               "run": 0o755, "srv": 0o755, "sys": 0o755, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755,
               "usr/sbin": 0o755, "var": 0o755, "var/tmp": 0o1777}
FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                  b"nobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": b"root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n",
    "etc/hostname": b"", "etc/hosts": b"", "etc/resolv.conf": b"",
}
FILE_MODE = 0o644
BINARY_MODE = 0o755
SYMLINK_MODE = 0o777
_PT_INTERP = 3


def find_static_busybox() -> Path:
    for candidate in CANDIDATES:
        path = Path(candidate)
        if path.is_file() and _is_static_elf(path):
            return path
    raise NoSuchImageError("the built-in busybox image needs a statically linked busybox on the host "
                           "(Debian: apt-get install busybox-static)")


def _is_static_elf(path: Path) -> bool:
    """True for a 64-bit ELF without a PT_INTERP header (no dynamic loader needed)."""
    with path.open("rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != _PT_INTERP for i in range(phnum))


@dataclass(frozen=True)
class Layer:
    """What :func:`write_layer` made: the diff ID (the uncompressed tar's digest, which is also the blob's)
    and the tar's size."""

    diff_id: str
    size: int


def _applet_links(binary: Path) -> dict[str, str]:
    """Each applet's path (``bin/sh``, ``usr/sbin/crond``) and its relative link to the binary."""
    listed = subprocess.run([str(binary), "--list-full"], capture_output=True, text=True, check=True,
                            stdin=subprocess.DEVNULL).stdout.split()
    taken = set(DIRECTORIES) | set(FILES) | {BINARY}
    links: dict[str, str] = {}
    for applet in listed:
        applet = posixpath.normpath(applet.lstrip("/"))
        if applet.startswith("..") or applet in taken or applet in links:
            continue
        links[applet] = posixpath.relpath(BINARY, posixpath.dirname(applet))
    return links


class _Tar:
    """The layer tar written to ``out``, hashed as it goes."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.digest.update(data)
        self.size += len(data)


def write_layer(binary: Path, directory: Path, out: BinaryIO) -> Layer:
    """The image's one layer, into ``directory`` (an empty directory) and as a tar into ``out``."""
    mtime = int(binary.stat().st_mtime)
    links = _applet_links(binary)
    directories = dict(DIRECTORIES)
    for applet in links:  # parents busybox lists that the fixed tree lacks (sbin, usr/local/bin, ...)
        parent = posixpath.dirname(applet)
        while parent and parent not in directories:
            directories[parent] = 0o755
            parent = posixpath.dirname(parent)
    tar = _Tar(out)
    os.chmod(directory, 0o755)
    for path in sorted(directories):  # a parent sorts before its children
        os.mkdir(directory / path)
        os.chmod(directory / path, directories[path])  # the mode as given: no umask
        tar.write(header(Kind.DIR, f"{path}/".encode(), Meta(directories[path], 0, 0, mtime)))
    content = binary.read_bytes()  # a few MB, read once for the layer's file, the tar and its digest
    tar.write(header(Kind.FILE, BINARY.encode(), Meta(BINARY_MODE, 0, 0, mtime, len(content))))
    tar.write(content + padding(len(content)))
    fd = os.open(directory / BINARY, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, BINARY_MODE)
    with os.fdopen(fd, "wb") as dst:
        dst.write(content)
        os.fchmod(dst.fileno(), BINARY_MODE)
    for path, content in sorted(FILES.items()):
        (directory / path).write_bytes(content)
        os.chmod(directory / path, FILE_MODE)
        tar.write(header(Kind.FILE, path.encode(), Meta(FILE_MODE, 0, 0, mtime, len(content))))
        tar.write(content + padding(len(content)))
    for path, target in sorted(links.items()):
        os.symlink(target, directory / path)
        tar.write(header(Kind.SYMLINK, path.encode(), Meta(SYMLINK_MODE, 0, 0, mtime), target.encode()))
    tar.write(END_OF_ARCHIVE)
    return Layer(f"sha256:{tar.digest.hexdigest()}", tar.size)


def config_document(binary: Path, diff_id: str, architecture: str) -> dict[str, Any]:
    """The image's OCI config: created when the binary was (not when the image was made), so the ID is
    the same for the same binary."""
    created = datetime.datetime.fromtimestamp(int(binary.stat().st_mtime), datetime.UTC) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"created": created, "architecture": architecture, "os": "linux", "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created, "created_by": CREATED_BY}]}
