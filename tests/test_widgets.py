"""Widgets at the Python level, with a recording comm: traits, custom messages,
buttons enabled per state, bounded streams. Real containers underneath."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import comm
import pytest
from comm.base_comm import BaseComm

from kernelext import ContainerStatus, KernelextError
from kernelext.core.state import allowed_actions
from kernelext.widgets import ContainerPanel, Dashboard, LifecycleDiagram, LiveOutput, lifecycle_svg

from conftest import Store, needs_root, wait_until

S = ContainerStatus


class RecordingComm(BaseComm):
    """Keeps every message a widget sends to the browser."""

    sent: ClassVar[list[dict[str, Any]]] = []

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:
        RecordingComm.sent.append({"msg_type": msg_type, "data": data, "comm_id": self.comm_id})


@pytest.fixture(autouse=True)
def recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    RecordingComm.sent = []
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: RecordingComm(*a, **k))
    yield RecordingComm.sent


def custom(messages: list[dict[str, Any]], widget: Any) -> list[dict[str, Any]]:
    """The custom messages (``widget.send``) sent for one widget."""
    return [m["data"]["content"] for m in messages if m["comm_id"] == widget.comm.comm_id
            and m["data"] and m["data"].get("method") == "custom"]


def states(messages: list[dict[str, Any]], widget: Any, trait: str) -> list[Any]:
    return [m["data"]["state"][trait] for m in messages if m["comm_id"] == widget.comm.comm_id and m["data"]
            and m["data"].get("method") == "update" and trait in m["data"].get("state", {})]


def test_live_output_stream_is_append_only_and_bounded(recording: list[dict[str, Any]]) -> None:
    out = LiveOutput("flood", max_lines=500, update_rate=20)
    payload = "".join(f"line {i}\n" for i in range(100_000)).encode()
    t0 = time.monotonic()
    for start in range(0, len(payload), 8192):
        out.feed("stdout", payload[start:start + 8192])
    out.finish("[done]")
    elapsed = time.monotonic() - t0
    appends = [c for c in custom(recording, out) if c["type"] == "append"]
    assert len(appends) <= 20 * elapsed + 3  # rate-limited
    assert sum(len(c["chunks"]) for c in appends) <= 500 * len(appends)  # each message bounded
    assert out.lines[-1] == ("stdout", "line 99999") and len(out.lines) == 500
    assert out.dropped == 100_000 - 500
    assert repr(out) == "LiveOutput(title='flood')"


def test_live_output_replays_its_buffer_for_a_new_view(recording: list[dict[str, Any]]) -> None:
    out = LiveOutput("replay", max_lines=3)
    out.feed("stdout", b"a\nb\n")
    out.feed("stderr", b"oops\npartial")
    out.flush()
    out._on_frontend_message(out, {"type": "replay"}, [])
    replay = [c for c in custom(recording, out) if c["type"] == "replay"][-1]
    assert [tuple(c) for c in replay["chunks"]] == [("stdout", "a"), ("stdout", "b"), ("stderr", "oops")]
    out.finish("")
    assert out.lines == [("stdout", "b"), ("stderr", "oops"), ("stderr", "partial")]


def test_live_output_skips_a_flood_without_losing_its_newest_lines(recording: list[dict[str, Any]]) -> None:
    """Only the newest lines are split: partial lines and UTF-8 characters cut across chunks survive the skipping."""
    rng = random.Random(4)
    output = [(rng.choice(("stdout", "stderr")), "".join(rng.choice("ab é€\n") for _ in range(rng.randint(0, 40))))
              for _ in range(3000)]
    expected: list[tuple[str, str]] = []
    partial = {"stdout": b"", "stderr": b""}
    out = LiveOutput("mixed", max_lines=50)
    for stream, text in output:
        data = text.encode()
        cut = rng.randint(0, len(data))  # may split a character
        out.feed(stream, data[:cut])
        out.feed(stream, data[cut:])
        *complete, partial[stream] = (partial[stream] + data).split(b"\n")
        expected += [(stream, line.decode()) for line in complete]
        if rng.random() < 0.01:
            assert out.lines == expected[-50:]  # split now and then, as a flush would
    out.finish("")
    expected += [(stream, rest.decode()) for stream, rest in partial.items() if rest]
    assert out.lines == expected[-50:] and out.dropped == len(expected) - 50


def test_a_burst_shorter_than_the_update_interval_is_one_message(recording: list[dict[str, Any]]) -> None:
    out = LiveOutput("burst", max_lines=10, update_rate=5)
    for i in range(100):
        out.feed("stdout", f"{i}\n".encode())
    out.finish("")
    [append] = custom(recording, out)
    assert append["dropped"] == 90 and [tuple(c) for c in append["chunks"]] == [("stdout", str(i)) for i in range(90, 100)]


def test_buttons_follow_the_state_machine() -> None:
    assert allowed_actions(S.RUNNING) == ["stop", "kill", "pause", "restart", "checkpoint"]
    assert allowed_actions(S.PAUSED) == ["kill", "unpause"]
    assert allowed_actions(S.EXITED) == ["start", "restart", "remove"]
    assert "restore" in allowed_actions(S.EXITED, checkpointed=True)
    assert allowed_actions(S.RUNNING, rootless=True) == ["stop", "kill", "restart"]
    assert "restore" not in allowed_actions(S.EXITED, checkpointed=True, rootless=True)
    # A normal user whose container has a writable v2 cgroup of its own pauses it (no checkpoint still).
    assert allowed_actions(S.RUNNING, rootless=True, freezable=True) == ["stop", "kill", "pause", "restart"]
    assert allowed_actions(S.PAUSED, rootless=True, freezable=True) == ["kill", "unpause"]


@needs_root
def test_panel_follows_state_changes_from_another_process(store: Store, recording: list[dict[str, Any]]) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", "i=0; while true; do echo n$i; i=$((i+1)); sleep 0.05; done"],
                            name="paneled")
    panel = ContainerPanel(ctr, update_rate=20)
    try:
        assert panel.header.status == "running" and "pause" in panel.header.allowed
        assert wait_until(lambda: len(panel.output.lines) >= 3)
        assert repr(panel) == "ContainerPanel(paneled: running)"
        assert store.cli("pause", "paneled").returncode == 0
        assert wait_until(lambda: panel.header.status == "paused", timeout=5)  # the store's event, not a poll
        assert panel.header.allowed == ["kill", "unpause"]

        def settled() -> bool:  # lines printed just before the freeze may still be on their way to the panel
            before = len(panel.output.lines)
            time.sleep(0.3)
            return len(panel.output.lines) == before
        assert wait_until(settled, timeout=10)
        frozen = len(panel.output.lines)
        time.sleep(0.4)
        assert len(panel.output.lines) == frozen
        panel.run_action("unpause").join(10)
        assert panel.header.status == "running"
        assert wait_until(lambda: len(panel.output.lines) > frozen)
        panel.run_action("stop").join(20)
        assert wait_until(lambda: panel.header.status == "exited")
        assert panel.header.exited and panel.header.exit_code == 137
        assert "remove" in panel.header.allowed
        numbers = [int(text[1:]) for _, text in panel.output.lines]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # no line lost or repeated
        assert "running" in states(recording, panel.header, "status") or panel.header.status == "exited"
    finally:
        panel.close()


def test_panel_reports_errors_and_stays_usable(store: Store) -> None:
    ctr = store.runtime.create("busybox", ["nosuchcmd"], name="broken")
    panel = ContainerPanel(ctr)
    try:
        panel.run_action("start").join(20)
        assert panel.header.message.startswith("start failed:") and "nosuchcmd" in panel.header.message
        assert panel.header.status == "created" and "start" in panel.header.allowed
        panel.run_action("remove").join(20)
        assert wait_until(lambda: panel.header.status == "removed")
        assert panel.header.allowed == []
    finally:
        panel.close()


@needs_root
def test_lifecycle_diagram_marks_state_and_transition(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="drawn")
    diagram = LifecycleDiagram(ctr)
    try:
        assert diagram.status == "running" and repr(diagram) == "LifecycleDiagram(drawn: running)"
        ctr.pause()
        assert wait_until(lambda: diagram.status == "paused")
        assert diagram.previous == "running"
        data, _ = diagram._repr_mimebundle_()
        assert data["image/svg+xml"].startswith("<svg") and ">paused</text>" in data["image/svg+xml"]
        assert data["text/plain"] == "LifecycleDiagram(drawn: paused)"
    finally:
        diagram.close()
    svg = lifecycle_svg(S.EXITED, S.STOPPED)
    assert svg.count("<rect") == 8 and 'marker-end="url(#kx-mark)"' in svg


def test_dashboard_lists_and_opens_panels(store: Store, recording: list[dict[str, Any]]) -> None:
    store.runtime.run("busybox", ["sleep", "1000"], name="one")
    store.runtime.create("busybox", ["true"], name="two")
    board = Dashboard(store.runtime)
    try:
        rows = {r["name"]: r for r in board.table.rows}
        assert rows["one"]["status"] == "running" and rows["one"]["memory"]
        assert rows["two"]["status"] == "created" and rows["two"]["cpu"] == ""
        board._on_message(board.table, {"type": "open", "name": "one"}, [])
        assert isinstance(board.panel_area.children[0], ContainerPanel)
        assert board.panel_area.children[0].container.name == "one"
        assert repr(board) == "Dashboard()"
    finally:
        board.close()


def test_resource_monitor_samples_cpu_and_memory(store: Store) -> None:
    from kernelext.widgets import ResourceMonitor

    ctr = store.runtime.run("busybox", ["sh", "-c", "while true; do :; done"], name="busy")
    idle = store.runtime.run("busybox", ["sleep", "1000"], name="idle")
    monitor = ResourceMonitor(ctr, interval=0.2, window=5)
    resting = ResourceMonitor(idle, interval=0.2, window=5)
    try:
        assert wait_until(lambda: len(monitor.samples) == 5 and len(resting.samples) == 5, timeout=10)
        time.sleep(0.5)
        assert len(monitor.samples) == 5  # the window is bounded
        # A busy loop against a sleeper sampled at the same time: how much of a core the loop gets depends
        # on the machine's load (under a quarter of one in a loaded CI run), the sleeper's stays nil.
        busy, rest = max(s[1] for s in monitor.samples), max(s[1] for s in resting.samples)
        assert busy > 5 > rest, (busy, rest)
        assert all(sample[2] > 0 for sample in monitor.samples)
    finally:
        monitor.close()
        resting.close()


def test_file_browser_lists_downloads_and_uploads_inside_the_container(store: Store,
                                                                       recording: list[dict[str, Any]]) -> None:
    import io
    import tarfile

    from kernelext.widgets import FileBrowser

    ctr = store.runtime.run("busybox", ["sh", "-c", ("mkdir -p /srv/data; head -c 3000000 /dev/zero > /srv/data/big;"
                                        " ln -s /etc /srv/etc-link; exec sleep 1000")], name="browsed")
    assert wait_until(lambda: ctr.exec_run(["test", "-L", "/srv/etc-link"]).exit_code == 0)
    browser = FileBrowser(ctr, "/srv")
    try:
        assert {e["name"]: e["dir"] for e in browser.entries} == {"data": True, "etc-link": False}
        assert [e["link"] for e in browser.entries if e["name"] == "etc-link"] == ["/etc"]
        browser.browse("etc-link")  # a link to a folder: opened inside the container, never the host's /etc
        assert browser.cwd == "/srv/etc-link" and "passwd" in {e["name"] for e in browser.entries}
        assert "shadow" not in {e["name"] for e in browser.entries}  # busybox's /etc, not the host's
        browser.browse("/srv/data")
        browser.download("big")
        messages = [m["data"] for m in recording if m["comm_id"] == browser.comm.comm_id and m["data"]
                    and m["data"].get("method") == "custom"]
        kinds = [m["content"]["type"] for m in messages]
        assert kinds[0] == "download-start" and kinds[-1] == "download-end" and kinds.count("download-chunk") >= 3
        assert browser.progress == 1.0
        payload = b"uploaded\n" * 300_000
        for offset in range(0, len(payload), 1 << 20):
            browser._on_message(browser, {"type": "upload", "name": "../../escape.txt", "total": len(payload),
                                          "last": offset + (1 << 20) >= len(payload)},
                                [payload[offset:offset + (1 << 20)]])
        assert "escape.txt" in {e["name"] for e in browser.entries}
        stream, _ = ctr.get_archive("/srv/data/escape.txt")
        with stream, tarfile.open(fileobj=io.BytesIO(stream.read())) as tar:
            assert tar.extractfile("escape.txt").read() == payload
        assert repr(browser) == "FileBrowser(browsed:/srv/data)"
    finally:
        browser.close()


COUNT = "i=0; while true; do echo n$i; i=$((i+1)); sleep 0.1; done"


def _footer_is(out: LiveOutput, text: str) -> bool:
    return out.footer == text


@needs_root
def test_panel_output_follows_every_new_run_whoever_starts_it(store: Store) -> None:
    """A restart from the CLI, a restore from another object, a stop: the output goes on, the footer is the truth."""
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNT], name="reborn")
    panel = ContainerPanel(ctr, update_rate=20)
    out = panel.output
    try:
        assert wait_until(lambda: len(out.lines) >= 3)
        assert store.cli("stop", "-t", "0", "reborn").returncode == 0
        assert wait_until(lambda: _footer_is(out, "[reborn exited with code 137]"), timeout=10), out.footer
        shown = len(out.lines)
        assert store.cli("start", "reborn").returncode == 0  # another process starts the next run
        assert wait_until(lambda: len(out.lines) >= shown + 3, timeout=10)
        assert out.footer == "" and out.live
        other = store.runtime.get("reborn")  # not the panel's object: as another cell or the timeline would
        other.checkpoint()
        assert wait_until(lambda: out.footer == "[reborn checkpointed]", timeout=10), out.footer
        before = len(out.lines)
        other.restore()
        assert wait_until(lambda: len(out.lines) >= before + 3, timeout=10), "the output froze after a restore"
        assert out.footer == ""
        store.runtime.get("reborn").restart(0)
        assert wait_until(lambda: out.lines[-1][1] == "n3" or len(out.lines) > before + 40, timeout=10)
        assert any(text == "n0" for _, text in out.lines[before:]), "the restarted run's lines are not shown"
    finally:
        panel.close()


@needs_root
def test_a_live_area_stops_by_its_button_and_by_halt_all(store: Store) -> None:
    from kernelext.widgets import halt_all

    ctr = store.runtime.run("busybox", ["sh", "-c", COUNT], name="followed")
    logs = LiveOutput("followed logs", update_rate=20).follow(ctr)
    attached = LiveOutput("followed attached", update_rate=20).attach(ctr)
    try:
        assert wait_until(lambda: len(logs.lines) >= 2 and len(attached.lines) >= 2)
        assert logs.live and logs.mode == "follow" and attached.mode == "attach"
        logs._on_frontend_message(logs, {"type": "halt"}, [])  # the stop button
        assert wait_until(lambda: not logs.live, timeout=5)
        assert logs.footer == "[stopped following followed: it keeps running]"
        frozen = len(logs.lines)
        assert halt_all() == 1  # the kernel's interrupt: the attach area, the one still live
        assert wait_until(lambda: not attached.live, timeout=5)
        assert attached.footer == "[detached from followed: it keeps running]"
        time.sleep(0.5)
        assert len(logs.lines) == frozen and ctr.reload().status is S.RUNNING
        logs.follow(ctr)  # following again continues where it stopped
        assert wait_until(lambda: len(logs.lines) > frozen + 2) and logs.live
    finally:
        logs.close()
        attached.close()


def test_file_browser_downloads_a_file_as_itself_and_makes_and_deletes(store: Store,
                                                                      recording: list[dict[str, Any]]) -> None:
    from kernelext.widgets import FileBrowser

    ctr = store.runtime.create("busybox", ["true"], name="tidy")
    ctr.write_file("/srv/note.txt", b"hello\n")
    outside = store.base / "outside"
    outside.mkdir()
    (outside / "keep").write_text("host file")
    browser = FileBrowser(ctr, "/srv")
    try:
        browser.download("note.txt")
        sent = custom(recording, browser)
        assert sent[0] == {"type": "download-start", "name": "note.txt", "mime": "application/octet-stream"}
        assert sent[-1]["type"] == "download-end"
        chunks = [m for m in recording if m["comm_id"] == browser.comm.comm_id and m["data"]
                  and m["data"].get("method") == "custom" and m["data"]["content"]["type"] == "download-chunk"]
        assert len(chunks) == 1  # the file's bytes, not a tar (the recording comm keeps no buffers)
        browser._on_message(browser, {"type": "mkdir", "name": "made"}, [])
        assert wait_until(lambda: "made" in {e["name"] for e in browser.entries})
        assert ctr.stat("/srv/made").is_dir
        ctr.write_file("/srv/made/inner", b"x")
        ctr.put_archive("/srv", _symlink_tar("escape", str(outside)))
        browser._on_message(browser, {"type": "refresh"}, [])
        assert wait_until(lambda: "escape" in {e["name"] for e in browser.entries})
        for name in ("made", "escape", "note.txt"):
            browser._on_message(browser, {"type": "delete", "name": name}, [])
        assert wait_until(lambda: browser.entries == [])
        assert (outside / "keep").read_text() == "host file"  # a link is removed, never what it points to
        browser._on_message(browser, {"type": "delete", "name": "gone"}, [])
        assert wait_until(lambda: "could not be found" in browser.message)
        with pytest.raises(KernelextError, match="refusing to remove the root"):
            ctr.remove_path("/")
        assert next(e for e in custom(recording, browser) if e["type"] == "download-start")["name"] == "note.txt"
    finally:
        browser.close()


def _symlink_tar(name: str, target: str) -> Any:
    import io
    import tarfile

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        entry = tarfile.TarInfo(name)
        entry.type, entry.linkname = tarfile.SYMTYPE, target
        tar.addfile(entry)
    archive.seek(0)
    return archive


def test_diagram_snapshot_keeps_its_state(store: Store) -> None:
    ctr = store.runtime.create("busybox", ["sleep", "1000"], name="frozen")
    snapshot = LifecycleDiagram(ctr, frozen=True)
    ctr.start()
    live = LifecycleDiagram(ctr)
    try:
        time.sleep(1.5)  # the followers' poll would have caught up by now
        assert snapshot.status == "created" and snapshot.frozen
        assert repr(snapshot) == "LifecycleDiagram(frozen: created, snapshot)"
        assert live.status == "running"
    finally:
        live.close()
        snapshot.close()
