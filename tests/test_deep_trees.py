"""Very deep directory trees (issue 16, finding 5): every walk is iterative and fd-relative."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

from kernelext.core.filecopy import host_policy
from kernelext.files.confined import Entry, FsSink, Root, tar_chunks, tree_entries
from kernelext.files.fdtree import O_DIR, OPEN_LEVELS, remove_tree
from kernelext.files.tarformat import TarReader
from kernelext.storage.layerdiff import ChangeKind, layer_changes, tree_changes
from kernelext.storage.trash import TRASH_DIR

from conftest import Store, wait_until

DEPTH = 1500
#: An unprivileged process can build a tree deeper than any recursion limit, one relative mkdir at a time.
DEEP_TREE = f"i=0; while [ $i -lt {DEPTH} ]; do mkdir d; cd d; i=$((i+1)); done; echo x > f"
DEEP_FILE = "/".join(["d"] * DEPTH) + "/f"


def cli(store: Store, *argv: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "kernelext", *store.args, *argv], capture_output=True,
                          input=input, timeout=300, check=False)


def ok(proc: subprocess.CompletedProcess[bytes]) -> subprocess.CompletedProcess[bytes]:
    assert proc.returncode == 0 and proc.stderr == b"", (proc.returncode, proc.stderr[-2000:])
    return proc


def test_a_container_deep_tree_copies_out_and_in_diffs_and_is_removed(store: Store, tmp_path: Path) -> None:
    ok(cli(store, "run", "-d", "--name", "deep", "busybox", "sleep", "1000"))
    ok(cli(store, "exec", "deep", "sh", "-c", f"cd /tmp && {DEEP_TREE}"))

    host = tmp_path / "out"
    host.mkdir()
    try:
        ok(cli(store, "cp", "deep:/tmp/d", str(host)))
        assert (host / DEEP_FILE).read_bytes() == b"x\n"
    finally:
        remove_tree(host)  # pytest's own clean-up recurses

    archive = ok(cli(store, "cp", "deep:/tmp/d", "-")).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
        assert DEEP_FILE in names and len(names) == DEPTH + 1
        assert tar.extractfile(DEEP_FILE).read() == b"x\n"  # type: ignore[union-attr]

    changes = ok(cli(store, "diff", "deep")).stdout.decode().splitlines()
    assert f"A /tmp/{DEEP_FILE}" in changes and "C /tmp" in changes

    ok(cli(store, "create", "--name", "other", "busybox", "true"))
    ok(cli(store, "cp", "-", "other:/", input=archive))
    assert ok(cli(store, "cp", f"other:/{DEEP_FILE}", "-")).returncode == 0

    exported = tmp_path / "export.tar"
    ok(cli(store, "export", "-o", str(exported), "other"))
    with tarfile.open(exported) as tar:
        assert f"./{DEEP_FILE}" in tar.getnames()

    ok(cli(store, "rm", "-f", "deep", "other"))
    trash = store.runtime.opts.root / TRASH_DIR
    assert wait_until(lambda: not trash.exists() or os.listdir(trash) == [], timeout=60)
    # The next command of the store prints nothing of a background deleter.
    assert ok(cli(store, "ps", "-a", "-q")).stdout == b""


# ------------------------------------------------- beyond PATH_MAX, fds bounded
LONG_NAME = "directory"  # 10 bytes a level with its "/": the tree's paths pass PATH_MAX (4096) at level 410
LONG_DEPTH = 1200


def _deep_tree(base: Path) -> None:
    """``base``/directory/directory/.../file, made through fds (no path of it is ever given whole)."""
    base.mkdir()
    fd = os.open(base, O_DIR)
    for _ in range(LONG_DEPTH):
        os.mkdir(LONG_NAME, dir_fd=fd)
        below = os.open(LONG_NAME, O_DIR, dir_fd=fd)
        os.close(fd)
        fd = below
    file = os.open("file", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(file, b"deep\n")
    os.close(file)
    os.close(fd)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_trees_beyond_path_max_walk_copy_diff_and_remove_with_bounded_fds(tmp_path: Path) -> None:
    source, copy, empty = tmp_path / "source", tmp_path / "copy", tmp_path / "empty"
    try:
        _deep_tree(source)
        copy.mkdir()
        empty.mkdir()
        _walk_copy_and_diff(tmp_path, source, copy, empty)
    finally:
        for tree in (source, copy):
            remove_tree(tree)  # pytest's own clean-up recurses
            assert not tree.exists()


def _walk_copy_and_diff(tmp_path: Path, source: Path, copy: Path, empty: Path) -> None:
    deep_path = "/".join([LONG_NAME] * LONG_DEPTH) + "/file"
    root = Root.open(tmp_path)
    try:
        found = root.resolve(f"source/{deep_path}")  # a lookup deeper than PATH_MAX, inside the root
        assert found.st is not None and found.st.st_size == 5
        found.close()
        before, most = _open_fds(), [0]

        def measured(entries: Iterator[Entry]) -> Iterator[Entry]:
            for e in entries:
                most[0] = max(most[0], _open_fds() - before)
                yield e

        found = root.resolve("source")
        chunks = list(tar_chunks(measured(tree_entries(found, "source", contents=True))))
        found.close()
        assert most[0] <= OPEN_LEVELS + 4
        sink = FsSink(root, os.open(copy, O_DIR), "/copy", host_policy(overwrite=False))
        try:
            sink.put_archive(TarReader(io.BytesIO(b"".join(chunks))))
        finally:
            sink.close()
        assert _open_fds() == before
        copied = root.resolve(f"copy/{deep_path}")
        try:
            fd = copied.open(os.O_RDONLY)
            assert os.read(fd, 100) == b"deep\n"
            os.close(fd)
        finally:
            copied.close()

        added = layer_changes(copy, empty, excluded=frozenset())
        assert len(added) == LONG_DEPTH + 1 and {c.kind for c in added} == {ChangeKind.ADDED}
        assert added[-1].path == "/" + deep_path
        assert tree_changes(copy, empty, excluded=frozenset()) == added
        assert tree_changes(source, source, excluded=frozenset()) == []
        assert _open_fds() == before
    finally:
        root.close()
