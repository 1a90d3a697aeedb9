"""Stdin of a container without a TTY through the remote engine (``start -ai``, ``attach``, ``run -i``): sent up
the attach's hijacked connection, its end the container's end of input, then the container's exit code; the
detach sequence leaves it running. Each compared with the local engine's result of the same command line,
against a real podman service (Debian's podman 4.3)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from podmanservice import PODMAN, PodmanService
from test_remote import both, podman, remote  # noqa: F401 - podman: the module's service
from test_remote_commands import _local_argv, remote_argv, remote_env

from conftest import Store

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(PODMAN), reason="needs root and podman")]


@pytest.fixture
def service(podman: PodmanService) -> Iterator[PodmanService]:  # noqa: F811 - the imported fixture
    yield podman
    podman.podman("rm", "-fa", "-t", "0", check=False)


def _piped(store: Store, service: PodmanService, text: str, *argv: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    """The command line with ``text`` on its stdin, on the local engine and on the remote one."""
    return tuple(subprocess.run([*prefix, *argv], input=text, capture_output=True, text=True, timeout=120, env=env)
                 for prefix, env in ((_local_argv(store), None), (remote_argv(service), remote_env(service))))


def _each(store: Store, service: PodmanService, *argv: str) -> None:
    for result in both(store, service, *argv):
        assert result.returncode == 0, result.stderr


def test_start_ai_sends_stdin_and_returns_the_exit_code(store: Store, service: PodmanService) -> None:
    _each(store, service, "create", "-i", "--name", "counter", "busybox", "sh", "-c", "wc -l; exit 3")
    _each(store, service, "create", "-i", "--name", "echo", "busybox", "cat")
    local, far = _piped(store, service, "a\nb\n", "start", "-ai", "counter")
    assert (far.returncode, far.stdout, far.stderr) == (local.returncode, local.stdout, local.stderr) == (3, "2\n", "")
    text = "".join(f"line {i}\n" for i in range(20000))  # more than a pipe's or a socket's buffer
    local, far = _piped(store, service, text, "start", "-ai", "echo")
    assert (far.returncode, far.stdout, far.stderr) == (local.returncode, local.stdout, local.stderr) == (0, text, "")


def test_run_i_without_a_terminal(store: Store, service: PodmanService) -> None:
    local, far = _piped(store, service, "x\ny\nz\n", "run", "-i", "--rm", "busybox", "sh", "-c", "wc -l; exit 5")
    assert (far.returncode, far.stdout, far.stderr) == (local.returncode, local.stdout, local.stderr) == (5, "3\n", "")


def test_attach_sends_stdin_unless_no_stdin(store: Store, service: PodmanService) -> None:
    _each(store, service, "run", "-d", "-i", "--name", "reader", "busybox", "sh", "-c", "read x; echo got $x; exit 7")
    local, far = _piped(store, service, "hello\n", "attach", "reader")
    assert (far.returncode, far.stdout, far.stderr) == (local.returncode, local.stdout, local.stderr) == (7, "got hello\n", "")


def _detached(argv: list[str], env: dict[str, str] | None, line: bytes, keys: bytes) -> tuple[int, bytes]:
    """Attach, send ``line`` and wait for its echo (output after a detach is not shown), then ``keys``: the
    exit code and what was shown."""
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(line)
    process.stdin.flush()
    echoed = process.stdout.readline()
    process.stdin.write(keys)
    process.stdin.flush()
    try:
        return process.wait(timeout=60), echoed + process.stdout.read()
    finally:
        process.kill()
        process.wait()


def test_detach_keys_leave_the_container_running(store: Store, service: PodmanService) -> None:
    for name in ("long", "own"):  # conmon closes a container's stdin when its attached client leaves: sleep on
        _each(store, service, "run", "-d", "-i", "--name", name, "busybox", "sh", "-c", "cat; exec sleep 1000")
    engines = ((_local_argv(store), None), (remote_argv(service), remote_env(service)))
    # the default sequence (ctrl-p, ctrl-q): attach returns 0 and the container runs on
    assert [_detached([*argv, "attach", "long"], env, b"before\n", b"\x10\x11after\n")
            for argv, env in engines] == [(0, b"before\n")] * 2
    # a sequence of the user's own; the default is then plain input, passed on
    assert [_detached([*argv, "attach", "--detach-keys", "ctrl-x,y", "own"], env, b"one\x10\x11\n", b"\x18y")
            for argv, env in engines] == [(0, b"one\x10\x11\n")] * 2
    for result in both(store, service, "inspect", "--format", "{{.State.Status}}", "long", "own"):
        assert result.stdout == "running\nrunning\n"
