"""Overlay mounts: the image as the read-only lower layer, one upper per container."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from pathlib import Path

from kernelext.errors import RuntimeFailure

_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


class Layer:
    """The writable layer of one container: ``diff`` (upper), ``work`` and ``merged``."""

    def __init__(self, path: Path, lower: Path) -> None:
        self.path = path
        self.lower = lower

    @property
    def upper(self) -> Path:
        return self.path / "diff"

    @property
    def work(self) -> Path:
        return self.path / "work"

    @property
    def merged(self) -> Path:
        return self.path / "merged"

    def create(self) -> None:
        for d in (self.upper, self.work, self.merged):
            d.mkdir(parents=True, exist_ok=True)

    def is_mounted(self) -> bool:
        target = os.fsencode(self.merged)
        with open("/proc/self/mountinfo", "rb") as f:
            return any(line.split()[4] == target for line in f)

    def mount(self) -> Path:
        if not self.is_mounted():
            options = f"lowerdir={self.lower},upperdir={self.upper},workdir={self.work}"
            if _libc.mount(b"overlay", os.fsencode(self.merged), b"overlay", 0, options.encode()) != 0:
                err = ctypes.get_errno()
                raise RuntimeFailure(f"mounting overlay on {self.merged}: {os.strerror(err)}", operation="mount")
        return self.merged

    def unmount(self) -> None:
        if _libc.umount2(os.fsencode(self.merged), 0) != 0:
            err = ctypes.get_errno()
            if err == errno.EBUSY:
                # Still referenced by a process in flight; detach it from the tree now.
                _libc.umount2(os.fsencode(self.merged), _MNT_DETACH)
            elif err not in (errno.EINVAL, errno.ENOENT):
                raise RuntimeFailure(f"unmounting {self.merged}: {os.strerror(err)}", operation="unmount")

    def remove(self) -> None:
        self.unmount()
        shutil.rmtree(self.path, ignore_errors=True)
