"""A fake OCI runtime for fast tests of the lifecycle state machine: no runc, no conmon, no container.

It keeps each container's runtime state in memory and plays conmon's part where the core looks: a
monitor process whose PID the core records (a daemonized ``sleep``, so it is reaped by init as conmon
is), and the exit file written when the "container" ends. ``ignored`` lists signals its containers'
PID 1 ignores (as a shell's PID 1 ignores SIGTERM), so the stop escalation can be watched.
It complements the integration tests on real runc and conmon; it never replaces them.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import psutil

from kernelext.errors import RuntimeFailure
from kernelext.oci.conmon import ConmonOptions, ConmonStarted
from kernelext.oci.monitor import process_start_time
from kernelext.oci.runtime import CheckpointOptions, ExecOptions, OCIRuntime, RestoreOptions, stop_with_escalation

#: Longest a monitor stand-in lives if a test forgets it.
MONITOR_LIFETIME_S = 600


@dataclass
class FakeContainer:
    status: str  # runc's words: created, running, paused, stopped
    monitor: int
    exit_file: Path
    pid_file: Path
    resources: dict[str, object] = field(default_factory=dict)


@dataclass
class FakeRuntime:
    name: str = "fake"
    ignored: set[signal.Signals] = field(default_factory=set)
    containers: dict[str, FakeContainer] = field(default_factory=dict)
    #: Every call, as (method, container ID, detail): what the core asked of the runtime, in order.
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    # ----------------------------------------------------------- lifecycle
    def create_container(self, options: ConmonOptions) -> ConmonStarted:
        self.calls.append(("create", options.ctr_id, ""))
        if options.ctr_id in self.containers:
            raise RuntimeFailure(f"container {options.ctr_id} already exists", operation="create")
        daemonized = subprocess.run(["sh", "-c", f"sleep {MONITOR_LIFETIME_S} >/dev/null 2>&1 & echo $!"],
                                    capture_output=True, text=True, check=True)
        monitor = int(daemonized.stdout)
        options.persist_dir.mkdir(parents=True, exist_ok=True)
        options.conmon_pid_file.write_text(f"{monitor}\n")
        options.exit_dir.mkdir(parents=True, exist_ok=True)
        self.containers[options.ctr_id] = FakeContainer("created", monitor, options.exit_dir / options.ctr_id,
                                                        options.conmon_pid_file)
        return ConmonStarted(pid=monitor, conmon_pid=monitor, conmon_start_time=process_start_time(monitor) or 0)

    def restore_container(self, options: ConmonOptions, restore: RestoreOptions) -> ConmonStarted:
        raise RuntimeFailure("the fake runtime cannot restore", container=options.name, operation="restore")

    def _get(self, ctr_id: str, operation: str) -> FakeContainer:
        found = self.containers.get(ctr_id)
        if found is None:
            raise RuntimeFailure(f"runc {operation}: container does not exist", container=ctr_id,
                                 operation=operation)
        return found

    def start_container(self, ctr_id: str, *, name: str | None = None) -> None:
        self.calls.append(("start", ctr_id, ""))
        ctr = self._get(ctr_id, "start")
        if ctr.status != "created":
            raise RuntimeFailure(f"runc start: cannot start a container that has {ctr.status}", operation="start")
        ctr.status = "running"

    def exit(self, ctr_id: str, code: int) -> None:
        """The container's process ends with ``code``: conmon writes the exit file and goes."""
        ctr = self.containers[ctr_id]
        ctr.status = "stopped"
        tmp = ctr.exit_file.with_name(f".{ctr_id}.tmp")
        tmp.write_text(str(code))
        tmp.replace(ctr.exit_file)
        try:
            os.kill(ctr.monitor, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def kill_container(self, ctr_id: str, sig: signal.Signals, *, all_processes: bool = False,
                       name: str | None = None) -> None:
        self.calls.append(("kill", ctr_id, sig.name))
        ctr = self._get(ctr_id, "kill")
        if ctr.status not in ("created", "running", "paused"):
            raise RuntimeFailure("runc kill: container not running", container=name, operation="kill")
        if sig is signal.SIGKILL or sig not in self.ignored:
            self.exit(ctr_id, 128 + sig.value)

    def stop_container(self, ctr_id: str, *, name: str, stop_signal: signal.Signals, timeout: int,
                       exited: Callable[[], bool], wait_exit: Callable[[float], bool]) -> None:
        self.calls.append(("stop", ctr_id, f"{stop_signal.name} {timeout}"))
        stop_with_escalation(self, ctr_id, name=name, stop_signal=stop_signal, timeout=timeout, exited=exited,
                             wait_exit=wait_exit)

    def _freeze(self, ctr_id: str, operation: str, was: str, becomes: str, name: str | None) -> None:
        self.calls.append((operation, ctr_id, ""))
        ctr = self._get(ctr_id, operation)
        if ctr.status != was:
            raise RuntimeFailure(f"runc {operation}: container not {was}", container=name, operation=operation)
        ctr.status = becomes

    def pause_container(self, ctr_id: str, *, name: str | None = None) -> None:
        self._freeze(ctr_id, "pause", "running", "paused", name)

    def update_container(self, ctr_id: str, resources: dict[str, object], *, name: str | None = None) -> None:
        self._get(ctr_id, "update").resources = dict(resources)

    def unpause_container(self, ctr_id: str, *, name: str | None = None) -> None:
        self._freeze(ctr_id, "unpause", "paused", "running", name)

    def delete_container(self, ctr_id: str) -> None:
        self.calls.append(("delete", ctr_id, ""))
        ctr = self.containers.pop(ctr_id, None)
        if ctr is not None and ctr.status != "stopped":
            try:
                os.kill(ctr.monitor, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def has_container(self, ctr_id: str) -> bool:
        return ctr_id in self.containers

    def container_state(self, ctr_id: str) -> dict[str, object] | None:
        ctr = self.containers.get(ctr_id)
        return None if ctr is None else {"id": ctr_id, "status": ctr.status, "pid": ctr.monitor}

    # ------------------------------------------------------------ exec, CRIU
    def exec_container(self, ctr_id: str, command: list[str], options: ExecOptions,
                       stdin: IO[bytes] | int | None, *, console: int | None = None) -> subprocess.Popen[bytes]:
        self.calls.append(("exec", ctr_id, " ".join(command)))
        if self._get(ctr_id, "exec").status != "running":
            raise RuntimeFailure("runc exec: container not running", operation="exec")
        # Nothing runs: the "process" only says what it would have run.
        return subprocess.Popen(["printf", "%s\\n", " ".join(command)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def exec_detached(self, options: ConmonOptions) -> ConmonStarted:
        raise NotImplementedError("the fake runtime runs no processes")

    def exec_failure(self, code: int, stderr: str, *, name: str) -> int:
        return code

    def checkpoint_container(self, ctr_id: str, options: CheckpointOptions, *, name: str) -> None:
        raise RuntimeFailure("the fake runtime cannot checkpoint", container=name, operation="checkpoint")

    def supports_memory_tracking(self, criu: str) -> bool:
        return False

    def busy_processes(self, ctr_id: str) -> list[psutil.Process]:
        return []

    def close(self) -> None:
        """Kill every monitor stand-in left."""
        for ctr_id in list(self.containers):
            self.delete_container(ctr_id)


if TYPE_CHECKING:  # mypy proves the fake has every method of the seam, with the same signatures
    _conforms: OCIRuntime = FakeRuntime()
