"""The port forwarder of a container: one small C process (``portfwd.c``), not a Python one.

Why a process of our own and not socat: Debian bookworm's socat (1.7.4) cannot
accept on an inherited socket (``ACCEPT-FD`` came in 1.8), and forks a process
per connection; ``portfwd`` serves every published port of a container from
one epoll loop with ``splice(2)``. It is started under ``nsenter`` in the
container's network namespace (and user namespace, when the container has its
own: rootless), inherits the host sockets that :mod:`kernelext.core.ports`
bound, detaches (so it outlives the kernel or CLI that started it), and exits by
itself when the container's init process exits. kernelext kills it at cleanup.

The binary is compiled from the packaged source on first use and cached per
source version (``$KERNELEXT_CACHE``, else ``$XDG_CACHE_HOME/kernelext``).
"""

from __future__ import annotations

import functools
import os
import select
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kernelext.errors import NetworkError
from kernelext.oci.monitor import is_alive, process_start_time

SOURCE = Path(__file__).with_name("portfwd.c")
CACHE_ENV = "KERNELEXT_CACHE"
CFLAGS = ("-O2", "-Wall")
#: A forwarder starts in milliseconds; this only bounds a hung nsenter.
START_TIMEOUT_S = 10.0
#: Killed with SIGKILL, it is gone within this; the port is closed when it is.
STOP_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Route:
    """A host socket (bound, listening for TCP) and where its traffic goes inside the container."""

    sock: socket.socket
    container_port: int
    protocol: str  # "tcp" or "udp"


@dataclass(frozen=True)
class Forwarder:
    """A running forwarder: its PID and start time (a PID alone may be reused)."""

    pid: int
    start_time: int


def _cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kernelext"


@functools.cache
def binary() -> Path:
    """The compiled forwarder for this source version (built once, atomically)."""
    import hashlib  # here: the CLI's start-up path needs neither this nor tempfile
    import tempfile

    source = SOURCE.read_bytes()
    target = _cache_dir() / f"kernelext-portfwd-{hashlib.sha256(source).hexdigest()[:16]}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".portfwd-")
    os.close(fd)
    try:
        proc = subprocess.run([os.environ.get("CC", "cc"), *CFLAGS, "-o", tmp, str(SOURCE)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0:
            raise NetworkError(f"building the port forwarder failed: {proc.stderr.strip()}", operation="publish")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except FileNotFoundError:
        raise NetworkError("publishing ports needs a C compiler to build the forwarder once: install gcc",
                           operation="publish") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _enter(pid: int) -> list[str]:
    """nsenter into the container's network namespace, and its user namespace when it differs from ours."""
    argv = ["nsenter", f"--target={pid}", "--net"]
    try:
        if os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user"):
            argv += ["--user", "--preserve-credentials"]
    except OSError:
        pass  # the process is gone: nsenter reports it
    return argv


def start(ctr_id: str, pid: int, routes: list[Route]) -> Forwarder | None:
    """Bring the loopback of ``pid``'s network namespace up and forward ``routes`` into it.

    None when there is nothing to forward (only the loopback was set up).
    """
    fds = [route.sock.fileno() for route in routes]
    argv = [*_enter(pid), "--", str(binary()), ctr_id, str(pid),
            *(f"{route.sock.fileno()}:{route.container_port}/{route.protocol}" for route in routes)]
    try:
        proc = subprocess.run(argv, pass_fds=fds, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise NetworkError("the port forwarder did not start in time", operation="publish") from None
    word, _, rest = proc.stdout.strip().partition(" ")
    if proc.returncode != 0 or word != "ready":
        reason = rest if word == "error" else proc.stderr.strip() or f"exit status {proc.returncode}"
        raise NetworkError(f"setting up the container's network: {reason}", operation="publish")
    forwarder_pid = int(rest)
    if forwarder_pid == 0:
        return None
    start_time = process_start_time(forwarder_pid)
    if start_time is None:
        raise NetworkError("the port forwarder exited at once: the container is gone", operation="publish")
    return Forwarder(forwarder_pid, start_time)


def stop(forwarder: Forwarder) -> None:
    """Kill the forwarder and wait until it is gone: its ports are closed on return."""
    if not is_alive(forwarder.pid, forwarder.start_time):
        return
    try:
        pidfd = os.pidfd_open(forwarder.pid)
    except ProcessLookupError:
        return
    try:
        if not is_alive(forwarder.pid, forwarder.start_time):
            return  # the PID was reused between the two checks: the pidfd is not ours
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        select.select([pidfd], [], [], STOP_TIMEOUT_S)  # readable once it has exited
    finally:
        os.close(pidfd)
