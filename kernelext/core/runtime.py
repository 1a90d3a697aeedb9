"""The runtime: one store's containers and images (libpod's ``Runtime``)."""

from __future__ import annotations

import builtins
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, Self

import kernelext
from kernelext import faults
from kernelext.config import CONMON_PID_FILE, StoreConfig
from kernelext.core import mounts as mounts_mod
from kernelext.core import options as options_module
from kernelext.core import podmanconf, ports
from kernelext.core.container import Container, parse_signal
from kernelext.core.events import EventLog
from kernelext.core.names import random_name
from kernelext.core.state import (
    ACTIVE_STATES,
    DEFAULT_STOP_SIGNAL,
    DEFAULT_STOP_TIMEOUT,
    ContainerConfig,
    ContainerRuntimeState,
    Intent,
    NetworkMode,
    RestartPolicy,
)
from kernelext.core.volumes import Volumes
from kernelext.errors import (
    ContainerRemovedError,
    InvalidArgumentError,
    NameInUseError,
    NoSuchContainerError,
    NoSuchImageError,
    RuntimeFailure,
)
from kernelext.oci.identity import read_env_file
from kernelext.oci.monitor import forget_exit_directory, is_alive, this_process
from kernelext.oci.runtime import ConmonRuncRuntime, OCIRuntime
from kernelext.rootless import namespace_for
from kernelext.statedb.db import Database
from kernelext.statedb.locks import ContainerLock
from kernelext.storage.driver import store_driver
from kernelext.storage.images import (
    HistoryEntry,
    Image,
    ImageStore,
    PullPolicy,
    Removal,
    file_transport,
    normalize_name,
    repo_tag,
)
from kernelext.storage.progress import ProgressCallback
from kernelext.storage.trash import Trash
from kernelext.storage.volumes import Volume

log = logging.getLogger("kernelext")
#: podman's warning for ``--kernel-memory``, which cgroups no longer honour.
KERNEL_MEMORY_NOOP = "The --kernel-memory flag is no longer supported. This flag is a noop."
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
#: The CLI entry point conmon's exit command runs, with site-packages skipped
#: for a fast start: the package's own directory is put on sys.path instead.
#: When the container's bundle is already gone (the process that waited for
#: the exit removed it), there is nothing to clean up: it quits before
#: importing anything, instead of competing for the CPU.
_EXIT_BOOT = ("import os,sys\n"
              "package,bundle=sys.argv[1:3];del sys.argv[1:3]\n"
              "if not os.path.isdir(bundle):sys.exit(0)\n"
              "sys.path.insert(0,package)\n"
              "from kernelext.cli import main\n"
              "sys.exit(main(sys.argv[1:]))")


def _valid_name(name: str) -> bool:
    return bool(name) and name[0].isalnum() and set(name) <= _NAME_CHARS


class Runtime:
    """Creates, finds, lists and removes the containers and images of one store.

    ``Runtime()`` uses the default store (or ``KERNELEXT_ROOT`` /
    ``KERNELEXT_RUNROOT``); pass ``root``/``runroot`` for a separate one.
    ``storage_driver``: ``"overlay"`` or ``"vfs"`` for a new store (an existing
    one keeps its own; see :mod:`kernelext.storage.driver`).
    """

    def __init__(self, root: str | Path | None = None, runroot: str | Path | None = None, *,
                 options: StoreConfig | None = None, criu: str | None = None,
                 storage_driver: str | None = None) -> None:
        self.opts = options or StoreConfig.from_env(root, runroot, criu)
        self.opts.ensure_dirs()
        self.db = Database(self.opts.database)
        self.namespace = namespace_for(self.opts.runroot, self._conmon_pids)
        self.storage_driver = store_driver(self.opts.root, self.namespace, storage_driver)
        self.trash = Trash(self.opts.root, self.namespace)
        self.images = ImageStore(self.opts, self.db, self.namespace, self.trash)
        self.images.recover()  # what a killed pull, load, commit or rmi left (docs/architecture.md §11)
        self.events = EventLog(*podmanconf.events_log(self.opts.events_file))  # containers.conf may move it
        #: The OCI runtime every container of the store runs on (docs/architecture.md §3).
        self.oci: OCIRuntime = ConmonRuncRuntime(self.opts.runc, self.opts.conmon, self.opts.runc_root, self.namespace)
        #: Named and anonymous volumes (``rt.volumes.create/list/inspect/remove/prune``).
        self.volumes = Volumes(self)

    def close(self) -> None:
        self.trash.close()
        self.db.close()
        forget_exit_directory(self.opts.exits_dir)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Runtime root={self.opts.root}>"

    def _conmon_pids(self) -> list[int]:
        """The store's live conmons, from their PID files (a rootless namespace is rejoined through them)."""
        pids = []
        for pid_file in self.opts.persist_root.glob(f"*/{CONMON_PID_FILE}"):
            try:
                pids.append(int(pid_file.read_text()))
            except (OSError, ValueError):
                continue
        return pids

    def _lock_for(self, ctr_id: str) -> ContainerLock:
        return ContainerLock(self.opts.lock_file(ctr_id))

    def exit_command(self, ctr_id: str, auto_remove: bool) -> list[str]:
        package_parent = str(Path(kernelext.__file__).resolve().parent.parent)
        return [sys.executable, "-I", "-S", "-c", _EXIT_BOOT, package_parent, str(self.opts.userdata(ctr_id)),
                "--root", str(self.opts.root), "--runroot", str(self.opts.runroot),
                "container", "cleanup", "--stopped-only", *(["--rm"] if auto_remove else []), ctr_id]

    # ------------------------------------------------------------- containers
    def create(self, image: str, command: Iterable[str] | None = None, *, name: str | None = None,
               entrypoint: Iterable[str] | None = None, env: Iterable[str] = (), workdir: str | None = None,
               user: str | None = None, tty: bool = False, stdin: bool = False, network: str = "none",
               restart_policy: str = "no", stop_signal: str | None = None, stop_timeout: int | None = None,
               auto_remove: bool = False, labels: dict[str, str] | None = None,
               publish: Iterable[str | ports.PortMapping] = (), pull: str = "missing", tls_verify: bool = True,
               authfile: str | Path | None = None,
               volumes: Iterable[str | mounts_mod.Mount] = (), mounts: Iterable[str | mounts_mod.Mount] = (),
               tmpfs: Iterable[str] | dict[str, str] = (), volumes_from: Iterable[str] = (),
               env_file: Iterable[str | Path] = (), env_host: bool = False,
               cidfile: str | Path | None = None, replace: bool = False, kernel_memory: str | None = None,
               progress: ProgressCallback | None = None, **options: Any) -> Container:
        """Create a container (state ``created``); nothing runs yet.

        ``publish``: podman's ``-p`` values (``"8080:80"``, ``"127.0.0.1::80/udp"``) or
        :class:`~kernelext.core.ports.PortMapping` objects; a host port 0 becomes a free one now.
        ``env_file``: podman's ``--env-file`` files; ``env_host``: the caller's environment first.
        ``cidfile``: the new container's ID is written there (it must not exist); ``replace``: a container
        of the same name is removed first. ``kernel_memory``: accepted and ignored with podman's warning.
        ``options``: limits, security and identity (:mod:`kernelext.core.options`), e.g. ``memory="64m"``,
        ``cpus=0.5``, ``pids_limit=100`` (podman's default 2048; 0 or -1: no limit), ``cap_add=["NET_RAW"]``,
        ``privileged=True``, ``read_only=True``, ``hostname="web"``, ``init=True``.
        ``pull``: podman's policy, ``missing`` (pull an image not in the store), ``always``, ``never``,
        ``newer`` (pulled again: a tag that did not move costs the copy, its layers are kept);
        ``tls_verify``, ``authfile`` and ``progress`` (of a pull) as for :meth:`pull`.
        ``volumes``: podman's ``-v`` values (``"/host:/ctr:ro"``, ``"./data:/data"``, ``"name:/ctr"``,
        ``"/ctr"``); ``mounts``: ``--mount`` values (``"type=tmpfs,dst=/t,tmpfs-size=1m"``); ``tmpfs``:
        ``--tmpfs`` values or ``{path: options}``; ``volumes_from``: ``"CTR[:ro|rw]"``.
        """
        img = self.image_for(image, PullPolicy.parse(pull), tls_verify, authfile, progress)
        policy = RestartPolicy.parse(restart_policy)
        if auto_remove and policy.name.value != "no":
            raise InvalidArgumentError(
                'the --rm option conflicts with --restart, when the restartPolicy is not "" and "no"')
        if name is not None and not _valid_name(name):
            raise InvalidArgumentError(f"invalid container name {name!r}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
        env = [*((f"{k}={v}" for k, v in os.environ.items()) if env_host else ()),
               *(item for path in env_file for item in read_env_file(path)), *env]
        for item in env:
            if not item or item.startswith("="):
                raise InvalidArgumentError(f"invalid environment variable {item!r}")
        entry = list(entrypoint) if entrypoint is not None else list(img.config.entrypoint)
        cmd = list(command) if command else ([] if entrypoint is not None else list(img.config.cmd))
        if not entry and not cmd:
            raise InvalidArgumentError("no command or entrypoint provided, and no CMD or ENTRYPOINT from image")
        workdir = workdir or img.config.workdir or "/"
        if not workdir.startswith("/"):
            raise InvalidArgumentError(f"workdir {workdir!r} must be an absolute path")
        groups = options_module.build(options, rootless=self.namespace.rootless)
        cid_path = Path(cidfile).absolute() if cidfile else None
        if cid_path is not None and cid_path.exists():
            raise InvalidArgumentError(f"container id file exists. Ensure another container is not using it or "
                                       f"delete {cid_path}")
        network_mode = NetworkMode.parse(network)
        publish = list(publish)
        mappings = ports.publish(publish, host_network=network_mode is NetworkMode.HOST)
        warnings = [ports.PORTS_DISCARDED] if publish and not mappings else []
        if kernel_memory is not None:
            log.warning(KERNEL_MEMORY_NOOP)
        requested = mounts_mod.combine(list(volumes), list(mounts), tmpfs if isinstance(tmpfs, dict) else list(tmpfs),
                                       self._inherited_mounts(volumes_from), img.config.volumes)
        ctr_id = os.urandom(32).hex()
        config = ContainerConfig(
            id=ctr_id, name=name or random_name(), image_id=img.id, image_name=img.name_for(image), command=cmd,
            entrypoint=entry, env=list(env), workdir=workdir, user=user or "", tty=tty, stdin=stdin,
            network=network_mode, restart_policy=policy, ports=mappings,
            stop_signal=parse_signal(stop_signal or img.config.stop_signal or DEFAULT_STOP_SIGNAL).name,
            stop_timeout=self._stop_timeout(stop_timeout), auto_remove=auto_remove, labels=dict(labels or {}),
            created_at=time.time(), resources=groups.resources, security=groups.security, identity=groups.identity,
            monitor=groups.monitor, cgroups=groups.cgroups)
        if replace and name is not None and self.exists(name):
            self.get(name).remove(force=True)
        created_volumes: builtins.list[Volume] = []  # made for this container: gone again if it is not made
        try:
            config.mounts = self.volumes.materialize(requested, created_volumes)
            container = self.add(config, operation="create")
        except BaseException:
            self.volumes.discard(created_volumes)
            raise
        container.warnings = warnings
        if cid_path is not None:
            try:
                cid_path.write_text(container.id)
            except OSError as exc:
                container.remove(force=True)
                raise InvalidArgumentError(f"opening cidfile: {exc.strerror}: {cid_path}") from None
        return container

    def _inherited_mounts(self, sources: Iterable[str]) -> builtins.list[mounts_mod.Mount]:
        """``--volumes-from CTR[:ro|rw]``: the bind mounts and volumes of other containers."""
        inherited = []
        for item in sources:
            name, read_only = mounts_mod.parse_volumes_from(item)
            for mount in self.get(name).config.mounts:
                if mount.type is not mounts_mod.MountType.TMPFS:
                    # Its anonymous volumes stay that container's: shared here, removed with it.
                    shared = replace(mount, anonymous=False)
                    inherited.append(shared if read_only is None else shared.with_access(read_only))
        return inherited

    def add(self, config: ContainerConfig, *, operation: str) -> Container:
        """Record a new container (state ``created``) with its bundle and layer; all or nothing."""
        # Rootless, a container's layer and processes live in the store's user namespace: a session that may
        # not create one is refused before anything is recorded, not halfway through a run.
        self.namespace.ensure()
        container = Container(self, config, ContainerRuntimeState())
        # Recorded first, with its intent: a process killed while it makes the directories leaves a
        # row the next one sees (and removes), never directories that no container accounts for.
        container.state.begin(Intent.CREATE, this_process())
        try:
            self.db.add_container(config.id, config.name, config.to_json(), container.state.to_json())
        except sqlite3.IntegrityError:
            holder = next(iter(self.db.lookup_container(config.name)), "another container")
            raise NameInUseError(f"creating container storage: the container name \"{config.name}\" is already in "
                                 f"use by {holder}. You have to remove that container to be able to reuse that "
                                 "name: that name is already in use",  # podman's words (containers/storage's)
                                 container=config.name, operation=operation) from None
        try:
            container.bundle.mkdir(parents=True, mode=0o700)
            faults.point("create:recorded")
            container.layer.create()
        except BaseException:
            container.remove(force=True)
            raise
        container.state.done()
        container._save()
        self.events.emit("create", config.id, config.name, config.image_name, labels=config.labels)
        return container

    @staticmethod
    def _stop_timeout(value: int | None) -> int:
        if value is None:
            return DEFAULT_STOP_TIMEOUT
        if value < 0:
            raise InvalidArgumentError("stop timeout must be a non-negative number of seconds")
        return value

    def run(self, image: str, command: Iterable[str] | None = None, **create_args: Any) -> Container:
        """Create and start a container in the background (``run -d``)."""
        container = self.create(image, command, **create_args)
        try:
            container.start()
        except BaseException:
            if container.config.auto_remove:
                container.remove(force=True)
            raise
        return container

    def get(self, name_or_id: str) -> Container:
        ids = self.db.lookup_container(name_or_id) if name_or_id else []
        if len(ids) > 1:
            raise NoSuchContainerError(f"more than one result for container {name_or_id!r}", container=name_or_id)
        row = self.db.get_container(ids[0]) if ids else None
        if row is None:
            raise NoSuchContainerError(f"no container with name or ID \"{name_or_id}\" found: no such container",
                                       container=name_or_id)
        container = self._synced(Container(self, ContainerConfig.from_json(row[0]),
                                           ContainerRuntimeState.from_json(row[1])))
        if container is None:
            raise NoSuchContainerError(f"no container with name or ID \"{name_or_id}\" found: no such container",
                                       container=name_or_id)
        return container

    def exists(self, name_or_id: str) -> bool:
        return len(self.db.lookup_container(name_or_id)) == 1

    def _synced(self, container: Container) -> Container | None:
        """Sync only when conmon's files or an abandoned operation say something changed: listing stays
        cheap. None when the container turned out to be gone."""
        st = container.state
        if container._intent_abandoned() or st.status in ACTIVE_STATES and not st.exited and (
                self.opts.exit_file(container.id).exists() or not is_alive(st.conmon_pid, st.conmon_start_time)):
            try:
                container.reload()
            except ContainerRemovedError:
                return None
        return container

    def list(self, *, all: bool = True) -> list[Container]:
        """Containers of the store, oldest first; only running ones unless ``all``."""
        containers = [synced for c, s in self.db.all_containers()
                      if (synced := self._synced(Container(self, ContainerConfig.from_json(c),
                                                           ContainerRuntimeState.from_json(s)))) is not None]
        containers.sort(key=lambda c: c.config.created_at)
        if not all:
            containers = [c for c in containers if c.status.value == "running"]
        return containers

    def remove(self, name_or_id: str, *, force: bool = False, volumes: bool = False) -> Container:
        container = self.get(name_or_id)
        container.remove(force=force, volumes=volumes)
        return container

    def restore_from_archive(self, path: str | Path, name: str | None = None, *, keep: bool = False,
                             tcp_established: bool = False, tcp_close: bool = False, file_locks: bool = False,
                             ignore_rootfs: bool = False, ignore_volumes: bool = False,
                             import_previous: str | Path | None = None, print_stats: bool = False,
                             publish: Iterable[str | ports.PortMapping] | None = None) -> Container:
        """Bring back an exported checkpoint: the same container ID, or a new one named ``name``.

        Its published ports are the same host ports as before, or ``publish`` instead (podman's
        ``restore --import --publish``).

        Needs the container's image in this store. Nothing is left behind if it
        fails; with ``print_stats`` the statistics are in ``container.statistics``.
        """
        from kernelext.core import checkpoint as cr

        archive = Path(path).absolute()
        options: dict[str, Any] = dict(
            keep=keep, tcp_established=tcp_established, tcp_close=tcp_close, file_locks=file_locks,
            ignore_rootfs=ignore_rootfs, ignore_volumes=ignore_volumes, import_previous=import_previous,
            print_stats=print_stats)
        cr.RestoreOptions.build(import_=archive, name=name, **options)  # refuse bad options before creating anything
        mappings = None if publish is None else ports.parse_all(publish)
        container = cr.import_archive(self, archive, name, mappings)
        try:
            container.restore(import_=archive, **options)
        except BaseException:
            container.remove(force=True)
            raise
        return container

    # ----------------------------------------------------------------- images
    def image(self, name_or_id: str) -> Image:
        return self.images.get(name_or_id)

    def list_images(self) -> builtins.list[Image]:  # `list` is the method above
        return self.images.all()

    def import_image(self, tarball: str | Path, name: str | None = None, *,
                     cmd: builtins.list[str] | None = None) -> Image:
        image = self.images.import_tarball(Path(tarball), name, cmd=cmd)
        self.events.emit("import", image.id, image.name, image.name, type_="image")
        return image

    def image_for(self, image: str, policy: PullPolicy, tls_verify: bool = True,
                  authfile: str | Path | None = None, progress: ProgressCallback | None = None) -> Image:
        """The image a new container (or an imported checkpoint) uses, pulled by podman's ``policy``; one
        in a file (``docker-archive:PATH``...) is always read again, as podman does."""
        if policy in (PullPolicy.ALWAYS, PullPolicy.NEWER) or file_transport(image) is not None:
            return self.pull(image, tls_verify=tls_verify, authfile=authfile, progress=progress)
        try:
            return self.images.get(image)
        except NoSuchImageError:
            if policy is PullPolicy.NEVER:
                raise
        try:
            return self.pull(image, tls_verify=tls_verify, authfile=authfile, progress=progress)
        except RuntimeFailure as exc:  # still a lookup error for callers: the image is not here
            raise NoSuchImageError(f"{image}: image not known, and pulling it failed: {exc}") from None

    def pull(self, ref: str, *, tls_verify: bool = True, authfile: str | Path | None = None,
             progress: ProgressCallback | None = None) -> Image:
        """``podman pull``, through skopeo: ``ref`` is ``[docker://]registry/name[:tag]`` or an image in a file
        (``docker-archive:PATH``, ``oci-archive:PATH``, ``dir:PATH``, ``oci:PATH[:NAME]``); ``progress`` gets
        :class:`~kernelext.storage.progress.Progress` events (skopeo's lines, bytes, layers unpacked)."""
        from kernelext.storage.skopeo import CopyOptions

        image = self.images.pull(ref, CopyOptions(tls_verify, str(authfile) if authfile else None), progress)
        self.events.emit("pull", "", ref, image.name, type_="image")  # podman's: the reference given, no ID
        return image

    def push(self, name_or_id: str, dest: str | None = None, *, tls_verify: bool = True,
             authfile: str | Path | None = None, progress: ProgressCallback | None = None) -> Image:
        """``podman push``: to ``dest`` (a registry reference, or ``dir:PATH``, ``oci:PATH``,
        ``docker-archive:PATH``, ``oci-archive:PATH``); without it, to the registry its name says."""
        from kernelext.storage.skopeo import CopyOptions

        dest = dest or name_or_id
        image = self.images.push(name_or_id, dest, CopyOptions(tls_verify, str(authfile) if authfile else None),
                                 progress)
        self.events.emit("push", image.id, dest, image.name, type_="image")
        return image

    def pull_all_tags(self, repository: str, *, tls_verify: bool = True, authfile: str | Path | None = None,
                      progress: ProgressCallback | None = None) -> builtins.list[Image]:
        """``podman pull --all-tags``: every tag of ``repository`` (``[docker://]registry/name``, no tag)."""
        from kernelext.storage.skopeo import CopyOptions

        images = self.images.pull_all_tags(repository, CopyOptions(tls_verify, str(authfile) if authfile else None),
                                           progress)
        for image in images:
            self.events.emit("pull", "", image.name, image.name, type_="image")
        return images

    def load(self, archive: str | Path, *, progress: ProgressCallback | None = None) -> Image:
        """``podman load -i``: a docker-archive or oci-archive file."""
        image = self.images.load(Path(archive), progress)
        self.events.emit("loadfromarchive", "", str(archive), image.name, type_="image")  # podman's: no ID
        return image

    def save(self, name_or_id: str, output: str | Path, *, format: str = "docker-archive") -> Image:
        """``podman save -o``: ``format`` is ``docker-archive`` (podman's default) or ``oci-archive``."""
        image = self.images.save(name_or_id, Path(output), format)
        self.events.emit("save", image.id, str(output), image.name, type_="image")
        return image

    def remove_image(self, name_or_id: str, *, force: bool = False) -> Removal:
        """``podman rmi``: a name of an image that has several is untagged, else the image goes; ``force``
        removes the containers that use it first (podman's ``rmi -f``)."""
        if force:
            image = self.images.get(name_or_id) if self.images.exists(name_or_id) else None
            if image is not None and normalize_name(name_or_id) in image.names and len(image.names) > 1:
                image = None  # one name of several is only untagged: its containers stay (podman)
            for ctr_id in self.images.users(image) if image is not None else []:
                self.remove(ctr_id, force=True)
        removal = self.images.remove(name_or_id, force=force)
        for name in removal.untagged:  # podman: each name untagged, then the image removed (named by ID)
            self.events.emit("untag", removal.image.id, name, removal.image.name, type_="image")
        if removal.deleted:
            self.events.emit("remove", removal.image.id, removal.image.id, removal.image.name, type_="image")
        return removal

    def tag(self, name_or_id: str, *names: str) -> Image:
        """``podman tag``: more names for an image."""
        image = self.images.tag(name_or_id, *names)
        for name in names:  # podman: one event per name, as given
            self.events.emit("tag", image.id, name, image.name, type_="image")
        return image

    def untag(self, name_or_id: str, *names: str) -> Image:
        """``podman untag``: names taken off an image (all of them without ``names``); the image stays."""
        untagged = [normalize_name(name) for name in names] or self.images.get(name_or_id).names
        image = self.images.untag(name_or_id, *names)
        for name in untagged:  # podman: one event per name, in full
            self.events.emit("untag", image.id, ":".join(repo_tag(name)), image.name, type_="image")
        return image

    def history(self, name_or_id: str) -> builtins.list[HistoryEntry]:
        """``podman history``: the image's steps, newest first."""
        return self.images.history(name_or_id)

    def image_exists(self, name_or_id: str) -> bool:
        return self.images.exists(name_or_id)

    def prune_images(self, *, all: bool = False, until: float | None = None, labels: Iterable[str] = (),
                     not_labels: Iterable[str] = ()) -> builtins.list[Removal]:
        """``podman image prune``: dangling images (every unused one with ``all``) removed; what went. The
        ``--filter``s: only images created before ``until``, with every label of ``labels`` and none of
        ``not_labels`` (``KEY`` or ``KEY=VALUE``)."""
        removed = []
        for image in self.images.prune_candidates(all_=all, until=until, labels=list(labels),
                                                  not_labels=list(not_labels)):
            removed.append(self.images.remove(image.id, force=True))
            self.events.emit("remove", image.id, image.name, image.name, type_="image")
        return removed

    def commit(self, container: str, image: str | None = None, *, changes: Iterable[str] = (), message: str = "",
               author: str = "", pause: bool = True) -> Image:
        """``podman commit``: the container's changes as a new layer on its image; ``changes`` are ``--change``
        instructions (``CMD=...``, ``ENV K=V``, ``WORKDIR``, ``USER``, ``ENTRYPOINT``, ``LABEL``, ``EXPOSE``)."""
        from kernelext.core.commit import CommitOptions
        from kernelext.core.commit import commit as commit_container

        options = CommitOptions(list(changes), message, author, pause)
        return commit_container(self.get(container), image, options)

    # ------------------------------------------------------------------- copy
    def copy(self, src: str, dst: str, archive: bool = True, overwrite: bool = False, *,
             stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """podman cp: ``[container:]path`` forms in both directions and container to container.

        ``-`` reads a (compressed) tar from ``stdin`` or writes one to ``stdout``
        (default: the process's). ``archive``: files copied into a container are
        owned by its user. ``overwrite``: a directory may replace a file and the reverse.
        """
        from kernelext.core import filecopy as cp

        cp.copy(self, src, dst, archive=archive, overwrite=overwrite, stdin=stdin, stdout=stdout)


_lock = threading.Lock()
_default: Runtime | None = None


def default_runtime() -> Runtime:
    """The process-wide runtime on the default store (created on first use)."""
    global _default
    with _lock:
        if _default is None:
            _default = Runtime()
        return _default
