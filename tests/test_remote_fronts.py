"""Front ends on a remote engine against real podman services (Debian's podman 4.3): ``attach`` and
``start -a`` of a container without a TTY (CLI and magics, compared with the local engine), the dashboard
magic on several connections, the file browser and the resource monitor through the service's archive and
stats endpoints (docs/architecture.md §16).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_remote
from podmanservice import PODMAN, PodmanService, kernelext, serve
from test_remote import private_store

from conftest import Store, wait_until

#: test_remote's fixtures: a podman service for the module, and no container left by a test.
podman, service, ssh = test_remote.podman, test_remote.service, test_remote.ssh
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
        def run(*a: str, argv: list[str] = argv, env: dict[str, str] | None = env) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*argv, *a], capture_output=True, text=True, env=env, timeout=60)
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


@pytest.fixture
def magics(service: PodmanService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``%container`` in an IPython shell: the connection "lab" (the service) in a private connection store, the
    local store in ``tmp_path``; returns the line magic."""
    from IPython.core.interactiveshell import InteractiveShell

    shutil.copy(service.directory / "containers.conf", tmp_path / "containers.conf")
    for name, value in private_store(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KERNELEXT_FORKSERVER", "0")
    assert kernelext("system", "connection", "add", "lab", service.url).returncode == 0
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kernelext")
    shell.run_line_magic("config", f'ContainerMagics.store_root = "{tmp_path / "root"}"')
    shell.run_line_magic("config", f'ContainerMagics.run_root = "{tmp_path / "run"}"')
    try:
        yield lambda line: shell.run_line_magic("container", line)
    finally:
        shell.run_line_magic("config", 'ContainerMagics.connection = ""')
        shell.run_line_magic("container", "rm -f -a -t 0")  # the local store's, whatever the test left
        for trait, value in (("store_root", '""'), ("run_root", '""'), ("dashboard_connections", "[]")):
            shell.run_line_magic("config", f"ContainerMagics.{trait} = {value}")
        shell.run_line_magic("unload_ext", "kernelext")


def test_magics_start_a_and_attach_without_tty(magics: Any, service: PodmanService,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from IPython import get_ipython

    shell = get_ipython()
    results = {}
    for where, prefix in (("local", ""), ("remote", "--connection lab ")):
        magics(f"{prefix}create --name sa busybox sh -c 'echo out; echo err >&2; exit 3'")
        capsys.readouterr()
        magics(f"{prefix}start -a sa")  # streamed into the cell, then the exit line
        captured = capsys.readouterr()
        started = (captured.out, captured.err, shell.user_ns["_exit_code"])
        magics(f"{prefix}start -ai sa")  # -i: a cell has no stdin to send; the output streamed as with -a
        captured = capsys.readouterr()
        assert (captured.out, captured.err, shell.user_ns["_exit_code"]) == started
        magics(f"{prefix}run -d --name at busybox {' '.join(repr(a) if ' ' in a else a for a in GATED)}")
        area = magics(f"{prefix}attach at")  # a live area at once; the output comes as the container writes
        magics(f"{prefix}exec at touch /tmp/go")
        assert wait_until(lambda area=area: area.footer != "", timeout=30), "the attach never ended"
        results[where] = (started, sorted(area.lines), area.footer)
        area.close()
        magics(f"{prefix}rm -f sa at")
    assert results["remote"] == results["local"]
    assert results["local"] == (("out\n[sa exited with code 3]\n", "err\n", 3),
                                sorted([("stdout", "one"), ("stderr", "two")]), "[at exited with code 5]")


@pytest.fixture(scope="module")
def podman2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanService]:
    """A second podman service (its own store and socket): the dashboard's second remote machine."""
    yield from serve(tmp_path_factory.mktemp("rfront2"))


def test_dashboard_magic_on_several_connections(magics: Any, service: PodmanService, podman2: PodmanService,
                                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from IPython import get_ipython

    assert kernelext("system", "connection", "add", "lab2", podman2.url).returncode == 0
    try:
        service.remote("run", "-d", "--name", "on-lab", "busybox", "sleep", "1000", check=True)
        podman2.remote("run", "-d", "--name", "on-lab2", "busybox", "sleep", "1000", check=True)
        magics("create --name here busybox true")

        def shown(board: Any) -> tuple[list[str], list[tuple[str, str]]]:
            assert wait_until(lambda: len(board.table.rows) == len(board.engines))
            rows = sorted((r["engine"], r["name"]) for r in board.table.rows)
            board.close()
            return board.table.engines, rows
        every = (["local", "lab", "lab2"], [("lab", "on-lab"), ("lab2", "on-lab2"), ("local", "here")])
        assert shown(magics("dashboard -c lab --connection lab2")) == every
        assert shown(magics("--connection lab dashboard -c lab2")) == every
        # every connection of podman's store; one out of reach is skipped with a line, the others shown
        assert kernelext("system", "connection", "add", "gone", f"unix://{tmp_path}/none.sock").returncode == 0
        capsys.readouterr()
        assert shown(magics("dashboard --all-connections")) == every
        assert capsys.readouterr().err.startswith("dashboard: gone skipped: unable to connect to Podman socket (gone)")
        get_ipython().run_line_magic("config", 'ContainerMagics.dashboard_connections = ["lab2"]')
        assert shown(magics("dashboard")) == (["local", "lab2"], [("lab2", "on-lab2"), ("local", "here")])
        with pytest.raises(Exception, match="unable to connect to Podman socket \\(gone\\)"):
            magics("dashboard -c gone")  # named: an error, not skipped
        with pytest.raises(Exception, match='connection "nope" not found'):
            magics("dashboard -c nope")
        with pytest.raises(Exception, match="unknown flag: --nope"):
            magics("dashboard --nope")
    finally:
        magics("rm -f here")
        podman2.podman("rm", "-fa", "-t", "0", check=False)


@pytest.fixture
def lab(service: PodmanService) -> Iterator[Any]:
    from kernelext.connections import Connection
    from kernelext.domain.engine import engine_for

    engine = engine_for(Connection("lab", service.url))
    yield engine
    engine.close()


BROWSED = ["sh", "-c", ("mkdir -p /srv/data; head -c 3000000 /dev/zero > /srv/data/big; ln -s /etc /srv/etc-link; "
                        "touch /srv/ready; exec sleep 1000")]


def test_file_browser_on_a_remote_engine(store: Store, service: PodmanService, lab: Any) -> None:
    """The browser through podman's archive endpoints: the same listing as the local engine's of the same image,
    a link to a folder opened inside the container, download, upload, new folder, delete."""
    from kernelext.domain.local import LocalEngine
    from kernelext.widgets import FileBrowser

    store.runtime.run("busybox", BROWSED, name="browsed")
    lab.run("busybox", command=BROWSED, name="browsed")
    local = LocalEngine(store.runtime)
    for engine in (local, lab):
        assert wait_until(lambda engine=engine: engine.exec("browsed", ["test", "-e", "/srv/ready"],
                                                            output=lambda *_: None) == 0)
    listings, roots = {}, {}
    for engine in (local, lab):
        browser = FileBrowser(engine.files("browsed"), "/srv")
        try:
            # a folder's size: podman's listing is a tar, which records none (the browser shows none for folders)
            listings[engine.name] = [[{**e, "size": 0} if e["dir"] else e for e in browser.entries]]
            browser.browse("etc-link")  # inside the container: its /etc, never this host's
            listings[engine.name].append((browser.cwd, "passwd" in {e["name"] for e in browser.entries},
                                          "shadow" in {e["name"] for e in browser.entries}))
            browser.browse("/bin")
            listings[engine.name].append([{**e, "size": 0} if e["dir"] else e for e in browser.entries])
            browser.browse("/nope")
            listings[engine.name].append(browser.message.split(": ")[-1])
            browser.browse("/")
            roots[engine.name] = {e["name"] for e in browser.entries}
        finally:
            browser.close()
    assert listings["lab"] == listings["local"]
    assert {e["name"]: (e["dir"], e["link"]) for e in listings["lab"][0]} == {"data": (True, ""), "etc-link": (False, "/etc"),
                                                                               "ready": (False, "")}
    assert listings["lab"][1] == ("/srv/etc-link", True, False)
    assert listings["lab"][3] == "no such file or directory"
    # podman's archive of the root leaves the kernel's views out (docs/architecture.md §16)
    assert roots["local"] - roots["lab"] == {"dev", "proc", "sys"} and roots["lab"] < roots["local"]

    browser = FileBrowser(lab.files("browsed"), "/srv/data")
    sent: list[tuple[dict[str, Any], list[bytes]]] = []
    browser.send = lambda content, buffers=None: sent.append((content, list(buffers or [])))  # type: ignore[method-assign]
    try:
        browser.download("big")  # a file as itself, in chunks
        assert sent[0][0]["type"] == "download-start" and sent[-1][0]["type"] == "download-end"
        assert b"".join(b for c, bufs in sent if c["type"] == "download-chunk" for b in bufs) == b"\0" * 3000000
        assert browser.progress == 1.0
        payload = b"uploaded\n" * 300_000
        for offset in range(0, len(payload), 1 << 20):
            browser._on_message(browser, {"type": "upload", "name": "../../escape.txt", "total": len(payload),
                                          "last": offset + (1 << 20) >= len(payload)}, [payload[offset:offset + (1 << 20)]])
        assert "escape.txt" in {e["name"] for e in browser.entries}
        assert service.remote("exec", "browsed", "md5sum", "/srv/data/escape.txt").stdout.split()[0] == \
            __import__("hashlib").md5(payload).hexdigest()
        browser.make_dir("made")
        assert service.remote("exec", "browsed", "test", "-d", "/srv/data/made").returncode == 0
        with pytest.raises(Exception, match="\"/srv/data/made\" already exists on container browsed \\(engine 'lab'\\)"):
            browser.make_dir("made")
        sent.clear()
        browser.browse("/srv")
        browser.download("data")  # a folder as a tar
        assert sent[0][0] == {"type": "download-start", "name": "data.tar", "mime": "application/x-tar"}
        import tarfile

        with tarfile.open(fileobj=io.BytesIO(b"".join(b for c, bufs in sent if c["type"] == "download-chunk"
                                                      for b in bufs))) as tar:
            assert {"data/big", "data/escape.txt", "data/made"} <= set(tar.getnames())
        browser.delete("data")
        assert "data" not in {e["name"] for e in browser.entries}
        assert service.remote("exec", "browsed", "test", "-e", "/srv/data").returncode == 1
        browser.delete("etc-link")  # the link, not what it points to
        assert service.remote("exec", "browsed", "test", "-e", "/etc/passwd").returncode == 0
        assert repr(browser) == "FileBrowser(browsed:/srv)"
        assert service.remote("stop", "-t", "0", "browsed").returncode == 0
        with pytest.raises(Exception, match="removing \"/srv/ready\" on container browsed \\(engine 'lab'\\): the "
                                            "container must be running"):
            browser.delete("ready")
        browser.browse("/srv")  # a stopped container's files are still listed (the service mounts it)
        assert {e["name"] for e in browser.entries} == {"ready"}
    finally:
        browser.close()


def test_resource_monitor_on_a_remote_engine(service: PodmanService, lab: Any) -> None:
    from kernelext.widgets import ResourceMonitor

    lab.run("busybox", command=["sh", "-c", "while true; do :; done"], name="busy")
    lab.run("busybox", command=["sleep", "1000"], name="idle")
    monitor = ResourceMonitor("busy", engine=lab, interval=0.2, window=5)
    resting = ResourceMonitor("idle", engine=lab, interval=0.2, window=5)
    try:
        assert wait_until(lambda: len(monitor.samples) == 5 and len(resting.samples) == 5, timeout=20)
        busy, rest = max(s[1] for s in monitor.samples), max(s[1] for s in resting.samples)
        assert busy > 5 > rest, (busy, rest)
        assert all(sample[2] > 0 for sample in monitor.samples)
        assert repr(monitor) == "ResourceMonitor(busy)"
        assert service.remote("stop", "-t", "0", "busy").returncode == 0
        kept = list(monitor.samples)
        time.sleep(0.5)
        assert monitor.samples == kept  # stopped: the plot keeps its last samples
    finally:
        monitor.close()
        resting.close()


def test_widget_magics_on_a_connection(magics: Any, service: PodmanService) -> None:
    """``files`` and ``monitor`` on the connection; the widgets of what only the local store has refuse it in
    one line with the reason."""
    from IPython import get_ipython

    from kernelext.widgets import FileBrowser, ResourceMonitor

    magics("--connection lab run -d --name web busybox sleep 1000")
    browser = magics("--connection lab files web")
    monitor = magics("--connection lab monitor web")
    try:
        assert isinstance(browser, FileBrowser) and {"bin", "etc"} <= {e["name"] for e in browser.entries}
        assert isinstance(monitor, ResourceMonitor) and wait_until(lambda: len(monitor.samples) >= 1)
    finally:
        browser.close()
        monitor.close()
    for widget, reason in (("diagram", "it shows this host's runc and conmon processes"),
                           ("timeline", "it shows kernelext's own checkpoint history")):
        with pytest.raises(Exception, match=f"%container {widget}: {reason}.* \\(engine 'lab'\\)"):
            magics(f"--connection lab {widget} web")
    get_ipython().run_line_magic("config", 'ContainerMagics.connection = "lab"')
    try:
        with pytest.raises(Exception, match="%container diagram: it shows this host's runc"):
            magics("diagram web")
        files = magics("files web")  # the configured connection's
        assert isinstance(files, FileBrowser) and files.container.engine.name == "lab"
        files.close()
    finally:
        get_ipython().run_line_magic("config", 'ContainerMagics.connection = ""')


def test_engines_say_the_same_allowed_actions(store: Store, service: PodmanService, lab: Any) -> None:
    """The panel's buttons are the engine's rule: the same state gives the same actions on either engine."""
    from kernelext.domain.local import LocalEngine

    local = LocalEngine(store.runtime)
    seen = {}
    for engine in (local, lab):
        engine.create("busybox", command=["sleep", "1000"], name="st")
        states = [engine.state("st")]
        for step in (engine.start, engine.pause, engine.unpause, lambda names, e=engine: e.stop(names, timeout=0)):
            assert [r.error for r in step(["st"])] == [None]
            states.append(engine.state("st"))
        seen[engine.name] = [(s.status, s.exited, list(s.allowed)) for s in states]
        engine.rm(["st"], force=True)
    assert seen["lab"] == seen["local"]
    assert [(status, "start" in allowed, "unpause" in allowed) for status, _, allowed in seen["lab"]] == [
        ("created", True, False), ("running", False, False), ("paused", False, True), ("running", False, False),
        ("exited", True, False)]


@pytest.mark.parametrize("script, detached", [
    ("touch /tmp/ready; exec sleep 1000", True),                                  # PID 1 ignores SIGINT: detached
    ("trap 'echo got INT; exit 130' INT; touch /tmp/ready; while :; do sleep 0.1; done", False),  # trapped: its code
])
def test_interrupted_start_a_cell_as_locally(magics: Any, service: PodmanService, capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path, script: str, detached: bool) -> None:
    """The cell's stop button during a remote ``start -a``: SIGINT to the container (podman's sig-proxy), then the
    exit line, or after the grace period a detach that leaves it running (the local engine's behaviour)."""
    import threading

    seen = {}
    for where, prefix in (("local", ""), ("remote", "--connection lab ")):
        magics(f'{prefix}create --name intr busybox sh -c "{script}"')
        main = threading.get_ident()
        argv = ([sys.executable, "-m", "kernelext", "--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run")]
                if where == "local" else [PODMAN, "--url", service.url])

        def interrupt(argv: list[str] = argv, main: int = main) -> None:
            wait_until(lambda: subprocess.run([*argv, "exec", "intr", "test", "-e", "/tmp/ready"], env=service.env,
                                              capture_output=True, timeout=60).returncode == 0, timeout=30)
            time.sleep(0.5)  # the cell is in its stream by now (as tests/test_magics.py's interrupt test)
            signal.pthread_kill(main, signal.SIGINT)
        thread = threading.Thread(target=interrupt)
        capsys.readouterr()
        thread.start()
        magics(f"{prefix}start -a intr")
        thread.join()
        out = capsys.readouterr().out
        running = magics(f"{prefix}inspect --format {{{{.State.Running}}}} intr")
        seen[where] = (out.replace(prefix, ""), running)
        magics(f"{prefix}rm -f intr")
    assert seen["remote"] == seen["local"]
    assert seen["local"] == ((("[detached from intr: it did not stop on SIGINT and keeps running; %container attach "
                               "intr or %container stop intr]\n"), "true") if detached else
                             ("got INT\n[intr exited with code 130]\n", "false"))


def test_start_a_of_an_rm_container_gives_its_code_after_removal(store: Store, service: PodmanService, lab: Any) -> None:
    """``start -a`` of a ``--rm`` container: the service may remove it before its exit code is asked; the code is
    then its ``died`` event's (podman's remote client does the same)."""
    lab.create("busybox", command=["sh", "-c", "echo hi; exit 3"], name="gone", auto_remove=True)
    attachment = lab.attach_output("gone", start=True)
    try:
        assert list(attachment.packets()) and attachment.recv() is None
    finally:
        attachment.close()
    service.remote("rm", "-f", "gone")  # removed, whether the service got there first or not
    assert not lab.exists("gone")
    assert attachment.wait() == 3
    local = store.cli("create", "--rm", "--name", "gone", "busybox", "sh", "-c", "echo hi; exit 3")
    assert local.returncode == 0
    remote = subprocess.run([*remote_argv(service), "create", "--rm", "--name", "gone", "busybox", "sh", "-c",
                             "echo hi; exit 3"], capture_output=True, text=True, env=cli_env(service), timeout=60)
    assert remote.returncode == 0
    results = [(r.returncode, r.stdout, r.stderr) for r in (
        store.cli("start", "-a", "gone"),
        subprocess.run([*remote_argv(service), "start", "-a", "gone"], capture_output=True, text=True,
                       env=cli_env(service), timeout=60))]
    assert results == [(3, "hi\n", "")] * 2


@pytest.mark.parametrize("mode", [stat.S_IFDIR | 0o755, stat.S_IFCHR | 0o620, stat.S_IFBLK | 0o660,
                                  stat.S_IFLNK | 0o777, stat.S_IFREG | stat.S_ISUID | 0o755, stat.S_IFIFO | 0o600])
def test_a_path_stat_reads_back_as_it_was_written(mode: int) -> None:
    """podman's path stat (Go's FileMode: a character device's bits include a block device's) back to st_mode."""
    from kernelext.core.filecopy import FileInfo

    info = FileInfo("x", 7, mode, 1_700_000_000.5, "", stat.S_ISDIR(mode))
    assert FileInfo.from_json(info.to_json()) == info


def test_remote_attach_output_is_live(service: PodmanService) -> None:
    """The CLI writes each line as the remote container writes it: the first line is read while the container
    still waits for its second trigger."""
    import selectors

    argv, env = remote_argv(service), cli_env(service)
    subprocess.run([*argv, "run", "-d", "--name", "live", "busybox", "sh", "-c",
                    ("while [ ! -e /tmp/a ]; do sleep 0.05; done; echo first; "
                    "while [ ! -e /tmp/b ]; do sleep 0.05; done; echo second; exit 4")],
                   check=True, capture_output=True, env=env, timeout=60)
    proc = subprocess.Popen([*argv, "attach", "live"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert wait_until(lambda: "attach" in service.remote("events", "--stream=false", "--filter", "event=attach",
                                                             "--filter", "container=live", "--format",
                                                             "{{.Status}}").stdout, timeout=30)
        service.remote("exec", "live", "touch", "/tmp/a", check=True)
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=30), "the first line did not come while the container ran"
        assert proc.stdout.readline() == b"first\n" and proc.poll() is None
        service.remote("exec", "live", "touch", "/tmp/b", check=True)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out, err) == (4, b"second\n", b"")


def test_dashboard_over_ssh(magics: Any, service: PodmanService, ssh: test_remote.SshServer,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``%container dashboard -c far`` where "far" is an ``ssh://`` connection (an identity file, the test's
    sshd): the remote's containers listed beside the local store's, and followed live through the tunnel."""
    monkeypatch.setenv("KERNELEXT_SSH_CONFIG", str(ssh.client_config))
    url = f"ssh://root@127.0.0.1:{ssh.port}{service.socket}"
    assert kernelext("system", "connection", "add", "--identity", str(ssh.identity), "far", url).returncode == 0
    service.remote("run", "-d", "--name", "over-ssh", "busybox", "sleep", "1000", check=True)
    magics("create --name here busybox true")
    board = magics("dashboard -c far")
    try:
        assert board.table.engines == ["local", "far"]
        assert wait_until(lambda: sorted((r["engine"], r["name"]) for r in board.table.rows) == [
            ("far", "over-ssh"), ("local", "here")], timeout=30), board.table.rows
        # a container made meanwhile by podman itself shows up: the service's event stream through the tunnel
        service.remote("run", "-d", "--name", "later", "busybox", "sleep", "1000", check=True)
        assert wait_until(lambda: ("far", "later") in {(r["engine"], r["name"]) for r in board.table.rows},
                          timeout=30), board.table.rows
    finally:
        board.close()
        magics("rm -f here")
