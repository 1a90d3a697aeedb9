"""The remote engine against a real podman service (Debian's podman 4.3), through the CLI and the magics.

Each behaviour is checked on the remote engine and, where podman's API gives the same, compared with
the local engine's result of the same command line (docs/architecture.md §16 lists where they differ).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from podmanservice import PODMAN, SSHD, PodmanService, SshServer, kernelext, serve, sshd

from kernelext.errors import KernelextError

from conftest import Store, wait_until
from registry import Registry, registry  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(PODMAN), reason="needs root and podman")]

NO_SUCH = 'Error: no container with name or ID "nope" found: no such container\n'


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanService]:
    yield from serve(tmp_path_factory.mktemp("remote"))


@pytest.fixture
def service(podman: PodmanService) -> Iterator[PodmanService]:
    """The module's service, with no container left by the test."""
    yield podman
    podman.podman("rm", "-fa", "-t", "0", check=False)


def remote(service: PodmanService, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return kernelext("--url", service.url, *argv, env={**private_store(service.directory), **(env or {})})


def private_store(directory: Path) -> dict[str, str]:
    """Both of podman's connection stores in ``directory``: a test never touches the user's."""
    return {"CONTAINERS_CONF": str(directory / "containers.conf"),
            "PODMAN_CONNECTIONS_CONF": str(directory / "podman-connections.json")}


def both(store: Store, service: PodmanService, *argv: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    """The same command line on the local engine (the test's store) and on the remote one."""
    return store.cli(*argv), remote(service, *argv)


def test_lifecycle_through_the_cli(service: PodmanService) -> None:
    started = remote(service, "run", "-d", "--name", "web", "busybox", "sh", "-c", "echo up; exec sleep 1000")
    assert started.returncode == 0, started.stderr
    ident = started.stdout.strip()
    assert len(ident) == 64
    # podman itself sees the container kernelext made through its service
    assert service.remote("ps", "--format", "{{.Names}} {{.Image}}").stdout == "web localhost/busybox:latest\n"
    listed = remote(service, "ps", "--format", "{{.Names}} {{.ID}} {{.Image}}")
    assert listed.stdout == f"web {ident[:12]} localhost/busybox:latest\n"
    assert remote(service, "inspect", "--format", "{{.State.Status}}", "web").stdout == "running\n"
    assert remote(service, "logs", "web").stdout == "up\n"
    execed = remote(service, "exec", "web", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (execed.returncode, execed.stdout, execed.stderr) == (3, "out\n", "err\n")
    assert remote(service, "pause", "web").stdout == "web\n"
    assert remote(service, "inspect", "--format", "{{.State.Status}}", "web").stdout == "paused\n"
    assert remote(service, "unpause", "web").stdout == "web\n"
    top = remote(service, "top", "web").stdout.splitlines()
    assert top[0].split() == ["USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND"]
    assert top[1].split()[-2:] == ["sleep", "1000"]
    assert remote(service, "stop", "-t", "0", "web").stdout == "web\n"
    assert remote(service, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "web").stdout == \
        "exited 137\n"
    assert remote(service, "ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.startswith("web Exited (137)")
    assert remote(service, "rm", "web").stdout == "web\n"
    assert remote(service, "ps", "-a", "-q").stdout == ""
    assert service.remote("ps", "-a", "-q").stdout == ""


def test_attached_run_matches_the_local_engine(store: Store, service: PodmanService) -> None:
    local, far = both(store, service, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (far.returncode, far.stdout, far.stderr) == (3, "out\n", "err\n")
    assert (local.returncode, local.stdout, local.stderr) == (far.returncode, far.stdout, far.stderr)
    assert service.remote("ps", "-a", "-q").stdout == ""  # --rm: removed once its exit code was known
    # a command that does not exist: podman's 127 on both engines
    local, far = both(store, service, "run", "--rm", "busybox", "nosuchcommand")
    assert local.returncode == far.returncode == 127
    assert far.stderr.count("\n") == 1 and far.stderr.startswith("Error: ") and "nosuchcommand" in far.stderr
    assert service.remote("ps", "-a", "-q").stdout == ""


def test_errors_are_one_line_with_podmans_codes(store: Store, service: PodmanService) -> None:
    for argv, code in ((("stop", "nope"), 125), (("rm", "nope"), 1), (("logs", "nope"), 125),
                       (("exec", "nope", "true"), 125)):
        local, far = both(store, service, *argv)
        reference = service.remote(*argv)
        assert (far.returncode, far.stderr) == (code, NO_SUCH), argv
        assert (local.returncode, local.stderr) == (code, NO_SUCH), argv
        if argv[0] != "logs":  # podman 4.3's remote logs misreads the error as a stream ("channel "123" found")
            assert reference.returncode == code and reference.stderr == NO_SUCH, argv  # podman --remote's own
    # inspect of a name that is neither a container nor an image: podman prefixes "inspecting object: "
    local, far = both(store, service, "inspect", "--format", "x", "nope")
    assert (local.returncode, local.stderr) == (far.returncode, far.stderr) == (125, 'Error: no such object: "nope"\n')
    mounted = remote(service, "mount", "x")
    assert mounted.returncode == 125
    assert mounted.stderr == ("Error: mount: the service mounts it on its own machine, out of this one's reach "
                              f"(podman --remote refuses it too) (engine '{service.url}')\n")
    refused = remote(service, "run", "--rm", "--conmon-pidfile", "/tmp/x", "busybox", "true")
    assert refused.returncode == 125 and refused.stderr.startswith("Error: create --conmon-pidfile: not supported by "
                                                                   "the remote engine yet")
    assert service.remote("ps", "-a", "-q").stdout == ""  # refused before anything was made


def test_outputs_match_the_local_engine(store: Store, service: PodmanService) -> None:
    """The same command lines on both engines give the same output where podman's API gives the same."""
    # pauses between the lines: stdout and stderr are two pipes, whose order conmon cannot know otherwise
    script = "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; exec sleep 1000"
    for result in both(store, service, "run", "-d", "--name", "same", "--label", "k=v", "busybox", "sh", "-c",
                       script):
        assert result.returncode == 0, result.stderr
    assert wait_until(lambda: all("three" in r.stdout for r in both(store, service, "logs", "same")))
    for argv in (("logs", "same"), ("logs", "--tail", "1", "same"), ("exec", "same", "cat", "/etc/hostname"),
                 ("exec", "-w", "/tmp", "-e", "X=1", "same", "sh", "-c", "pwd; echo $X"),
                 ("inspect", "--format", "{{.State.Status}} {{.Config.Labels.k}}", "same"),
                 ("ps", "--format", "{{.Names}} {{.Command}} {{.State}}"),
                 ("pause", "same"), ("inspect", "--format", "{{.State.Status}}", "same"), ("unpause", "same"),
                 ("stop", "-t", "0", "same"), ("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "same"),
                 ("wait", "same"), ("rm", "same"), ("ps", "-a", "-q")):
        local, far = both(store, service, *argv)
        if argv[0] == "exec" and argv[1] == "same" and argv[2] == "cat":
            # the hostname is the container's short ID on both: compare its length, not its value
            assert len(local.stdout.strip()) == len(far.stdout.strip()) == 12
            continue
        assert (local.returncode, local.stdout, local.stderr) == (far.returncode, far.stdout, far.stderr), argv


def test_cp_both_ways(store: Store, service: PodmanService, tmp_path: Path) -> None:
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "f.txt").write_text("hello\n")
    (tmp_path / "one.txt").write_text("one\n")
    for result in both(store, service, "run", "-d", "--name", "box", "busybox", "sleep", "1000"):
        assert result.returncode == 0, result.stderr
    for engine, run in (("local", store.cli), ("remote", lambda *a: remote(service, *a))):
        assert run("cp", str(source), "box:/tmp/").returncode == 0
        assert run("cp", str(tmp_path / "one.txt"), "box:/tmp/renamed.txt").returncode == 0
        assert run("exec", "box", "cat", "/tmp/in/sub/f.txt", "/tmp/renamed.txt").stdout == "hello\none\n", engine
        out = tmp_path / f"out-{engine}"
        out.mkdir()
        assert run("cp", "box:/tmp/in", str(out)).returncode == 0  # into an existing directory
        assert (out / "in" / "sub" / "f.txt").read_text() == "hello\n"
        assert run("cp", "box:/tmp/renamed.txt", str(out / "new.txt")).returncode == 0  # to a new name
        assert (out / "new.txt").read_text() == "one\n"
        assert run("cp", "box:/tmp/in", str(out / "copy")).returncode == 0  # a directory to a new name
        assert (out / "copy" / "sub" / "f.txt").read_text() == "hello\n"
        missing = run("cp", "box:/nowhere", str(out))
        assert missing.returncode == 125 and missing.stderr.count("\n") == 1, engine
    assert sorted(os.listdir(tmp_path / "out-local")) == sorted(os.listdir(tmp_path / "out-remote"))
    assert store.cli("rm", "-f", "-t", "0", "box").returncode == 0


def _tree(root: Path) -> dict[str, tuple[str, bytes | str, int]]:
    """Each path under ``root``: its kind, contents (a link's target) and permission bits."""
    found: dict[str, tuple[str, bytes | str, int]] = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode & 0o7777
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = ("link", os.readlink(path), 0)
        elif path.is_dir():
            found[name] = ("dir", b"", mode)
        else:
            found[name] = ("file", path.read_bytes(), mode)
    return found


def test_cp_streams_a_tree_both_ways_as_podman_does(service: PodmanService, tmp_path: Path) -> None:
    """A tree with a file of several MiB (not a multiple of the tar block), an empty file, a symlink and a hard
    link: kernelext's upload (one HTTP chunk per file, its data by sendfile) reads back through podman's own
    ``cp`` as it was, and podman's upload comes out through kernelext's (the raw HTTP/1.0 body) as it was."""
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "big.bin").write_bytes(os.urandom(3 * (1 << 20) + 123))
    (tree / "a" / "empty").write_bytes(b"")
    (tree / "a" / "b" / "small.txt").write_text("small\n")
    os.chmod(tree / "a" / "b" / "small.txt", 0o640)
    os.link(tree / "a" / "b" / "small.txt", tree / "a" / "hard.txt")
    os.symlink("../big.bin", tree / "a" / "link")
    assert service.remote("run", "-d", "--name", "box", "busybox", "sleep", "1000").returncode == 0
    assert remote(service, "cp", str(tree), "box:/tmp/ours").returncode == 0
    assert service.remote("cp", "box:/tmp/ours", str(tmp_path / "via-podman")).returncode == 0
    assert _tree(tmp_path / "via-podman") == _tree(tree)
    refused = remote(service, "cp", str(tree / "big.bin"), "box:/etc/passwd/x")  # the service's answer, in one line
    assert (refused.returncode, refused.stderr) == (
        125, "Error: copier: put: /etc/passwd (/etc/passwd): exists but is not a directory\n")
    (tree / "a" / "hard.txt").unlink()  # podman 4.3's own upload of a hard link fails (500, "closed pipe")
    assert service.remote("cp", str(tree), "box:/tmp/theirs").returncode == 0
    assert remote(service, "cp", "box:/tmp/theirs", str(tmp_path / "via-kernelext")).returncode == 0
    assert _tree(tmp_path / "via-kernelext") == _tree(tree)


def test_chunked_upload_is_the_tar_stream(tmp_path: Path) -> None:
    """The upload's chunked body decodes to the local copy's tar stream; a file that shrank after its size was
    read is padded with zeros, as that stream pads it."""
    import http.client
    import socket

    from kernelext.domain.remote import _send_chunked, _tar_pieces
    from kernelext.files.confined import FileData

    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "one").write_bytes(os.urandom(70000))
    (tree / "two").write_text("two\n")
    expected = b"".join(_tar_chunks_of(tree))

    def decoded(pieces: Iterator[bytes | Any]) -> bytes:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            _send_chunked(ours, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", pieces)
            ours.shutdown(socket.SHUT_WR)
            response = http.client.HTTPResponse(theirs)
            response.begin()
            return response.read()

    assert decoded(_tar_pieces(tree, "t")) == expected
    shrunk = tmp_path / "shrunk"
    shrunk.write_bytes(b"x" * 10)
    with open(shrunk, "rb") as f:
        body = decoded(iter([b"head", FileData(f.fileno(), 1000), b"tail"]))
    assert body == b"head" + b"x" * 10 + bytes(990) + b"tail"


def _tar_chunks_of(tree: Path) -> Iterator[bytes]:
    from kernelext.files.confined import Root, tar_chunks, tree_entries

    root = Root.open(tree.parent)
    found = root.resolve(tree.name, follow=False)
    try:
        yield from tar_chunks(tree_entries(found, tree.name, contents=False))
    finally:
        found.close()
        root.close()


def test_cp_out_keeps_a_hostile_archive_inside(service: PodmanService, tmp_path: Path) -> None:
    """A container's symlink pointing outside is copied as a link, never followed onto the host."""
    assert remote(service, "run", "-d", "--name", "evil", "busybox", "sh", "-c",
                  "mkdir /x && ln -s / /x/root && ln -s /etc/passwd /x/pw && exec sleep 1000").returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    assert remote(service, "cp", "evil:/x", str(out)).returncode == 0
    assert os.readlink(out / "x" / "root") == "/" and os.readlink(out / "x" / "pw") == "/etc/passwd"
    assert [p.name for p in out.iterdir()] == ["x"]


def test_connections_are_podmans(service: PodmanService, tmp_path: Path) -> None:
    """kernelext and podman read and write the same store (podman 4's containers.conf here)."""
    conf = tmp_path / "containers.conf"
    shutil.copy(service.directory / "containers.conf", conf)
    env = {**private_store(tmp_path), "CONTAINERS_CONF": str(conf)}
    run = lambda *argv: kernelext(*argv, env=env)
    podman = lambda *argv: subprocess.run([PODMAN, *argv], capture_output=True, text=True,
                                          env={**os.environ, **env})
    assert run("system", "connection", "add", "here", service.url).returncode == 0
    listed = json.loads(podman("system", "connection", "ls", "--format", "json").stdout)
    assert [(c["Name"], c["URI"], c["Default"]) for c in listed] == [("here", service.url, True)]
    assert podman("system", "connection", "add", "other", "unix:///nowhere.sock").returncode == 0
    assert run("system", "connection", "ls", "--format", "{{.Name}} {{.URI}} {{.Default}}").stdout == \
        f"here {service.url} true\nother unix:///nowhere.sock false\n"
    assert run("system", "connection", "default", "other").returncode == 0
    assert run("system", "connection", "rename", "here", "there").returncode == 0
    listed = json.loads(podman("system", "connection", "ls", "--format", "json").stdout)
    assert [(c["Name"], c["Default"]) for c in listed] == [("other", True), ("there", False)]
    assert "active_service" in conf.read_text() and "[containers]" in conf.read_text()  # the rest kept
    # the ways to pick one: --connection, CONTAINER_CONNECTION, CONTAINER_HOST
    assert remote(service, "run", "-d", "--name", "picked", "busybox", "sleep", "1000").returncode == 0
    for argv, extra in ((("--connection", "there"), {}), ((), {"CONTAINER_CONNECTION": "there"}),
                        ((), {"CONTAINER_HOST": service.url})):
        found = kernelext(*argv, "ps", "--format", "{{.Names}}", env={**env, **extra})
        assert (found.returncode, found.stdout) == (0, "picked\n"), (argv, extra, found.stderr)
    gone = kernelext("--connection", "other", "ps", env=env)
    assert (gone.returncode, gone.stderr) == (125, ("Error: unable to connect to Podman socket (other): dial unix "
                                                   "/nowhere.sock: connect: no such file or directory\n"))
    far = kernelext("--url", "tcp://192.0.2.1:8080", "ps", env=env)
    assert far.returncode == 125 and far.stderr.count("\n") == 1 and "refused off loopback" in far.stderr
    unknown = kernelext("--connection", "nosuch", "ps", env=env)
    assert (unknown.returncode, unknown.stderr) == (125, 'Error: connection "nosuch" not found\n')
    assert run("system", "connection", "rm", "there").returncode == 0
    assert [c["Name"] for c in json.loads(podman("system", "connection", "ls", "--format", "json").stdout)] == \
        ["other"]


def test_podman5_connections_json_is_read(tmp_path: Path, service: PodmanService) -> None:
    """podman 5's podman-connections.json: listed, and its default wins (as podman 5 reads it)."""
    store_file = tmp_path / "podman-connections.json"
    store_file.write_text(json.dumps({"Connection": {"Default": "five", "Connections": {
        "five": {"URI": service.url, "Identity": "", "IsMachine": False}}}, "Farm": {}}))
    env = {"PODMAN_CONNECTIONS_CONF": str(store_file), "CONTAINERS_CONF": str(tmp_path / "none.conf")}
    listed = kernelext("system", "connection", "ls", "--format", "json", env=env)
    assert [(c["Name"], c["URI"], c["Default"]) for c in json.loads(listed.stdout)] == [("five", service.url, True)]
    assert kernelext("--connection", "five", "ps", "-a", "-q", env=env).returncode == 0


def test_magics_on_a_connection(service: PodmanService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    conf = tmp_path / "containers.conf"
    shutil.copy(service.directory / "containers.conf", conf)
    for name, value in private_store(tmp_path).items():
        monkeypatch.setenv(name, value)
    assert kernelext("system", "connection", "add", "lab", service.url).returncode == 0
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kernelext")
    magic = lambda line: shell.run_line_magic("container", line)
    try:
        record = magic("--connection lab run -d --name nb busybox sh -c 'echo hi; exec sleep 1000'")
        assert (record.name, record.state, record.engine) == ("nb", "running", "lab")
        listed = magic("--connection lab ps")
        assert [r.name for r in listed] == ["nb"] and [r.engine for r in listed] == ["lab"]
        shell.run_line_magic("config", 'ContainerMagics.connection = "lab"')
        capsys.readouterr()
        magic("logs nb")
        magic("exec nb sh -c 'echo out; echo err >&2'")
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("hi\nout\n[exec in nb exited with code 0]\n", "err\n")
        assert magic("inspect --format {{.State.Status}} nb") == "running"
        shell.run_cell_magic("container", "exec nb", "echo from a cell; hostname | wc -c")
        assert capsys.readouterr().out == "from a cell\n13\n[exec in nb exited with code 0]\n"
        assert magic("stop -t 0 nb").state == "exited"
        magic("run --rm busybox echo attached")  # the exit line names the container, as locally
        assert re.fullmatch(r"attached\n\[\w+ exited with code 0\]\n", capsys.readouterr().out)
        with pytest.raises(Exception, match="run -i needs a terminal"):  # the local magic's line: no stdin in a cell
            magic("run -i busybox cat")
        with pytest.raises(Exception, match="mount: the service mounts it on its own machine"):
            magic("mount nb")
        shell.run_cell_magic("container", "run --name cell busybox", "echo run from a cell")
        assert capsys.readouterr().out == "run from a cell\n[cell exited with code 0]\n"
        shell.run_line_magic("config", f'ContainerMagics.store_root = "{tmp_path / "root"}"')  # "local" here
        shell.run_line_magic("config", f'ContainerMagics.run_root = "{tmp_path / "run"}"')
        panel = magic("panel nb")  # the panel and the dashboard work on the connection
        assert (panel.header.engine, panel.header.status, panel.header.targets) == ("lab", "exited", ["local"])
        panel.close()
        board = magic("dashboard")
        assert board.table.engines == ["local", "lab"] and [r["name"] for r in board.table.rows] == ["nb"]
        board.close()
        with pytest.raises(Exception, match="%container diagram: it shows this host.s runc and conmon processes"):
            magic("diagram nb")
        with pytest.raises(Exception, match="%%container write: not supported by the remote engine yet"):
            shell.run_cell_magic("container", "write nb:/tmp/x", "data")
        magic("rm nb")
        assert magic("ps -a") == []
        assert service.remote("ps", "-a", "-q").stdout == ""
    finally:
        shell.run_line_magic("config", 'ContainerMagics.connection = ""')
        shell.run_line_magic("config", 'ContainerMagics.store_root = ""')
        shell.run_line_magic("config", 'ContainerMagics.run_root = ""')
        shell.run_line_magic("unload_ext", "kernelext")


@pytest.fixture(scope="module")
def ssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    if not os.path.exists(SSHD):
        pytest.fail("openssh-server is not installed (scripts/setup.sh installs it)")
    server = sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()


def test_the_same_over_ssh(service: PodmanService, ssh: SshServer, tmp_path: Path) -> None:
    """ssh://root@127.0.0.1:PORT/path/podman.sock with an identity file: a connection like any other."""
    url = f"ssh://root@127.0.0.1:{ssh.port}{service.socket}"
    env = {**private_store(tmp_path), "KERNELEXT_SSH_CONFIG": str(ssh.client_config)}
    added = kernelext("system", "connection", "add", "--identity", str(ssh.identity), "far", url, env=env)
    assert added.returncode == 0, added.stderr
    listed = subprocess.run([PODMAN, "system", "connection", "ls", "--format", "json"], capture_output=True,
                            text=True, env={**os.environ, **env}).stdout
    assert [(c["Name"], c["URI"], c["Identity"]) for c in json.loads(listed)] == [("far", url, str(ssh.identity))]
    run = lambda *argv: kernelext("--connection", "far", *argv, env=env)
    attached = run("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (attached.returncode, attached.stdout, attached.stderr) == (4, "out\n", "err\n")
    assert run("run", "-d", "--name", "tunnelled", "busybox", "sleep", "1000").returncode == 0
    assert run("ps", "--format", "{{.Names}}").stdout == "tunnelled\n"
    (tmp_path / "f.txt").write_text("through ssh\n")
    assert run("cp", str(tmp_path / "f.txt"), "tunnelled:/tmp/f.txt").returncode == 0
    assert run("exec", "tunnelled", "cat", "/tmp/f.txt").stdout == "through ssh\n"
    assert run("cp", "tunnelled:/tmp/f.txt", str(tmp_path / "back.txt")).returncode == 0
    assert (tmp_path / "back.txt").read_text() == "through ssh\n"
    assert run("rm", "-f", "-t", "0", "tunnelled").stdout == "tunnelled\n"
    # a key the server does not know: one line with ssh's reason, at once
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    refused = kernelext("--url", url, "--identity", str(other), "ps", env=env)
    assert refused.returncode == 125 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(f"Error: unable to connect to Podman socket ({url}): ")
    assert "Permission denied" in refused.stderr
    assert not list(Path(tempfile.gettempdir()).glob("kernelext-ssh-*/podman.sock"))  # tunnels closed


COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done"


def _counts(result: subprocess.CompletedProcess[str]) -> list[int]:
    return [int(line) for line in result.stdout.split()]


def _continues(counts: list[int], before: int) -> bool:
    """The counter counted on from where it was checkpointed: no restart from 0, no gap, past ``before``."""
    return counts == list(range(len(counts))) and len(counts) > before


def test_a_counter_migrates_remote_to_local_and_back(store: Store, service: PodmanService, tmp_path: Path) -> None:
    """checkpoint --export through the remote engine, restore --import on the local one, and the reverse:
    the archive is podman's layout both ways (docs/architecture.md §4), the count goes on."""
    assert remote(service, "run", "-d", "--name", "counter", "busybox", "sh", "-c", COUNTER).returncode == 0
    assert wait_until(lambda: len(_counts(remote(service, "logs", "counter"))) >= 5)
    there = tmp_path / "remote.tar"
    exported = remote(service, "checkpoint", "--export", str(there), "counter")
    assert (exported.returncode, exported.stdout) == (0, "counter\n"), exported.stderr
    before = len(_counts(remote(service, "logs", "counter")))
    assert remote(service, "inspect", "--format", "{{.State.Status}}", "counter").stdout == "exited\n"
    assert remote(service, "rm", "counter").returncode == 0
    restored = store.cli("restore", "--import", str(there))
    assert restored.returncode == 0, restored.stderr
    assert wait_until(lambda: _continues(_counts(store.cli("logs", "counter")), before + 5))
    assert store.cli("inspect", "--format", "{{.State.Status}}", "counter").stdout == "running\n"
    # and back: the same counter, checkpointed by the local engine, restored by podman's service.
    here = tmp_path / "local.tar"
    assert store.cli("checkpoint", "--export", str(here), "counter").returncode == 0
    before = len(_counts(store.cli("logs", "counter")))
    assert store.cli("rm", "counter").returncode == 0
    back = remote(service, "restore", "--import", str(here))
    assert back.returncode == 0 and len(back.stdout.strip()) == 64, back.stderr  # the new container's ID
    assert wait_until(lambda: _continues(_counts(remote(service, "logs", "counter")), before + 5))
    assert remote(service, "rm", "-f", "-t", "0", "counter").stdout == "counter\n"


def test_follow_events_stats_and_wait(store: Store, service: PodmanService) -> None:
    """logs -f streams until the container exits; events, stats, kill and wait, next to the local engine."""
    script = "for i in 1 2 3; do echo $i; sleep 0.2; done"
    for result in both(store, service, "run", "-d", "--name", "counting", "busybox", "sh", "-c", script):
        assert result.returncode == 0, result.stderr
    local, far = both(store, service, "logs", "-f", "counting")
    assert (local.returncode, local.stdout) == (far.returncode, far.stdout) == (0, "1\n2\n3\n")
    local, far = both(store, service, "events", "--stream=false", "--filter", "container=counting", "--format",
                      "{{.Status}} {{.Name}}")
    # podman records a "cleanup" the local engine does not: compare the lifecycle's own events
    lifecycle = lambda r: [e for e in r.stdout.splitlines() if e.split()[0] in ("create", "start", "died")]
    assert lifecycle(far) == lifecycle(local) == ["create counting", "start counting", "died counting"]
    for result in both(store, service, "run", "-d", "--name", "idle", "busybox", "sleep", "1000"):
        assert result.returncode == 0, result.stderr
    stats = remote(service, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "idle")
    assert (stats.returncode, stats.stdout) == (0, "idle 1\n"), stats.stderr
    waiting = subprocess.Popen([*kernelext_argv(service), "wait", "idle"], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "KERNELEXT_FORKSERVER": "0", **private_store(service.directory)})
    assert remote(service, "kill", "idle").stdout == "idle\n"
    assert waiting.communicate(timeout=60)[0] == "137\n"
    assert store.cli("kill", "idle").returncode == 0 and store.cli("wait", "idle").stdout == "137\n"
    for result in both(store, service, "rm", "-a"):
        assert result.returncode == 0, result.stderr


def kernelext_argv(service: PodmanService) -> list[str]:
    return [sys.executable, "-m", "kernelext", "--url", service.url]


def test_images_through_the_engine_api(service: PodmanService) -> None:
    """The engine's image methods: list, remove a tag."""
    from kernelext.connections import Connection
    from kernelext.domain.engine import engine_for

    assert service.remote("tag", "localhost/busybox:latest", "localhost/extra:1").returncode == 0
    engine = engine_for(Connection("lab", service.url))
    try:
        images = {name: image for image in engine.images() for name in image.names}
        assert {"localhost/busybox:latest", "localhost/extra:1"} <= set(images)
        busybox = images["localhost/busybox:latest"]
        assert (busybox.engine, len(busybox.id), busybox.size > 1_000_000) == ("lab", 64, True)
        # the image kernelext saved and podman loaded keeps its ID (its config's digest) on both engines
        assert busybox.id == service.remote("inspect", "--format", "{{.Id}}", "localhost/busybox").stdout.strip()
        from kernelext.core.runtime import Runtime
        from kernelext.domain.local import LocalEngine

        with Runtime(service.directory.parent / "kernelext" / "root",
                     service.directory.parent / "kernelext" / "run") as rt:
            assert [i.id for i in LocalEngine(rt).images() if "busybox" in i.names] == [busybox.id]
        assert engine.remove_image("localhost/extra:1") == ["Untagged: localhost/extra:1"]
        assert "localhost/extra:1" not in service.remote("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
        with pytest.raises(LookupError, match="extra"):
            engine.remove_image("localhost/extra:1")
    finally:
        engine.close()


def test_image_commands_through_the_cli(store: Store, service: PodmanService) -> None:
    """images, image exists, tag, image inspect, rmi: the same lines on both engines, and podman's own."""
    for tagged in both(store, service, "tag", "busybox", "extra:1"):
        assert tagged.returncode == 0, tagged.stderr
    fmt = "{{.Repository}}:{{.Tag}} {{.ID}}"
    local, far = both(store, service, "images", "--format", fmt)
    assert far.returncode == 0 and far.stdout == service.remote("images", "--format", fmt).stdout, far.stderr
    assert local.stdout == far.stdout  # the busybox kernelext saved keeps its ID on the service
    assert sorted(line.split()[0] for line in far.stdout.splitlines()) == ["localhost/busybox:latest",
                                                                           "localhost/extra:1"]
    for engine, run in (("local", store.cli), ("remote", lambda *a: remote(service, *a))):
        assert [run("image", "exists", name).returncode for name in ("extra:1", "nope")] == [0, 1], engine
        assert run("images", "-q", "extra").stdout == far.stdout.split()[1] + "\n", engine
        assert "localhost/extra:1\n" in run("images", "--filter", "reference=*extra*", "--format",
                                            "{{.Repository}}:{{.Tag}}").stdout, engine
        assert run("image", "inspect", "--format", "{{.Id}}", "extra:1").stdout.strip().startswith(
            far.stdout.split()[1]), engine
        removed = run("rmi", "extra:1")
        assert (removed.returncode, removed.stdout) == (0, "Untagged: localhost/extra:1\n"), (engine, removed)
        missing = run("rmi", "extra:1")
        assert missing.returncode == 1 and missing.stderr.startswith("Error: ") and "extra" in missing.stderr
    assert "extra" not in service.remote("images").stdout
    # an image a container uses: podman's exit code 2 on both
    for engine, run in (("local", store.cli), ("remote", lambda *a: remote(service, *a))):
        assert run("create", "--name", "user", "busybox").returncode == 0
        in_use = run("rmi", "busybox")
        assert in_use.returncode == 2 and in_use.stderr.count("\n") == 1, (engine, in_use)


def test_pull_by_the_service(service: PodmanService, registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    """The service pulls (from where it stands): the busybox kernelext saved, pushed to a loopback registry."""
    from kernelext.connections import Connection
    from kernelext.domain.engine import engine_for

    pushed = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"docker-archive:{service.directory}/busybox.tar",
                             f"docker://{registry.ref('pulled:1')}"], capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    engine = engine_for(Connection("", service.url))
    try:
        ident = engine.pull(registry.ref("pulled:1"), tls_verify=False)
        assert ident in [i.id for i in engine.images() if registry.ref("pulled:1") in i.names]
        with pytest.raises(KernelextError) as refused:  # https to a plain-http registry: podman's refusal
            engine.pull(registry.ref("pulled:1"))
        assert "\n" not in str(refused.value)
        # the same image as localhost/busybox (its ID kept through the registry): only untagged
        assert engine.remove_image(registry.ref("pulled:1")) == [f"Untagged: {registry.ref('pulled:1')}"]
    finally:
        engine.close()


def test_all_latest_and_filters_match_the_local_engine(store: Store, service: PodmanService) -> None:
    for name in ("older", "newer"):
        for result in both(store, service, "run", "-d", "--name", name, "--label", f"role={name}", "busybox",
                           "sleep", "1000"):
            assert result.returncode == 0, result.stderr
    for argv in (("ps", "--filter", "name=newer", "--format", "{{.Names}}"),
                 ("ps", "--filter", "label=role=older", "--format", "{{.Names}}"),
                 ("ps", "--last", "1", "--format", "{{.Names}}"),
                 ("stop", "--latest", "-t", "0"),
                 ("ps", "--format", "{{.Names}}"),
                 ("stop", "--all", "-t", "0"),
                 ("ps", "-a", "--format", "{{.Names}} {{.State}}"),
                 ("stop", "--latest", "newer"),
                 ("rm", "--all")):
        names = [_id_names(run) for run in (store.cli, lambda *a: remote(service, *a))]
        local, far = both(store, service, *argv)
        # --all and --latest print IDs (podman's): each engine's own, shown here by name
        shown = ["".join(names[i].get(line, line + "\n") for line in r.stdout.splitlines())
                 for i, r in enumerate((local, far))]
        assert (local.returncode, shown[0], local.stderr) == (far.returncode, shown[1], far.stderr), argv
    assert remote(service, "ps", "-a", "-q").stdout == ""


def _id_names(run: Any) -> dict[str, str]:
    listed = run("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}").stdout.split()
    return {ident: f"{name}\n" for ident, name in zip(listed[::2], listed[1::2], strict=True)}


def test_create_start_restart_kill_match_the_local_engine(store: Store, service: PodmanService) -> None:
    for result in both(store, service, "create", "--name", "made", "-e", "GREETING=hi", "-w", "/tmp", "busybox",
                       "sh", "-c", "echo $GREETING from $(pwd); exec sleep 1000"):
        assert result.returncode == 0 and len(result.stdout.strip()) == 64, result.stderr
    for argv in (("inspect", "--format", "{{.State.Status}}", "made"), ("start", "made"),
                 ("inspect", "--format", "{{.State.Status}}", "made"), ("restart", "-t", "0", "made"),
                 ("kill", "-s", "KILL", "made"), ("wait", "made"), ("logs", "made"), ("start", "nope"),
                 ("kill", "-s", "NOSIG", "made"), ("rm", "made")):
        local, far = both(store, service, *argv)
        assert (local.returncode, local.stdout, local.stderr) == (far.returncode, far.stdout, far.stderr), argv


def test_exec_detached(store: Store, service: PodmanService) -> None:
    for result in both(store, service, "run", "-d", "--name", "bg", "busybox", "sleep", "1000"):
        assert result.returncode == 0, result.stderr
    for run in (store.cli, lambda *a: remote(service, *a)):
        started = run("exec", "-d", "bg", "sh", "-c", "sleep 3; echo done > /tmp/flag")
        assert started.returncode == 0 and len(started.stdout.strip()) == 64, started.stderr  # the session's ID
        assert run("exec", "bg", "cat", "/tmp/flag").returncode != 0  # it has not finished yet
        assert wait_until(lambda: run("exec", "bg", "cat", "/tmp/flag").stdout == "done\n", timeout=30)  # noqa: B023
