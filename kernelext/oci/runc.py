"""runc, driven through its command line (the OCI runtime of docs/architecture.md §1).

Every store has its own runc state directory (``--root``), so stores never
see each other's containers.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from kernelext.errors import EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, CommandNotFoundError, RuntimeFailure
from kernelext.rootless import Namespace

_NOT_FOUND = re.compile(r"executable file not found|no such file or directory", re.IGNORECASE)
_NOT_EXECUTABLE = re.compile(r"permission denied", re.IGNORECASE)


def runtime_error(message: str, *, container: str | None, operation: str) -> RuntimeFailure:
    """Map runc's error text to podman's exit codes (127 not found, 126 not executable) and words (the
    runtime's name first, logrus' escaped quotes plain)."""
    text = message.strip().splitlines()[-1] if message.strip() else "OCI runtime error"
    text = re.sub(r'^time="[^"]*" level=\w+ msg="(.*)"$', r"\1", text).replace('\\"', '"')  # logrus quotes
    if "exec" in text and _NOT_FOUND.search(text):
        return CommandNotFoundError(f"runc: {text}: OCI runtime attempted to invoke a command that was not found",
                                    exit_code=EXIT_NOT_FOUND, container=container, operation=operation)
    if "exec" in text and _NOT_EXECUTABLE.search(text):
        return CommandNotFoundError(f"runc: {text}: OCI permission denied", exit_code=EXIT_NOT_EXECUTABLE,
                                    container=container, operation=operation)
    return RuntimeFailure(f"runc {operation}: {text}", container=container, operation=operation)


class Runc:
    """Thin wrapper of the runc binary for one state directory, run in the store's namespace."""

    def __init__(self, binary: str, root: Path, namespace: Namespace | None = None) -> None:
        self.binary = binary
        self.root = root
        self.namespace = namespace or Namespace()

    def argv(self, *args: str) -> list[str]:
        return self.namespace.command([self.binary, "--root", str(self.root), *args])

    def _run(self, operation: str, ctr_id: str, *args: str, name: str | None = None) -> str:
        proc = subprocess.run(self.argv(*args), stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0:
            raise runtime_error(proc.stderr or proc.stdout, container=name or ctr_id, operation=operation)
        return proc.stdout

    def start(self, ctr_id: str, name: str | None = None) -> None:
        self._run("start", ctr_id, "start", ctr_id, name=name)

    def kill(self, ctr_id: str, signal: str, *, all_processes: bool = False, name: str | None = None) -> None:
        args = ["kill", *(["--all"] if all_processes else []), ctr_id, signal]
        self._run("kill", ctr_id, *args, name=name)

    def pause(self, ctr_id: str, name: str | None = None) -> None:
        self._run("pause", ctr_id, "pause", ctr_id, name=name)

    def resume(self, ctr_id: str, name: str | None = None) -> None:
        self._run("unpause", ctr_id, "resume", ctr_id, name=name)

    def update(self, ctr_id: str, resources: dict[str, object], name: str | None = None) -> None:
        """``runc update -r -``: new cgroup limits for a container runc knows."""
        proc = subprocess.run(self.argv("update", "-r", "-", ctr_id), input=json.dumps(resources),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise runtime_error(proc.stderr or proc.stdout, container=name or ctr_id, operation="update")

    def delete(self, ctr_id: str, *, force: bool = True) -> None:
        """Delete the runtime container; a container runc does not know is fine."""
        proc = subprocess.run(self.argv("delete", *(["--force"] if force else []), ctr_id),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0 and "does not exist" not in proc.stderr and "not exist" not in proc.stderr:
            raise runtime_error(proc.stderr, container=ctr_id, operation="delete")

    def state(self, ctr_id: str) -> dict[str, object] | None:
        proc = subprocess.run(self.argv("state", ctr_id), stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0:
            return None
        state: dict[str, object] = json.loads(proc.stdout)
        return state
