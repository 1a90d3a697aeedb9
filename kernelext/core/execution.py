"""Exec sessions: a command run inside a running container (through the OCI runtime).

Sessions are recorded in the store while they run, so ``cleanup`` and
``unmount`` (from any process) refuse while one is active; a session whose
process died is dropped the next time anyone looks.
"""

from __future__ import annotations

import json
import os
import selectors
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from kernelext.core.state import ContainerStatus
from kernelext.errors import ContainerStateError
from kernelext.oci.monitor import process_start_time
from kernelext.oci.runtime import ExecOptions
from kernelext.storage.users import resolve_user

if TYPE_CHECKING:
    import subprocess

    from kernelext.core.container import Container, ExecResult

_READ_SIZE = 65536
#: Detached sessions' files (process spec, conmon's PID and exit files) under the container's bundle.
EXEC_DIR = "exec"


def _require_running(ctr: Container, command: list[str]) -> None:
    if not command:
        raise ContainerStateError("exec needs a command", container=ctr.name, operation="exec")
    if ctr.state.status is not ContainerStatus.RUNNING:
        raise ContainerStateError("can only create exec sessions on running containers: container state improper",
                                  container=ctr.name, operation="exec")


def detach(ctr: Container, command: list[str], *, env: list[str], workdir: str | None, user: str | None,
           preserve_fds: int = 0) -> str:
    """``exec -d``: start ``command`` under a conmon of its own (which reaps it, as podman's does) and return
    the session's ID at once; the session counts as active (cleanup waits for it) while the process lives."""
    from kernelext.oci import conmon

    session_id = os.urandom(32).hex()
    with ctr._locked():
        _require_running(ctr, command)
        process = json.loads((ctr.bundle / "config.json").read_text())["process"]
        process.update(args=list(command), terminal=False)
        process["env"] = [*process.get("env", []), *env]
        if workdir:
            process["cwd"] = workdir
        if user:
            resolved = resolve_user(ctr._runtime.namespace.view(ctr.layer.merged), user)
            process["user"] = {"uid": resolved.uid, "gid": resolved.gid,
                               "additionalGids": list(resolved.additional_gids)}
        session_dir = ctr.bundle / EXEC_DIR / session_id  # goes with the bundle when the container is removed
        session_dir.mkdir(parents=True)
        (session_dir / "process.json").write_text(json.dumps(process))
        rt = ctr._runtime
        opts = conmon.ConmonOptions(
            ctr_id=ctr.id, name=ctr.name, bundle=ctr.bundle, pid_file=session_dir / "pid",
            conmon_pid_file=session_dir / "conmon.pid", exit_dir=session_dir, persist_dir=session_dir,
            log_path=session_dir / "log", exec_spec=session_dir / "process.json", session_id=session_id,
            socket_dir=rt.opts.exits_dir.parent / "socket", preserve_fds=preserve_fds)
        started = rt.oci.exec_detached(opts)
        rt.db.add_exec_session(session_id, ctr.id, started.pid, process_start_time(started.pid) or 0)
        ctr._event("exec", execID=session_id)
    return session_id


def run(ctr: Container, command: list[str], *, tty: bool, stdin: BinaryIO | int | None, env: list[str],
        workdir: str | None, user: str | None, on_output: Callable[[str, bytes], None] | None,
        preserve_fds: int = 0) -> ExecResult:
    from kernelext.core.container import ExecResult

    proc, session_id = begin(ctr, command, tty=tty, stdin=stdin, env=env, workdir=workdir, user=user,
                             preserve_fds=preserve_fds)
    collected: list[bytes] = []
    errors: list[bytes] = []

    def deliver(stream: str, data: bytes) -> None:
        if stream == "stderr":
            errors.append(data)
        if on_output is not None:
            on_output(stream, data)
        else:
            collected.append(data)

    try:
        _pump(proc, deliver)
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        ctr._runtime.db.remove_exec_session(session_id)
    code = end(ctr, session_id, code, b"".join(errors))
    return ExecResult(code, None if on_output is not None else b"".join(collected))


def begin(ctr: Container, command: list[str], *, tty: bool, stdin: BinaryIO | int | None, env: list[str],
          workdir: str | None, user: str | None, console: int | None = None,
          preserve_fds: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    """Start an attached exec session and record it (its process and session ID); :func:`end` reports it."""
    session_id = os.urandom(32).hex()
    with ctr._locked():
        _require_running(ctr, command)
        resolved = resolve_user(ctr._runtime.namespace.view(ctr.layer.merged), user) if user else None
        options = ExecOptions(user=None if resolved is None else
                              (resolved.uid, resolved.gid, tuple(resolved.additional_gids)),
                              workdir=workdir or None, env=tuple(env), tty=tty, preserve_fds=preserve_fds)
        proc = ctr._runtime.oci.exec_container(ctr.id, command, options, stdin, console=console)
        ctr._runtime.db.add_exec_session(session_id, ctr.id, proc.pid, process_start_time(proc.pid) or 0)
        ctr._event("exec", execID=session_id)
    return proc, session_id


def end(ctr: Container, session_id: str, code: int, stderr: bytes) -> int:
    """The session's exit code as podman reports it (126/127: could not run), and its ``exec_died`` event;
    the caller has dropped the session's record."""
    code = ctr._runtime.oci.exec_failure(code, stderr.decode(errors="replace"), name=ctr.name)
    ctr._event("exec_died", execID=session_id, exitCode=code)
    return code


def _pump(proc: subprocess.Popen[bytes], deliver: Callable[[str, bytes], None]) -> None:
    assert proc.stdout is not None and proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
        sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
        while sel.get_map():
            for key, _ in sel.select():
                data = os.read(key.fd, _READ_SIZE)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                deliver(key.data, data)
