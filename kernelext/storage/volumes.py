"""Named volumes with podman's ``local`` driver semantics (docs/architecture.md §10).

A volume is a row in the store's database and a directory ``<root>/volumes/<name>/_data``.
A new volume is filled from the image's content at its mount path the first time a
container mounts it (podman's copy-up). Names are podman's ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``,
so a name can never leave the volumes directory.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kernelext.errors import (
    InvalidArgumentError,
    NameInUseError,
    NoSuchVolumeError,
    RuntimeFailure,
    tool_reason,
)
from kernelext.files.confined import Root
from kernelext.rootless import Namespace
from kernelext.statedb.db import Database

DRIVER = "local"
SCOPE = "local"
DATA_DIR = "_data"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
#: ``--opt`` keys of podman's local driver that kernelext keeps (``o=nocopy`` too); mounting a
#: device or another file system (``type``, ``device``) is not offered here.
SUPPORTED_OPTIONS = frozenset({"o", "UID", "GID", "copy", "nocopy"})


def check_name(name: str) -> str:
    """podman's volume name rule (which also keeps ``..`` and ``/`` out of the volumes directory)."""
    if not _NAME.match(name):
        raise InvalidArgumentError(f"invalid volume name \"{name}\": names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: "
                                   "invalid argument")
    return name


@dataclass
class Volume:
    name: str
    mountpoint: Path
    created_at: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
    #: Filled from the image at the first mount (podman's NeedsCopyUp); cleared after it.
    needs_copy_up: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"created_at": self.created_at, "labels": dict(self.labels), "options": dict(self.options),
                "anonymous": self.anonymous, "needs_copy_up": self.needs_copy_up}

    def inspect(self, users: int = 0) -> dict[str, Any]:
        """podman's ``volume inspect`` document."""
        created = datetime.fromtimestamp(self.created_at, UTC).astimezone().isoformat()
        return {"Name": self.name, "Driver": DRIVER, "Mountpoint": str(self.mountpoint), "CreatedAt": created,
                "Labels": dict(self.labels), "Scope": SCOPE, "Options": dict(self.options),
                "Anonymous": self.anonymous, "MountCount": users, "NeedsCopyUp": self.needs_copy_up}


class VolumeStore:
    """The volumes of one store."""

    def __init__(self, root: Path, db: Database, namespace: Namespace) -> None:
        self.dir = root / "volumes"
        self.db = db
        self.namespace = namespace

    def data_path(self, name: str) -> Path:
        return self.dir / check_name(name) / DATA_DIR

    def _volume(self, name: str, data: dict[str, Any]) -> Volume:
        return Volume(name, self.data_path(name), data["created_at"], data.get("labels", {}),
                      data.get("options", {}), data.get("anonymous", False), data.get("needs_copy_up", True))

    def create(self, name: str | None = None, *, labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, anonymous: bool = False) -> Volume:
        """A new volume (a random 64-hex name when ``name`` is None); the row first, then its directory."""
        name = check_name(name) if name is not None else os.urandom(32).hex()
        options = dict(options or {})
        for key in options:
            if key not in SUPPORTED_OPTIONS:
                raise InvalidArgumentError(f"invalid mount option {key} for driver 'local': the local driver "
                                           "here only keeps data in the store (o, UID, GID)")
        volume = Volume(name, self.data_path(name), time.time(), dict(labels or {}), options, anonymous,
                        needs_copy_up="nocopy" not in options.get("o", "").split(","))
        try:
            self.db.add_volume(name, volume.to_json())
        except sqlite3.IntegrityError:
            raise NameInUseError(f"volume with name {name} already exists: volume already exists") from None
        try:
            volume.mountpoint.mkdir(parents=True, mode=0o755)
            os.chmod(volume.mountpoint.parent, 0o700)  # as podman: only the store's owner reaches the data
            uid, gid = int(options.get("UID", -1)), int(options.get("GID", -1))
            if uid >= 0 or gid >= 0:
                self.chown(volume.mountpoint, uid, gid, recursive=False)
        except BaseException:
            self.db.remove_volume(name)
            raise
        return volume

    def get(self, name: str) -> Volume:
        data = self.db.get_volume(name) if _NAME.match(name) else None
        if data is None:
            raise NoSuchVolumeError(f"no volume with name \"{name}\" found: no such volume")
        return self._volume(name, data)

    def exists(self, name: str) -> bool:
        return bool(_NAME.match(name)) and self.db.get_volume(name) is not None

    def all(self) -> list[Volume]:
        return sorted((self._volume(n, d) for n, d in self.db.all_volumes()), key=lambda v: v.created_at)

    def save(self, volume: Volume) -> None:
        self.db.save_volume(volume.name, volume.to_json())

    def delete(self, volume: Volume, trash: Any) -> None:
        """The row, then the directory (into the store's trash: removal never waits for a big tree)."""
        self.db.remove_volume(volume.name)
        directory = volume.mountpoint.parent
        if directory.exists():
            trash.put(directory)

    def chown(self, path: Path, uid: int, gid: int, *, recursive: bool = True) -> None:
        """podman's ``U``: owned by the container's user (IDs of the store's namespace)."""
        owner = f"{uid if uid >= 0 else ''}:{gid if gid >= 0 else ''}"
        argv = ["chown", *(["-R"] if recursive else []), "-h", "--", owner, str(path)]
        proc = subprocess.run(self.namespace.command(argv), capture_output=True, check=False)
        if proc.returncode:
            raise RuntimeFailure(f"chown {path}: {tool_reason(proc.stderr, 'chown failed')}")

    def copy_up(self, volume: Volume, rootfs: Path, destination: str) -> None:
        """Fill an empty new volume from the container's root at ``destination`` (podman's copy-up).

        The path is resolved inside the root (symlinks of the image cannot lead to host
        files) and copied by ``cp -a`` in the store's namespace, which keeps the image's owners.
        """
        volume.needs_copy_up = False
        if any(volume.mountpoint.iterdir()):
            self.save(volume)
            return
        root = Root.open(self.namespace.view(rootfs))
        try:
            found = root.resolve(destination)
            found.close()
        except OSError:
            found = None
        finally:
            root.close()
        if found is not None and found.is_dir:
            source = rootfs / found.path.lstrip("/")
            proc = subprocess.run(self.namespace.command(
                ["cp", "-a", "--no-dereference", "--", f"{source}/.", str(volume.mountpoint)]), capture_output=True,
                check=False)
            if proc.returncode:
                raise RuntimeFailure(f"copying up {destination} into volume {volume.name}: "
                                     f"{tool_reason(proc.stderr, 'cp failed')}")
        self.save(volume)
