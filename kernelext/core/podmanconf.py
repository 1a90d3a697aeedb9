"""Where podman on this host keeps its images and named volumes, read from its configuration as podman
reads it (docs/architecture.md §4).

podman's ``restore --import`` binds each named volume from the path its archive's ``spec.dump``
names: podman assumes the machine it restores on keeps volumes where the one that checkpointed
did. An archive kernelext writes for podman names podman's volume directory on this host; an
archive whose image kernelext lacks may find it in podman's image store here.

The events log follows containers.conf's ``events_logfile_path`` and ``events_logfile_max_size``, as
podman's file backend does.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

#: containers.conf: the system's, then the administrator's, then drop-ins; ``CONTAINERS_CONF`` replaces them.
CONTAINERS_CONF = (Path("/usr/share/containers/containers.conf"), Path("/etc/containers/containers.conf"))
CONTAINERS_CONF_D = Path("/etc/containers/containers.conf.d")
STORAGE_CONF = Path("/etc/containers/storage.conf")
#: podman's root store when storage.conf does not say.
DEFAULT_GRAPHROOT = Path("/var/lib/containers/storage")
DEFAULT_RUNROOT = Path("/run/containers/storage")
DEFAULT_DRIVER = "overlay"


def _toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _containers_confs() -> list[Path]:
    override = os.environ.get("CONTAINERS_CONF")
    if override:
        return [Path(override)]
    drop_ins = sorted(CONTAINERS_CONF_D.glob("*.conf")) if CONTAINERS_CONF_D.is_dir() else []
    return [*CONTAINERS_CONF, *drop_ins]


def _engine_setting(key: str) -> Any:
    """The last value of ``[engine] key`` among the containers.conf files (None: unset)."""
    value = None
    for path in _containers_confs():
        value = _toml(path).get("engine", {}).get(key, value)
    return value


def events_log(default: Path) -> tuple[Path, int]:
    """The events log's path (``default`` when unset) and its size limit in bytes (0: none); the limit is
    an integer or go-units' decimal size text (``"1mb"``), as podman reads it."""
    from kernelext.oci.resources import parse_size

    path = _engine_setting("events_logfile_path")
    limit = _engine_setting("events_logfile_max_size")
    return (Path(path) if path else default), (parse_size(limit, "events_logfile_max_size", decimal=True)
                                               if limit not in (None, "") else 0)


def volume_dir() -> Path:
    """podman's ``volume_path`` (containers.conf ``[engine]``), else ``<graphroot>/volumes``."""
    volume_path = _engine_setting("volume_path")
    if volume_path:
        return Path(volume_path)
    return graphroot() / "volumes"


def _storage() -> dict[str, Any]:
    return dict(_toml(Path(os.environ.get("CONTAINERS_STORAGE_CONF") or STORAGE_CONF)).get("storage", {}))


def graphroot() -> Path:
    """podman's image and container store (storage.conf ``graphroot``)."""
    return Path(_storage().get("graphroot") or DEFAULT_GRAPHROOT)


def image_reference(image: str) -> str | None:
    """skopeo's reference to ``image`` in podman's store on this host, or None when there is no store."""
    storage = _storage()
    root = Path(storage.get("graphroot") or DEFAULT_GRAPHROOT)
    if not root.is_dir():
        return None
    runroot = storage.get("runroot") or DEFAULT_RUNROOT
    return f"containers-storage:[{storage.get('driver') or DEFAULT_DRIVER}@{root}+{runroot}]{image}"


def volume_source(name: str) -> str:
    """The host directory podman binds for volume ``name`` (its local driver's ``<dir>/<name>/_data``)."""
    return str(volume_dir() / name / "_data")
