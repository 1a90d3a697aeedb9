"""podman cp's path rules as pure functions (docs/architecture.md §5).

No I/O here: argument parsing, path normalisation that keeps the meaningful
trailing ``/`` and ``/.``, tar member names, and the decision of where a copy
lands. :mod:`kernelext.core.filecopy` feeds these with what it found on disk.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from kernelext.errors import CopyError, InvalidArgumentError

#: ``-`` as a source or destination: a tar stream on stdin or stdout.
STREAM = "-"
NOT_FOUND = "no such file or directory"
DIR_ONTO_FILE = "destination must be a directory when copying a directory"
STDIN_NEEDS_DIR = "destination must be a directory when copying from stdin"


@dataclass(frozen=True)
class CopyArg:
    """One side of ``cp``: ``container`` is None for a host path (or ``-``)."""

    container: str | None
    path: str

    @property
    def is_stream(self) -> bool:
        return self.container is None and self.path == STREAM


def parse_copy_arg(arg: str) -> CopyArg:
    """``[container:]path``; anything starting with ``.`` or ``/`` is a host path."""
    if arg.startswith((".", "/")):
        return CopyArg(None, arg)
    name, sep, path = arg.partition(":")
    return CopyArg(name, path) if sep else CopyArg(None, arg)


def parse_copy_args(source: str, destination: str) -> tuple[CopyArg, CopyArg]:
    src, dst = parse_copy_arg(source), parse_copy_arg(destination)
    if not src.path or not dst.path:
        raise InvalidArgumentError(f'invalid arguments "{source}", "{destination}": you must specify paths')
    if src.container is None and dst.container is None:
        raise InvalidArgumentError(f'invalid arguments "{source}", "{destination}": '
                                   "one of them must be a container path (CONTAINER:PATH)")
    if dst.is_stream and src.container is None or src.is_stream and dst.container is None:
        raise InvalidArgumentError("'-' needs a container path on the other side")
    return src, dst


@dataclass(frozen=True)
class PathForm:
    """A path split into what to resolve and what its ending asks for."""

    path: str  # absolute, cleaned, without the trailing "/" or "/."
    contents: bool  # ends with "/." (or is "."): the directory's contents, not the directory
    trailing_slash: bool  # ends with "/": must be an existing directory


def path_form(path: str, base: str = "/") -> PathForm:
    """Make ``path`` absolute against ``base`` (the container's working directory or
    the host's current one) and clean it textually as podman does, keeping the
    meaning of the ending. Only a final element of exactly ``.`` is special."""
    last = path.rsplit("/", 1)[-1]
    contents = last == "."
    trailing = path.endswith("/") and not contents
    cleaned = posixpath.normpath(posixpath.join("/", base, path))
    if cleaned.startswith("//"):  # POSIX keeps a leading "//"; a container path has no such thing
        cleaned = "/" + cleaned.lstrip("/")
    if cleaned == "/" and not contents:
        contents = True  # "/" copies the contents of the root (podman rewrites it to "/.")
        trailing = False
    return PathForm(cleaned, contents, trailing)


def with_ending(form: PathForm, resolved: str) -> str:
    """``resolved`` with the original's ``/`` or ``/.`` put back (podman's PreserveBasePath)."""
    if form.contents:
        return resolved.rstrip("/") + "/."
    if form.trailing_slash:
        return resolved.rstrip("/") + "/"
    return resolved


def member_parts(name: str) -> tuple[str, ...]:
    """The components of a tar member name, relative to the extraction directory.

    Leading ``/`` and ``./`` are dropped (as tar does); ``..`` anywhere is refused,
    so no member can name anything outside the destination. The empty tuple is
    the destination itself.
    """
    parts = tuple(p for p in name.split("/") if p and p != ".")
    if ".." in parts:
        raise CopyError(f'refusing tar entry "{name}": it points outside the destination')
    return parts


@dataclass(frozen=True)
class Found:
    """What resolving one side of a copy found."""

    exists: bool
    is_dir: bool
    path: str  # resolved path (a dangling symlink resolves to its target)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/")) or "/"


@dataclass(frozen=True)
class Plan:
    """Where the copy lands: entries are created in ``dest_dir``.

    ``contents``: the source directory's children go straight into ``dest_dir``;
    otherwise the source itself is created there as ``name``.
    """

    dest_dir: str
    name: str
    contents: bool


def plan_copy(src: Found, src_form: PathForm, dst: Found, dst_form: PathForm, dst_display: str,
              where: str) -> Plan:
    """podman's source/destination table (docs/architecture.md §5).

    ``where`` names the destination side in messages (``container c`` or ``the host``).
    """
    if not dst.exists:
        if dst_form.trailing_slash or dst_form.contents:
            raise CopyError(f'"{dst_display}" could not be found on {where}: {NOT_FOUND}')
        # A directory lands as the new name with its contents; a file as the new file.
        return Plan(posixpath.dirname(dst.path), dst.name, False)
    if dst.is_dir:
        if src.is_dir and src_form.contents:
            return Plan(dst.path, "", True)
        return Plan(dst.path, src.name, False)
    if src.is_dir:
        raise CopyError(DIR_ONTO_FILE)
    return Plan(posixpath.dirname(dst.path), dst.name, False)
