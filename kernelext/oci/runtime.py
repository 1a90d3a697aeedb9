"""The OCI runtime seam (libpod's ``OCIRuntime``; docs/architecture.md §3).

The lifecycle core asks an :class:`OCIRuntime` to create, start, signal, stop, pause, delete, exec,
checkpoint and restore containers, and never builds a runc or CRIU command line itself.
:class:`ConmonRuncRuntime` is the real one: runc under conmon, with CRIU through ``runc checkpoint`` and
``conmon --restore``; each store has its own runc state directory. A fake (``tests/fakeruntime.py``) lets
the state machine be tested without root, runc or conmon.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from kernelext import faults
from kernelext.errors import RuntimeFailure
from kernelext.oci import conmon
from kernelext.oci.monitoring import check_preserved_fds
from kernelext.oci.runc import Runc
from kernelext.rootless import Namespace

if TYPE_CHECKING:
    import psutil

log = logging.getLogger("kernelext")

#: How long to wait for conmon to report the exit after SIGKILL (libpod's killContainerTimeout).
KILL_TIMEOUT_S = 5.0
#: ``criu check`` answers at once; a hung one must not hang a checkpoint.
FEATURE_CHECK_TIMEOUT_S = 30.0
#: runc's own exit status when it could not start an exec'd process.
EXEC_FAILED = 255


@dataclass(frozen=True)
class ExecOptions:
    """A process to run in a running container (``runc exec``)."""

    #: ``(uid, gid, additional gids)`` already resolved in the container's root; None: the container's.
    user: tuple[int, int, tuple[int, ...]] | None = None
    workdir: str | None = None
    env: tuple[str, ...] = ()
    tty: bool = False
    #: ``--preserve-fds N``: this process's descriptors 3..3+N-1 go to the process at the same numbers.
    preserve_fds: int = 0


@dataclass(frozen=True)
class CheckpointOptions:
    """One CRIU dump of a running container (``runc checkpoint``)."""

    criu: str
    image_dir: Path
    work_dir: Path
    leave_running: bool = False
    tcp_established: bool = False
    file_locks: bool = False
    pre_dump: bool = False
    #: The previous dump's image directory, relative to ``image_dir`` (an incremental dump).
    parent_path: str | None = None


@dataclass(frozen=True)
class RestoreOptions:
    """A restore under a new monitor from CRIU's images in ``image_dir``."""

    criu: str
    image_dir: Path
    tcp_established: bool = False
    tcp_close: bool = False
    file_locks: bool = False


class OCIRuntime(Protocol):
    """What the lifecycle core needs of an OCI runtime and its monitor (libpod's ``OCIRuntime``).

    ``name`` is what ``inspect`` shows as ``OCIRuntime``. Methods that act on a container take its ID and,
    for messages, its name. Deleting or killing a container the runtime does not have is not an error.
    """

    name: str

    def create_container(self, options: conmon.ConmonOptions) -> conmon.ConmonStarted:
        """Create the container under a new monitor; returns once the runtime has it (``created``)."""
        ...

    def restore_container(self, options: conmon.ConmonOptions,
                          restore: RestoreOptions) -> conmon.ConmonStarted:
        """Restore the container from a checkpoint under a new monitor (it runs on return)."""
        ...

    def start_container(self, ctr_id: str, *, name: str | None = None) -> None: ...

    def kill_container(self, ctr_id: str, sig: signal.Signals, *, all_processes: bool = False,
                       name: str | None = None) -> None: ...

    def stop_container(self, ctr_id: str, *, name: str, stop_signal: signal.Signals, timeout: int,
                       exited: Callable[[], bool], wait_exit: Callable[[float], bool]) -> None:
        """The stop signal, up to ``timeout`` seconds for the exit, then SIGKILL (podman's warning).

        ``exited`` says whether the exit was seen; ``wait_exit(seconds)`` waits for it (False: not yet).
        """
        ...

    def pause_container(self, ctr_id: str, *, name: str | None = None) -> None: ...

    def update_container(self, ctr_id: str, resources: dict[str, object], *, name: str | None = None) -> None:
        """New cgroup limits (the spec's ``linux.resources``) for a running or paused container."""
        ...

    def unpause_container(self, ctr_id: str, *, name: str | None = None) -> None: ...

    def delete_container(self, ctr_id: str) -> None:
        """Forget the container (its processes must be gone); one the runtime does not have is fine."""
        ...

    def has_container(self, ctr_id: str) -> bool:
        """Whether the runtime keeps state for the container (cheap: no process)."""
        ...

    def exec_detached(self, options: conmon.ConmonOptions) -> conmon.ConmonStarted:
        """``exec -d``: the process spec ``options.exec_spec`` under a monitor of its own, which reaps it and
        writes its exit file; returns once it runs."""
        ...

    def container_state(self, ctr_id: str) -> dict[str, object] | None:
        """The runtime's view (``status``: ``created``, ``running``, ``paused``, ``stopped``; ``pid``)."""
        ...

    def exec_container(self, ctr_id: str, command: list[str], options: ExecOptions,
                       stdin: IO[bytes] | int | None, *, console: int | None = None) -> subprocess.Popen[bytes]:
        """Start ``command`` in the running container; stdout and stderr are pipes, or all three ``console``
        (a pseudo-terminal's slave) for a TTY session."""
        ...

    def exec_failure(self, code: int, stderr: str, *, name: str) -> int:
        """The exit code podman reports for an exec that ended with ``code`` (126/127: could not run)."""
        ...

    def checkpoint_container(self, ctr_id: str, options: CheckpointOptions, *, name: str) -> None:
        """Dump the container with CRIU; raises :class:`RuntimeFailure` with the runtime's message."""
        ...

    def supports_memory_tracking(self, criu: str) -> bool:
        """Whether pre-dumps can work (the kernel's soft-dirty bits)."""
        ...

    def busy_processes(self, ctr_id: str) -> list[psutil.Process]:
        """Runtime commands at work on the container (a dead caller's create, start, checkpoint...)."""
        ...


def stop_with_escalation(runtime: OCIRuntime, ctr_id: str, *, name: str, stop_signal: signal.Signals,
                         timeout: int, exited: Callable[[], bool], wait_exit: Callable[[float], bool]) -> None:
    """libpod's stop: the stop signal and ``timeout`` seconds, then SIGKILL and up to KILL_TIMEOUT_S."""

    def send(sig: signal.Signals) -> None:
        try:
            runtime.kill_container(ctr_id, sig, name=name)
        except RuntimeFailure:
            if not exited():
                raise  # a failure other than "already gone"

    if timeout > 0:
        send(stop_signal)
        if not wait_exit(timeout):
            log.warning("StopSignal %s failed to stop container %s in %d seconds, resorting to SIGKILL",
                        stop_signal.name, name, timeout)
    if not exited():
        send(signal.SIGKILL)
        faults.point("stop:killed")
        wait_exit(KILL_TIMEOUT_S)


class ConmonRuncRuntime:
    """runc under conmon, CRIU through runc: every command line of the OCI runtime is here."""

    name = "runc"

    def __init__(self, runc: str, conmon_binary: str, state_dir: Path, namespace: Namespace | None = None) -> None:
        self.runc = Runc(runc, state_dir, namespace)
        self.conmon = conmon_binary
        self.namespace = namespace or Namespace()

    def _launch(self, options: conmon.ConmonOptions) -> conmon.ConmonStarted:
        """conmon running this runc (create, restore or a detached exec, as ``options`` say)."""
        return conmon.launch(self.conmon, self.runc.binary, self.runc.root, options, self.namespace)

    # -------------------------------------------------------------- lifecycle
    def create_container(self, options: conmon.ConmonOptions) -> conmon.ConmonStarted:
        return self._launch(options)

    def restore_container(self, options: conmon.ConmonOptions,
                          restore: RestoreOptions) -> conmon.ConmonStarted:
        options.restore_from = restore.image_dir
        options.preserve_fds = 0  # runc restore has no --preserve-fds: CRIU brings back the process's own
        # runc restore's own options, passed through conmon's --runtime-opt.
        options.runtime_opts = [opt for opt, on in (("--tcp-established", restore.tcp_established),
                                                    ("--tcp-close", restore.tcp_close),
                                                    ("--file-locks", restore.file_locks)) if on]
        options.runtime_args = [*options.runtime_args, f"--criu={restore.criu}"]
        return self._launch(options)

    def start_container(self, ctr_id: str, *, name: str | None = None) -> None:
        self.runc.start(ctr_id, name=name)

    def kill_container(self, ctr_id: str, sig: signal.Signals, *, all_processes: bool = False,
                       name: str | None = None) -> None:
        # By number: runc knows no names for the real-time signals (SIGRTMIN, SIGRTMAX)
        self.runc.kill(ctr_id, str(sig.value), all_processes=all_processes, name=name)

    def stop_container(self, ctr_id: str, *, name: str, stop_signal: signal.Signals, timeout: int,
                       exited: Callable[[], bool], wait_exit: Callable[[float], bool]) -> None:
        stop_with_escalation(self, ctr_id, name=name, stop_signal=stop_signal, timeout=timeout, exited=exited,
                             wait_exit=wait_exit)

    def pause_container(self, ctr_id: str, *, name: str | None = None) -> None:
        self.runc.pause(ctr_id, name=name)

    def update_container(self, ctr_id: str, resources: dict[str, object], *, name: str | None = None) -> None:
        self.runc.update(ctr_id, resources, name=name)

    def unpause_container(self, ctr_id: str, *, name: str | None = None) -> None:
        self.runc.resume(ctr_id, name=name)

    def delete_container(self, ctr_id: str) -> None:
        self.runc.delete(ctr_id)

    def has_container(self, ctr_id: str) -> bool:
        # runc keeps one directory per container under its --root: a stat, not a `runc state` process.
        return (self.runc.root / ctr_id).exists()

    def container_state(self, ctr_id: str) -> dict[str, object] | None:
        return self.runc.state(ctr_id)

    # -------------------------------------------------------------------- exec
    def exec_container(self, ctr_id: str, command: list[str], options: ExecOptions,
                       stdin: IO[bytes] | int | None, *, console: int | None = None) -> subprocess.Popen[bytes]:
        """``runc exec`` in the foreground; with ``console`` (a host pseudo-terminal's slave) as its stdio, runc
        finds a terminal to size and copy the TTY session through (docs/architecture.md §14)."""
        args = ["exec"]
        if options.user is not None:
            uid, gid, additional = options.user
            args += ["--user", f"{uid}:{gid}"]
            for extra in additional:
                args += ["--additional-gids", str(extra)]
        if options.workdir:
            args += ["--cwd", options.workdir]
        for item in options.env:
            args += ["--env", item]
        if options.tty:
            args.append("--tty")
        preserved = check_preserved_fds(options.preserve_fds)
        if options.preserve_fds:
            args += ["--preserve-fds", str(options.preserve_fds)]
        if console is not None:  # runc leads a new session whose controlling terminal is the console
            return subprocess.Popen(["setsid", "--ctty", *self.runc.argv(*args, ctr_id, *command)], stdin=console,
                                    stdout=console, stderr=console, pass_fds=preserved)
        return subprocess.Popen(self.runc.argv(*args, ctr_id, *command),
                                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=preserved)

    def exec_detached(self, options: conmon.ConmonOptions) -> conmon.ConmonStarted:
        return self._launch(options)

    def exec_failure(self, code: int, stderr: str, *, name: str) -> int:
        if code != EXEC_FAILED:
            return code
        from kernelext.errors import EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND
        from kernelext.oci.runc import runtime_error

        failure = runtime_error(stderr, container=name, operation="exec")
        return failure.exit_code if failure.exit_code in (EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE) else code

    # ------------------------------------------------------------------ CRIU
    def checkpoint_container(self, ctr_id: str, options: CheckpointOptions, *, name: str) -> None:
        args = ["--criu", options.criu, "checkpoint", "--image-path", str(options.image_dir),
                "--work-path", str(options.work_dir)]
        args += [flag for flag, on in (("--leave-running", options.leave_running),
                                       ("--tcp-established", options.tcp_established),
                                       ("--file-locks", options.file_locks), ("--pre-dump", options.pre_dump)) if on]
        if options.parent_path is not None:
            args += ["--parent-path", options.parent_path]
        proc = subprocess.run(self.runc.argv(*args, ctr_id), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise RuntimeFailure(proc.stderr or proc.stdout, container=name, operation="checkpoint")

    def supports_memory_tracking(self, criu: str) -> bool:
        return memory_tracking_supported(criu)

    # -------------------------------------------------------------- recovery
    def busy_processes(self, ctr_id: str) -> list[psutil.Process]:
        import psutil  # not at import: conmon's exit command runs without site-packages (core/runtime.py)

        name = os.path.basename(self.runc.binary)
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            argv = proc.info["cmdline"] or []
            if argv and os.path.basename(argv[0]) == name and ctr_id in argv:
                found.append(proc)
        return found


@functools.lru_cache(maxsize=8)
def memory_tracking_supported(criu: str) -> bool:
    """``criu check --feature mem_dirty_track``: pre-dumps need the kernel's soft-dirty bits."""
    try:
        proc = subprocess.run([criu, "check", "--feature", "mem_dirty_track"], capture_output=True,
                              timeout=FEATURE_CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0
