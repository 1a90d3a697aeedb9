"""A real podman REST service for the remote engine's tests: Debian's podman, its own store and socket.

``podman system service`` runs on ``T/podman.sock`` with ``--root T/root``, a short runroot of its own and a
private containers.conf (runc, cgroupfs, file events; ``default_ulimits`` within this machine's hard limits, which
podman's defaults exceed: docs/architecture.md §7); the built-in busybox image is loaded into it from
kernelext's own store (``image save`` then ``podman load``). Stopping it removes every container, unmounts
and deletes the store.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kernelext.core.runtime import Runtime

from conftest import processes

PODMAN = shutil.which("podman") or "/usr/bin/podman"
#: The CRIU kernelext provisions (podman runs ``criu`` from PATH; Debian's 3.17 does not work here).
CRIU_DIR = "/opt/kernelext/criu"
START_TIMEOUT_S = 20.0
#: conmon runs the container with this hard RLIMIT_NPROC here (docs/architecture.md §7): podman must ask no more.
CONMON_NPROC = 32768


def _conf(directory: Path) -> Path:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard_nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = CONMON_NPROC if hard_nproc == resource.RLIM_INFINITY else min(hard_nproc, CONMON_NPROC)
    limits = [f"nofile={nofile}:{nofile}", f"nproc={nproc}:{nproc}"]
    path = directory / "containers.conf"
    path.write_text("[containers]\n"
                    f"default_ulimits = [{', '.join(repr(x).replace(chr(39), chr(34)) for x in limits)}]\n"
                    "[engine]\n"
                    'runtime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    return path


@dataclass
class PodmanService:
    directory: Path
    process: subprocess.Popen[bytes]
    #: podman refuses a runroot longer than 50 characters: a short directory of its own, not under ``directory``
    #: (a pytest base directory with a longer fixture name went past it).
    runroot: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kx-ps-")))

    @property
    def socket(self) -> Path:
        return self.directory / "podman.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        path = f"{CRIU_DIR}:{os.environ.get('PATH', '/usr/bin:/bin')}" if os.path.isdir(CRIU_DIR) else \
            os.environ.get("PATH", "/usr/bin:/bin")
        return {**os.environ, "CONTAINERS_CONF": str(self.directory / "containers.conf"), "PATH": path}

    @property
    def local_argv(self) -> list[str]:
        """podman on the service's store in its own process (not through the socket)."""
        return [PODMAN, "--root", str(self.directory / "root"), "--runroot", str(self.runroot), "--tmpdir",
                str(self.directory / "tmp")]

    def podman(self, *argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """podman on the service's store (not through the socket): for set-up and clean-up."""
        return subprocess.run([*self.local_argv, *argv], capture_output=True, text=True, env=self.env, check=check,
                              timeout=timeout)

    def remote(self, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """``podman --url`` against the service: the reference the remote engine is compared with."""
        return subprocess.run([PODMAN, "--url", self.url, *argv], capture_output=True, text=True, env=self.env,
                              check=check, timeout=120)

    def stop(self) -> None:
        self.podman("rm", "-fa", "-t", "0", check=False)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.podman("system", "reset", "-f", check=False)  # unmounts and deletes the store's layers
        # podman's exec sessions keep their conmon for an --exit-delay of 300 s after the command ended
        for pid in processes(lambda argv: bool(argv) and argv[0].endswith(b"conmon") and
                             any(str(self.directory).encode() in arg for arg in argv)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.directory, ignore_errors=True)
        shutil.rmtree(self.runroot, ignore_errors=True)


def start(directory: Path, busybox_from: Path) -> PodmanService:
    """The service, up and answering, with busybox loaded (saved from a kernelext store at ``busybox_from``)."""
    directory.mkdir(parents=True, exist_ok=True)
    _conf(directory)
    service = PodmanService(directory, None)  # type: ignore[arg-type]  # the process is set just below
    argv = [*service.local_argv, "system", "service", "--time=0", service.url]
    _launch(service, argv, service.env, busybox_from)
    return service


def _launch(service: PodmanService | RootlessService, argv: list[str], env: dict[str, str] | None,
            busybox_from: Path) -> None:
    """Start ``service``'s process (``argv``), wait for its socket, load busybox from a kernelext store."""
    directory = service.directory
    service.process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                       stderr=open(directory / "service.log", "wb"), start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not service.socket.exists():
        if service.process.poll() is not None or time.monotonic() > deadline:
            log = (directory / "service.log").read_text()  # before stop() removes the directory
            service.stop()
            raise RuntimeError(f"podman system service did not start (exit {service.process.returncode}): {log}")
        time.sleep(0.05)
    archive = directory / "busybox.tar"
    with Runtime(busybox_from / "root", busybox_from / "run") as rt:
        rt.save("busybox", archive)
    subprocess.run([PODMAN, "--url", service.url, "load", "-i", str(archive)], env=env, check=True,
                   capture_output=True, timeout=120)


def serve(base: Path) -> Iterator[PodmanService]:
    """A fixture's body: the service for the duration, then nothing left of it."""
    service = start(base / "podman", base / "kernelext")
    try:
        yield service
    finally:
        service.stop()


def kernelext(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own (no fork server), as a user runs it."""
    return subprocess.run([sys.executable, "-m", "kernelext", *argv], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "KERNELEXT_FORKSERVER": "0", **(env or {})})


# ---------------------------------------------------------------------- SSH
SSHD = "/usr/sbin/sshd"
#: sshd's privilege separation directory (Debian's package makes it when its service starts; here none does).
PRIVSEP_DIR = Path("/run/sshd")


@dataclass
class SshServer:
    """Debian's sshd on a free loopback port: its own host key, root by the test's key only, 127.0.0.1 only."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def identity(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def client_config(self) -> Path:
        """An ssh_config for clients: this server's host key known, nothing else of the user's read."""
        return self.directory / "ssh_config"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sshd(directory: Path) -> SshServer:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    host_key, identity = directory / "host_ed25519", directory / "id_ed25519"
    for key in (host_key, identity):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (directory / "authorized_keys").write_text(Path(f"{identity}.pub").read_text())
    port = _free_port()
    (directory / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {directory / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "AllowStreamLocalForwarding local\nAllowTcpForwarding local\nX11Forwarding no\n")
    (directory / "known_hosts").write_text(f"[127.0.0.1]:{port} {Path(f'{host_key}.pub').read_text()}")
    (directory / "ssh_config").write_text(f"UserKnownHostsFile {directory / 'known_hosts'}\n")
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(directory / "sshd_config")], stdout=subprocess.DEVNULL,
                               stderr=open(directory / "sshd.log", "wb"), start_new_session=True)
    server = SshServer(directory, port, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        import socket

        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("sshd did not start")
        time.sleep(0.05)


# ----------------------------------------------------------------- rootless
@dataclass
class RootlessService:
    """``podman system service`` run by a normal user: its store, runroot, runtime directory and socket in a
    directory of its own (never the user's home store)."""

    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def socket(self) -> Path:
        return self.directory / "xdg" / "podman.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def stop(self) -> None:
        subprocess.run([PODMAN, "--url", self.url, "rm", "-fa", "-t", "0"], capture_output=True, timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # rootless podman keeps the user's namespace open with a pause process of its own (catatonit)
        pause = self.directory / "xdg" / "libpod" / "tmp" / "pause.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pause.read_text()), signal.SIGKILL)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_rootless(user: str, busybox_from: Path) -> RootlessService:
    """A rootless service as ``user`` (who has subordinate IDs), up and answering, with busybox loaded. CRIU is
    on its PATH: what it lacks is root."""
    import pwd

    account = pwd.getpwnam(user)
    directory = Path(tempfile.mkdtemp(prefix="kx-rl-"))  # short: podman limits the runroot's length
    for sub in ("root", "run", "xdg"):
        (directory / sub).mkdir(mode=0o700)
        os.chown(directory / sub, account.pw_uid, account.pw_gid)
    directory.chmod(0o755)
    _conf(directory).chmod(0o644)
    env = [f"HOME={account.pw_dir}", f"USER={user}", f"PATH={CRIU_DIR}:/usr/bin:/bin",
           f"XDG_RUNTIME_DIR={directory / 'xdg'}", f"CONTAINERS_CONF={directory / 'containers.conf'}"]
    service = RootlessService(directory, None)  # type: ignore[arg-type]  # the process is set just below
    argv = ["runuser", "-u", user, "--", "env", "-i", *env, PODMAN, "--root", str(directory / "root"), "--runroot",
            str(directory / "run"), "system", "service", "--time=0", service.url]
    _launch(service, argv, None, busybox_from)
    return service
