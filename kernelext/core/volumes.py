"""The runtime's volume API (libpod's ``runtime_volume``): what knows both volumes and containers.

``rt.volumes.create/get/list/inspect/exists/remove/prune``; containers' mounts are
turned into volumes here at create time, filled and chowned before each run, and
their anonymous volumes go with them (``rm -v``, ``--rm``).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernelext.core.mounts import Mount, MountType
from kernelext.errors import InvalidArgumentError, NoSuchVolumeError, VolumeInUseError
from kernelext.storage.volumes import DRIVER, Volume, VolumeStore

if TYPE_CHECKING:
    from kernelext.core.runtime import Runtime
    from kernelext.core.state import ContainerConfig
    from kernelext.storage.users import ExecUser

#: ``volume ls --filter`` keys kernelext understands (podman's most used ones).
FILTER_KEYS = ("name", "label", "driver", "dangling", "anonymous")


class Volumes:
    """One store's volumes, reached as ``Runtime.volumes``."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.store = VolumeStore(runtime.opts.root, runtime.db, runtime.namespace)

    def path(self, name: str) -> Path:
        """The host directory a volume's mount shows (``<root>/volumes/<name>/_data``)."""
        return self.store.data_path(name)

    # ------------------------------------------------------------------ API
    def create(self, name: str | None = None, *, labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, ignore: bool = False) -> Volume:
        """``podman volume create [--label K=V] [--opt K=V] [--ignore] [NAME]`` (``ignore``: an existing
        volume of that name is the answer, untouched)."""
        if ignore and name is not None and self.store.exists(name):
            return self.store.get(name)
        volume = self.store.create(name, labels=labels, options=options)
        self._runtime.events.emit("create", volume.name, volume.name, "", type_="volume")
        return volume

    def get(self, name: str) -> Volume:
        return self.store.get(name)

    def exists(self, name: str) -> bool:
        return self.store.exists(name)

    def users(self, name: str) -> builtins.list[str]:
        """IDs of the containers that mount the volume."""
        return [config["id"] for config, _ in self._runtime.db.all_containers()
                if any(m.get("type") == MountType.VOLUME.value and m.get("source") == name
                       for m in config.get("mounts", []))]

    def inspect(self, name: str) -> dict[str, Any]:
        return self.store.get(name).inspect(len(self.users(name)))

    def list(self, filters: Iterable[str] = ()) -> builtins.list[Volume]:
        """``volume ls --filter KEY=VALUE`` (name, label, driver, dangling, anonymous); all must match."""
        checks = [_filter(item, self.users) for item in filters]
        return [v for v in self.store.all() if all(check(v) for check in checks)]

    def remove(self, name: str, *, force: bool = False) -> Volume:
        """``volume rm``: refused while a container uses it unless ``force``, which removes those first."""
        volume = self.store.get(name)
        users = self.users(name)
        if users and not force:
            raise VolumeInUseError(f"volume {name} is being used by the following container(s): "
                                   f"{', '.join(users)}: volume is being used")
        for ctr_id in users:
            try:
                self._runtime.get(ctr_id).remove(force=True)
            except LookupError:
                pass  # removed meanwhile
        self.store.delete(volume, self._runtime.trash)
        self._runtime.events.emit("remove", volume.name, volume.name, "", type_="volume")
        return volume

    def prune(self, filters: Iterable[str] = ()) -> builtins.list[Volume]:
        """Remove every volume no container uses; the removed ones."""
        removed = []
        for volume in self.list(filters):
            if not self.users(volume.name):
                try:
                    removed.append(self.remove(volume.name))
                except (NoSuchVolumeError, VolumeInUseError):
                    continue  # taken by another command meanwhile
        return removed

    # -------------------------------------------------- containers' volumes
    def materialize(self, mounts: builtins.list[Mount], created: builtins.list[Volume]) -> builtins.list[Mount]:
        """Each volume mount with a volume behind it: anonymous ones made now, named ones made if missing
        (podman creates them at create time); the new ones are appended to ``created``."""
        result = []
        for mount in mounts:
            if mount.type is MountType.VOLUME:
                if mount.anonymous:
                    volume = self.store.create(anonymous=True)
                    created.append(volume)
                    mount = replace(mount, source=volume.name)
                elif not self.store.exists(mount.source):
                    created.append(self.store.create(mount.source))
            result.append(mount)
        return result

    def discard(self, volumes: builtins.list[Volume]) -> None:
        """Undo :meth:`materialize` for a container that was not created after all."""
        for volume in volumes:
            self.store.delete(volume, self._runtime.trash)

    def prepare(self, config: ContainerConfig, rootfs: Path, user: ExecUser) -> None:
        """Before a run: fill new volumes from the image (copy-up) and chown ``U`` sources to the user."""
        for mount in config.mounts:
            if mount.type is MountType.VOLUME:
                try:
                    volume = self.store.get(mount.source)
                except NoSuchVolumeError:  # removed with -f, or never restored: podman recreates it
                    volume = self.store.create(mount.source)
                if volume.needs_copy_up and mount.copy_up:
                    self.store.copy_up(volume, rootfs, mount.destination)
            if mount.chown and mount.type is not MountType.TMPFS:
                source = Path(mount.source) if mount.type is MountType.BIND else self.path(mount.source)
                self.store.chown(source, user.uid, user.gid)

    def remove_anonymous(self, config: ContainerConfig) -> None:
        """``rm -v``: the container's anonymous volumes that no other container uses."""
        for mount in config.mounts:
            if mount.type is MountType.VOLUME and mount.anonymous and not self.users(mount.source):
                try:
                    self.remove(mount.source)
                except (NoSuchVolumeError, VolumeInUseError):
                    continue


def _searches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False  # podman: a pattern that does not compile matches nothing


def _filter(item: str, users: Callable[[str], list[str]]) -> Callable[[Volume], bool]:
    key, _, value = item.partition("=")
    if key == "name":  # podman: a regular expression found anywhere in the name
        return lambda v: _searches(value, v.name)
    if key == "label":
        label, sep, wanted = value.partition("=")
        return lambda v: label in v.labels and (not sep or v.labels[label] == wanted)
    if key == "driver":
        return lambda v: value == DRIVER
    if key in ("dangling", "anonymous"):
        flag = value.lower() in ("true", "1")
        if key == "dangling":
            return lambda v: (not users(v.name)) == flag
        return lambda v: v.anonymous == flag

    raise InvalidArgumentError(f"\"{key}\" is an invalid volume filter")
