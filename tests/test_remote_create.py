"""create/run options on the remote engine (libpod's SpecGenerator) against a real podman service, each
compared with the local engine's result of the same command line where podman's API gives the same
(docs/architecture.md §16)."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest
import test_remote
from podmanservice import PODMAN, PodmanService
from test_remote import both, remote

from conftest import Store, wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(PODMAN), reason="needs root and podman")]


#: test_remote's fixtures: a service of this module's own, no container left by a test.
podman, service = test_remote.podman, test_remote.service


def _fetch(port_line: str) -> bytes:
    with urllib.request.urlopen(f"http://{port_line.strip()}/index.html", timeout=10) as response:
        return bytes(response.read())


def test_published_port_answers_on_loopback(store: Store, service: PodmanService) -> None:
    script = "mkdir /www; echo hello > /www/index.html; exec httpd -f -p 8080 -h /www"
    for result in both(store, service, "run", "-d", "--name", "web", "-p", "127.0.0.1::8080", "busybox",
                       "sh", "-c", script):
        assert result.returncode == 0, result.stderr
    for engine, port in zip(("local", "remote"), both(store, service, "port", "web", "8080"), strict=True):
        assert port.returncode == 0 and port.stdout.startswith("127.0.0.1:"), (engine, port)
        assert wait_until(lambda port=port: _try(port.stdout) == b"hello\n"), engine
    # podman itself lists the mapping the remote engine asked for
    assert service.remote("port", "web").stdout.startswith("8080/tcp -> 127.0.0.1:")
    # off loopback is refused on both, before anything is made
    for refused in both(store, service, "create", "-p", "0.0.0.0:9999:80", "busybox"):
        assert refused.returncode == 125 and "only 127.0.0.1 (loopback)" in refused.stderr


def _try(port_line: str) -> bytes | None:
    try:
        return _fetch(port_line)
    except OSError:
        return None


def test_bind_mount_volume_and_tmpfs(store: Store, service: PodmanService, tmp_path: Path) -> None:
    for engine, run in (("local", store.cli), ("remote", lambda *a: remote(service, *a))):
        host = tmp_path / engine
        host.mkdir()
        result = run("run", "--rm", "-v", f"{host}:/data", "-v", "vol1:/vol", "--tmpfs", "/scratch:size=1m",
                     "--mount", f"type=bind,src={host},dst=/ro,ro", "busybox", "sh", "-c",
                     "echo written > /data/f; echo kept > /vol/k; touch /ro/x 2>/dev/null || echo ro;"
                     " grep -c ' /scratch tmpfs' /proc/mounts")
        assert (result.returncode, result.stdout) == (0, "ro\n1\n"), (engine, result.stderr)
        assert (host / "f").read_text() == "written\n", engine
        assert not (host / "x").exists()
    # the named volume is the service's: another container sees what the first wrote
    assert remote(service, "run", "--rm", "-v", "vol1:/vol", "busybox", "cat", "/vol/k").stdout == "kept\n"
    assert "vol1" in service.remote("volume", "ls", "-q").stdout
    service.remote("volume", "rm", "-f", "vol1")


def test_limits_show_in_inspect(store: Store, service: PodmanService) -> None:
    argv = ("create", "--name", "lim", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50",
            "--ulimit", "nofile=100:200", "--cap-drop", "all", "--cap-add", "chown", "--read-only",
            "--hostname", "h1", "--init", "--stop-signal", "SIGINT", "--stop-timeout", "3",
            "--restart", "on-failure:2", "busybox")
    for result in both(store, service, *argv):
        assert result.returncode == 0, result.stderr
    fmt = ("{{.HostConfig.Memory}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}} {{.HostConfig.PidsLimit}} "
           "{{.HostConfig.ReadonlyRootfs}} {{.Config.Hostname}} {{.HostConfig.Init}} "
           "{{.Config.StopTimeout}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}")
    local, far = both(store, service, "inspect", "--format", fmt, "lim")
    assert far.stdout == "67108864 50000 100000 50 true h1 true 3 on-failure 2\n", far.stderr
    assert local.stdout == far.stdout
    assert service.remote("inspect", "--format", fmt, "lim").stdout == far.stdout


def test_identity_options_inside_the_container(store: Store, service: PodmanService, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nA=from-file\nB=file\n")
    # with any --ulimit, podman 4.3 asks runc for an nproc limit above this machine's hard one (podman --remote
    # fails the same way): nproc is given too, as the fixture's containers.conf gives it
    argv = ("run", "--rm", "--env-file", str(env_file), "-e", "B=flag", "--user", "1000:1000", "--workdir", "/tmp",
            "--hostname", "h2", "--label", "k=v", "--entrypoint", "sh", "--read-only", "--pids-limit", "60",
            "--ulimit", "nofile=100:200", "--ulimit", "nproc=1024:1024", "--cap-drop", "chown,kill",
            "--security-opt", "no-new-privileges", "busybox", "-c",
            ("echo $A $B; id -u; pwd; hostname; ulimit -n; grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status;"
             " touch /x 2>/dev/null || echo read-only"))
    local, far = both(store, service, *argv)
    assert far.returncode == 0, far.stderr
    lines = far.stdout.splitlines()
    assert lines[:5] + lines[-2:] == ["from-file flag", "1000", "/tmp", "h2", "100", "NoNewPrivs:\t1", "read-only"]
    bounding = int(lines[5].split()[1], 16)  # CAP_CHOWN (bit 0) and CAP_KILL (bit 5) dropped, others kept
    assert bounding and not bounding & 0b100001
    # the bounding sets differ by the defaults: podman 4.3's containers.conf adds AUDIT_WRITE, MKNOD and NET_RAW,
    # kernelext has podman 5's; the rest matches
    local_lines = local.stdout.splitlines()
    assert local.returncode == 0 and local_lines[:5] + local_lines[6:] == lines[:5] + lines[6:]
    assert not int(local_lines[5].split()[1], 16) & 0b100001


def test_rm_and_restart(service: PodmanService) -> None:
    assert remote(service, "run", "-d", "--rm", "--name", "gone", "busybox", "true").returncode == 0
    assert wait_until(lambda: service.remote("ps", "-a", "-q").stdout == "")
    started = remote(service, "run", "-d", "--name", "again", "--restart", "on-failure:2", "busybox", "sh", "-c",
                     "exit 3")
    assert started.returncode == 0, started.stderr
    # on-failure:2 restarts it twice, then it stays exited with its code
    assert wait_until(lambda: remote(service, "inspect", "--format", "{{.RestartCount}} {{.State.Status}}",
                                     "again").stdout == "2 exited\n", timeout=30)


def test_unmapped_options_are_refused_by_name(service: PodmanService) -> None:
    for argv, what in ((("--device-read-bps", "/dev/null:1mb"), "create --device-read-bps"),
                       (("--security-opt", "label=disable"), "create --security-opt label=disable"),
                       (("--network", "mynet"), "create --network mynet")):
        refused = remote(service, "run", "--rm", *argv, "busybox", "true")
        assert refused.returncode == 125 and refused.stderr == \
            f"Error: {what}: not supported by the remote engine yet (engine '{service.url}')\n"
    assert service.remote("ps", "-a", "-q").stdout == ""
