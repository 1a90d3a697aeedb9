"""Where a store lives and which binaries drive it.

A store is a pair of directories, as in podman: ``root`` (persistent: the
SQLite database, images, container layers and bundles) and ``runroot``
(volatile: exit files, locks, runc's state, the event log). Tests and users
keep separate stores by pointing these elsewhere (``--root``/``--runroot`` or
``KERNELEXT_ROOT``/``KERNELEXT_RUNROOT``). A normal user's default store is
their own (``$XDG_DATA_HOME`` and ``$XDG_RUNTIME_DIR``), as with podman.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kernelext.errors import PermissionRequiredError
from kernelext.rootless import is_rootless

ENV_ROOT = "KERNELEXT_ROOT"
ENV_RUNROOT = "KERNELEXT_RUNROOT"
ENV_RUNC = "KERNELEXT_RUNC"
ENV_CONMON = "KERNELEXT_CONMON"
ENV_CRIU = "KERNELEXT_CRIU"

DEFAULT_ROOT = "/var/lib/kernelext/storage"
CONMON_PID_FILE = "conmon.pid"
DEFAULT_RUNROOT = "/run/kernelext/storage"

#: Where scripts/provision-criu.sh unpacks CRIU >= 4.2 unless the system's criu
#: is one that works here (docs/architecture.md §4), and the wrapper that runs it through
#: its own loader.
CRIU_PREFIX = Path("/opt/kernelext/criu")
PROVISIONED_CRIU = CRIU_PREFIX / "criu"


def _find(name: str, env: str) -> str:
    return os.environ.get(env) or shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin") or name


def find_criu(explicit: str | None = None) -> str | None:
    """The CRIU to use: an explicit choice, ``KERNELEXT_CRIU``, the provisioned one, else ``criu`` on PATH."""
    if explicit or os.environ.get(ENV_CRIU):
        return explicit or os.environ[ENV_CRIU]
    if os.access(PROVISIONED_CRIU, os.X_OK):
        return str(PROVISIONED_CRIU)
    return shutil.which("criu") or shutil.which("criu", path="/usr/sbin:/sbin")


def default_root() -> Path:
    """root's store, or a normal user's own under ``$XDG_DATA_HOME`` (podman's layout)."""
    if not is_rootless():
        return Path(DEFAULT_ROOT)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "kernelext" / "storage"


def default_runroot() -> Path:
    """Under ``$XDG_RUNTIME_DIR`` for a normal user, else a private directory in /tmp."""
    if not is_rootless():
        return Path(DEFAULT_RUNROOT)
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.access(runtime_dir, os.W_OK):
        return Path(runtime_dir) / "kernelext"
    return Path(tempfile.gettempdir()) / f"kernelext-run-{os.getuid()}"


@dataclass(frozen=True)
class StoreConfig:
    """The directories and binaries of one store."""

    root: Path
    runroot: Path
    runc: str
    conmon: str
    criu: str | None = None

    @classmethod
    def from_env(cls, root: str | os.PathLike[str] | None = None,
                 runroot: str | os.PathLike[str] | None = None, criu: str | None = None) -> StoreConfig:
        return cls(
            root=Path(root or os.environ.get(ENV_ROOT) or default_root()).absolute(),
            runroot=Path(runroot or os.environ.get(ENV_RUNROOT) or default_runroot()).absolute(),
            runc=_find("runc", ENV_RUNC),
            conmon=_find("conmon", ENV_CONMON),
            criu=criu or os.environ.get(ENV_CRIU),  # None: find_criu() picks at use
        )

    # Persistent layout under root.
    @property
    def database(self) -> Path:
        return self.root / "db.sqlite"

    def image_dir(self, image_id: str) -> Path:
        return self.root / "images" / image_id

    def userdata(self, ctr_id: str) -> Path:
        """The container's bundle: config.json, ctr.log, attach socket, artifacts."""
        return self.root / "containers" / ctr_id / "userdata"

    def layer_dir(self, ctr_id: str) -> Path:
        """The container's overlay directories: diff (upper), work, merged."""
        return self.root / "overlay" / ctr_id

    # Volatile layout under runroot.
    @property
    def exits_dir(self) -> Path:
        return self.runroot / "exits"

    def exit_file(self, ctr_id: str) -> Path:
        return self.exits_dir / ctr_id

    @property
    def persist_root(self) -> Path:
        return self.runroot / "persist"

    def persist_dir(self, ctr_id: str) -> Path:
        return self.persist_root / ctr_id

    def lock_file(self, ctr_id: str) -> Path:
        return self.runroot / "locks" / f"{ctr_id}.lock"

    def netns_path(self, ctr_id: str) -> Path:
        """Where the network namespace kernelext prepares for the container is mounted (kernelext.oci.netns)."""
        return self.runroot / "netns" / ctr_id

    @property
    def runc_root(self) -> Path:
        return self.runroot / "runc"

    def pid_file(self, ctr_id: str) -> Path:
        return self.persist_dir(ctr_id) / "pid"

    def conmon_pid_file(self, ctr_id: str) -> Path:
        return self.persist_dir(ctr_id) / CONMON_PID_FILE

    @property
    def events_file(self) -> Path:
        return self.runroot / "events" / "events.log"

    def ensure_dirs(self) -> None:
        """Create the layout, private to its owner; refuse a run directory someone else made (/tmp squatting)."""
        for base in (self.root, self.runroot):
            base.mkdir(parents=True, exist_ok=True, mode=0o700)
            if is_rootless() and base.stat().st_uid != os.geteuid():
                raise PermissionRequiredError(f"{base} belongs to another user", operation="store")
        for path in (self.root / "images", self.root / "containers", self.root / "overlay",
                     self.exits_dir, self.runroot / "persist", self.runroot / "locks",
                     self.events_file.parent):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
