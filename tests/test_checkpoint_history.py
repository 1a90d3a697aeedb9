"""The checkpoint history on real runc + conmon + CRIU (issue #19; docs/architecture.md §4, "Checkpoint history")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from kernelext import Container, ContainerStateError, Runtime
from kernelext import ContainerStatus as S
from kernelext.cli.parser import parse_args
from kernelext.core import history
from kernelext.domain import checkpoints as domain
from kernelext.errors import InvalidArgumentError, NameInUseError, NoSuchCheckpointError
from kernelext.faults import ENV_FAULT

from conftest import Store, needs_root, wait_until

pytestmark = needs_root

#: A counter that prints an increasing number and writes it to /count, in memory only otherwise.
COUNTER = "i=0; while true; do echo $i; echo $i > /count; i=$((i+1)); sleep 0.1; done"


def numbers(ctr: Container) -> list[int]:
    return [int(line.data) for line in ctr.logs() if line.data.strip().isdigit()]


def last(ctr: Container) -> int:
    return numbers(ctr)[-1]


def counted(ctr: Container) -> int:
    """The number the counter last wrote to its file (read again if caught between truncate and write)."""
    for _ in range(50):
        text = (ctr.exec_run(["cat", "/count"]).output or b"").decode().strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.02)
    raise AssertionError("the counter's file stays empty")


def value_at(entry: history.CheckpointEntry) -> int:
    """The counter's file as the entry keeps it (its rootfs diff)."""
    with tarfile.open(entry.path / "rootfs-diff.tar") as tar:
        member = tar.extractfile("count")
        assert member is not None
        return int(member.read().decode().strip())


def resumed(first_numbers: list[int], value: int) -> bool:
    """A run restored from an entry whose file holds ``value`` prints ``value + 1`` first (``value + 2``
    when frozen between printing a number and writing it): the entry's files and memory are of one moment."""
    return bool(first_numbers) and first_numbers[0] in (value + 1, value + 2)


def runs_from(ctr: Container, value: int) -> bool:
    """The counter's run since its last restore started right after ``value`` (a restore resumes; a
    fresh start would begin at 0) and it keeps counting."""
    seen = numbers(ctr)
    return value + 1 in seen and seen[-1] > value + 1


def du(path: Path) -> int:
    return int(subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def cli(store: Store, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kernelext", *store.args, *argv], capture_output=True, text=True,
                          timeout=120, input=stdin)


def test_three_checkpoints_rollback_and_two_branches(store: Store) -> None:
    rt = store.runtime
    ctr = rt.run("busybox", ["sh", "-c", COUNTER], name="counter")
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    first = ctr.checkpoint(leave_running=True, name="first")
    at_first = counted(ctr)
    ctr.exec_run(["sh", "-c", "echo later > /after-first"])
    assert wait_until(lambda: counted(ctr) > at_first + 2)
    second = ctr.checkpoint(leave_running=True, name="second")
    at_second = counted(ctr)
    assert wait_until(lambda: counted(ctr) > at_second + 2)
    third = ctr.checkpoint(leave_running=True)

    # Numbered, named, with CRIU's figures, sizes and parents (each the one before: one run).
    listed = ctr.checkpoints()
    assert [(e.number, e.name) for e in listed] == [(1, "first"), (2, "second"), (3, "")]
    assert (first.number, second.number, third.number) == (1, 2, 3)
    for entry in listed:
        assert entry.leave_running and entry.size > 0 and entry.runtime_duration > 0
        assert entry.criu_statistics["pages_written"] > 0 and entry.criu_statistics["frozen_time"] > 0
        assert {"freezing_time", "memdump_time", "memwrite_time", "pages_scanned"} <= set(entry.criu_statistics)
        # podman's archive layout, so the ckinspect reader (an unpacked archive) works on an entry.
        names = set(os.listdir(entry.path))
        assert {"checkpoint", "config.dump", "spec.dump", "deleted.files", "stats-dump", "kernelext.config.json",
                "rootfs-diff.tar"} <= names, names
        assert (entry.path / "checkpoint" / "inventory.img").exists()
    assert [e.parent_label() for e in listed] == ["", "1", "2"]

    # Restored in place to the first entry: the counter resumes from its value there, and the file
    # written after it is gone.
    ctr.stop(timeout=0)
    restored_at = time.time()
    ctr.restore(from_="first")
    assert ctr.reload().status is S.RUNNING
    assert wait_until(lambda: counted(ctr) > at_first)
    assert ctr.exec_run(["test", "-e", "/after-first"]).exit_code == 1
    since = [int(line.data) for line in ctr.logs(since=restored_at)]
    assert resumed(since, value_at(first)), (since[:5], value_at(first))
    assert since == list(range(since[0], since[0] + len(since)))  # one unbroken run from there
    fourth = ctr.checkpoint(leave_running=True, name="after-rollback")
    assert fourth.parent == first.ref  # the tree: its parent is the entry it was restored from

    # Two branches from the second entry: three containers counting on, each from the second's value.
    branches = [ctr.restore(from_="second", name=f"branch{i}") for i in (1, 2)]
    for branch in branches:
        assert branch.status is S.RUNNING and branch.id != ctr.id
        assert wait_until(lambda b=branch: counted(b) > at_second + 2)  # type: ignore[misc]
        assert resumed(numbers(branch), value_at(second)), (numbers(branch)[:5], value_at(second))
        assert branch.exec_run(["cat", "/after-first"]).output.decode().strip() == "later"
    before = [counted(c) for c in (ctr, *branches)]
    assert wait_until(lambda: all(counted(c) > b for c, b in zip((ctr, *branches), before)))
    one = branches[0].checkpoint(leave_running=True)
    assert one.parent == second.ref and one.parent_label({ctr.id: "counter"}) == "counter:2"

    # The tree: depth first, each entry under its parent, the branches under the second entry.
    tree = domain.tree(rt, "counter")
    assert [(n.entry.number, n.depth) for n in tree] == [(1, 0), (2, 1), (3, 2), (4, 1)]
    assert tree[1].branches == ["branch1", "branch2"]
    for branch in branches:
        branch.remove(force=True)


def test_deleting_frees_space_and_leaves_others_whole(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="space")
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    ctr.checkpoint(leave_running=True)
    ctr.checkpoint(leave_running=True, name="keep")
    directory = history.history_dir(store.runtime.opts, ctr.id)
    before = du(directory)
    doomed = ctr.checkpoint_entry(1)
    ctr.remove_checkpoint(1)
    after = du(directory)
    assert not doomed.path.exists() and before - after >= doomed.size * 0.9, (before, after, doomed.size)
    assert history.store_size(store.runtime.opts) == (1, ctr.checkpoint_entry("keep").size)
    # The other entry restores on its own.
    ctr.stop(timeout=0)
    ctr.restore(from_="keep")
    assert wait_until(lambda: len(numbers(ctr)) > 0 and ctr.reload().status is S.RUNNING)
    # Numbers are never reused.
    assert ctr.checkpoint(leave_running=True).number == 3


def test_failed_and_killed_checkpoints_leave_no_entry(store: Store, tmp_path: Path) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="fragile")
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    ctr.checkpoint(leave_running=True, name="good")
    broken = tmp_path / "criu"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    proc = cli(store, "--criu", str(broken), "checkpoint", "-R", "--name", "bad", "fragile")
    assert proc.returncode == 125 and proc.stderr.startswith("Error: "), proc
    assert [e.name for e in ctr.checkpoints()] == ["good"] and ctr.reload().status is S.RUNNING
    # A bad name is refused before CRIU runs.
    with pytest.raises(NameInUseError):
        ctr.checkpoint(leave_running=True, name="good")
    with pytest.raises(InvalidArgumentError):
        ctr.checkpoint(leave_running=True, name="7")
    assert len(ctr.checkpoints()) == 1 and ctr.reload().status is S.RUNNING
    # Killed with the entry staged: no half entry, and the next checkpoint cleans the leftover up.
    env = {**os.environ, ENV_FAULT: "checkpoint:entry-staged", "KERNELEXT_FORKSERVER": "0"}
    killed = subprocess.run([sys.executable, "-m", "kernelext", *store.args, "checkpoint", "-R", "fragile"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert killed.returncode != 0
    directory = history.history_dir(store.runtime.opts, ctr.id)
    assert [e.name for e in ctr.checkpoints()] == ["good"]
    assert any(n.endswith(history.PARTIAL_SUFFIX) for n in os.listdir(directory))
    made = ctr.checkpoint(leave_running=True)
    assert not any(n.endswith(history.PARTIAL_SUFFIX) for n in os.listdir(directory))
    assert made.number == 3 and [e.number for e in ctr.checkpoints()] == [1, 3]
    # Killed there by a checkpoint that stops the container: the dump happened, so the container is
    # checkpointed and restorable from the images given back to its bundle; still no entry.
    killed = subprocess.run([sys.executable, "-m", "kernelext", *store.args, "checkpoint", "fragile"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert killed.returncode != 0
    assert ctr.reload().status is S.EXITED and ctr.state.checkpointed
    assert [e.number for e in ctr.checkpoints()] == [1, 3]
    ctr.restore()
    assert ctr.reload().status is S.RUNNING and wait_until(lambda: len(numbers(ctr)) > 0)


def test_cli_ls_rm_prune_and_errors(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="ls")  # a container named like the subword
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    for argv in (("checkpoint", "-R", "--name", "one", "--", "ls"), ("container", "checkpoint", "-R", "--", "ls"),
                 ("checkpoint", "-R", "--name", "three", "--", "ls")):
        proc = cli(store, *argv)
        assert proc.returncode == 0 and proc.stdout == "ls\n", (argv, proc)
    proc = cli(store, "checkpoint", "ls", "ls")
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[0].split() == ["ENTRY", "NAME", "PARENT", "CREATED", "SIZE", "FROZEN",
                                                         "PAGES"]
    assert [line.split()[:2] for line in lines[1:]] == [["1", "one"], ["2", "1"], ["3", "three"]]
    proc = cli(store, "container", "checkpoint", "ls", "--format", "{{.Entry}}:{{.Name}}:{{.Parent}}", "ls")
    assert proc.stdout == "1:one:\n2::1\n3:three:2\n", proc
    data = json.loads(cli(store, "checkpoint", "ls", "--format", "json", "ls").stdout)
    assert [d["Entry"] for d in data] == [1, 2, 3] and all(d["Size"] > 0 and d["PagesWritten"] > 0 for d in data)

    for refused, message in ((("checkpoint", "ls", "nosuch"), 'no container with name or ID "nosuch" found'),
                          (("checkpoint", "rm", "ls", "one", "nine"), "no checkpoint 'nine' in the history of"),
                          (("restore", "ls", "--from", "nine"), "no checkpoint 'nine'"),
                          (("restore", "--from", "1", "--all"), "--from needs exactly one container")):
        proc = cli(store, *refused)
        assert proc.returncode == 125 and proc.stderr == f"Error: {proc.stderr[7:]}" and message in proc.stderr, \
            (refused, proc)
        assert len(proc.stderr.splitlines()) == 1
    assert len(ctr.checkpoints()) == 3  # the typo removed nothing

    proc = cli(store, "checkpoint", "rm", "ls", "one")
    assert proc.returncode == 0 and proc.stdout == "one\n"
    proc = cli(store, "checkpoint", "prune", "ls")
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == "ls:2" and "Total reclaimed space" in proc.stdout
    assert [e.name for e in ctr.checkpoints()] == ["three"]
    proc = cli(store, "checkpoint", "prune", stdin="n\n")  # every container: asks first
    assert proc.returncode == 0 and "Are you sure" in proc.stdout and len(ctr.checkpoints()) == 1
    rows = {r["Type"]: r for r in json.loads(cli(store, "system", "df", "--format", "json").stdout)}
    kept = ctr.checkpoint_entry("three")
    assert (rows["Checkpoints"]["Total"], rows["Checkpoints"]["Active"]) == (1, 1)
    assert rows["Checkpoints"]["RawSize"] == kept.size and rows["Checkpoints"]["RawReclaimable"] == 0
    info = json.loads(cli(store, "info", "--format", "json").stdout)
    assert (info["store"]["checkpoints"], info["store"]["checkpointSize"]) == (1, kept.size)
    proc = cli(store, "checkpoint", "prune", "--all", "--force")
    assert proc.returncode == 0 and ctr.checkpoints() == []
    info = json.loads(cli(store, "info", "--format", "json").stdout)
    assert info["store"]["checkpoints"] == 0 and info["store"]["checkpointSize"] == 0


def test_parser_subwords_keep_container_names() -> None:
    assert parse_args(["checkpoint", "ls", "web"]).cmd == "checkpoint-ls"
    assert parse_args(["container", "checkpoint", "rm", "web", "1", "two"]).entries == ["1", "two"]
    args = parse_args(["checkpoint", "--", "ls"])
    assert args.cmd == "checkpoint" and args.containers == ["ls"]
    args = parse_args(["checkpoint", "-R", "--name", "x", "prune"])  # not right after "checkpoint": a name
    assert args.cmd == "checkpoint" and args.containers == ["prune"] and args.name == "x"
    assert parse_args(["restore", "web", "--from", "2", "-n", "copy"]).from_ == "2"


def test_export_of_an_entry_restores_elsewhere(store: Store, tmp_path: Path) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="exported")
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    entry = ctr.checkpoint(leave_running=True, export=tmp_path / "direct.tar.zst")
    assert entry.export == str(tmp_path / "direct.tar.zst")  # an exported checkpoint is an entry too
    archive = ctr.export_checkpoint(entry.number, tmp_path / "later.tar.zst")
    value = counted(ctr)
    copy = store.runtime.restore_from_archive(archive, name="imported")
    assert copy.status is S.RUNNING and wait_until(lambda: counted(copy) > value)


def test_magics_return_entries(ip: object, store: Store) -> None:
    from kernelext.magics.display import CheckpointList, entry_html, entry_text

    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="magic")
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    entry = ip.run_line_magic("container", "checkpoint -R --name snap magic")  # type: ignore[attr-defined]
    assert isinstance(entry, history.CheckpointEntry) and entry.name == "snap"
    assert entry_text(entry) == "Checkpoint 1 (snap) of magic"
    card = entry_html(entry)
    assert "var(--jp-border-color1" in card and "pages written" in card and "snap" in card
    listed = ip.run_line_magic("container", "checkpoint ls magic")  # type: ignore[attr-defined]
    assert isinstance(listed, CheckpointList) and [e.number for e in listed] == [1]
    assert repr(listed).splitlines()[0].split() == ["ENTRY", "NAME", "PARENT", "SIZE", "FROZEN", "PAGES"]
    with pytest.raises(NoSuchCheckpointError):
        ip.run_line_magic("container", "checkpoint rm magic 5")  # type: ignore[attr-defined]


def test_timeline_model_and_buttons_on_a_real_container(store: Store, tmp_path: Path) -> None:
    from kernelext.widgets import CheckpointTimeline

    rt: Runtime = store.runtime
    ctr = rt.run("busybox", ["sh", "-c", COUNTER], name="timed")
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    timeline = CheckpointTimeline(ctr, export_dir=tmp_path)
    try:
        assert timeline.nodes == [] and timeline.allowed == ["checkpoint"]
        made = timeline.checkpoint_now("start")
        # Another process checkpoints: the tree follows the store's events.
        assert cli(store, "checkpoint", "-R", "timed").returncode == 0
        assert wait_until(lambda: [n["number"] for n in timeline.nodes] == [1, 2], timeout=15)
        node = timeline.nodes[0]
        assert node["name"] == "start" and node["depth"] == 0 and node["size"] == made.size
        assert node["pages_written"] > 0 and node["frozen_ms"] > 0 and node["human_size"].endswith("B")
        assert timeline.nodes[1]["depth"] == 1 and timeline.nodes[1]["parent"] == "1"
        assert set(timeline.allowed) == {"checkpoint", "restore", "branch", "export", "delete"}

        branch = timeline.branch(1, "fork")
        assert branch.status is S.RUNNING
        timeline.refresh()  # a branch is another container's event: the poll or a refresh shows it
        assert timeline.nodes[0]["branches"] == ["fork"]
        archive = timeline.export_entry(2)
        assert archive.parent == tmp_path and archive.stat().st_size > 0
        restored = timeline.restore_entry(1)  # the running container is stopped, then rolled back
        assert restored.reload().status is S.RUNNING
        timeline.delete(2)
        assert wait_until(lambda: [n["number"] for n in timeline.nodes] == [1])
        # The browser's message goes the same way (in a thread); an unknown entry is a message, not a crash.
        timeline._on_message(timeline, {"type": "delete", "entry": 9}, [])
        assert wait_until(lambda: timeline.message.startswith("delete failed: no checkpoint '9'"))
        assert repr(timeline) == "CheckpointTimeline(timed: 1 entries)"
        branch.remove(force=True)
    finally:
        timeline.close()


def test_branch_with_a_taken_name_leaves_nothing(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="orig")
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    ctr.checkpoint(leave_running=True)
    with pytest.raises(NameInUseError):
        ctr.restore(from_=1, name="orig")
    assert [c.name for c in store.runtime.list()] == ["orig"]
    with pytest.raises(ContainerStateError, match="is running or paused, cannot restore"):
        ctr.restore(from_=1)  # in place, as podman's restore: a running container is refused
    assert ctr.reload().status is S.RUNNING


def test_rollback_after_a_stopping_checkpoint_still_undoes_later_writes(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="stopped")
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    entry = ctr.checkpoint(name="snap")  # stops the container: its layer is then as the entry saw it
    assert ctr.reload().status is S.EXITED and entry.files_fingerprint
    ctr.write_file("/written-while-exited", b"x")  # a write to the stopped container's files
    ctr.restore(from_="snap")
    assert ctr.exec_run(["test", "-e", "/written-while-exited"]).exit_code == 1
    assert wait_until(lambda: runs_from(ctr, numbers(ctr)[0]) or len(numbers(ctr)) > 3)
    stopped_at = counted(ctr)
    ctr.stop(timeout=0)
    ctr.restore(from_="snap")  # nothing written since: the same files, the rollback skips the reset
    assert wait_until(lambda: counted(ctr) != stopped_at)
