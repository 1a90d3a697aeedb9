"""Staging entries of the image store, and whose they are (docs/architecture.md §11, crash safety).

A pull, load, commit or the built-in image is built in a staging directory
(``<root>/images/.tmp-*``), layers are unpacked in ``<root>/layers/.tmp-*``,
blobs are written as ``<root>/blobs/sha256/.tmp-*`` before their rename, and
a removal marks itself with one while it works. Every such name carries its
process's PID and start time (``.tmp-PID-START-RANDOM``), so whoever finds
one later tells without guessing from its age whether a live process is
still at work on it or it is what a killed one left: garbage, for
:meth:`kernelext.storage.images.ImageStore.recover` to take away.

The helper processes an operation starts (skopeo, tar, the layer worker)
die with it (:func:`die_with_parent`): a killed pull must not go on writing
into a directory that is being cleaned up.
"""

from __future__ import annotations

import ctypes
import os
import signal
import tempfile
from pathlib import Path

from kernelext.oci.monitor import is_alive, this_process

PREFIX = ".tmp-"
_PR_SET_PDEATHSIG = 1
#: Resolved here: a forked child of a threaded process must not take the dynamic loader's lock.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _prefix() -> str:
    pid, start = this_process()
    return f"{PREFIX}{pid}-{start}-"


def make_dir(parent: Path) -> Path:
    """A new staging directory in ``parent``, named after this process."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=_prefix(), dir=parent))


def make_file(parent: Path, suffix: str = "") -> Path:
    """A new, empty staging file in ``parent``, named after this process."""
    parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=_prefix(), suffix=suffix, dir=parent)
    os.close(fd)
    return Path(name)


def abandon(path: Path) -> Path | None:
    """Rename a staging entry of this process as no process's: what a failed operation leaves is then
    garbage for whoever cleans up next (None: it was gone already)."""
    dead = path.with_name(f"{PREFIX}0-0-{path.name.rsplit('-', 1)[-1]}")
    try:
        os.rename(path, dead)
    except FileNotFoundError:
        return None
    return dead


def is_staging(name: str) -> bool:
    return name.startswith(PREFIX)


def owner_alive(name: str) -> bool:
    """Whether the process that made the staging entry ``name`` still runs (a name without a PID and
    start time, left by a kernelext before they were recorded, has no owner)."""
    fields = name.removeprefix(PREFIX).split("-", 2)
    try:
        pid, start = int(fields[0]), int(fields[1])
    except (ValueError, IndexError):
        return False
    return start > 0 and is_alive(pid, start)


def staging_entries(parent: Path) -> list[str]:
    try:
        return [name for name in os.listdir(parent) if is_staging(name)]
    except FileNotFoundError:
        return []


def die_with_parent() -> None:
    """``preexec_fn`` of a helper process: SIGKILL when the process that started it dies (kept across
    exec; a change of credentials, as entering a user namespace, drops it: the layer worker re-arms it)."""
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def rearm_death_signal(parent: int) -> None:
    """In a helper whose death signal a namespace switch dropped: set it again, and exit at once if
    ``parent`` died before it was set."""
    die_with_parent()
    if os.getppid() != parent:
        os._exit(1)
