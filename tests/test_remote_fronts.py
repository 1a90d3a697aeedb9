"""Front ends on a remote engine against real podman services (Debian's podman 4.3): ``attach`` and
``start -a`` of a container without a TTY (CLI and magics, compared with the local engine), the dashboard
magic on several connections, the file browser and the resource monitor through the service's archive and
stats endpoints (docs/architecture.md §16).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from podmanservice import PODMAN, PodmanService
from test_remote import podman, private_store, service  # noqa: F401 - the fixtures

from conftest import Store, wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(PODMAN), reason="needs root and podman")]

#: A container that waits for /tmp/go (made once the attach is known to be there), then writes to both
#: streams and exits with 5.
GATED = ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo one; echo two >&2; exit 5"]


def remote_argv(service: PodmanService) -> list[str]:
    return [sys.executable, "-m", "kernelext", "--url", service.url]


def cli_env(service: PodmanService) -> dict[str, str]:
    return {**os.environ, "KERNELEXT_FORKSERVER": "0", **private_store(service.directory)}


def attached(argv: list[str], env: dict[str, str] | None, go: list[str], events: list[str]) -> tuple[int, str, str]:
    """``argv`` (an attach) in a process of its own; once ``events`` (an events command line) shows the attach,
    ``go`` (an exec) lets the container speak and exit."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert wait_until(lambda: "attach" in subprocess.run(events, capture_output=True, text=True, env=env,
                                                             timeout=60).stdout, timeout=30), "never attached"
        subprocess.run(go, check=True, capture_output=True, env=env, timeout=60)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def test_attach_and_start_a_without_tty_match_the_local_engine(store: Store, service: PodmanService) -> None:
    local = [sys.executable, "-m", "kernelext", *store.args]
    results = {}
    for where, argv, env in (("local", local, None), ("remote", remote_argv(service), cli_env(service))):
        run = lambda *a: subprocess.run([*argv, *a], capture_output=True, text=True, env=env, timeout=60)  # noqa: E731
        # start -a: the output as it comes on stdout and stderr, then the container's exit code
        assert run("create", "--name", "sa", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3").returncode == 0
        started = run("start", "-a", "sa")
        # attach to a running container: what it writes from then on, and its exit code
        assert run("run", "-d", "--name", "at", "busybox", *GATED).returncode == 0
        events = [*argv, "events", "--stream=false", "--filter", "event=attach", "--filter", "container=at",
                  "--format", "{{.Status}}"]
        code, out, err = attached([*argv, "attach", "at"], env, [*argv, "exec", "at", "touch", "/tmp/go"], events)
        # attach to one that has exited: one line, podman's code; start -a of two: refused
        stopped = run("attach", "at")
        two = run("start", "-a", "sa", "at")
        results[where] = ((started.returncode, started.stdout, started.stderr), (code, out, err),
                          (stopped.returncode, stopped.stderr), (two.returncode, two.stderr))
        assert run("rm", "-f", "sa", "at").returncode == 0
    assert results["remote"] == results["local"]
    assert results["local"][0] == (3, "out\n", "err\n")
    assert results["local"][1] == (5, "one\n", "two\n")
    assert results["local"][2] == (125, "Error: you can only attach to running containers\n")
    assert results["local"][3] == (125, "Error: you cannot start and attach multiple containers at once\n")


def test_remote_attach_forwards_a_signal_as_podman_does(service: PodmanService) -> None:
    """sig-proxy: SIGINT to the attached CLI reaches the remote container, whose trap decides the exit code."""
    argv, env = remote_argv(service), cli_env(service)
    subprocess.run([*argv, "run", "-d", "--name", "trap", "busybox", "sh", "-c",
                    "trap 'echo got INT; exit 7' INT; touch /tmp/ready; while :; do sleep 0.1; done"],
                   check=True, capture_output=True, env=env, timeout=60)
    assert wait_until(lambda: service.remote("exec", "trap", "test", "-e", "/tmp/ready").returncode == 0)
    proc = subprocess.Popen([*argv, "attach", "trap"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert wait_until(lambda: "attach" in service.remote("events", "--stream=false", "--filter", "event=attach",
                                                             "--filter", "container=trap", "--format", "{{.Status}}").stdout, timeout=30)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out, err) == (7, "got INT\n", "")
    assert service.remote("inspect", "--format", "{{.State.ExitCode}}", "trap").stdout.strip() == "7"
