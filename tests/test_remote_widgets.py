"""The widgets on podman's service (Debian's podman 4.3) through the remote engine: the panel's model (its
traits and button handlers), its state from the service's event stream, the dashboard's engines, "move to"
(docs/architecture.md §16). The panel in a real browser on both engines: tests/test_browser.py."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from podmanservice import PODMAN, PodmanService, serve

from kernelext.connections import Connection
from kernelext.domain.engine import Engine, engine_for

from conftest import Store, wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(PODMAN), reason="needs root and podman")]

COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done"
#: How soon an outside change shows in a panel (the service's event stream, then an inspect).
FOLLOW_S = 5.0


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanService]:
    yield from serve(tmp_path_factory.mktemp("rwidgets"))


@pytest.fixture
def lab(podman: PodmanService) -> Iterator[Engine]:
    """The service as the connection "lab"; no container left by the test."""
    engine = engine_for(Connection("lab", podman.url))
    yield engine
    engine.close()
    podman.podman("rm", "-fa", "-t", "0", check=False)


def status(podman: PodmanService, name: str) -> str:
    return podman.remote("inspect", "--format", "{{.State.Status}}", name).stdout.strip()


def test_panel_buttons_drive_a_remote_container(podman: PodmanService, lab: Engine) -> None:
    from kernelext.widgets import ContainerPanel

    lab.run("busybox", name="web", command=["sh", "-c", "echo hello; exec sleep 1000"])
    panel = ContainerPanel("web", engine=lab)
    try:
        header = panel.header
        assert (header.name, header.engine, header.status) == ("web", "lab", "running")
        assert header.image == "localhost/busybox:latest" and header.tty is False
        assert {"stop", "pause", "kill", "checkpoint"} <= set(header.allowed) and "start" not in header.allowed
        assert wait_until(lambda: "hello" in "".join(text for _, text in panel.output.lines), FOLLOW_S)
        panel.run_action("pause").join(30)
        assert (status(podman, "web"), header.status, header.message) == ("paused", "paused", "")
        assert "unpause" in header.allowed and "pause" not in header.allowed
        panel.run_action("unpause").join(30)
        assert status(podman, "web") == header.status == "running"
        panel.run_action("stop").join(30)
        assert status(podman, "web") == header.status == "exited"
        assert header.exited and "start" in header.allowed
        assert wait_until(lambda: "exited with code" in panel.output.footer, FOLLOW_S)
        panel.run_action("start").join(30)
        assert status(podman, "web") == header.status == "running"
        panel.run_action("checkpoint").join(60)
        assert (status(podman, "web"), header.message) == ("exited", "")
        assert "restore" in header.allowed
        panel.run_action("restore").join(60)
        assert (status(podman, "web"), header.status, header.message) == ("running", "running", "")
        # a button the state does not allow is not run (the browser's message is checked against it)
        panel._on_message(None, {"type": "action", "action": "start"}, [])
        assert header.busy == "" and status(podman, "web") == "running"
        # an error from the service: one line in the panel, which stays usable
        podman.remote("rm", "-f", "-t", "0", "web", check=True)
        assert wait_until(lambda: header.status == "removed", FOLLOW_S)
        assert header.allowed == []
    finally:
        panel.close()


def test_panel_follows_an_outside_change_through_the_event_stream(podman: PodmanService, lab: Engine) -> None:
    from kernelext.widgets import ContainerPanel

    lab.run("busybox", name="outside", command=["sleep", "1000"])
    panel = ContainerPanel("outside", engine=lab)
    try:
        assert panel.header.status == "running"
        assert podman.remote("pause", "outside").returncode == 0
        assert wait_until(lambda: panel.header.status == "paused", FOLLOW_S)
        assert podman.remote("unpause", "outside").returncode == 0
        assert wait_until(lambda: panel.header.status == "running", FOLLOW_S)
        assert podman.remote("stop", "-t", "0", "outside").returncode == 0
        assert wait_until(lambda: panel.header.status == "exited", FOLLOW_S)
        assert "start" in panel.header.allowed
        assert podman.remote("start", "outside").returncode == 0
        assert wait_until(lambda: panel.header.status == "running", FOLLOW_S)
    finally:
        panel.close()
    # closing ended its event stream's thread at once
    assert not [t for t in threading.enumerate() if t.name.startswith("kernelext-events-")]


def _counts(text: str) -> list[int]:
    return [int(n) for n in text.split()]


def test_dashboard_lists_both_engines_and_moves_a_counter_to_local(store: Store, podman: PodmanService,
                                                                     lab: Engine) -> None:
    from kernelext.widgets import ContainerPanel, Dashboard

    store.runtime.run("busybox", ["sleep", "1000"], name="here")
    lab.run("busybox", name="counter", command=["sh", "-c", COUNTER])
    board = Dashboard(store.runtime, connections=[lab])
    try:
        assert board.table.engines == ["local", "lab"] and repr(board) == "Dashboard(local, lab)"
        rows = {(r["engine"], r["name"]): r for r in board.table.rows}
        assert set(rows) == {("local", "here"), ("lab", "counter")}
        assert rows["lab", "counter"]["status"] == "running" and rows["lab", "counter"]["memory"]
        assert rows["lab", "counter"]["uptime"].startswith("Up ")
        # a row opens its panel on its own engine, which may move it to the other
        board._on_message(board.table, {"type": "open", "name": "counter", "engine": "lab"}, [])
        panel = board.panel_area.children[0]
        assert isinstance(panel, ContainerPanel)
        assert (panel.header.engine, panel.header.targets, panel.container) == ("lab", ["local"], None)
        assert wait_until(lambda: len(_counts("\n".join(text for _, text in panel.output.lines))) >= 5, FOLLOW_S)
        # "move to local" from the panel: checkpoint --export there, restore --import here, removed there
        panel._on_message(None, {"type": "move", "to": "local"}, [])
        assert wait_until(lambda: panel.header.engine == "local" and not panel.header.busy, 60)
        assert panel.header.message == "" and panel.header.status == "running"
        assert panel.header.targets == ["lab"] and panel.container is not None
        assert podman.remote("ps", "-a", "-q").stdout == ""
        before = len(_counts(local_output(store, "counter")))
        # it counts on, on the local store: no restart from 0, no gap
        assert wait_until(lambda: len(_counts(local_output(store, "counter"))) > before + 5, 20)
        counts = _counts(local_output(store, "counter"))
        assert counts == list(range(len(counts)))
        board.refresh()
        assert {(r["engine"], r["name"]) for r in board.table.rows} == {("local", "here"), ("local", "counter")}
        # a counter of the local store's moves to the service from its dashboard row, and counts on there
        # (not the same one back: docs/architecture.md §16, what the local core cannot checkpoint yet)
        store.runtime.run("busybox", ["sh", "-c", COUNTER], name="born")
        assert wait_until(lambda: len(_counts(local_output(store, "born"))) >= 5)
        board.move("born", "local", "lab").join(60)
        assert board.table.message == ""
        assert status(podman, "born") == "running" and not store.runtime.exists("born")
        before = len(_counts(podman.remote("logs", "born").stdout))
        assert wait_until(lambda: len(_counts(podman.remote("logs", "born").stdout)) > before + 5, 20)
        counts = _counts(podman.remote("logs", "born").stdout)
        assert counts == list(range(len(counts)))
        # a move the target refuses (the name is taken there) leaves it running where it was
        store.runtime.run("busybox", ["sh", "-c", COUNTER], name="clash")
        lab.run("busybox", name="clash", command=["sleep", "1000"])
        board.move("clash", "local", "lab").join(60)
        assert board.table.message.startswith("move clash to lab failed: ")
        assert "\n" not in board.table.message
        assert store.runtime.get("clash").status.value == "running"
        assert status(podman, "clash") == "running"
    finally:
        board.close()


def local_output(store: Store, name: str) -> str:
    """A local container's output so far."""
    return b"".join(line.data for line in store.runtime.get(name).logs()).decode()


@pytest.mark.parametrize("where", ["local", "lab"])
def test_event_and_log_streams_end_on_close(where: str, store: Store, lab: Engine) -> None:
    """Both engines' live streams: the events and the log lines as they come, and ``close()`` from another
    thread ends an iteration blocked on them."""
    from kernelext.domain.local import LocalEngine

    engine: Engine = LocalEngine(store.runtime) if where == "local" else lab
    ident = engine.run("busybox", name="streamed", command=["sh", "-c", "echo one; sleep 1000"]).id
    events = engine.watch_events(filters={"container": [ident]})
    logs = engine.follow_logs("streamed")
    seen: list[str] = []
    lines: list[bytes] = []
    readers = [threading.Thread(target=lambda: seen.extend(e.status for e in events)),
               threading.Thread(target=lambda: lines.extend(line.data for line in logs))]
    for reader in readers:
        reader.start()
    assert wait_until(lambda: lines == [b"one\n"], FOLLOW_S)
    engine.pause(["streamed"])
    assert wait_until(lambda: "pause" in seen, FOLLOW_S)
    events.close()
    logs.close()
    for reader in readers:
        reader.join(FOLLOW_S)
        assert not reader.is_alive()
    engine.rm(["streamed"], force=True, timeout=0)


def test_image_list_on_a_connection(podman: PodmanService, lab: Engine, store: Store, ip: object) -> None:
    """``%container --url URL imagelist``: the service's images, a row per name as the local widget's, and the
    containers made from each; refresh brings a change made meanwhile by podman itself."""
    from kernelext.widgets import ImageList

    lab.create("busybox", name="user1", command=["true"])
    lab.create("busybox", name="user2", command=["true"])
    widget = ip.run_line_magic("container", f"--url {podman.url} imagelist")  # type: ignore[attr-defined]
    try:
        assert isinstance(widget, ImageList)
        [row] = widget.rows
        busybox = podman.remote("image", "inspect", "--format", "{{.Id}}", "busybox").stdout.strip()
        assert (row["repository"], row["tag"], row["id"], row["containers"]) == (
            "localhost/busybox", "latest", busybox[:12], "user1, user2")
        # the same row shape and the same figures as the local widget's for the same image
        store.cli("create", "--name", "user1", "busybox")
        local = ImageList(store.runtime)
        try:
            [mine] = local.rows
            assert set(mine) == set(row) and (mine["repository"], mine["tag"], mine["containers"]) == (
                row["repository"], row["tag"], "user1")
        finally:
            local.close()
        podman.remote("tag", "busybox", "localhost/second:v2", check=True)
        podman.remote("rm", "user2", check=True)
        widget._on_message(widget, {"type": "refresh"}, [])
        assert sorted((r["repository"], r["tag"], r["containers"]) for r in widget.rows) == [
            ("localhost/busybox", "latest", "user1"), ("localhost/second", "v2", "user1")]
    finally:
        widget.close()
        podman.remote("rmi", "localhost/second:v2", check=False)
