"""Looking inside checkpoints (issue #19): real CRIU images of a busybox pipeline, read back."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernelext import InvalidArgumentError, Runtime
from kernelext.cli.parser import parse_args
from kernelext.core.checkpointinfo import (
    CheckpointInfo,
    FileKind,
    MemoryKind,
    _check_member,
    _ints,
    _message,
    _wanted,
    diff_checkpoints,
    read_checkpoint,
    read_image,
)

from conftest import Store, wait_until

#: fd 3 is a log file, the loop's output goes through a pipe to cat; beside it a TCP listener and syslogd
#: (a unix datagram socket on /dev/log).
LOOP = ("nc -l -p 8080 </dev/null >/dev/null 2>&1 & syslogd -n -O /tmp/syslog & "
        "exec 3>/tmp/log; i=0; while true; do echo $i >&3; echo $i; i=$((i+1)); sleep 0.1; done | cat")
LATER = "sleep 1000 </dev/null >/dev/null 2>&1 & echo made > /second"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Two exports of one container: A (zstd, through the CLI, left running), B (gzip, after a file and a
    process were added)."""
    base = tmp_path_factory.mktemp("ckinspect")
    rt = Runtime(base / "root", base / "run")
    store = Store(base, rt)
    a, b = base / "a.tar.zst", base / "b.tar.gz"
    try:
        ctr = rt.run("busybox", ["sh", "-c", LOOP], name="looper")
        assert wait_until(lambda: sum(1 for line in ctr.logs() if line.data.strip().isdigit()) >= 3)
        done = store.cli("checkpoint", "-R", "-e", str(a), "looper")
        assert done.returncode == 0, done.stderr
        assert ctr.exec_run(["sh", "-c", LATER]).exit_code == 0
        ctr.checkpoint(export=str(b), compress="gzip")
        yield a, b
    finally:
        for c in rt.list():
            c.remove(force=True)
        rt.close()
    assert store.runc_containers() == []


@pytest.fixture(scope="module")
def info_a(checkpoints: tuple[Path, Path]) -> CheckpointInfo:
    return read_checkpoint(checkpoints[0])


def test_process_tree_with_commands(info_a: CheckpointInfo) -> None:
    assert info_a.container_name == "looper" and "busybox" in info_a.image and info_a.runtime == "runc"
    (root,) = info_a.tree
    assert root.pid == 1 and root.args == ["sh", "-c", LOOP]  # argv read from the dumped pages
    commands = {p.comm for p in info_a.processes}
    assert {"sh", "cat", "nc", "syslogd"} <= commands
    cat = next(p for p in info_a.processes if p.comm == "cat")
    assert cat.args == ["cat"] and cat.ppid == 1 and cat in root.children


def test_open_log_file_and_pipe(info_a: CheckpointInfo) -> None:
    loop = next(p for p in info_a.processes if p.comm == "sh" and p.pid != 1)  # the loop's subshell
    fds = {f.fd: f for f in loop.files}
    assert fds[3].kind is FileKind.FILE and fds[3].name == "/tmp/log" and fds[3].position > 0
    assert fds[1].kind is FileKind.PIPE
    cat = next(p for p in info_a.processes if p.comm == "cat")
    assert {f.name for f in cat.files if f.fd == 0} == {fds[1].name}  # the same pipe: the loop writes, cat reads


def test_sockets(info_a: CheckpointInfo) -> None:
    nc = next(p for p in info_a.processes if p.comm == "nc")
    assert nc.args == ["nc", "-l", "-p", "8080"]
    assert [(f.kind, f.name) for f in nc.files if f.fd == 3] == [(FileKind.INET, "tcp6 [::]:8080 -> [::]:0 (LISTEN)")]
    syslogd = next(p for p in info_a.processes if p.comm == "syslogd")
    (log,) = [f for f in syslogd.files if f.kind is FileKind.UNIX]
    assert log.name.startswith("dgram /dev/log ino=")


def test_memory_by_kind_and_namespaces(info_a: CheckpointInfo) -> None:
    for p in info_a.processes:
        kinds = {m.kind: m for m in p.memory}
        assert {MemoryKind.ANONYMOUS, MemoryKind.FILE, MemoryKind.STACK, MemoryKind.HEAP} <= kinds.keys(), p
        assert kinds[MemoryKind.STACK].mappings == 1 and kinds[MemoryKind.STACK].dumped > 0
        assert all(m.virtual >= m.dumped >= 0 and m.mappings > 0 for m in p.memory)
        assert kinds[MemoryKind.ANONYMOUS].dumped > 0 and kinds[MemoryKind.FILE].virtual > 0
        assert {"pid", "net", "mnt", "uts", "ipc"} <= p.namespaces.keys()
    # One namespace of each kind for the whole container, other than the root task's (CRIU's own).
    assert len({p.namespaces["pid"] for p in info_a.processes}) == 1
    assert info_a.processes[0].namespaces["pid"] != info_a.namespaces["pid"]
    assert info_a.statistics["pages_written"] > 0 and info_a.memory_pages_size > 0


def test_rootfs_diff_listed(info_a: CheckpointInfo) -> None:
    assert "/tmp/log" in {c.path for c in info_a.changed_files}
    assert info_a.deleted_files == []


def test_diff_lists_a_new_file_and_a_new_process(checkpoints: tuple[Path, Path], info_a: CheckpointInfo) -> None:
    info_b = read_checkpoint(checkpoints[1])
    diff = diff_checkpoints(info_a, info_b)
    assert diff.files_added == ["/second"] and "/tmp/log" in diff.files_changed
    assert ["sleep", "1000"] in [p.args for p in diff.processes_started]
    assert not any(p.comm == "cat" for p in diff.processes_started + diff.processes_ended)
    assert diff_checkpoints(info_b, info_b).empty


def test_directory_reads_as_the_archive(checkpoints: tuple[Path, Path], info_a: CheckpointInfo,
                                        tmp_path: Path) -> None:
    subprocess.run(["tar", "--extract", "--zstd", "-f", str(checkpoints[0]), "-C", str(tmp_path)], check=True)
    from_dir = read_checkpoint(tmp_path)
    assert [p.to_dict() for p in from_dir.processes] == [p.to_dict() for p in info_a.processes]
    assert from_dir.changed_files == info_a.changed_files
    # The decoder on the real images: pstree's entries are the processes, each with a core image.
    pids = [e[1][0] for e in read_image(tmp_path / "checkpoint" / "pstree.img")]
    assert pids == [p.pid for p in info_a.processes]
    assert all((tmp_path / "checkpoint" / f"core-{pid}.img").exists() for pid in pids)
    # A checkpoint directory whose file is a link is refused, not followed.
    (tmp_path / "config.dump").unlink()
    (tmp_path / "config.dump").symlink_to("/etc/passwd")
    with pytest.raises(InvalidArgumentError):
        read_checkpoint(tmp_path)


# ------------------------------------------------------------------- CLI
def test_cli_tree_and_json(store: Store, checkpoints: tuple[Path, Path]) -> None:
    a, b = checkpoints
    tree = store.cli("checkpoint", "inspect", str(a))
    assert tree.returncode == 0, tree.stderr
    assert "[3] file /tmp/log" in tree.stdout and "Process tree" in tree.stdout and LOOP in tree.stdout
    doc = json.loads(store.cli("container", "checkpoint", "inspect", "--format", "json", str(a)).stdout)
    assert doc[0]["Name"] == "looper" and any(p["comm"] == "cat" for p in doc[0]["Processes"])
    assert store.cli("checkpoint", "inspect", "--format", "{{.Name}}", str(a)).stdout == "looper\n"
    diff = store.cli("checkpoint", "diff", "--format", "json", str(a), str(b))
    assert json.loads(diff.stdout)["Files"]["Added"] == ["/second"], diff.stderr
    assert "/second" in store.cli("checkpoint", "diff", str(a), str(b)).stdout


def test_sub_words_leave_a_container_named_inspect_checkpointable() -> None:
    assert parse_args(["checkpoint", "inspect", "x.tar"]).cmd == "checkpoint-inspect"
    assert parse_args(["container", "checkpoint", "diff", "a", "b"]).cmd == "checkpoint-diff"
    # As the history's ls/rm/prune: a sub-word only right after "checkpoint"; a container so named after "--".
    for argv in (["checkpoint", "--", "inspect"], ["checkpoint", "other", "inspect"],
                 ["checkpoint", "-R", "inspect", "other"], ["container", "checkpoint", "--", "diff"]):
        args = parse_args(argv)
        assert args.cmd == "checkpoint" and argv[-1] in args.containers + ["other"], argv


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


def _file(name: str, data: bytes = b"{}") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


@pytest.mark.parametrize("members", [
    [_file("../escaped"), _file("config.dump")],
    [_file("/escaped"), _file("config.dump")],
    [_link("config.dump", "/etc/shadow")],
    [_link("checkpoint", "/tmp"), _file("checkpoint/pstree.img")],
    [_link("checkpoint/pstree.img", "../../escaped", tarfile.LNKTYPE)],
], ids=["dotdot", "absolute", "abs-symlink", "dir-symlink", "hardlink-out"])
def test_unsafe_archive_refused(store: Store, tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    archive = _tar(tmp_path / "evil.tar", members)
    work = tmp_path / "tmp"
    work.mkdir()
    env = {**os.environ, "TMPDIR": str(work)}
    done = subprocess.run([sys.executable, "-m", "kernelext", *store.args, "checkpoint", "inspect", str(archive)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 125 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("Error: "), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar", "root", "run", "tmp"]
    assert os.listdir(work) == []  # the private directory is gone too
    assert not Path("/escaped").exists() and not Path("/tmp/escaped").exists()


def test_not_an_archive(store: Store, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    for target in (junk, tmp_path / "missing.tar", tmp_path):
        done = store.cli("checkpoint", "inspect", str(target))
        assert done.returncode == 125 and done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done


# ---------------------------------------------------------------- magics
def test_magic_returns_a_card(ip: Any, checkpoints: tuple[Path, Path]) -> None:
    a, b = checkpoints
    card = ip.run_line_magic("container", f"checkpoint inspect {a}")
    assert card.info.container_name == "looper"
    page = card._repr_html_()
    assert "<details" in page and "/tmp/log" in page and "var(--jp-" in page
    assert "Process tree" in repr(card)
    diff = ip.run_line_magic("container", f"checkpoint diff {a} {b}")
    assert diff.diff.files_added == ["/second"] and "/second" in diff._repr_html_()
    assert ip.run_line_magic("container", f"checkpoint inspect --format json {a}")["Name"] == "looper"
    with pytest.raises(InvalidArgumentError):
        ip.run_line_magic("container", f"checkpoint inspect {a}.missing")


# ------------------------------------------------------------ pure logic
def test_packed_and_unpacked_repeated_fields() -> None:
    unpacked = _message(bytes([0x28, 1, 0x28, 2]))  # field 5 twice
    packed = _message(bytes([0x2A, 2, 1, 2]))  # field 5, length 2: the varints 1 and 2
    assert _ints(unpacked, 5) == _ints(packed, 5) == [1, 2]


def test_only_metadata_and_images_are_unpacked() -> None:
    assert _wanted("./config.dump") == "config.dump"
    assert _wanted("checkpoint/core-7.img") == "checkpoint/core-7.img"
    assert _wanted("checkpoint/seccomp.img") is None and _wanted("ctr.log") is None
    assert _wanted("checkpoint/sub/core-7.img") is None and _wanted("volumes/v.tar") is None
    ok = tarfile.TarInfo("checkpoint/a.img")
    ok.type, ok.linkname = tarfile.SYMTYPE, "b.img"
    _check_member(ok, Path("x"))  # a link inside the archive is fine (and is never written)


def test_pages_past_the_cap_are_not_unpacked(checkpoints: tuple[Path, Path], info_a: CheckpointInfo,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from kernelext.core import checkpointinfo

    monkeypatch.setattr(checkpointinfo, "MAX_PAGES_UNPACKED", 0)
    capped = read_checkpoint(checkpoints[0])
    assert [p.args for p in capped.processes] == [[]] * len(capped.processes)  # the argv needs the pages
    assert [p.command for p in capped.processes] == [p.comm for p in info_a.processes]
    assert capped.memory_pages_size == info_a.memory_pages_size > 0  # counted from the archive all the same
    assert [p.memory for p in capped.processes] == [p.memory for p in info_a.processes]
