"""Layer work that must run where the layer's files belong: a container's changes written as a layer tar
(``commit``), a layer tar unpacked (``pull``, ``load``, ``commit``), and a container's changes listed
against all its image's layers, mounted as one view (``diff`` of a layered image).

As root these run in this process's children directly. Rootless, a layer's
files belong to the IDs of the store's user namespace (subordinate IDs), which
only a process inside it may create, chown or read: the same code then runs as
``python -m kernelext.storage.layerworker`` entered into the namespace
(docs/architecture.md §11).

The changes tar is written by a child chrooted into the directory it reads
(the overlay's upper directory, or the vfs copy), so a path that a running
container swaps for a symlink still resolves inside it; the child builds each
tar header from ``lstat`` itself and never looks a user up (no NSS library of
the container is ever loaded). Whiteouts become OCI's forms: an overlay
whiteout (a 0/0 character device) ``.wh.NAME``, an opaque directory a
``.wh..wh..opq`` entry in it; a vfs deletion (from the change list) ``.wh.NAME``.
"""

from __future__ import annotations

import enum
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import BinaryIO

from kernelext.errors import ImageFormatError, RuntimeFailure, tool_reason
from kernelext.rootless import Namespace
from kernelext.storage import staging
from kernelext.storage.layerdiff import INIT_PATHS, OPAQUE_XATTRS, Change, ChangeKind

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
#: Extended attributes a layer carries (overlayfs' own are turned into whiteout entries, never copied).
KEPT_XATTRS = ("security.capability", "user.", "trusted.")
OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
CHUNK = 1 << 20
#: The PID of the process that started the worker (it re-arms its death signal against it).
ENV_PARENT = "KERNELEXT_LAYERWORKER_PARENT"


class Source(enum.Enum):
    """Where a commit's changes are read from."""

    UPPER = "upper"      # an overlay upper directory: every entry is a change, whiteouts in overlay's form
    CHANGES = "changes"  # a full copy (vfs): the entries of a change list (``[path, "A"|"C"|"D"]`` on stdin)


def _xattrs(path: str) -> dict[str, str]:
    """The layer-worthy xattrs of ``path`` (not following a symlink), as PAX header values."""
    found: dict[str, str] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return found
    for name in names:
        if name.startswith(KEPT_XATTRS) and not name.startswith(OVERLAY_XATTRS):
            try:
                found[f"SCHILY.xattr.{name}"] = os.getxattr(path, name, follow_symlinks=False).decode(
                    "utf-8", "surrogateescape")
            except OSError:
                continue
    return found


def _opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


class _Writer:
    """A tar stream of entries built from ``lstat`` (hard links as links to the first name seen)."""

    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self._inodes: dict[tuple[int, int], str] = {}

    def whiteout(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.mode = 0o644
        self.tar.addfile(info)

    def add(self, path: str, name: str) -> None:
        st = os.lstat(path)
        info = tarfile.TarInfo(name)
        info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
        info.pax_headers = _xattrs(path)
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1 and key in self._inodes:
            info.type, info.linkname = tarfile.LNKTYPE, self._inodes[key]
            self.tar.addfile(info)
            return
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            self._inodes[key] = name
        if stat.S_ISREG(st.st_mode):
            info.size = st.st_size
            with open(path, "rb", buffering=0) as f:
                self.tar.addfile(info, f)
            return
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            return  # a socket: not part of an image
        self.tar.addfile(info)

    def close(self) -> None:
        self.tar.close()


def _excluded(path: str) -> bool:
    """The runtime's own mount points (``/etc/hosts``, ``/dev``, ...): podman leaves them out of a commit."""
    return path in INIT_PATHS or any(path.startswith(p + "/") for p in ("/dev", "/proc", "/sys", "/run/secrets"))


def _walk_upper(writer: _Writer) -> None:
    for dirpath, dirs, files in os.walk("/"):
        dirs.sort()
        if dirpath != "/" and _opaque(dirpath):
            writer.whiteout(f"{dirpath.lstrip('/')}/{OPAQUE_MARKER}")
        for name in sorted(dirs) + sorted(files):
            path = os.path.join(dirpath, name)
            if _excluded(path):
                if name in dirs:
                    dirs.remove(name)
                continue
            st = os.lstat(path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                writer.whiteout(f"{dirpath.lstrip('/')}/{WHITEOUT_PREFIX}{name}".lstrip("/"))
            else:
                writer.add(path, path.lstrip("/"))


def _from_changes(writer: _Writer, changes: list[tuple[str, str]]) -> None:
    for path, kind in sorted(changes):
        if _excluded(path):
            continue
        if kind == "D":
            parent, _, name = path.rpartition("/")
            writer.whiteout(f"{parent.lstrip('/')}/{WHITEOUT_PREFIX}{name}".lstrip("/"))
        elif os.path.lexists(path):
            writer.add(path, path.lstrip("/"))


def _write_changes(root: str, source: Source, changes: list[tuple[str, str]], out: BinaryIO) -> None:
    """In this process: chroot into ``root``, write the tar to ``out``."""
    os.chroot(root)
    os.chdir("/")
    writer = _Writer(out)
    if source is Source.UPPER:
        _walk_upper(writer)
    else:
        _from_changes(writer, changes)
    writer.close()
    out.flush()


def _python(module: str, *args: str) -> list[str]:
    """This Python running ``module``, with kernelext importable from where this process has it."""
    package_parent = str(Path(__file__).resolve().parents[2])
    return ["env", f"PYTHONPATH={package_parent}", f"{ENV_PARENT}={os.getpid()}", sys.executable, "-s", "-m", module,
            *args]


def write_changes(root: Path, source: Source, changes: list[tuple[str, str]], output: Path,
                  namespace: Namespace) -> None:
    """The layer tar of a container's changes (read from ``root``) written to ``output``."""
    with output.open("wb") as out:
        proc = subprocess.run(namespace.command(_python(__name__, "changes", str(root), source.value)),
                              input=json.dumps(changes).encode(), stdout=out, stderr=subprocess.PIPE,
                              preexec_fn=staging.die_with_parent)
    if proc.returncode != 0:
        raise RuntimeFailure(f"commit: reading the container's changes: "
                             f"{tool_reason(proc.stderr, 'the layer writer failed')}", operation="commit")


def unpack_in_namespace(blob: Path, diff_id: str, layers_dir: Path, namespace: Namespace, operation: str) -> None:
    """:func:`kernelext.storage.layers.unpack` run inside the store's user namespace (rootless)."""
    proc = subprocess.run(namespace.command(_python(__name__, "unpack", str(blob), diff_id, str(layers_dir))),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          preexec_fn=staging.die_with_parent)
    if proc.returncode != 0:
        raise ImageFormatError(tool_reason(proc.stderr, "unpacking failed"), operation=operation)


def stack_in_namespace(path: Path, lowers: list[Path], namespace: Namespace) -> None:
    """A vfs container's root made from an image's layers (top first) inside the store's user namespace."""
    proc = subprocess.run(namespace.command(_python(__name__, "stack", str(path), *map(str, lowers))),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise RuntimeFailure(tool_reason(proc.stderr, "applying the image's layers failed"), operation="create")


def changes_in_namespace(driver: str, path: Path, lowers: list[Path], namespace: Namespace) -> list[Change]:
    """``diff`` of a container on a layered image (its layer at ``path``, of storage driver ``driver``), run
    inside the store's user namespace (rootless), where the image's layers can be mounted as one view."""
    proc = subprocess.run(namespace.command(_python(__name__, "diff", driver, str(path), *map(str, lowers))),
                          stdin=subprocess.DEVNULL, capture_output=True, preexec_fn=staging.die_with_parent)
    if proc.returncode != 0:
        raise RuntimeFailure(f"comparing the container's files with its image: "
                             f"{tool_reason(proc.stderr, 'the layer worker failed')}", operation="diff")
    return [Change(changed, ChangeKind(kind)) for changed, kind in json.loads(proc.stdout)]


def _main(argv: list[str]) -> int:
    command, rest = argv[0], argv[1:]
    if ENV_PARENT in os.environ:  # entering the namespace dropped the death signal: a killed caller ends this too
        staging.rearm_death_signal(int(os.environ[ENV_PARENT]))
    try:
        if command == "changes":
            root, source = rest
            changes = [(path, kind) for path, kind in json.loads(sys.stdin.buffer.read() or b"[]")]
            _write_changes(root, Source(source), changes, sys.stdout.buffer)
        elif command == "unpack":
            from kernelext.rootless import UserNamespace
            from kernelext.storage import layers

            blob, diff_id, layers_dir = rest
            # Already inside: the namespace's root, its own ID mapping, overlay's rootless (user.) xattrs.
            layers.unpack(Path(blob), diff_id, Path(layers_dir), UserNamespace(Path(layers_dir)))
        elif command == "stack":
            from kernelext.rootless import UserNamespace
            from kernelext.storage.vfs import CopyLayer

            path, *lowers = rest
            CopyLayer(Path(path), [Path(p) for p in lowers], UserNamespace(Path(path)))._stack_layers()
        elif command == "diff":
            from kernelext.rootless import UserNamespace
            from kernelext.storage.overlay import Layer
            from kernelext.storage.vfs import CopyLayer

            driver, path, *lowers = rest
            kind = CopyLayer if driver == CopyLayer.driver else Layer
            listed = kind(Path(path), [Path(p) for p in lowers], UserNamespace(Path(path))).changes()
            json.dump([[c.path, c.kind.value] for c in listed], sys.stdout)
        else:
            raise ValueError(f"unknown command {command!r}")
    except Exception as exc:  # noqa: BLE001 - one line for the caller's error
        sys.stderr.write(f"{exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
