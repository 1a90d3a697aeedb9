"""Pure pieces of the core: logs, detach keys, users, errors, the public facade."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest

import kernelext
from kernelext import host
from kernelext.core.logs import read_log
from kernelext.errors import (
    CommandNotFoundError,
    ContainerStateError,
    InvalidArgumentError,
    KernelextError,
    NoSuchContainerError,
    tool_reason,
)
from kernelext.oci.attach import Detached, DetachFilter, parse_detach_keys
from kernelext.rootless import IdMap, IdRange, Namespace, UserNamespace, userns_overlay_supported
from kernelext.storage.driver import StorageDriver, store_driver
from kernelext.storage.trash import TRASH_DIR, Trash
from kernelext.storage.users import resolve_user


def test_k8s_log_partial_records_join_and_filters_apply(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_bytes(
        b"2026-11-29T14:22:13.000000001+00:00 stdout F one\n"
        b"2026-11-29T14:22:14.000000000+00:00 stdout P tw\n"
        b"2026-11-29T14:22:14.500000000+00:00 stderr F oops\n"
        b"2026-11-29T14:22:15.000000000+00:00 stdout F o\n"
        b"2026-11-29T14:22:16.000000000+00:00 stdout P tail-without-newline\n")
    lines = read_log(log)
    assert [(line.stream, line.data) for line in lines] == [
        ("stdout", b"one\n"), ("stderr", b"oops\n"), ("stdout", b"two\n"), ("stdout", b"tail-without-newline")]
    assert lines[2].timestamp.startswith("2026-11-29T14:22:14")  # a joined line keeps its first stamp
    assert [line.data for line in read_log(log, tail=1)] == [b"tail-without-newline"]
    since = lines[0].time + 0.5
    assert [line.data for line in read_log(log, since=since, until=since + 1.5)] == [b"oops\n", b"two\n"]
    assert read_log(tmp_path / "missing.log") == []


def test_detach_keys_parse_and_filter() -> None:
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("a,ctrl-@") == b"a\x00"
    assert parse_detach_keys("") == b""
    with pytest.raises(ValueError):
        parse_detach_keys("ctrl-1")
    filt = DetachFilter(b"\x10\x11")
    assert filt.feed(b"ab\x10") == b"ab"          # a prefix is held back ...
    assert filt.feed(b"c") == b"\x10c"            # ... and sent when the sequence breaks
    with pytest.raises(Detached):
        filt.feed(b"\x10\x11")
    assert DetachFilter(b"").feed(b"\x10\x11") == b"\x10\x11"


def test_users_resolve_from_the_container_files_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\napp:x:1000:\nwheel:x:10:app\n")
    assert resolve_user(root, "app").uid == 1000 and resolve_user(root, "app").additional_gids == [10]
    assert (resolve_user(root, "app:wheel").gid, resolve_user(root, "1234:55").uid) == (10, 1234)
    assert resolve_user(root, "").home == "/root"
    with pytest.raises(ValueError, match="unable to find user ghost"):
        resolve_user(root, "ghost")
    # /etc/passwd is a symlink that points at the host's file: it is read inside the root.
    (root / "etc/passwd").unlink()
    os.symlink("/etc/../../../../etc/shadow-not-here", root / "etc/passwd")
    with pytest.raises(ValueError, match="unable to find user app"):
        resolve_user(root, "app")


def test_error_tree_subclasses_stdlib_types_and_renders_one_line() -> None:
    err = NoSuchContainerError("no container named x", container="x", operation="start")
    assert isinstance(err, LookupError) and isinstance(err, KernelextError)
    assert err._render_traceback_() == ["NoSuchContainerError: no container named x"]
    assert isinstance(ContainerStateError("s"), RuntimeError)
    missing = CommandNotFoundError("nope", exit_code=126)
    assert isinstance(missing, OSError) and missing.exit_code == 126
    assert KernelextError("x").exit_code == 125


def test_public_facade_is_sorted_and_complete() -> None:
    assert kernelext.__all__ == sorted(kernelext.__all__)
    for name in kernelext.__all__:
        assert hasattr(kernelext, name)


@pytest.mark.parametrize(("release", "supported"), [("5.10.0-28-amd64", False), ("5.11.0", True),
                                                    ("6.18.44-fc-v782", True), ("4.19.0", False), ("weird", False)])
def test_rootless_overlay_needs_linux_5_11(release: str, supported: bool) -> None:
    assert userns_overlay_supported(release) is supported


def test_id_maps_translate_both_ways() -> None:
    ns = UserNamespace(Path("/nonexistent"), IdMap((IdRange(0, 1000, 1), IdRange(1, 100000, 65536)),
                                                   (IdRange(0, 1000, 1), IdRange(1, 100000, 65536))))
    assert ns.host_ids(0, 0) == (1000, 1000) and ns.host_ids(1000, 5) == (100999, 100004)
    assert ns.host_ids(70000, 0) is None
    assert ns.container_ids(100999, 1000) == (1000, 0) and ns.container_ids(0, 0) == (65534, 65534)
    assert ns.mapped_gids() == range(65537) and ns.id_map.subordinate
    single = IdMap((IdRange(0, 1000, 1),), (IdRange(0, 1000, 1),))
    assert not single.subordinate and "no subordinate IDs" in single.describe()


def test_a_store_keeps_its_storage_driver(tmp_path: Path) -> None:
    ns = Namespace()
    assert store_driver(tmp_path, ns, "vfs") is StorageDriver.VFS
    assert store_driver(tmp_path, ns) is StorageDriver.VFS  # recorded at creation
    with pytest.raises(InvalidArgumentError, match="does not match our storage graph driver"):
        store_driver(tmp_path, ns, "overlay")
    with pytest.raises(InvalidArgumentError, match="unsupported storage driver 'btrfs'"):
        store_driver(tmp_path / "other", ns, "btrfs")


@pytest.mark.parametrize(("criu", "kernel", "available"), [
    ("4.2.1", (6, 18), True), ("4.1.1", (6, 18), False), ("4.1.1", (6, 15), True), ("3.17.1", (6, 16), False)])
def test_tcp_checkpoint_needs_criu_4_2_from_linux_6_16(monkeypatch: pytest.MonkeyPatch, criu: str,
                                                       kernel: tuple[int, int], available: bool) -> None:
    monkeypatch.setattr(host, "kernel_version", lambda: kernel)
    feature = host._tcp_sockets(criu, host.Feature(True))
    assert feature.available is available and criu in feature.detail
    assert not host._tcp_sockets(criu, host.Feature(False, "criu check failed")).available


def _tree(base: Path) -> Path:
    (base / "sub" / "deeper").mkdir(parents=True)
    (base / "sub" / "deeper" / "file").write_text("x")
    (base / "link").symlink_to("/etc")
    return base


def test_trash_takes_a_directory_away_at_once_and_deletes_it_in_the_background(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    trash = Trash(root, Namespace())
    victims = [_tree(root / f"layer{i}") for i in range(3)]
    for victim in victims:
        trash.put(victim)
        assert not victim.exists()
    trash.put(root / "never-existed")
    trash.close()
    assert os.listdir(root / TRASH_DIR) == []
    assert Path("/etc/passwd").exists()  # a link inside is deleted, never followed


def test_trash_left_by_an_ended_process_is_emptied_by_the_next_one(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _tree(root / TRASH_DIR / "left.0123abcd")
    Trash(root, Namespace()).close()
    assert os.listdir(root / TRASH_DIR) == []


def test_trash_deletes_at_once_what_cannot_be_moved_into_it(tmp_path: Path) -> None:
    if os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm and the test directory share a file system")
    elsewhere = _tree(Path(tempfile.mkdtemp(dir="/dev/shm")))
    root = tmp_path / "root"
    root.mkdir()
    trash = Trash(root, Namespace())
    trash.put(elsewhere)  # another file system: rename fails with EXDEV
    assert not elsewhere.exists() and os.listdir(root / TRASH_DIR) == []
    trash.close()


def test_trash_thread_survives_an_entry_that_fails_and_logs_one_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    class Failing(Namespace):
        def remove_tree(self, path: Path) -> None:
            if path.name.startswith("bad."):
                raise OSError(13, "Permission denied", str(path))
            super().remove_tree(path)

    root = tmp_path / "root"
    root.mkdir()
    trash = Trash(root, Failing())
    with caplog.at_level(logging.DEBUG, logger="kernelext"):
        for name in ("bad", "good1", "good2"):
            trash.put(_tree(root / name))
        trash.close()
        assert [e.split(".")[0] for e in os.listdir(root / TRASH_DIR)] == ["bad"]  # only the failing one is left
        trash.put(_tree(root / "later"))  # a new thread takes what comes after
        trash.close()
    assert [e.split(".")[0] for e in os.listdir(root / TRASH_DIR)] == ["bad"]
    records = [r for r in caplog.records if r.name == "kernelext"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING and "\n" not in records[0].getMessage()
    assert "Permission denied" in records[0].getMessage() and records[0].exc_info is None
    assert capfd.readouterr().err == ""  # no traceback


def test_trash_failure_with_an_earlier_process_entry_is_a_debug_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Failing(Namespace):
        def remove_tree(self, path: Path) -> None:
            raise OSError(13, "Permission denied", str(path))

    root = tmp_path / "root"
    _tree(root / TRASH_DIR / "left.0123abcd")
    with caplog.at_level(logging.DEBUG, logger="kernelext"):
        Trash(root, Failing()).close()
    assert [r.levelno for r in caplog.records if r.name == "kernelext"] == [logging.DEBUG]
    Namespace().remove_tree(root / TRASH_DIR)


def test_tool_reason_is_one_line_without_the_closing_boilerplate() -> None:
    tar = "tar: This does not look like a tar archive\n\ngzip: stdin: not in gzip format\n" \
          "tar: Child returned status 1\ntar: Error is not recoverable: exiting now\n"
    assert tool_reason(tar, "tar failed") == "tar: This does not look like a tar archive; gzip: stdin: not in gzip format"
    assert tool_reason(b"tar: Exiting with failure status due to previous errors\n", "x") == \
        "tar: Exiting with failure status due to previous errors"
    assert tool_reason("", "tar failed") == "tar failed"
