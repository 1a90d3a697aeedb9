"""The CLI's fork server: a command runs in a child of it exactly as it would in a process of its own.

Each test has a server of its own (``KERNELEXT_FORKSERVER_DIR``), stopped at the end.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import kernelext
from kernelext.cli import caller, credentials, launch
from kernelext.cli.forkserver import parse_request

from conftest import Store, forkservers, wait_until


@pytest.fixture
def server_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "forkserver"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv(launch.ENV_DIR, str(directory))
    try:
        yield directory
    finally:
        for pid in forkservers(directory):
            os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not forkservers(directory))


def _server(directory: Path, store: Store) -> int:
    """The PID of the server in ``directory``, started by a first command if need be."""
    if not forkservers(directory):
        assert store.cli("ps").returncode == 0  # runs in-process and starts the server for the next ones
    assert wait_until(lambda: len(forkservers(directory)) == 1 and list(directory.glob("*.sock")))
    (pid,) = forkservers(directory)
    return pid


def _children(pid: int) -> set[int]:
    return {child.pid for child in psutil.Process(pid).children()}


def _child_of(server: int) -> int:
    assert wait_until(lambda: len(_children(server)) == 1)
    (child,) = _children(server)
    return child


def _waiter(store: Store, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "kernelext", *store.args, "wait", name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_command_runs_in_the_servers_child_with_its_own_stdio_directory_and_environment(
        store: Store, server_dir: Path, tmp_path: Path) -> None:
    server = _server(server_dir, store)
    assert store.cli("run", "-d", "--name", "w", "busybox", "sleep", "100").returncode == 0
    waiter = _waiter(store, "w")
    assert _child_of(server) != waiter.pid  # the work happens in the server's child, not in the command
    assert store.cli("stop", "-t", "0", "w").returncode == 0
    out, _ = waiter.communicate(timeout=30)
    assert (waiter.returncode, out) == (0, "137\n")

    proc = store.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")
    assert store.cli("run", "-i", "--rm", "busybox", "cat", input=b"through stdin\n").stdout == "through stdin\n"
    work = tmp_path / "work"
    work.mkdir()
    (work / "note.txt").write_text("relative to the command's directory\n")
    copy_in = subprocess.run([sys.executable, "-m", "kernelext", *store.args, "cp", "note.txt", "w:/tmp/"],
                             cwd=work, capture_output=True, text=True, check=False)
    assert copy_in.returncode == 0, copy_in.stderr
    env = dict(os.environ, KERNELEXT_ROOT=str(store.runtime.opts.root),
               KERNELEXT_RUNROOT=str(store.runtime.opts.runroot))
    copy_out = subprocess.run([sys.executable, "-m", "kernelext", "cp", "w:/tmp/note.txt", "-"], env=env,
                              capture_output=True, check=False)
    assert copy_out.returncode == 0, copy_out.stderr
    with tarfile.open(fileobj=io.BytesIO(copy_out.stdout)) as tar:
        assert tar.extractfile("note.txt").read() == b"relative to the command's directory\n"  # type: ignore[union-attr]
    assert forkservers(server_dir) == {server}  # one server served them all
    in_process = subprocess.run([sys.executable, "-m", "kernelext", *store.args, "inspect", "w"],
                                env=dict(os.environ, KERNELEXT_FORKSERVER="0"), capture_output=True, text=True,
                                check=False)
    assert store.cli("inspect", "w").stdout == in_process.stdout
    assert store.cli("rm", "w").returncode == 0


def test_signals_reach_the_child_and_its_end_reaches_the_shell(store: Store, server_dir: Path) -> None:
    server = _server(server_dir, store)
    assert store.cli("run", "-d", "--name", "w", "busybox", "sleep", "100").returncode == 0
    waiter = _waiter(store, "w")
    child = _child_of(server)
    waiter.send_signal(signal.SIGTERM)
    waiter.wait(timeout=10)
    assert waiter.returncode == -signal.SIGTERM  # the child died of it, and so did the command
    assert wait_until(lambda: child not in _children(server))

    waiter = _waiter(store, "w")
    child = _child_of(server)
    waiter.kill()  # a command that cannot pass anything on: its child must not carry on alone
    waiter.wait(timeout=10)
    assert wait_until(lambda: child not in _children(server))
    assert store.cli("rm", "-f", "w").returncode == 0


def test_a_server_whose_modules_changed_steps_aside(store: Store, server_dir: Path, tmp_path: Path) -> None:
    """An upgrade or an edit of the package is never run from the old modules."""
    package = tmp_path / "pkg"
    shutil.copytree(Path(kernelext.__file__).parent, package / "kernelext",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(package))

    def ps() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kernelext", *store.args, "ps", "-a"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, check=False)

    expected = ps()
    assert expected.returncode == 0, expected.stderr
    assert wait_until(lambda: len(forkservers(server_dir)) == 1)
    (first,) = forkservers(server_dir)
    assert ps().stdout == expected.stdout
    edited = package / "kernelext" / "cli" / "commands.py"
    os.utime(edited, ns=(edited.stat().st_atime_ns, edited.stat().st_mtime_ns + 1_000_000_000))
    assert ps().stdout == expected.stdout  # refused by the old server: run in-process
    assert wait_until(lambda: first not in forkservers(server_dir))
    assert ps().stdout == expected.stdout
    assert wait_until(lambda: len(forkservers(server_dir)) == 1)
    assert forkservers(server_dir) != {first}


@pytest.mark.parametrize("setting", ["shared directory", "switched off"])
def test_no_server_where_it_would_be_unsafe_or_is_unwanted(store: Store, server_dir: Path, setting: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    if setting == "shared directory":
        server_dir.chmod(0o755)  # others could reach it: never hand a terminal to whatever listens there
    else:
        monkeypatch.setenv(launch.ENV_SWITCH, "0")
    for _ in range(2):
        proc = store.cli("ps")
        assert proc.returncode == 0 and proc.stdout.startswith("CONTAINER ID")
    assert list(server_dir.iterdir()) == [] and forkservers(server_dir) == set()


def test_a_request_carries_arguments_and_environment_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["run", "", "two words", "ünïcode", "raw\udcff", "a=b"]
    monkeypatch.setenv("KX_TEST_VALUE", "x=y=z")
    request = parse_request(launch.encode_request(argv))
    assert request.argv == argv
    assert request.env[b"KX_TEST_VALUE"] == b"x=y=z" and request.env == dict(os.environb)
    assert request.umask == os.umask(request.umask)


def test_a_command_from_other_namespaces_runs_in_its_own(store: Store, server_dir: Path) -> None:
    """A child would run in the server's namespaces: e.g. a container sharing "the host's" network must get the
    command's, here an empty one."""
    host_links = Path("/proc/net/dev").read_text().splitlines()[2:]
    if len(host_links) < 2:
        pytest.skip("the host has only a loopback interface: no difference to see")
    server = _server(server_dir, store)
    proc = subprocess.run(["unshare", "--net", sys.executable, "-m", "kernelext", *store.args, "run", "--rm",
                           "--network", "host", "busybox", "cat", "/proc/net/dev"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert [line.split(":")[0].strip() for line in proc.stdout.splitlines()[2:]] == ["lo"]
    assert server in forkservers(server_dir)  # not its server (one in that namespace is), and not stopped


def _read_until(fd: int, marker: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the terminal's other side closed
                break
            seen += chunk
    return seen


def _set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def test_an_interactive_terminal_run_through_the_server(store: Store, server_dir: Path) -> None:
    """``run -it`` on a real terminal: the size, a resize (SIGWINCH, passed on by the command), input, exit code."""
    server = _server(server_dir, store)
    pid, master = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", "kernelext", *store.args, "run", "-it", "--rm", "busybox",
                                  "sh", "-c", "stty size; read line; stty size; exit 5"])
    try:
        _set_size(master, 30, 100)
        assert _child_of(server)
        assert b"30 100" in _read_until(master, b"30 100")
        _set_size(master, 40, 120)  # the terminal signals the command, which passes it on
        time.sleep(0.5)
        os.write(master, b"\n")
        assert b"40 120" in _read_until(master, b"40 120")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 5
    finally:
        os.close(master)


# ------------------------------------------------------------------ a command never runs with more privilege

#: A root caller without any capability (none to regain by exec either: the bounding set is empty).
NO_CAPABILITIES = ("setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--reuid=0")
NO_NEW_PRIVS = ("setpriv", "--no-new-privs")
#: Connects to the server at argv[1] (from a chroot or a cgroup, if given) and prints the first reply's kind.
_PROBE = """
import os, sys
from kernelext.cli import launch
address, jail, cgroup = sys.argv[1:4]
if cgroup:
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
if jail:
    os.chroot(jail)
    os.chdir("/")
import _socket
sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
sock.connect(address)
first = launch.receive_reply(sock)
print(first[0].decode() if first else "closed")
"""


def _first_reply(address: str, *prefix: str, jail: Path | None = None, cgroup: Path | None = None) -> str:
    """What the server first says to a process started with ``prefix`` (e.g. setpriv) that connects to it."""
    proc = subprocess.run([*prefix, sys.executable, "-c", _PROBE, address, str(jail or ""), str(cgroup or "")],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _address(server_dir: Path) -> str:
    (sock,) = server_dir.glob("*.sock")
    return str(sock)


def _cli_as(prefix: tuple[str, ...], store: Store, *argv: str, served: bool = True) -> subprocess.CompletedProcess[str]:
    """The command run by ``prefix`` (from this directory: ``-m kernelext`` imports the package under test)."""
    env = dict(os.environ, **({} if served else {launch.ENV_SWITCH: "0"}))
    return subprocess.run([*prefix, sys.executable, "-m", "kernelext", *store.args, *argv], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_caller_without_capabilities_cannot_borrow_the_servers(store: Store, server_dir: Path,
                                                                 tmp_path: Path) -> None:
    """Root with every capability dropped cannot read another user's 0600 file: not through the server either."""
    _server(server_dir, store)
    unconfined = _address(server_dir)
    assert store.cli("run", "-d", "--name", "c", "busybox", "sleep", "100").returncode == 0
    secret = tmp_path / "secret"
    secret.write_text("not for a caller without CAP_DAC_OVERRIDE\n")
    os.chown(secret, 65534, 65534)
    secret.chmod(0o600)
    alone = _cli_as(NO_CAPABILITIES, store, "cp", str(secret), "c:/x", served=False)
    assert alone.returncode != 0
    for _ in range(2):  # the first starts a server of its confinement, the second is its child
        proc = _cli_as(NO_CAPABILITIES, store, "cp", str(secret), "c:/x")
        assert (proc.returncode, proc.stdout, proc.stderr) == (alone.returncode, alone.stdout, alone.stderr)
        assert wait_until(lambda: len(forkservers(server_dir)) == 2)
    assert store.cli("exec", "c", "test", "-e", "/x").returncode == 1  # the container never got it
    assert _first_reply(unconfined, *NO_CAPABILITIES) == "R"  # and the unconfined server refuses it outright
    assert _first_reply(unconfined) == "G"
    assert store.cli("rm", "-f", "c").returncode == 0


def test_a_caller_with_no_new_privs_keeps_it(store: Store, server_dir: Path) -> None:
    """``no_new_privs`` reaches the command's container, as when the command runs in its own process."""
    _server(server_dir, store)
    unconfined = _address(server_dir)
    argv = ("run", "--rm", "busybox", "grep", "NoNewPrivs", "/proc/self/status")
    alone = _cli_as(NO_NEW_PRIVS, store, *argv, served=False)
    assert (alone.returncode, alone.stdout.split()) == (0, ["NoNewPrivs:", "1"]), alone.stderr
    for _ in range(2):
        proc = _cli_as(NO_NEW_PRIVS, store, *argv)
        assert (proc.returncode, proc.stdout) == (0, alone.stdout), proc.stderr
        assert wait_until(lambda: len(forkservers(server_dir)) == 2)
    assert _first_reply(unconfined, *NO_NEW_PRIVS) == "R"


def test_which_differences_refuse() -> None:
    own = credentials.read()
    assert credentials.read(os.getpid()) == own  # the server's view of a caller is the caller's own
    assert credentials.refusals(own, dict(own)) == []
    for name in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
                 "Seccomp_filters", "ns/user", "ns/mnt", "ns/pid", "ns/net", "root", "cgroup", "attr/current",
                 "oom_score_adj", "scheduling"):
        assert name in own
        assert credentials.refusals(own, {**own, name: own[name] + b"0"}) == [name]
        assert credentials.refusals(own, {**own, name: credentials.ERROR_PREFIX + b"13"}) == [name]  # unreadable
        assert credentials.refusals(own, {k: v for k, v in own.items() if k != name}) == [name]  # not shown
    for kind in os.listdir("/proc/self/ns"):
        assert f"ns/{kind}" in own
    assert credentials.refusals(own, {**own, "ns/extra": b"1:2"}) == ["ns/extra"]
    # Resource limits are adopted, unless the child would have to raise a hard limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert caller.limits_to_raise({resource.RLIMIT_NOFILE: (soft, hard)}) == []
    assert caller.limits_to_raise({resource.RLIMIT_NOFILE: (1, 1)}) == []
    assert caller.limits_to_raise({resource.RLIMIT_NOFILE: (soft, hard + 1)}) == ["RLIMIT_NOFILE"]
    assert caller.limits_to_raise({resource.RLIMIT_NOFILE: (soft, resource.RLIM_INFINITY)}) == ["RLIMIT_NOFILE"]


def test_a_caller_in_a_chroot_or_another_cgroup_is_refused(store: Store, server_dir: Path, tmp_path: Path) -> None:
    _server(server_dir, store)
    address = _address(server_dir)
    jail = tmp_path / "jail"
    jail.mkdir()
    os.link(address, jail / "server.sock")  # the same socket, reachable from inside
    assert _first_reply("/server.sock", jail=jail) == "R"
    assert _first_reply(address) == "G"
    (here,) = [line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
               if line.split(":")[1] == "pids"] or [None]
    if here is None or not os.access(f"/sys/fs/cgroup/pids{here}", os.W_OK):
        pytest.skip("no writable cgroup v1 pids hierarchy to move a process within")
    cgroup = Path(f"/sys/fs/cgroup/pids{here}") / f"kernelext-test-{os.getpid()}"
    cgroup.mkdir()
    try:
        assert _first_reply(address, cgroup=cgroup) == "R"
    finally:
        assert wait_until(lambda: (cgroup / "cgroup.procs").read_text() == "")
        cgroup.rmdir()


def _request(sock: socket.socket, argv: list[str], proof: int) -> None:
    payload = launch.encode_request(argv)
    directory = os.open(".", os.O_PATH | os.O_DIRECTORY)
    try:
        fds = [0, 1, 2, directory, proof]
        sock.sendmsg([len(payload).to_bytes(launch.INT_BYTES, "big")],
                     [(socket.SOL_SOCKET, socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))])
        sock.sendall(payload)
    finally:
        os.close(directory)


def _proof(sock: socket.socket, go: tuple[bytes, int] | None) -> int:
    assert go is not None and go[0] == launch.GO
    return os.open(f"/proc/{launch.peer_credentials(sock)[0]}/fd/{go[1]}", os.O_RDONLY)


def test_a_request_must_come_after_the_check_from_the_checked_process(store: Store, server_dir: Path) -> None:
    """A request sent before GO could be a program's that exec'd a setuid one since; one sent by another process
    (the socket inherited) is not the checked process's. Neither runs."""
    server = _server(server_dir, store)
    address = _address(server_dir)

    def created(name: str) -> bool:
        return name in store.cli("ps", "-a", "--format", "{{.Names}}").stdout.split()

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:  # before GO
        os.kill(server, signal.SIGSTOP)  # the request is surely there when the server looks (connect needs no accept)
        try:
            sock.connect(address)
            with open(os.devnull) as null:
                _request(sock, [*store.args, "create", "--name", "early", "busybox", "true"], null.fileno())
        finally:
            os.kill(server, signal.SIGCONT)
        assert launch.receive_reply(sock) == (launch.REFUSED, 0)

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:  # after GO, by a child of the checked process
        sock.connect(address)
        proof = _proof(sock, launch.receive_reply(sock))
        child = os.fork()
        if child == 0:
            try:
                _request(sock, [*store.args, "create", "--name", "other", "busybox", "true"], proof)
            finally:
                os._exit(0)
        os.waitpid(child, 0)
        os.close(proof)
        try:
            assert launch.receive_reply(sock) is None  # closed: nothing started
        except ConnectionResetError:  # closed with the request unread
            pass

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:  # the same by the checked process: it runs
        sock.connect(address)
        proof = _proof(sock, launch.receive_reply(sock))
        _request(sock, [*store.args, "create", "--name", "checked", "busybox", "true"], proof)
        os.close(proof)
        started = launch.receive_reply(sock)
        assert started is not None and started[0] == launch.STARTED
        assert launch.receive_reply(sock) == (launch.EXITED, 0)
        launch._finish(sock, 0)  # DONE, as the real client says it (the server may have closed already)
    assert (created("early"), created("other"), created("checked")) == (False, False, True)
    assert store.cli("rm", "checked").returncode == 0


def test_a_report_that_overtakes_started_is_the_result_not_a_reason_to_run_again() -> None:
    """The child reports its exit itself: for a quick command that report can reach the client before the
    server's STARTED. The command ran; the client must take its status, never run it a second time."""
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proof = os.open(os.devnull, os.O_RDONLY)
    try:
        server.sendall(launch.reply(launch.GO, proof) + launch.reply(launch.EXITED, 3 << 8))
        assert launch._delegate(client, os.getpid(), ["ps"]) == 3  # None would mean "run it here"
        assert server.recv(1 << 16)  # the request went out before the report was read
    finally:
        os.close(proof)
        client.close()
        server.close()


def test_a_command_with_preserve_fds_runs_in_its_own_process(store: Store, server_dir: Path) -> None:
    """The server's child gets only the command's stdio: ``--preserve-fds`` (or an abbreviation) must not
    be handed to it, or the container would get the child's descriptors 3.. instead of the caller's."""
    server = _server(server_dir, store)
    for flag in ("--preserve-fds", "--preserve-fds=1", "--pres"):
        assert launch.run_command(["exec", flag, "1", "nosuch", "true"]) is None  # nothing sent to the server
    assert _children(server) == set()
