"""The container API: libpod's ``container_api.go`` in Python (docs/architecture.md §2).

Layering, as in libpod:

* public methods take the container lock, sync with the store and conmon's
  exit file, check the state, call internal operations, save, emit events;
* internal operations (``_init``, ``_start``, ``_stop``, ``_cleanup`` ...)
  never take the lock, so they compose, and :meth:`Container.batch` can run
  several public calls under one lock;
* the runtime driver (:mod:`kernelext.oci`) and the storage driver
  (:mod:`kernelext.storage`) do the work.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import shutil
import signal as signal_mod
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import replace as dataclasses_replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import kernelext
from kernelext import faults, rootless
from kernelext.core import ports
from kernelext.core.mounts import made_by_mounts
from kernelext.core.options import ROOTLESS_V1_LIMITS, cgroup_v2
from kernelext.core.ports import PortMapping
from kernelext.core.state import (
    ACTIVE_STATES,
    ALLOWED_FROM,
    ContainerConfig,
    ContainerRuntimeState,
    ContainerStatus,
    Intent,
    NetworkMode,
    allowed_actions,
    should_restart,
)
from kernelext.errors import (
    EXIT_NOT_EXECUTABLE,
    CommandNotFoundError,
    ContainerRemovedError,
    ContainerRunningError,
    ContainerStateError,
    ContainerStoppedError,
    InvalidArgumentError,
    KernelextError,
    NameInUseError,
    PermissionRequiredError,
    RuntimeFailure,
    WaitTimeoutError,
    tool_reason,
)
from kernelext.files.rootpath import is_dir_in_root
from kernelext.oci import cgroups, conmon, forwarder, identity, netns, spec
from kernelext.oci.attach import AttachSocket
from kernelext.oci.conmon import kill_conmon
from kernelext.oci.monitor import ExitWatcher, is_alive, process_start_time, this_process, wait_until
from kernelext.oci.monitoring import NO_LOGS, LogDriver
from kernelext.oci.runtime import KILL_TIMEOUT_S
from kernelext.storage.driver import ContainerLayer
from kernelext.storage.users import resolve_user

if TYPE_CHECKING:
    from kernelext.core.checkpointinfo import CheckpointInfo
    from kernelext.core.filecopy import FileInfo
    from kernelext.core.history import CheckpointEntry
    from kernelext.core.logs import LogCursor, LogLine
    from kernelext.core.runtime import Runtime
    from kernelext.storage.layerdiff import Change

log = logging.getLogger("kernelext")
S = ContainerStatus
T = TypeVar("T")

CONMON_DIED_ERROR = "conmon died without writing exit file, container exit code could not be retrieved"
DEFAULT_WAIT_INTERVAL_S = 0.25
#: A process killed by SIGKILL, the OOM killer's signal, exits with 128 + 9.
OOM_KILL_EXIT_CODE = 128 + signal_mod.SIGKILL
EXIT_CONDITIONS = frozenset({S.STOPPED, S.EXITED})


def parse_signal(sig: str | int) -> signal_mod.Signals:
    """``SIGTERM``, ``TERM``, ``term`` or ``15``."""
    try:
        if isinstance(sig, int) or str(sig).isdigit():
            return signal_mod.Signals(int(sig))
        name = str(sig).upper()
        return signal_mod.Signals[name if name.startswith("SIG") else "SIG" + name]
    except (KeyError, ValueError):
        raise InvalidArgumentError(f"invalid signal: {sig}") from None


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: bytes | None


class Container:
    """One container of a store. Obtain it from :class:`kernelext.Runtime`."""

    def __init__(self, runtime: Runtime, config: ContainerConfig, state: ContainerRuntimeState) -> None:
        self._runtime = runtime
        self.config = config
        self.state = state
        self._lock = runtime._lock_for(config.id)
        self._batched = False
        #: What the last checkpoint/restore through this object asked with ``print_stats`` measured.
        self.statistics: dict[str, Any] | None = None
        #: What ``Runtime.create`` set aside and says so (libpod's create warnings), for the front end to show.
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ basics
    @property
    def runtime(self) -> Runtime:
        """The store this container belongs to."""
        return self._runtime

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def short_id(self) -> str:
        return self.config.id[:12]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def image(self) -> str:
        return self.config.image_name

    @property
    def status(self) -> ContainerStatus:
        return self.state.status

    @property
    def exit_code(self) -> int:
        return self.state.exit_code

    @property
    def bundle(self) -> Path:
        return self._runtime.opts.userdata(self.id)

    @property
    def log_path(self) -> Path:
        return self.bundle / "ctr.log"

    @property
    def ports(self) -> list[PortMapping]:
        """The published ports (``-p``), host ports resolved."""
        return list(self.config.ports)

    @property
    def netns_path(self) -> Path | None:
        """The mount of the network namespace kernelext prepares for it: its own network, as root.

        None for the host's network, and rootless, where runc makes the namespace
        inside the store's user namespace, which must own it.
        """
        if self.config.network is not NetworkMode.NONE or self._runtime.namespace.rootless:
            return None
        return self._runtime.opts.netns_path(self.id)

    @functools.cached_property
    def layer(self) -> ContainerLayer:
        """Its writable layer (made once: the image and the store's driver never change for a container)."""
        return self._runtime.storage_driver.layer(self._runtime.opts.layer_dir(self.id),
                                                  self._runtime.images.get(self.config.image_id).lowers,
                                                  self._runtime.namespace, volatile=self.config.auto_remove)

    def __repr__(self) -> str:
        return f"<Container {self.name} {self.short_id} {self.status.value}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Container) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # ------------------------------------------------- locking, sync and saving
    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._batched:
            yield
            return
        self._lock.acquire()
        try:
            self._sync()
            yield
        except BaseException:
            self._after_failure()
            raise
        finally:
            self._lock.release()

    @contextmanager
    def _unlocked(self) -> Iterator[None]:
        """Release the lock while waiting, so others see intermediate states (``stopping``)."""
        if self._batched:
            yield
            return
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()
            self._reload()

    def _reload(self) -> None:
        row = self._runtime.db.get_state(self.id)
        if row is None:
            raise ContainerRemovedError(f"container {self.name} has been removed", container=self.name)
        self.state = ContainerRuntimeState.from_json(row)

    def _save(self) -> None:
        if not self._runtime.db.save_state(self.id, self.state.to_json()):
            raise ContainerRemovedError(f"container {self.name} has been removed", container=self.name)

    def _event(self, status: str, **attributes: object) -> None:
        self._runtime.events.emit(status, self.id, self.name, self.image, "container", self.config.labels,
                                  **attributes)

    def _sync(self) -> None:
        self._reload()
        if self._intent_abandoned():
            from kernelext.core import reconcile

            reconcile.recover(self)
        if self.state.status in ACTIVE_STATES and not self.state.exited:
            self._check_exit()

    def _intent_abandoned(self) -> bool:
        """An operation in flight whose process is gone: what it did must be found out and finished or undone."""
        st = self.state
        return st.intent is not Intent.NONE and not is_alive(st.intent_pid, st.intent_start_time)

    def _begin(self, intent: Intent) -> None:
        """Record ``intent`` before acting: a process that finds it after this one died knows what to check."""
        self.state.begin(intent, this_process())
        self._save()

    def _after_failure(self) -> None:
        """An operation of this process failed with its intent still recorded: make the state true now
        (a long-lived process, a Jupyter kernel, would otherwise keep it for the rest of its life)."""
        st = self.state
        if st.intent is Intent.NONE or (st.intent_pid, st.intent_start_time) != this_process():
            return
        from kernelext.core import reconcile

        try:
            reconcile.settle_failure(self)
        except Exception as exc:  # noqa: BLE001 - the operation's own error is the one to report
            log.warning("container %s: could not settle the failed %s: %s", self.name, st.intent.value, exc)

    def _read_exit_file(self) -> tuple[int, float] | None:
        path = self._runtime.opts.exit_file(self.id)
        try:
            text = path.read_text().strip()
            return int(text), path.stat().st_mtime
        except (FileNotFoundError, ValueError):
            return None

    def _conmon_alive(self) -> bool:
        return is_alive(self.state.conmon_pid, self.state.conmon_start_time)

    def _exit_observed(self) -> bool:
        """True once the exit file exists or conmon is gone: a sync will then change the state."""
        return self._runtime.opts.exit_file(self.id).exists() or not self._conmon_alive()

    def _check_exit(self) -> None:
        result = self._read_exit_file()
        if result is None:
            if self.state.conmon_pid == 0 or self._conmon_alive():
                return
            result = self._read_exit_file()  # conmon may have written it just before dying
            if result is None:
                self._conmon_died()
                return
        self._handle_exit(*result)

    def _handle_exit(self, code: int, when: float) -> None:
        st = self.state
        was = st.status
        st.status = S.STOPPED
        st.exited = True
        st.exit_code = code
        st.finished_at = when
        st.pid = 0
        st.restart_policy_match = was in (S.RUNNING, S.PAUSED, S.STOPPING) and not st.stopped_by_user
        # conmon's "oom" file (its watch on the cgroup), else the cgroup's counter or the kernel's report of
        # the kill; only SIGKILL can be the OOM killer's (128 + 9).
        oom_file = self._runtime.opts.persist_dir(self.id) / "oom"
        st.oom_killed = oom_file.exists() or (code == OOM_KILL_EXIT_CODE
                                              and self.config.cgroups.oom_killed(self.id, st.started_at))
        self._runtime.db.set_exit_code(self.id, code)
        self._save()
        self._event("died", exitCode=code)

    def _conmon_died(self) -> None:
        st = self.state
        st.status = S.STOPPED
        st.exited = True
        st.exit_code = -1
        st.error = CONMON_DIED_ERROR
        st.finished_at = time.time()
        st.pid = 0
        self._runtime.db.set_exit_code(self.id, -1)
        self._save()
        self._event("died", exitCode=-1)
        self._cleanup()

    def _check(self, operation: str, message: str | None = None) -> None:
        if self.state.status not in ALLOWED_FROM[operation]:
            raise ContainerStateError(
                message or f"container {self.name} is {self.state.status.value}, cannot {operation}: "
                           "container state improper",
                container=self.name, operation=operation)

    def _save_error(self, exc: BaseException) -> None:
        try:
            self._reload()
            self.state.error = str(exc)
            self._save()
        except KernelextError:
            pass

    # ------------------------------------------------------ internal operations
    def _remove_conmon_files(self) -> None:
        """Forget the previous run's exit file, PID files and sockets (conmon makes new ones)."""
        opts = self._runtime.opts
        opts.exit_file(self.id).unlink(missing_ok=True)
        shutil.rmtree(opts.persist_dir(self.id), ignore_errors=True)
        for name in ("attach", "ctl", "winsz"):
            (self.bundle / name).unlink(missing_ok=True)

    def _mount_storage(self, intent: Intent) -> Path:
        """Record ``intent`` and the mount about to be made in one save, then mount."""
        self.state.runtime_mounted = True
        self._begin(intent)
        return self.layer.mount()

    def _unmount_storage(self) -> None:
        if self.state.runtime_mounted:
            self.state.runtime_mounted = False
            if self.state.user_mounts == 0:
                self.layer.unmount()

    def _write_etc_files(self) -> dict[str, Path]:
        cfg = self.config
        hostname = spec.hostname_of(cfg)
        files = {"/etc/hostname": f"{hostname}\n", "/etc/hosts": cfg.identity.hosts(hostname, self.name),
                 # podman tells only a privileged container about itself; others get an empty file.
                 identity.CONTAINERENV: identity.containerenv(
                     engine=f"kernelext-{kernelext.__version__}", name=self.name, ctr_id=self.id,
                     image=cfg.image_name, image_id=cfg.image_id, rootless=self._runtime.namespace.rootless)
                 if cfg.security.privileged else ""}
        if self.config.network is NetworkMode.HOST:
            try:
                files["/etc/resolv.conf"] = Path("/etc/resolv.conf").read_text()
            except OSError:
                files["/etc/resolv.conf"] = ""
        else:
            files["/etc/resolv.conf"] = ""
        paths = {}
        for dest, content in files.items():
            path = self.bundle / dest.rsplit("/", 1)[1].lstrip(".")
            path.write_text(content)
            paths[dest] = path
        return paths

    def _write_spec(self, rootfs: Path) -> None:
        image = self._runtime.images.get(self.config.image_id)
        root_view = self._runtime.namespace.view(rootfs)
        user = resolve_user(root_view, self.config.user or image.config.user, self.config.security.group_add)
        workdir = self.config.workdir
        # podman's rule: a --workdir that is not the image's must exist (runc would make it).
        if (workdir not in ("/", image.config.workdir) and not made_by_mounts(self.config.mounts, workdir)
                and not is_dir_in_root(root_view, workdir)):
            raise CommandNotFoundError(f"workdir \"{workdir}\" does not exist on container {self.id}",
                                       exit_code=EXIT_NOT_EXECUTABLE, container=self.name, operation="init")
        namespace = self._runtime.namespace
        self._runtime.volumes.prepare(self.config, rootfs, user)  # copy-up of new volumes, `U` chowns
        inputs = spec.SpecInputs(rootfs=rootfs, user=user, image_env=image.config.env,
                                 etc_files=self._write_etc_files(), rootless=namespace.rootless,
                                 mapped_gids=namespace.mapped_gids(), netns=self.netns_path,
                                 volume_path=self._runtime.volumes.path)
        document = spec.generate(self.config, inputs)
        # Written in place (a new inode costs a millisecond on these disks): only
        # conmon and runc read it, while we hold the container lock.
        (self.bundle / "config.json").write_text(json.dumps(document))

    def _conmon_options(self, **overrides: Any) -> conmon.ConmonOptions:
        opts = self._runtime.opts
        return conmon.ConmonOptions(
            ctr_id=self.id, name=self.name, bundle=self.bundle, pid_file=opts.pid_file(self.id),
            conmon_pid_file=opts.conmon_pid_file(self.id), exit_dir=opts.exits_dir,
            persist_dir=opts.persist_dir(self.id), log_path=self.log_path, tty=self.config.tty,
            stdin=self.config.stdin,
            exit_command=self._runtime.exit_command(self.id, self.config.auto_remove),
            sync_log=not self.config.auto_remove, log_driver=self.config.monitor.log_driver.value,
            monitor_args=self.config.monitor.conmon_args(), preserve_fds=self.config.monitor.preserve_fds,
            runtime_args=self.config.cgroups.runtime_args(),
            scope=self.config.cgroups.conmon_scope(self.id), scope_slice=self.config.cgroups.inspect_parent,
            **overrides)

    def _init(self, *, retain_retries: bool = False, then: Intent = Intent.NONE) -> None:
        """Create the container in runc under a new conmon (state ``initialized``); ``then``: the intent
        recorded with the outcome (the start that follows at once), saving a write."""
        # Always: a conmon of an undone launch may have left an exit file that this run would take for its own.
        self._remove_conmon_files()
        with ports.bound(self.config.ports) as sockets:  # a taken port fails before anything runs
            try:
                rootfs = self._mount_storage(Intent.INIT)
                faults.point("init:mounted")
                self._create_netns()
                self._write_spec(rootfs)
                started = self._runtime.oci.create_container(self._conmon_options())
                faults.point("init:launched")
            except BaseException as exc:
                self._undo_failed_launch()
                why = self.config.resources.startup_failure(str(exc)) if isinstance(exc, RuntimeFailure) else None
                if why:
                    raise InvalidArgumentError(why, container=self.name, operation="init") from None
                raise
            if sockets:  # the loopback is up (ours, or runc's rootless): only ports need the forwarder
                try:
                    self._setup_network(started.pid, sockets)
                except BaseException:
                    self._abandon_launch(started.conmon_pid)
                    raise
        if self.config.monitor.conmon_pidfile:  # podman's --conmon-pidfile, beside the store's own
            Path(self.config.monitor.conmon_pidfile).write_text(f"{started.conmon_pid}\n")
        st = self.state
        st.new_run(started.pid, started.conmon_pid, started.conmon_start_time)
        st.status = S.CREATED
        st.restored = False
        if not retain_retries:
            st.restart_count = 0
        st.done()
        if then is not Intent.NONE:
            st.begin(then, this_process())
        self._save()
        self._event("init")

    def _start(self) -> None:
        if self.state.intent is not Intent.START:
            self._begin(Intent.START)
        faults.point("start:before-runc")
        try:
            self._runtime.oci.start_container(self.id, name=self.name)
        except BaseException:
            self._undo_failed_launch()
            self._event("cleanup")
            raise
        faults.point("start:after-runc")
        self.state.status = S.RUNNING
        self.state.started_at = time.time()
        self.state.done()
        self._save()
        self._event("start")

    def _prepare_to_start(self) -> None:
        if self.state.status is S.STOPPED:
            self._cleanup_runtime()
        if self.state.status in (S.CONFIGURED, S.EXITED):
            self._init(then=Intent.START)

    def _undo_failed_launch(self) -> None:
        """This process's launch failed or was interrupted (Ctrl-C): take down what of it exists, conmon
        first, so that no conmon outlives it to write an exit file a later run would take for its own."""
        from kernelext.core import reconcile

        try:
            reconcile.undo_launch(self)
        except Exception as exc:  # noqa: BLE001 - the launch's own error is the one to report
            log.warning("container %s: could not undo the failed launch: %s", self.name, exc)
        self.state.done()
        self._save()

    def _abandon_launch(self, conmon_pid: int) -> None:
        """Undo a launch whose network setup failed: no runtime container, conmon or conmon files left."""
        self._runtime.oci.delete_container(self.id)
        with ExitWatcher(self._runtime.opts.exit_file(self.id), conmon_pid) as watcher:
            wait_until(lambda: process_start_time(conmon_pid) is None, watcher, KILL_TIMEOUT_S)
        self._remove_netns()
        self._remove_conmon_files()
        self._unmount_storage()
        self.state.done()
        self._save()

    def _create_netns(self) -> None:
        """A fresh network namespace for the next run (podman never reuses one)."""
        if self.netns_path is not None:
            netns.create(self.netns_path)

    def _remove_netns(self) -> None:
        """Drop the namespace's mount (idempotent): it goes with the container's last process."""
        if self.netns_path is not None:
            netns.remove(self.netns_path)

    def _setup_network(self, pid: int, sockets: list[socket.socket]) -> None:
        """Bring the loopback of ``pid``'s network namespace up and forward the published ports into it."""
        routes = [forwarder.Route(sock, mapping.container_port, mapping.protocol.value)
                  for sock, mapping in zip(sockets, self.config.ports)]
        started = forwarder.start(self.id, pid, routes)
        self.state.forwarder_pid, self.state.forwarder_start_time = (
            (started.pid, started.start_time) if started else (0, 0))

    def _teardown_network(self) -> None:
        """Stop forwarding: the host ports are closed, and their connections, on return."""
        st = self.state
        if st.forwarder_pid:
            forwarder.stop(forwarder.Forwarder(st.forwarder_pid, st.forwarder_start_time))
            st.forwarder_pid = st.forwarder_start_time = 0

    def _cleanup_runtime(self) -> None:
        self._teardown_network()
        self._runtime.oci.delete_container(self.id)
        self.config.cgroups.release(self.id)
        self._remove_netns()
        if self.state.status in (S.STOPPED, S.STOPPING):
            self.state.status = S.EXITED
        elif self.state.status is S.CREATED:
            self.state.status = S.CONFIGURED

    def _cleanup(self) -> None:
        """Delete the runtime container and unmount storage (``stopped`` → ``exited``)."""
        self._cleanup_runtime()
        self._unmount_storage()
        self._save()
        self._event("cleanup")

    def _wait_for_exit_file(self, timeout: float | None) -> bool:
        with ExitWatcher(self._runtime.opts.exit_file(self.id), self.state.conmon_pid) as watcher:
            return wait_until(self._exit_observed, watcher, timeout)

    def _stop(self, timeout: int) -> None:
        st = self.state
        stop_signal = parse_signal(self.config.stop_signal)
        st.stopped_by_user = True
        if st.status is S.CREATED:
            timeout = 0  # the process never ran: nothing can handle a stop signal
        st.status = S.STOPPING
        self._begin(Intent.STOP)
        faults.point("stop:stopping")
        with self._unlocked():
            self._runtime.oci.stop_container(self.id, name=self.name, stop_signal=stop_signal, timeout=timeout,
                                             exited=self._exit_observed, wait_exit=self._wait_for_exit_file)
        if self.state.status is not S.STOPPING:
            self.state.done()  # another process finished the job meanwhile
            self._save()
            return
        self._check_exit()
        if self.state.status is S.STOPPING:
            # Killed but no exit file yet: give up on the code, not on the state.
            self.state.status = S.STOPPED
            self.state.exited = True
            self.state.exit_code = -1
        self._teardown_network()  # the port closes with the stop, not only at cleanup
        self.state.done()
        self._save()
        self._event("stop")

    def _signal(self, sig: signal_mod.Signals) -> None:
        try:
            self._runtime.oci.kill_container(self.id, sig, name=self.name)
        except RuntimeFailure:
            if not self._exit_observed():
                raise  # a failure other than "already gone"

    def _exec_sessions(self) -> list[tuple[str, int, int]]:
        """Live exec sessions; dead ones are dropped on the way."""
        live = []
        for session_id, pid, start_time in self._runtime.db.exec_sessions(self.id):
            if is_alive(pid, start_time):
                live.append((session_id, pid, start_time))
            else:
                self._runtime.db.remove_exec_session(session_id)
        return live

    def _handle_restart_policy(self) -> bool:
        if not should_restart(self.config, self.state) or self.state.status in (S.RUNNING, S.PAUSED):
            return False
        self._event("restart")
        self.state.restart_count += 1
        self._save()
        self._cleanup_runtime()
        self._init(retain_retries=True, then=Intent.START)
        self._start()
        return True

    # -------------------------------------------------------------- public API
    def sync(self) -> ContainerStatus:
        """Re-read the store and conmon's exit file."""
        with self._locked():
            self._event("sync")
            return self.state.status

    def reload_network(self) -> None:
        """Tear down and re-establish port forwarding and the loopback (podman's ``ReloadNetwork``).

        The container's processes are untouched; connections through the old forwarder are closed.
        """
        with self._locked():
            self._check("reload_network", "cannot reload network unless container network has been configured: "
                                          "container state improper")
            self._teardown_network()
            self._save()
            with ports.bound(self.config.ports) as sockets:
                self._setup_network(self.state.pid, sockets)
            self._save()

    def reload(self) -> Container:
        """Refresh this object from the store (and conmon's exit file)."""
        with self._locked():
            return self

    def batch(self, fn: Callable[[Container], T]) -> T:
        """Run ``fn(container)`` under one lock; calls inside skip locking and re-syncing."""
        with self._locked():
            clone = copy.copy(self)
            clone._batched = True
            try:
                return fn(clone)
            finally:
                self.state = clone.state

    def init(self) -> None:
        with self._locked():
            if self.state.status not in ALLOWED_FROM["init"]:
                raise ContainerStateError(f"container {self.name} has already been created in runtime: "
                                          "container state improper",
                                          container=self.name, operation="init")
            if self.state.status is S.STOPPED:
                self._cleanup_runtime()
            self._init()

    def start(self) -> None:
        with self._locked():
            if self.state.status is S.RUNNING:
                raise ContainerRunningError(f"container {self.name} is already running", container=self.name,
                                            operation="start")
            self._check("start")
            try:
                self._prepare_to_start()
                self._start()
            except BaseException as exc:
                self._save_error(exc)
                raise

    def attach(self, *, start: bool = False, tty_size: tuple[int, int] | None = None) -> AttachSocket:
        """Connect to the container's stdio; with ``start``, before it starts (no output lost).

        ``tty_size`` (rows, columns) sizes a TTY container's terminal before it
        starts, so that its first ``stty size`` is already right. Returns the
        connection; :func:`kernelext.oci.attach.pump` copies it to files or
        callbacks. The lock is not held while the session lasts.
        """
        with self._locked():
            if start and self.state.status is not S.RUNNING:
                self._check("start")
                try:
                    self._prepare_to_start()
                    conn = AttachSocket(self.bundle / "attach")
                    try:
                        if tty_size is not None and self.config.tty:
                            self._resize(*tty_size)
                        self._start()
                    except BaseException:
                        conn.close()
                        raise
                except BaseException as exc:
                    self._save_error(exc)
                    raise
            else:
                if self.state.status not in ALLOWED_FROM["attach"]:
                    raise ContainerStateError("you can only attach to running containers", container=self.name,
                                              operation="attach")
                conn = AttachSocket(self.bundle / "attach")
            self._event("attach")
            return conn

    def resize(self, height: int, width: int) -> None:
        """Resize the container's TTY (``1 <h> <w>`` on conmon's ctl FIFO)."""
        with self._locked():
            self._check("resize")
            if not self.config.tty:
                raise InvalidArgumentError(f"container {self.name} has no TTY", container=self.name, operation="resize")
            self._resize(height, width)

    def _resize(self, height: int, width: int) -> None:
        fd = os.open(self.bundle / "ctl", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.write(fd, f"1 {height} {width}\n".encode())
        finally:
            os.close(fd)

    def stop(self, timeout: int | None = None) -> None:
        """Stop signal, then SIGKILL after ``timeout`` seconds (0: SIGKILL at once)."""
        with self._locked():
            if self.state.status in (S.STOPPED, S.EXITED):
                self.state.stopped_by_user = True
                self._save()
                raise ContainerStoppedError(f"container {self.name} is already stopped", container=self.name,
                                            operation="stop")
            self._check("stop")
            self._stop(self.config.stop_timeout if timeout is None else timeout)

    def kill(self, signal: str | int = "SIGKILL") -> None:
        sig = parse_signal(signal)
        with self._locked():
            self._check("kill", f"can only kill running containers. {self.name} is in state {self.state.status.value}: "
                                "container state improper")
            self._runtime.oci.kill_container(self.id, sig, name=self.name)
            self.state.stopped_by_user = True
            self._save()
            self._event("kill", signal=sig.name)
            if sig is signal_mod.SIGKILL:  # runc thaws a paused container to deliver it
                with self._unlocked():
                    self._wait_for_exit_file(KILL_TIMEOUT_S)
                self._sync()

    def restart(self, timeout: int | None = None) -> None:
        with self._locked():
            if self.state.status in (S.PAUSED, S.UNKNOWN, S.REMOVING, S.STOPPING):
                raise ContainerStateError("unable to restart a container in a paused or unknown state",
                                          container=self.name, operation="restart")
            self._event("restart")
            if self.state.status in (S.RUNNING, S.CREATED):
                self._stop(self.config.stop_timeout if timeout is None else timeout)
            self._prepare_to_start()
            self._start()

    def rename(self, name: str) -> None:
        """podman's ``rename``: a new name in any state but removing (a running container keeps running; its
        /etc/hosts keeps the name it started with, as in podman); the old name is free at once."""
        import sqlite3

        from kernelext.core.runtime import _valid_name

        if not _valid_name(name):
            raise InvalidArgumentError("names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument",
                                       container=self.name, operation="rename")
        with self._locked():
            self._check("rename")
            renamed = dataclasses_replace(self.config, name=name)
            try:
                saved = self._runtime.db.rename_container(self.id, name, renamed.to_json())
            except sqlite3.IntegrityError:  # podman's ErrCtrExists, its text
                raise NameInUseError(f"renaming container {self.id}: name {name} already in use, cannot rename "
                                     f"container {self.id}: container already exists", container=self.name,
                                     operation="rename") from None
            if not saved:
                raise ContainerRemovedError(f"container {self.name} has been removed", container=self.name)
            self.config = renamed
            self._event("rename")

    def update(self, **changes: Any) -> None:
        """podman's ``update``: new limits (``memory="128m"``, ``cpus=1``, ``pids_limit=100``, ...) for the
        container, applied to its cgroup at once while runc has it, and kept for its next runs."""
        with self._locked():
            self._check("update")
            resources = self.config.resources.updated(**changes)
            if self._runtime.namespace.rootless and resources.needs_cgroup and not cgroup_v2():
                raise InvalidArgumentError(ROOTLESS_V1_LIMITS, container=self.name, operation="update")
            if self.state.status in (S.CREATED, S.RUNNING, S.PAUSED, S.STOPPING):
                self._runtime.oci.update_container(self.id, resources.linux_resources(), name=self.name)
            self.config = dataclasses_replace(self.config, resources=resources)
            self._runtime.db.save_config(self.id, self.config.to_json())
            self._event("update")

    def pause_refusal(self) -> str:
        """Why this user cannot freeze this container ("" where it can): root always can; a normal user
        only where the container has a cgroup of its own it may write (cgroup v2, a delegated systemd
        scope), as podman pauses a rootless container. The one rule for pause, commit and the panel."""
        if not self._runtime.namespace.rootless or cgroups.freezable(self.state.pid, self.id):
            return ""
        return rootless.pause_refusal()

    def allowed_actions(self) -> list[str]:
        """What the state machine allows this container now, and this user may do: what a panel enables."""
        st = self.state
        return allowed_actions(st.status, checkpointed=st.checkpointed, rootless=self._runtime.namespace.rootless,
                               freezable=not self.pause_refusal())

    def pause(self) -> None:
        with self._locked():
            if self.state.status is S.PAUSED:
                raise ContainerStateError(f"{self.name} is already paused", container=self.name, operation="pause")
            self._check("pause", f'"{self.state.status.value}" is not running, can\'t pause: container state improper')
            refusal = self.pause_refusal()
            if refusal:
                raise PermissionRequiredError(refusal, container=self.name, operation="pause")
            self._begin(Intent.PAUSE)
            self._runtime.oci.pause_container(self.id, name=self.name)
            self.state.status = S.PAUSED
            self.state.done()
            self._save()
            self._event("pause")

    def unpause(self) -> None:
        with self._locked():
            self._check("unpause",
                        f'"{self.state.status.value}" is not paused, can\'t unpause: container state improper')
            self._begin(Intent.UNPAUSE)
            self._runtime.oci.unpause_container(self.id, name=self.name)
            self.state.status = S.RUNNING
            self.state.done()
            self._save()
            self._event("unpause")

    def wait(self, timeout: float | None = None, cancel: threading.Event | None = None) -> int:
        """Wait for the container to exit; its exit code (128+N after signal N).

        A container that never ran returns 0; one already removed (``--rm``), its
        recorded exit code. The lock is not held while waiting.
        """
        try:
            with self._locked():
                if self.state.conmon_pid == 0 or self.state.exited or self.state.status not in ACTIVE_STATES:
                    return self._exit_code()
                conmon_pid = self.state.conmon_pid
            with ExitWatcher(self._runtime.opts.exit_file(self.id), conmon_pid) as watcher:
                if not wait_until(self._exit_observed, watcher, timeout, cancel):
                    raise WaitTimeoutError(f"timed out waiting for container {self.name} to exit",
                                           container=self.name, operation="wait")
            with self._locked():
                return self._exit_code()
        except ContainerRemovedError:
            code = self._runtime.db.get_exit_code(self.id)
            if code is None:
                raise
            return code

    def _exit_code(self) -> int:
        if not self.state.exited:
            return self.state.exit_code
        code = self._runtime.db.get_exit_code(self.id)
        return self.state.exit_code if code is None else code

    def wait_for(self, conditions: Iterable[ContainerStatus | str], *, interval: float = DEFAULT_WAIT_INTERVAL_S,
                 timeout: float | None = None, cancel: threading.Event | None = None) -> int:
        """Wait until the container reaches any of ``conditions``; the first met wins.

        Returns the exit code when an exit condition (stopped, exited) was
        met, -1 for other states. ``removing`` is also met by a removed container.
        """
        wanted = {c if isinstance(c, ContainerStatus) else ContainerStatus.parse(c) for c in conditions}
        if not wanted:
            return self.wait(timeout, cancel)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                with self._locked():
                    status = self.state.status
                    if wanted & EXIT_CONDITIONS and (status in EXIT_CONDITIONS or self.state.exited):
                        return self._exit_code()
                    if status in wanted:
                        return -1
            except ContainerRemovedError:
                if S.REMOVING in wanted:
                    return -1
                raise
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(f"timed out waiting for container {self.name}", container=self.name,
                                       operation="wait")
            pause = interval if remaining is None else min(interval, remaining)
            if cancel is not None:
                if cancel.wait(pause):
                    raise WaitTimeoutError(f"waiting for container {self.name} was cancelled", container=self.name,
                                           operation="wait")
            else:
                time.sleep(pause)

    def cleanup(self, *, only_stopped: bool = False) -> bool:
        """Clean up after an exit; applies the restart policy. True if the container was restarted."""
        with self._locked():
            status = self.state.status
            if status in (S.RUNNING, S.PAUSED):
                raise ContainerStateError(f"container {self.name} is running or paused, refusing to clean up",
                                          container=self.name, operation="cleanup")
            if only_stopped and status is not S.STOPPED:
                raise ContainerStateError(f"container {self.name} is not stopped", container=self.name,
                                          operation="cleanup")
            if self._exec_sessions():
                raise ContainerStateError(f"container {self.name} has active exec sessions, refusing to clean up",
                                          container=self.name, operation="cleanup")
            if self._handle_restart_policy():
                return True
            if status in (S.CONFIGURED, S.EXITED) and not self.state.runtime_mounted:
                return False
            self._cleanup()
            return False

    def mount(self) -> Path:
        """Mount the root filesystem (reference-counted); returns the mount point as this process
        reaches it (rootless, through the user namespace the mount lives in)."""
        with self._locked():
            self._check("mount")
            self.layer.mount()
            self.state.user_mounts += 1
            self._save()
            self._event("mount")
            return self.layer.merged_view

    def unmount(self, force: bool = False) -> None:
        with self._locked():
            st = self.state
            if st.user_mounts == 0:
                if not st.runtime_mounted:
                    return
                if st.status in (S.RUNNING, S.PAUSED):
                    message = f"cannot unmount container {self.name} as it is running or paused"
                elif self._exec_sessions():
                    message = f"container {self.name} has active exec sessions, refusing to unmount"
                else:
                    message = f"can't unmount last mount of container {self.name}, it is still in use"
                raise ContainerStateError(message, container=self.name, operation="unmount")
            st.user_mounts = 0 if force else st.user_mounts - 1
            if not st.mounted:
                self.layer.unmount()
            self._save()
            self._event("unmount")

    def export(self, out: BinaryIO) -> None:
        """Write an uncompressed tar of the merged root filesystem to ``out``."""
        with self._locked():
            self._check("export")
            layer = self.layer
            was_mounted = layer.is_mounted()
            merged = layer.mount()
            try:
                # In the namespace: rootless, only its root reads files owned by subordinate IDs.
                proc = subprocess.run(self._runtime.namespace.command(
                    ["tar", "--create", "--numeric-owner", "--xattrs", "-f", "-", "-C", str(merged), "."]),
                    stdout=out, stderr=subprocess.PIPE)
            finally:
                if not was_mounted:
                    layer.unmount()
            if proc.returncode not in (0, 1):  # 1: a file changed while read, as in a running container
                raise RuntimeFailure(f"export: {tool_reason(proc.stderr, 'tar failed')}", container=self.name,
                                     operation="export")
            self._event("export")

    def checkpoint(self, *, keep: bool = False, leave_running: bool = False, tcp_established: bool = False,
                   file_locks: bool = False, export: str | os.PathLike[str] | None = None,
                   ignore_rootfs: bool = False, ignore_volumes: bool = False, pre_checkpoint: bool = False,
                   with_previous: bool = False, compress: str | None = None,
                   print_stats: bool = False, name: str | None = None) -> Any:
        """Checkpoint the running container with CRIU (podman's options) into its history.

        Returns the new :class:`~kernelext.core.history.CheckpointEntry` (``name``: its
        name), or podman's statistics with ``print_stats`` (the entry is then
        ``checkpoints()[-1]``); a pre-checkpoint makes no entry. Afterwards it is
        ``exited`` with ``Checkpointed`` set, or still running with
        ``leave_running`` / ``pre_checkpoint``. ``export`` also writes an archive
        that :meth:`Runtime.restore_from_archive` brings back anywhere.
        """
        from kernelext.core import checkpoint as cr

        options = cr.CheckpointOptions.build(
            keep=keep, leave_running=leave_running, tcp_established=tcp_established, file_locks=file_locks,
            export=export, ignore_rootfs=ignore_rootfs, ignore_volumes=ignore_volumes, pre_checkpoint=pre_checkpoint,
            with_previous=with_previous, compress=compress, print_stats=print_stats, name=name)
        with self._locked():
            stats, entry = cr.checkpoint(self, options)
        if self.config.auto_remove and options.stops_container:
            self.remove()  # podman: an exported --rm container goes away
        self.statistics = stats.to_dict() if print_stats else None
        return self.statistics if print_stats else entry

    def checkpoints(self) -> list[CheckpointEntry]:
        """The container's checkpoint history, oldest first (docs/architecture.md §4, "Checkpoint history")."""
        from kernelext.core import history

        return history.entries(self._runtime.opts, self.id)

    def checkpoint_entry(self, which: str | int) -> CheckpointEntry:
        """One entry of the history, by number or name."""
        from kernelext.core import history

        return history.find(self._runtime.opts, self.id, self.name, which)

    def export_checkpoint(self, which: str | int, path: str | os.PathLike[str],
                          compress: str | None = None) -> Path:
        """Write an entry of the history as an archive (podman's layout) that ``restore --import`` reads."""
        from kernelext.core import checkpoint as cr

        with self._locked():  # the entry cannot be deleted meanwhile
            entry = self.checkpoint_entry(which)
            return cr.export_entry(self, entry, Path(path).absolute(), cr.Compression.parse(compress or "zstd"))

    def inspect_checkpoint(self, which: str | int) -> CheckpointInfo:
        """What an entry of the history holds (docs/architecture.md §4, "Looking inside a checkpoint"), named
        ``NAME:N``; read under the lock, so a deletion waits for the reading to end."""
        from kernelext.core.checkpointinfo import read_checkpoint

        with self._locked():
            entry = self.checkpoint_entry(which)
            info = read_checkpoint(entry.path)
        info.source = f"{self.name}:{entry.number}"
        return info

    def remove_checkpoint(self, which: str | int) -> CheckpointEntry:
        """Delete an entry of the history (its space is freed at once)."""
        from kernelext.core import history

        with self._locked():
            entry = history.find(self._runtime.opts, self.id, self.name, which)
            history.remove(self, entry)
        self._event("checkpoint-remove", entry=entry.number, entryName=entry.name)
        return entry

    def restore(self, *, keep: bool = False, tcp_established: bool = False, tcp_close: bool = False,
                file_locks: bool = False, import_: str | os.PathLike[str] | None = None, ignore_rootfs: bool = False,
                ignore_volumes: bool = False, import_previous: str | os.PathLike[str] | None = None,
                print_stats: bool = False, from_: str | int | None = None, name: str | None = None,
                publish: Iterable[str | PortMapping] | None = None) -> Any:
        """Restore the container from its checkpoint (or ``import_``, an exported archive) under a new conmon.

        ``from_``: an entry of its history (number or name), its files rolled back to
        that moment too; with ``name`` instead a new container (a branch, ``publish``
        its ports) restored from that entry beside this one, which is returned.
        """
        from kernelext.core import checkpoint as cr
        from kernelext.core import history

        flags: dict[str, Any] = dict(keep=keep, tcp_established=tcp_established, tcp_close=tcp_close,
                                     file_locks=file_locks, print_stats=print_stats)
        options = cr.RestoreOptions.build(import_=import_, ignore_rootfs=ignore_rootfs, ignore_volumes=ignore_volumes,
                                          import_previous=import_previous, from_=from_, name=name, **flags)
        if from_ is not None and name is not None:
            return cr.branch(self, from_, name, publish, flags)
        if publish is not None:
            raise InvalidArgumentError("--publish can only be used with --import or --from and --name",
                                       container=self.name, operation="restore")
        with self._locked():
            if from_ is not None:
                entry = history.find(self._runtime.opts, self.id, self.name, from_)
                if self.state.status is S.STOPPED:
                    self._cleanup()  # a rollback right after a stop need not wait for conmon's exit command
                options = dataclasses_replace(options, entry=entry.path, rollback=True)
            stats = cr.restore(self, options)
        self.statistics = stats.to_dict() if print_stats else None
        return self.statistics

    # Files in and out (kernelext.core.filecopy): any state; the lock is held while the root is acquired.
    def put_archive(self, path: str, tar_stream: BinaryIO, chown: bool = True, overwrite: bool = False) -> None:
        """Extract a tar stream (gzip, bzip2, xz or zstd detected) into the directory ``path``.

        ``chown``: owned by the container's user; otherwise the archive's owners.
        ``overwrite``: a directory may replace a non-directory and the reverse.
        """
        from kernelext.core import filecopy as cp

        cp.put_archive(self, path, tar_stream, chown=chown, overwrite=overwrite)

    def list_dir(self, path: str) -> list[FileInfo]:
        """The entries of a directory inside the container (confined like every copy)."""
        from kernelext.core import filecopy as cp

        return cp.list_dir(self, path)

    def write_file(self, path: str, data: bytes) -> None:
        """Write ``data`` to the file ``path`` in the container (its directory must exist)."""
        from kernelext.core import filecopy as cp

        cp.write_file(self, path, data)

    def make_dir(self, path: str) -> None:
        """Create the directory ``path`` in the container (its parent must exist)."""
        from kernelext.core import filecopy as cp

        cp.make_dir(self, path)

    def remove_path(self, path: str) -> None:
        """Remove ``path`` (a file, a link or a whole folder) inside the container, confined like every copy."""
        from kernelext.core import filecopy as cp

        cp.remove_path(self, path)

    def get_archive(self, path: str) -> tuple[BinaryIO, FileInfo]:
        """A tar stream of ``path`` and its :class:`~kernelext.core.filecopy.FileInfo`; close the stream."""
        from kernelext.core import filecopy as cp

        return cp.get_archive(self, path)

    def stat(self, path: str) -> FileInfo:
        """The :class:`~kernelext.core.filecopy.FileInfo` of ``path`` (symlinks resolved inside the container)."""
        from kernelext.core import filecopy as cp

        return cp.stat_path(self, path)

    def diff(self) -> list[Change]:
        """What the container changed against its image: :class:`~kernelext.storage.layerdiff.Change` (A/C/D)."""
        from kernelext.core import filecopy as cp

        return cp.diff(self)

    # Artifacts: files kept beside the container, included in checkpoint exports.
    def _artifact_path(self, name: str) -> Path:
        if not name or "/" in name or name in (".", ".."):
            raise InvalidArgumentError(f"invalid artifact name {name!r}", container=self.name, operation="artifact")
        return self.bundle / "artifacts" / name

    def add_artifact(self, name: str, data: bytes) -> None:
        with self._locked():
            path = self._artifact_path(name)
            path.parent.mkdir(exist_ok=True, mode=0o740)
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_bytes(data)
            os.chmod(tmp, 0o740)
            os.replace(tmp, path)

    def get_artifact(self, name: str) -> bytes:
        with self._locked():
            try:
                return self._artifact_path(name).read_bytes()
            except FileNotFoundError:
                raise InvalidArgumentError(f"artifact {name!r} not found", container=self.name,
                                           operation="artifact") from None

    def remove_artifact(self, name: str) -> None:
        with self._locked():
            self._artifact_path(name).unlink(missing_ok=True)

    def remove(self, *, force: bool = False, volumes: bool = False) -> None:
        """Remove the container; ``force`` kills it first if it runs; ``volumes`` (and ``--rm``): its
        anonymous volumes too (named volumes stay).

        Each step may be repeated: a remove that failed or died part-way is finished by the next one.
        """
        with self._locked():
            st = self.state
            if st.status in (S.RUNNING, S.PAUSED, S.STOPPING, S.CREATED) or self._exec_sessions():
                if not force:
                    raise ContainerStateError(
                        f"cannot remove container {self.id} as it is {st.status.value} - running or paused "
                        "containers cannot be removed without force: container state improper",
                        container=self.name, operation="remove")
                self._force_kill()
            st.status = S.REMOVING
            self._begin(Intent.REMOVE)
            self._finish_remove()
        self._runtime.opts.lock_file(self.id).unlink(missing_ok=True)
        if volumes or self.config.auto_remove:
            self._runtime.volumes.remove_anonymous(self.config)

    def _finish_remove(self) -> None:
        """Take everything of a ``removing`` container away, whatever an earlier attempt already did."""
        opts = self._runtime.opts
        # Moved aside first: conmon's exit command sees the bundle gone and quits at once
        # instead of starting the whole toolkit only to find nothing left to clean up.
        container_dir = self.bundle.parent
        removing = container_dir.with_name(f".removing-{self.id}")
        if container_dir.exists():
            os.rename(container_dir, removing)
        faults.point("remove:moved")
        self._teardown_network()
        kill_conmon(self.id, opts.conmon_pid_file(self.id), self.state.conmon_pid, self.state.conmon_start_time)
        if self._runtime.oci.has_container(self.id):  # a stat, not a `runc delete` per removal
            self._runtime.oci.delete_container(self.id)
        self._remove_netns()
        self.layer.unmount()
        self._runtime.trash.put(self.layer.path)
        self._runtime.trash.put(removing)
        faults.point("remove:trashed")
        shutil.rmtree(opts.persist_dir(self.id), ignore_errors=True)
        opts.exit_file(self.id).unlink(missing_ok=True)
        self._runtime.db.remove_container(self.id)
        self._event("remove")

    def _force_kill(self) -> None:
        for _, pid, _ in self._exec_sessions():
            try:
                os.kill(pid, signal_mod.SIGKILL)
            except ProcessLookupError:
                pass
        if self.state.status in (S.RUNNING, S.PAUSED, S.STOPPING, S.CREATED) and not self._exit_observed():
            self._signal(signal_mod.SIGKILL)
            if self.state.status is S.PAUSED:
                try:
                    self._runtime.oci.unpause_container(self.id, name=self.name)
                except RuntimeFailure:
                    pass  # runc thaws a frozen container itself when it delivers SIGKILL
            with self._unlocked():
                self._wait_for_exit_file(KILL_TIMEOUT_S)
        self._check_exit()

    # ---------------------------------------------------------- exec and logs
    def exec_run(self, command: list[str], *, tty: bool = False, stdin: BinaryIO | int | None = None,
                 env: Iterable[str] = (), workdir: str | None = None, user: str | None = None,
                 on_output: Callable[[str, bytes], None] | None = None, preserve_fds: int = 0) -> ExecResult:
        """Run ``command`` inside the running container and wait for it.

        Output goes to ``on_output(stream, data)`` as it comes, or is collected
        and returned when no callback is given. ``preserve_fds=N`` hands this process's descriptors
        3..3+N-1 to the command (podman's ``--preserve-fds``).
        """
        from kernelext.core import execution

        return execution.run(self, command, tty=tty, stdin=stdin, env=list(env), workdir=workdir, user=user,
                             on_output=on_output, preserve_fds=preserve_fds)

    def terminal(self, *, detach_keys: str | None = None) -> Any:
        """A ``kernelext.widgets.Terminal`` attached to this running TTY container (docs/architecture.md §14)."""
        from kernelext.widgets import Terminal

        return Terminal(self, detach_keys=detach_keys)

    def exec_detached(self, command: list[str], *, env: Iterable[str] = (), workdir: str | None = None,
                      user: str | None = None, preserve_fds: int = 0) -> str:
        """``exec -d``: start ``command`` in the running container and return its session ID at once."""
        from kernelext.core import execution

        return execution.detach(self, command, env=list(env), workdir=workdir, user=user, preserve_fds=preserve_fds)

    def logs(self, *, since: float | None = None, until: float | None = None, tail: int | None = None,
             follow: bool = False, cursor: LogCursor | None = None,
             stop: Callable[[], bool] | None = None) -> Iterator[LogLine]:
        """The container's output from its k8s-file log; ``follow`` continues until it exits (or ``stop()``).

        A :class:`~kernelext.core.logs.LogCursor` lets a follower resume where it stopped and skip
        the unparsed middle of a burst it could not show anyway.
        """
        from kernelext.core.logs import follow_log, read_log

        if self.config.monitor.log_driver is not LogDriver.K8S_FILE:
            raise InvalidArgumentError(NO_LOGS.format(driver=self.config.monitor.log_driver.value),
                                       container=self.name, operation="logs")
        if not follow:
            return iter(read_log(self.log_path, since=since, until=until, tail=tail))

        def done() -> bool:
            if stop is not None and stop():
                return True  # the reader stopped following: what is written so far is drained, then the end
            # Read into a state of its own, never into this object's: another thread may be in the middle of
            # an operation on it (a panel restores while its output still follows the last run).
            row = self._runtime.db.get_state(self.id)
            if row is None:
                raise ContainerRemovedError(f"container {self.name} has been removed", container=self.name)
            st = ContainerRuntimeState.from_json(row)
            return (st.status not in (S.RUNNING, S.PAUSED, S.STOPPING, S.CREATED)
                    or self._runtime.opts.exit_file(self.id).exists() or not is_alive(st.conmon_pid,
                                                                                      st.conmon_start_time))
        return follow_log(self.log_path, done, since=since, until=until, tail=tail, cursor=cursor)

    def inspect(self) -> dict[str, Any]:
        """podman's inspect document (State.Status, State.ExitCode, Config.Cmd ...)."""
        from kernelext.core.inspection import inspect_document

        with self._locked():
            return inspect_document(self)

    def stats(self) -> dict[str, Any]:
        from kernelext.core import stats

        with self._locked():
            return stats.container_stats(self)

    def top(self) -> list[dict[str, Any]]:
        from kernelext.core import stats

        with self._locked():
            return stats.container_top(self)

    @property
    def uptime(self) -> float:
        if self.state.status in (S.RUNNING, S.PAUSED) and self.state.started_at:
            return max(0.0, time.time() - self.state.started_at)
        return 0.0

    @property
    def started_process(self) -> int | None:
        """The container's init PID while it runs."""
        return self.state.pid if process_start_time(self.state.pid) else None
