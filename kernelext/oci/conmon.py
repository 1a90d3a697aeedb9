"""Launching conmon, the per-container monitor (docs/architecture.md §3).

conmon runs ``runc create`` (or ``runc restore``), reports the container PID
on the ``_OCI_SYNCPIPE`` socketpair, daemonizes, owns the container's stdio
(log file + attach socket), writes the exit file and runs the exit command.
The process we start exits as soon as conmon has daemonized; we reap it so
it never lingers as a zombie.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kernelext import faults
from kernelext.errors import RuntimeFailure
from kernelext.oci import cgroups
from kernelext.oci.monitor import is_alive, process_start_time
from kernelext.oci.monitoring import check_preserved_fds
from kernelext.oci.runc import runtime_error
from kernelext.rootless import Namespace

log = logging.getLogger("kernelext")

CONMON_API_VERSION = "1"
#: How long runc create / restore may take before we give up on conmon.
SYNC_TIMEOUT_S = 120.0

#: conmon's log format (podman's default log driver), also what ``info`` reports.
LOG_DRIVER = "k8s-file"


@dataclass
class ConmonOptions:
    ctr_id: str
    name: str
    bundle: Path
    pid_file: Path
    conmon_pid_file: Path
    exit_dir: Path
    persist_dir: Path
    log_path: Path
    tty: bool = False
    stdin: bool = False
    exit_command: list[str] = field(default_factory=list)
    restore_from: Path | None = None
    runtime_opts: list[str] = field(default_factory=list)
    #: Global runc options (``--runtime-arg``), e.g. ``--criu=PATH`` for a restore.
    runtime_args: list[str] = field(default_factory=list)
    log_level: str = "warning"
    #: conmon fsyncs the log before it reports the exit (10 MB: 45 ms here); a ``--rm`` container's
    #: log is deleted with it right after, so it skips that (``--no-sync-log``).
    sync_log: bool = True
    #: An exec session (``exec -d``): conmon runs ``runc exec --detach`` with this process spec, named
    #: ``session_id`` (its exit file's name), instead of creating the container.
    exec_spec: Path | None = None
    session_id: str = ""
    #: Where the attach socket's directory goes (default: beside the exit directory; it must stay short).
    socket_dir: Path | None = None
    #: podman's ``--log-driver`` (k8s-file, none, passthrough) and conmon's options for ``--log-opt`` and
    #: ``--timeout`` (kernelext.oci.monitoring).
    log_driver: str = LOG_DRIVER
    monitor_args: list[str] = field(default_factory=list)
    #: ``--preserve-fds N``: this process's descriptors 3..3+N-1 go to conmon at the same numbers, and runc
    #: (``create``/``exec --preserve-fds``) hands them to the container's process.
    preserve_fds: int = 0
    #: The systemd scope (and its slice) conmon is moved into once it runs (kernelext.oci.cgroups).
    scope: str | None = None
    scope_slice: str = ""

    def argv(self, conmon: str, runtime: str, runtime_root: Path) -> list[str]:
        socket_dir = self.socket_dir or self.exit_dir.parent / "socket"
        args = [conmon, "--api-version", CONMON_API_VERSION, "-c", self.ctr_id, "-u", self.session_id or self.ctr_id,
                "-r", runtime, "--runtime-arg", f"--root={runtime_root}",
                *(a for arg in self.runtime_args for a in ("--runtime-arg", arg)),
                "-b", str(self.bundle), "-p", str(self.pid_file), "-n", self.name,
                "--exit-dir", str(self.exit_dir), "--persist-dir", str(self.persist_dir),
                "--full-attach", "--socket-dir-path", str(socket_dir),
                "-l", f"{self.log_driver}:{self.log_path}", "--log-level", self.log_level, "--syslog=false",
                "--conmon-pidfile", str(self.conmon_pid_file), *self.monitor_args]
        if not self.sync_log:
            args.append("--no-sync-log")
        if self.tty:
            args.append("-t")
        elif self.stdin:
            args.append("-i")
        if self.exec_spec is not None:
            args += ["--exec", "--exec-process-spec", str(self.exec_spec)]
        if self.restore_from is not None:
            args += ["--restore", str(self.restore_from)]
            for opt in self.runtime_opts:
                args += ["--runtime-opt", opt]
        if self.preserve_fds:
            args += ["--runtime-opt", "--preserve-fds", "--runtime-opt", str(self.preserve_fds)]
        if self.exit_command:
            args += ["--exit-command", self.exit_command[0]]
            for arg in self.exit_command[1:]:
                args += ["--exit-command-arg", arg]
        return args


@dataclass(frozen=True)
class ConmonStarted:
    pid: int
    conmon_pid: int
    conmon_start_time: int


def launch(conmon: str, runtime: str, runtime_root: Path, opts: ConmonOptions,
           namespace: Namespace) -> ConmonStarted:
    """Start conmon (in the store's namespace) and return once the container exists in the runtime
    (``runtime``, with its state in ``runtime_root``), or, for an exec session, once its process runs."""
    operation = "exec" if opts.exec_spec else "restore" if opts.restore_from else "create"
    preserved = check_preserved_fds(opts.preserve_fds)  # open, so the sync socket cannot take their numbers
    opts.persist_dir.mkdir(parents=True, exist_ok=True)  # conmon skips the exit file without it
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # Not a fault the harness aimed at this command: conmon's exit command must run whole.
    env = {k: v for k, v in os.environ.items() if not k.startswith("_OCI_") and k != faults.ENV_FAULT}
    env["_OCI_SYNCPIPE"] = str(child.fileno())
    try:
        # cwd: conmon also writes its "oom" file into its working directory, which is the bundle for podman.
        # passthrough: conmon (and so the container) writes to this process's own stdout and stderr.
        passthrough = opts.log_driver == "passthrough"
        proc = subprocess.Popen(namespace.command(opts.argv(conmon, runtime, runtime_root)), env=env, pass_fds=(*preserved, child.fileno()),
                                cwd=opts.bundle, stdin=subprocess.DEVNULL,
                                stdout=None if passthrough else subprocess.DEVNULL,
                                stderr=None if passthrough else subprocess.PIPE)
    except OSError as exc:
        parent.close()
        child.close()
        raise RuntimeFailure(f"cannot run conmon: {exc}", container=opts.name, operation=operation) from exc
    child.close()
    try:
        message = _read_sync(parent, proc)
    finally:
        parent.close()
        stderr = _drain(proc)
    if message is None:
        raise RuntimeFailure(f"conmon failed: {stderr.strip() or 'no report on the sync pipe'}",
                             container=opts.name, operation=operation)
    pid = int(str(message.get("data", -1)))
    if pid < 0:
        raise runtime_error(str(message.get("message", stderr)), container=opts.name, operation=operation)
    conmon_pid = int(opts.conmon_pid_file.read_text().strip())
    if opts.scope:
        # As podman: a conmon outside its scope still monitors the container, so only say so.
        failure = cgroups.move_to_scope(conmon_pid, opts.scope, opts.scope_slice, rootless=namespace.rootless)
        if failure:
            log.warning("Failed to add conmon to systemd sandbox cgroup: %s", failure)
    return ConmonStarted(pid=pid, conmon_pid=conmon_pid, conmon_start_time=process_start_time(conmon_pid) or 0)


def _read_sync(sock: socket.socket, proc: subprocess.Popen[bytes]) -> dict[str, object] | None:
    readable, _, _ = select.select([sock], [], [], SYNC_TIMEOUT_S)
    if not readable:
        proc.kill()
        return None
    data = sock.recv(65536)
    if not data:
        return None
    message: dict[str, object] = json.loads(data.decode(errors="replace"))
    return message


def _drain(proc: subprocess.Popen[bytes]) -> str:
    """Reap the launcher process and return what it printed on stderr.

    The daemonized conmon may keep the pipe open, so read only what is there.
    """
    proc.wait()
    if proc.stderr is None:
        return ""
    os.set_blocking(proc.stderr.fileno(), False)
    try:
        data = proc.stderr.read() or b""
    except BlockingIOError:
        data = b""
    proc.stderr.close()
    return data.decode(errors="replace")


def find_conmon(ctr_id: str, pid_file: Path) -> tuple[int, int] | None:
    """The live conmon of ``ctr_id`` named by its PID file (PID, start time); None if there is none.

    Its command line must name the container: a PID file can outlive its process and the PID be reused.
    """
    try:
        pid = int(pid_file.read_text().strip())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    start_time = process_start_time(pid)
    if start_time is None or os.path.basename(argv[0]) != b"conmon" or ctr_id.encode() not in argv:
        return None
    return pid, start_time


def kill_conmon(ctr_id: str, pid_file: Path, pid: int = 0, start_time: int = 0) -> None:
    """SIGKILL the container's conmon if it lives (the one recorded, else the one its PID file names):
    killed, it writes no exit file and runs no exit command for a container being undone or removed."""
    found = (pid, start_time) if pid and is_alive(pid, start_time) else find_conmon(ctr_id, pid_file)
    if found is None:
        return
    try:
        os.kill(found[0], signal.SIGKILL)
    except ProcessLookupError:
        pass
