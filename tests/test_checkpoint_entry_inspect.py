"""Looking inside history entries (issue #19): ``checkpoint inspect CTR ENTRY``, ``checkpoint diff CTR A B``
in the CLI and the magics, and the timeline's selection, on real CRIU entries of a counter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernelext import Container, InvalidArgumentError
from kernelext.errors import NoSuchCheckpointError, NoSuchContainerError

from conftest import Store, needs_root, wait_until

pytestmark = needs_root

COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"


def two_entries(store: Store, name: str) -> Container:
    """A counter checkpointed twice, left running, with /between created between the two."""
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name=name)
    assert wait_until(lambda: sum(1 for line in ctr.logs() if line.data.strip().isdigit()) >= 3)
    ctr.checkpoint(leave_running=True)
    assert ctr.exec_run(["sh", "-c", "echo made > /between"]).exit_code == 0
    ctr.checkpoint(leave_running=True, name="after")
    return ctr


def test_cli_and_magic_on_entries(store: Store, ip: Any, tmp_path: Any) -> None:
    ctr = two_entries(store, "counter")
    diff = store.cli("checkpoint", "diff", "counter", "1", "2")
    assert diff.returncode == 0 and "/between" in diff.stdout, diff.stderr
    # An entry by name, the second container named again, json: the same file added.
    doc = json.loads(store.cli("checkpoint", "diff", "--format", "json", "counter", "1", "counter", "after").stdout)
    assert doc["Files"]["Added"] == ["/between"] and doc["A"] == "counter:1" and doc["B"] == "counter:2"
    tree = store.cli("checkpoint", "inspect", "counter", "1")
    assert tree.returncode == 0 and COUNTER in tree.stdout and "Process tree" in tree.stdout, tree.stderr
    assert store.cli("checkpoint", "inspect", "--format", "{{.Name}}", "counter", "after").stdout == "counter\n"
    # A path and an entry side by side: an exported entry against the entry it came from.
    archive = tmp_path / "one.tar.zst"
    ctr.export_checkpoint(1, archive)
    mixed = json.loads(store.cli("checkpoint", "diff", "--format", "json", str(archive), "counter", "2").stdout)
    assert mixed["Files"]["Added"] == ["/between"]

    for argv, message in ((["inspect", "nosuch", "1"], 'no container with name or ID "nosuch" found'),
                          (["inspect", "counter", "9"], "no checkpoint '9' in the history of container counter"),
                          (["diff", "counter", "1", "9"], "no checkpoint '9'"),
                          (["diff", "counter", "1"], "checkpoint diff takes 2 checkpoints, 1 given"),
                          (["inspect", str(tmp_path / "missing.tar")], "no such checkpoint archive or directory")):
        done = store.cli("checkpoint", *argv)
        assert done.returncode == 125 and done.stdout == "", (argv, done)
        assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1 and message in done.stderr, done

    card = ip.run_line_magic("container", "checkpoint inspect counter 1")
    assert card.info.source == "counter:1" and COUNTER in card._repr_html_()
    assert any(p.command == f"sh -c {COUNTER}" for p in card.info.processes)
    changes = ip.run_line_magic("container", "checkpoint diff counter 1 after")
    assert changes.diff.files_added == ["/between"] and "/between" in changes._repr_html_()
    with pytest.raises(NoSuchCheckpointError):
        ip.run_line_magic("container", "checkpoint inspect counter 7")
    with pytest.raises(NoSuchContainerError):
        ip.run_line_magic("container", "checkpoint diff nosuch 1 2")
    with pytest.raises(InvalidArgumentError):
        ip.run_line_magic("container", "checkpoint diff counter 1 2 3 4 5")


def test_timeline_selection(store: Store) -> None:
    from kernelext.widgets import CheckpointTimeline

    ctr = two_entries(store, "timed")
    timeline = CheckpointTimeline(ctr)
    try:
        # Two entries: their diff lists the file; the order ticked does not matter.
        model = timeline.select([2, 1])
        assert model["kind"] == "diff" and model["entries"] == [1, 2]
        assert {"change": "added", "paths": ["/between"]} in model["files"]
        # One entry: its process tree, the counter's shell at the top, memory by kind.
        inside = timeline.select([1])
        assert inside["kind"] == "inspect" and inside["processes"][0]["depth"] == 0
        assert inside["processes"][0]["command"] == f"sh -c {COUNTER}"
        assert {m["kind"] for m in inside["memory"]} >= {"stack", "anonymous"}
        # The browser's message: computed in a thread, the result in the synced trait.
        timeline._on_message(timeline, {"type": "select", "entries": [1, 2]}, [])
        assert wait_until(lambda: timeline.detail.get("kind") == "diff", timeout=20)
        assert timeline.detail["files"][0]["paths"] == ["/between"]
        timeline._on_message(timeline, {"type": "select", "entries": [5]}, [])
        assert wait_until(lambda: timeline.detail.get("kind") == "error", timeout=20)
        assert "no checkpoint '5'" in timeline.detail["error"]
        timeline._on_message(timeline, {"type": "select", "entries": [2]}, [])
        assert wait_until(lambda: timeline.detail.get("kind") == "inspect", timeout=20)
        timeline.delete(2)  # the selected entry deleted: the detail goes with it
        assert wait_until(lambda: timeline.detail == {}, timeout=15)
    finally:
        timeline.close()
