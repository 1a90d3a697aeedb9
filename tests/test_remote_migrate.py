"""Migration with published ports between the local engine and a real podman service (Debian's podman 4.3),
the checkpoint archive streamed both ways, and the one-line refusal of an option the service's podman is too
old for (docs/architecture.md §16).

Both engines run on this one host, so a moved container's port is the same host port on the destination: the
source must have released it (its checkpoint stops the container and its port forwarding) before the target
binds it, which is the order ``move`` and ``checkpoint --export`` + ``restore --import`` follow.
"""

from __future__ import annotations

import os
import pwd
import stat
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import test_remote
from podmanservice import PODMAN, PodmanService, RootlessService, kernelext, start_rootless
from test_remote import remote

from kernelext.connections import Connection
from kernelext.domain.local import LocalEngine
from kernelext.domain.migrate import move
from kernelext.domain.remote import MINIMUM_API, RemoteEngine, api_too_old
from kernelext.errors import EngineUnsupportedError, KernelextError

from conftest import Store, wait_until
from loopback import free_port

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(PODMAN), reason="needs root and podman")]

#: test_remote's fixtures: a service of this module's own, no container left by a test.
podman, service = test_remote.podman, test_remote.service
#: busybox's httpd serving /www in the foreground: the page is a file written into the container's layer.
HTTPD = "mkdir -p /www && echo \"$PAGE\" > /www/index.html && exec httpd -f -p 80 -h /www"
CONNECT_S = 30.0
#: scripts/setup.sh's normal user with subordinate IDs (tests/test_rootless_suite.py runs the suite as it).
ROOTLESS_USER = os.environ.get("KERNELEXT_TEST_USER", "kernelext-test")


def page(port: int) -> str | None:
    """What the server on 127.0.0.1:``port`` answers for /, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def serves(port: int, text: str) -> bool:
    return wait_until(lambda: page(port) == text, CONNECT_S)


def test_move_keeps_published_port_and_files_remote_to_local_and_back(store: Store, service: PodmanService) -> None:
    """``move``: a web server published on a host port, its page a file it wrote and one written later by exec,
    moved from the service to the local engine and back, answers the same page on the same port each time."""
    port = free_port()
    far = RemoteEngine(Connection("", service.url))
    here = LocalEngine(store.runtime)
    try:
        far.run("busybox", name="web", command=["sh", "-c", HTTPD], env=["PAGE=first"], publish=[f"{port}:80"])
        assert serves(port, "first\n")
        assert remote(service, "exec", "web", "sh", "-c", "echo later > /www/later.html").returncode == 0
        moved = move(far, "web", here)
        assert (moved.name, moved.state) == ("web", "running")
        assert serves(port, "first\n")  # the source released the port, the destination took it
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/later.html", timeout=5) as response:
            assert response.read() == b"later\n"
        assert not far.exists("web")
        assert store.cli("port", "web").stdout == f"80/tcp -> 127.0.0.1:{port}\n"
        back = move(here, "web", far)
        assert back.name == "web" and not here.exists("web")
        assert serves(port, "first\n")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/later.html", timeout=5) as response:
            assert response.read() == b"later\n"
        assert remote(service, "port", "web").stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    finally:
        far.close()


def _hop(source: Callable[..., CompletedProcess[str]], target: Callable[..., CompletedProcess[str]], archive: Path,
         old: int, new: int, *publish: str) -> None:
    """``checkpoint --export`` on ``source`` (its port ``old`` let go), ``rm``, ``restore --import`` on ``target``
    (with ``publish``): the page on port ``new`` there, ``port`` saying so."""
    exported = source("checkpoint", "--export", str(archive), "web")
    assert (exported.returncode, exported.stdout) == (0, "web\n"), exported.stderr
    assert page(old) is None  # released by the checkpoint
    assert source("rm", "web").returncode == 0
    restored = target("restore", "--import", str(archive), *publish)
    assert restored.returncode == 0, restored.stderr
    assert serves(new, "here\n")
    assert target("port", "web").stdout == f"80/tcp -> 127.0.0.1:{new}\n"


def test_cli_export_import_moves_a_server_with_its_port_or_a_new_one(store: Store, service: PodmanService,
                                                                    tmp_path: Path) -> None:
    """By hand: ``checkpoint --export`` on one engine, ``restore --import`` on the other, each way: on the same
    port, and with ``--publish`` (on the service, podman's ``publishPorts``) on a new one, the old one free."""
    first, second, third = free_port(), free_port(), free_port()
    here = store.cli
    there = partial(remote, service)
    started = here("run", "-d", "--name", "web", "-e", "PAGE=here", "-p", f"{first}:80", "busybox", "sh", "-c", HTTPD)
    assert started.returncode == 0, started.stderr
    assert serves(first, "here\n")
    _hop(here, there, tmp_path / "1.tar", first, first)
    _hop(there, here, tmp_path / "2.tar", first, first)
    _hop(here, there, tmp_path / "3.tar", first, second, "--publish", f"{second}:80")
    _hop(there, here, tmp_path / "4.tar", second, third, "-p", f"{third}:80")
    assert page(first) is None and page(second) is None


def test_a_failed_export_leaves_no_file_and_a_failed_import_no_container(service: PodmanService,
                                                                         tmp_path: Path) -> None:
    """The streamed download and upload report the service's own error in one line, and leave nothing."""
    created = remote(service, "create", "--name", "idle", "busybox", "sleep", "1000")
    assert created.returncode == 0, created.stderr
    target = tmp_path / "none.tar"
    refused = remote(service, "checkpoint", "--export", str(target), "idle")  # never started: podman's own error
    reference = service.remote("container", "checkpoint", "--export", str(tmp_path / "ref.tar"), "idle")
    assert refused.returncode == reference.returncode == 125
    assert refused.stderr == reference.stderr and refused.stderr.count("\n") == 1, (refused.stderr, reference.stderr)
    assert not target.exists()
    # a device named as the archive is written through, never removed (failed or not): a null device of the
    # test's own (the host's /dev/null is shared with every other process)
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    assert remote(service, "checkpoint", "--export", str(null), "idle").returncode == 125
    assert stat.S_ISCHR(os.stat(null).st_mode)
    (tmp_path / "junk.tar").write_bytes(b"not a tar" * 100)
    junk = remote(service, "restore", "--import", str(tmp_path / "junk.tar"))
    assert junk.returncode == 125 and junk.stderr.count("\n") == 1 and junk.stderr.startswith("Error: "), junk.stderr
    assert remote(service, "ps", "-a", "--format", "{{.Names}}").stdout == "idle\n"
    missing = remote(service, "restore", "--import", str(tmp_path / "absent.tar"))
    assert missing.returncode == 125 and missing.stderr.count("\n") == 1, missing.stderr


def test_api_minimum_is_asked_of_the_real_service(service: PodmanService) -> None:
    """podman 4.3.1 reports its libpod API version, which every option in the table is within."""
    far = RemoteEngine(Connection("", service.url))
    try:
        version = far.api_version()
        assert version == service.remote("version", "--format", "{{.Server.APIVersion}}").stdout.strip()
        assert all(api_too_old(feature, version) is None for feature in MINIMUM_API)
    finally:
        far.close()


def test_an_old_service_is_refused_before_the_call(service: PodmanService, tmp_path: Path) -> None:
    """A service whose /version says 3.4.4 (the engine's cached answer set so): the option is refused in one
    line naming the connection and the reason, and nothing reaches the service (the archive is never read)."""
    far = RemoteEngine(Connection("staging", service.url))
    try:
        far._api_version = "3.4.4"  # what podman 3.4's service reports; no such podman on this machine
        with pytest.raises(EngineUnsupportedError) as refused:
            far.restore_import(str(tmp_path / "never-read.tar"), publish=["8080:80"])
        assert str(refused.value) == ("restore --import --publish: the service's podman (API 3.4.4) is older than "
                                      "4.0.0, which it needs (engine 'staging')")
        assert remote(service, "run", "-d", "--name", "idle", "busybox", "sleep", "1000").returncode == 0
        with pytest.raises(EngineUnsupportedError, match=r"^checkpoint --print-stats: .*API 3\.4\.4.*'staging'"):
            far.checkpoint(["idle"], print_stats=True)
        assert remote(service, "inspect", "--format", "{{.State.Status}}", "idle").stdout == "running\n"
    finally:
        far.close()


@pytest.mark.parametrize(("have", "refused"), [("3.4.4", True), ("3.99.0", True), ("4.0.0", False),
                                               ("4.3.1", False), ("5.0.0-dev", False), ("garbled", False)])
def test_api_too_old_rule(have: str, refused: bool) -> None:
    """The pure rule: below the table's minimum is refused with both versions named; unreadable is let through
    (the service answers for itself); an option not in the table needs nothing."""
    reason = api_too_old("restore --import --publish", have)
    assert (reason is not None) == refused
    if reason:
        assert f"API {have}" in reason and "4.0.0" in reason
    assert api_too_old("restore --keep", have) is None


@pytest.fixture(scope="module")
def rootless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RootlessService]:
    try:
        pwd.getpwnam(ROOTLESS_USER)
    except KeyError:
        pytest.fail(f"no user {ROOTLESS_USER}: run scripts/setup.sh (it creates the rootless test users)")
    service = start_rootless(ROOTLESS_USER, tmp_path_factory.mktemp("rootless-busybox"))
    try:
        yield service
    finally:
        service.stop()


def test_a_rootless_service_refuses_checkpoint_and_restore_in_one_line(store: Store, rootless: RootlessService,
                                                                       tmp_path: Path) -> None:
    """A rootless podman service (CRIU on its PATH) fails a checkpoint with only runc's command line; the engine
    says podman's own reason, naming the connection, and leaves the container running and no file; an import
    is refused the same way and leaves no container (podman 4.3 leaves the one it made: the engine removes it)."""
    env = {"CONTAINERS_CONF": str(tmp_path / "containers.conf"),
           "PODMAN_CONNECTIONS_CONF": str(tmp_path / "connections.json")}
    assert kernelext("system", "connection", "add", "lab", rootless.url, env=env).returncode == 0
    run = lambda *argv: kernelext("--connection", "lab", *argv, env=env)
    started = run("run", "-d", "--network", "none", "--name", "idle", "busybox", "sleep", "1000")
    assert started.returncode == 0, started.stderr
    line = "Error: checkpoint: the service's podman runs rootless: checkpointing a container requires root " \
           "(engine 'lab')\n"
    refused = run("checkpoint", "idle")
    assert (refused.returncode, refused.stdout, refused.stderr) == (125, "", line)
    exported = run("checkpoint", "--export", str(tmp_path / "idle.tar"), "idle")
    assert (exported.returncode, exported.stderr) == (125, line) and not (tmp_path / "idle.tar").exists()
    assert run("inspect", "--format", "{{.State.Status}}", "idle").stdout == "running\n"
    # an archive the local engine made, imported there
    assert store.cli("run", "-d", "--name", "here", "busybox", "sleep", "1000").returncode == 0
    assert store.cli("checkpoint", "--export", str(tmp_path / "here.tar"), "here").returncode == 0
    imported = run("restore", "--import", str(tmp_path / "here.tar"))
    assert (imported.returncode, imported.stderr) == (
        125, "Error: restore: the service's podman runs rootless: restoring a container requires root (engine 'lab')\n")
    assert run("ps", "-a", "--format", "{{.Names}}").stdout == "idle\n"


@pytest.mark.parametrize(("message", "rootless", "line"), [
    ("checkpoint/restore requires at least CRIU 31600", False,
     "checkpoint: checkpoint/restore requires at least CRIU 31600 (engine 'lab')"),
    ("configured runtime does not support checkpoint/restore", True,
     "checkpoint: configured runtime does not support checkpoint/restore (engine 'lab')"),
    ("`/usr/bin/runc checkpoint ...` failed: exit status 1", True,
     "checkpoint: the service's podman runs rootless: checkpointing a container requires root (engine 'lab')"),
    ("`/usr/bin/runc checkpoint ...` failed: exit status 1", False, None),
])
def test_checkpoint_failure_rule(message: str, rootless: bool, line: str | None) -> None:
    """The pure rule on the service's message (the rootful service without CRIU is the case not made for real
    here: the CRIU kernelext provisions is on every service's PATH): podman's own can't-at-all reasons and a
    rootless service become the engine's one line; any other failure passes as the service gave it."""
    engine = RemoteEngine.__new__(RemoteEngine)  # no service: the rule alone
    engine.name, engine._rootless = "lab", rootless
    with pytest.raises(KernelextError) as raised, engine._checkpointing("checkpoint"):
        raise KernelextError(message)
    if line is None:
        assert type(raised.value) is KernelextError and str(raised.value) == message
    else:
        assert isinstance(raised.value, EngineUnsupportedError) and str(raised.value) == line
