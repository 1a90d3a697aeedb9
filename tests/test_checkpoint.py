"""Checkpoint/restore on real runc + conmon + CRIU: the behaviours issue #9 lists."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from kernelext import (
    Container,
    ContainerStateError,
    InvalidArgumentError,
    PermissionRequiredError,
    Runtime,
    RuntimeFailure,
)
from kernelext import ContainerStatus as S
from kernelext.config import find_criu
from kernelext.core.checkpoint import NO_MEMORY_TRACKING
from kernelext.host import host_capabilities
from kernelext.oci.monitor import process_start_time
from kernelext.oci.runtime import memory_tracking_supported

from conftest import Store, wait_until

COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"
MB = 1 << 20
HOST_FLOCK = "/usr/bin/flock"
HOST_FLOCK_LIBS = ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2")


def numbers(ctr: Container) -> list[int]:
    return [int(line.data) for line in ctr.logs() if line.data.strip().isdigit()]


def assert_counts_on(ctr: Container, start: int = 0) -> list[int]:
    """The counter's log is one unbroken run start, start+1, ... (no gap, no restart) and still growing."""
    before = len(numbers(ctr))
    assert wait_until(lambda: len(numbers(ctr)) >= before + 3), "the counter does not print any more"
    seen = numbers(ctr)
    assert seen[0] == start and seen == list(range(start, start + len(seen))), seen
    return seen


def conmons_of(ctr: Container) -> list[int]:
    """Live conmon processes monitoring this container."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"conmon") and ctr.id.encode() in argv and process_start_time(int(entry)):
            found.append(int(entry))
    return found


def in_netns(ctr: Container) -> bool:
    """The container's process runs in the network namespace mounted on its ``SandboxKey``."""
    key = ctr.inspect()["NetworkSettings"]["SandboxKey"]
    return bool(key) and os.stat(key).st_ino == os.stat(f"/proc/{ctr.state.pid}/ns/net").st_ino


def rootfs_has(ctr: Container, path: str) -> bool:
    return ctr.exec_run(["test", "-e", path]).exit_code == 0


# --------------------------------------------------------------- in place
def test_counter_continues_over_two_cycles(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="counter")
    assert wait_until(lambda: len(numbers(ctr)) >= 5)

    stats = ctr.checkpoint(print_stats=True)  # cycle 1 through the API
    assert ctr.status is S.EXITED
    state = ctr.inspect()["State"]
    assert (state["Status"], state["Checkpointed"], state["Restored"]) == ("exited", True, False)
    assert stats is not None and stats["criu_statistics"]["pages_written"] > 0
    assert stats["runtime_checkpoint_duration"] <= stats["checkpoint_duration"]
    frozen = numbers(ctr)
    time.sleep(0.4)
    assert numbers(ctr) == frozen, "the container still prints after the checkpoint"
    assert store.runc_containers() == []
    assert wait_until(lambda: conmons_of(ctr) == []), "conmon outlived the checkpoint (beyond its exit command)"

    ctr.restore()
    state = ctr.inspect()["State"]
    assert (state["Status"], state["Checkpointed"], state["Restored"]) == ("running", False, True)
    assert assert_counts_on(ctr)[len(frozen)] == frozen[-1] + 1

    # Cycle 2 through the CLI's two spellings; the log keeps flowing through the new conmon.
    proc = store.cli("container", "checkpoint", "counter")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "counter\n", "")
    assert store.runtime.get("counter").status is S.EXITED
    proc = store.cli("restore", "--print-stats", "counter")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["container_statistics"][0]["Id"] == ctr.id
    assert report["container_statistics"][0]["criu_statistics"]["pages_restored"] > 0
    ctr.reload()
    assert ctr.status is S.RUNNING and ctr.state.restored
    assert_counts_on(ctr)
    assert store.cli("stop", "-t", "0", "counter").returncode == 0  # the restored container stops as usual
    assert ctr.reload().status is S.EXITED


def test_tty_container_gets_its_pty_back(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], tty=True)
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    ctr.checkpoint()
    ctr.restore()
    assert_counts_on(ctr)  # conmon reads the new pty master: output still reaches the log
    stdout = ctr.exec_run(["readlink", "/proc/1/fd/1"]).output or b""
    assert stdout.startswith(b"/dev/pts/"), stdout


# ------------------------------------------------------------ export/import
def test_export_into_a_device_or_fifo_writes_through_it(store: Store, tmp_path: Path) -> None:
    """``--export`` (and a history entry's export) into a device or FIFO writes into it as podman's
    ``os.Create`` does; renaming the archive over it would replace the device (as root, /dev/null)."""
    import concurrent.futures
    import stat
    import tarfile

    null = tmp_path / "null"  # a null device of the test's own: the host's is shared with every process
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="dev")
    ctr.checkpoint(export=null, keep=True, leave_running=True)
    assert stat.S_ISCHR(os.stat(null).st_mode)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        received = pool.submit(fifo.read_bytes)
        assert store.cli("checkpoint", "--export", str(fifo), "--compress", "none", "-R", "dev").returncode == 0
        with tarfile.open(fileobj=io.BytesIO(received.result(timeout=120))) as archive:
            assert "config.dump" in archive.getnames()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and stat.S_ISCHR(os.stat(null).st_mode)
    assert store.runtime.get("dev").status is S.RUNNING
    ctr.remove(force=True)


def test_export_remove_import_keeps_id_files_and_deletions(store: Store, tmp_path: Path) -> None:
    script = f"echo written > /written; rm /etc/group; mkdir -p /made/deep; {COUNTER}"
    ctr = store.runtime.run("busybox", ["sh", "-c", script], name="mover")
    assert wait_until(lambda: len(numbers(ctr)) >= 5)
    archive = tmp_path / "mover.tar.zst"
    proc = store.cli("checkpoint", "-e", str(archive), "mover")
    assert proc.returncode == 0, proc.stderr
    assert archive.read_bytes()[:4] == b"\x28\xb5\x2f\xfd" and archive.stat().st_mode & 0o777 == 0o600
    members = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True).stdout.split()
    for member in ("config.dump", "spec.dump", "checkpoint/inventory.img", "checkpoint/descriptors.json", "ctr.log",
                   "rootfs-diff.tar", "deleted.files", "network.status", "stats-dump"):
        assert member in members
    deleted = subprocess.run(["tar", "-xOf", str(archive), "deleted.files"], capture_output=True, text=True).stdout
    assert json.loads(deleted) == ["/etc/group"]
    frozen = numbers(ctr)
    assert store.cli("rm", "mover").returncode == 0
    assert not store.runtime.exists("mover")

    proc = store.cli("container", "restore", "-i", str(archive))
    assert (proc.returncode, proc.stdout) == (0, f"{ctr.id}\n"), proc.stderr
    back = store.runtime.get("mover")
    assert back.id == ctr.id and back.status is S.RUNNING and back.state.restored
    assert assert_counts_on(back)[len(frozen)] == frozen[-1] + 1
    assert back.exec_run(["cat", "/written"]).output == b"written\n"
    assert not rootfs_has(back, "/etc/group") and rootfs_has(back, "/etc/passwd")
    assert rootfs_has(back, "/made/deep")


def test_import_with_ignore_rootfs_and_other_compressions(store: Store, tmp_path: Path) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", f"echo x > /written; rm /etc/group; {COUNTER}"])
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    archive = tmp_path / "plain.tar"
    ctr.checkpoint(export=archive, compress="none")
    assert subprocess.run(["tar", "-tf", str(archive), "config.dump"], capture_output=True).returncode == 0
    ctr.remove()
    back = store.runtime.restore_from_archive(archive, ignore_rootfs=True)
    assert back.id == ctr.id and back.status is S.RUNNING
    assert not rootfs_has(back, "/written") and rootfs_has(back, "/etc/group")
    assert_counts_on(back)

    gz = tmp_path / "again.tar.gz"
    back.checkpoint(export=gz, compress="gzip", ignore_rootfs=True)
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    members = subprocess.run(["tar", "-tzf", str(gz)], capture_output=True, text=True).stdout.split()
    assert "rootfs-diff.tar" not in members and "checkpoint/inventory.img" in members


def test_import_with_name_runs_beside_the_original(store: Store, tmp_path: Path) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="orig")
    assert wait_until(lambda: len(numbers(ctr)) >= 5)
    archive = tmp_path / "orig.tar.zst"
    ctr.checkpoint(export=archive)
    frozen = numbers(ctr)
    ctr.remove()
    original = store.runtime.restore_from_archive(archive)
    proc = store.cli("restore", "--import", str(archive), "--name", "twin")
    assert proc.returncode == 0, proc.stderr
    twin = store.runtime.get("twin")
    assert original.id == ctr.id and twin.id == proc.stdout.strip() and twin.id != ctr.id
    assert twin.name == "twin" and original.name == "orig"
    for c in (original, twin):
        assert c.status is S.RUNNING
        assert assert_counts_on(c)[len(frozen)] == frozen[-1] + 1
    assert original.started_process != twin.started_process
    dup = store.cli("restore", "--import", str(archive))  # the original's ID is taken now
    assert dup.returncode == 125 and "already exists" in dup.stderr
    assert len(store.runtime.list()) == 2


def test_leave_running_never_stops_and_its_export_outlives_the_container(store: Store, tmp_path: Path) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER])
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    archive = tmp_path / "running.tar.zst"
    proc = store.cli("checkpoint", "-R", "-e", str(archive), ctr.id)
    assert proc.returncode == 0, proc.stderr
    ctr.reload()
    assert ctr.status is S.RUNNING and not ctr.state.checkpointed
    assert_counts_on(ctr)  # no gap while CRIU dumped it
    ctr.remove(force=True)
    back = store.runtime.restore_from_archive(archive)
    assert back.id == ctr.id
    seen = numbers(back)
    assert wait_until(lambda: len(numbers(back)) >= len(seen) + 3)
    resumed = numbers(back)[len(seen):]
    # The log in the archive ran on past the dump; the restored process resumes at the dump, never at 0.
    assert 0 < resumed[0] <= seen[-1] + 1 and resumed == list(range(resumed[0], resumed[0] + len(resumed)))


# ---------------------------------------------------------- pre-checkpoints
@pytest.mark.skipif(memory_tracking_supported(find_criu() or "criu"),
                    reason="memory tracking works here: the real pre-checkpoint test runs instead")
def test_pre_checkpoint_is_refused_without_memory_tracking(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="nopre")
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    for flags in (["-P"], ["--with-previous"]):
        proc = store.cli("checkpoint", *flags, "nopre")
        assert proc.returncode == 125
        assert proc.stderr == f"Error: {NO_MEMORY_TRACKING}\n"
    with pytest.raises(RuntimeFailure, match=re.escape(NO_MEMORY_TRACKING)):
        ctr.checkpoint(pre_checkpoint=True)
    assert ctr.reload().status is S.RUNNING and not (ctr.bundle / "pre-checkpoint").exists()
    assert_counts_on(ctr)
    info = json.loads(store.cli("info", "--format", "json").stdout)
    feature = info["features"]["memory_tracking"]
    assert feature["available"] is False and "Dirty tracking is OFF" in feature["detail"]


@pytest.mark.skipif(not memory_tracking_supported(find_criu() or "criu"),
                    reason="no memory dirty tracking here (criu check --feature mem_dirty_track fails; "
                           "CONFIG_MEM_SOFT_DIRTY unset): the refusal is tested instead")
def test_pre_checkpoint_then_with_previous_writes_fewer_pages(store: Store, tmp_path: Path) -> None:
    hold = "mkdir /m; mount -t tmpfs -o size=300m tmpfs /m 2>/dev/null; head -c 200m /dev/urandom > /dev/shm/x; " \
           f"x=$(head -c {200 * MB} /dev/zero | tr '\\0' a); {COUNTER}"
    ctr = store.runtime.run("busybox", ["sh", "-c", hold])
    assert wait_until(lambda: len(numbers(ctr)) >= 3, timeout=60)
    pre = ctr.checkpoint(pre_checkpoint=True, print_stats=True)
    assert ctr.reload().status is S.RUNNING
    final = ctr.checkpoint(with_previous=True, print_stats=True)
    assert pre is not None and final is not None
    assert final["criu_statistics"]["pages_written"] * 10 < pre["criu_statistics"]["pages_written"]
    ctr.restore()
    assert_counts_on(ctr)


# ------------------------------------------------------------- file locks
def test_file_lock_is_held_after_restore(store: Store) -> None:
    # busybox-static has no flock applet: bring the host's flock (and its loader and libc) into the rootfs.
    script = f"/usr/bin/flock -x /lockfile sh -c 'echo locked; while true; do sleep 0.1; done' & {COUNTER}"
    ctr = store.runtime.create("busybox", ["sh", "-c", script])
    root = ctr.mount()
    for host in (HOST_FLOCK, *HOST_FLOCK_LIBS):
        dest = root / host.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(host, dest)
    ctr.unmount()
    ctr.start()
    assert wait_until(lambda: any(line.data == b"locked\n" for line in ctr.logs()))

    def lock_is_free() -> bool:
        code = ctr.exec_run([HOST_FLOCK, "-n", "-x", "/lockfile", "true"]).exit_code
        assert code in (0, 1)
        return code == 0
    assert not lock_is_free()
    with pytest.raises(RuntimeFailure, match="file-locks"):
        ctr.checkpoint()  # CRIU refuses a held lock without --file-locks; the container runs on
    assert ctr.reload().status is S.RUNNING
    ctr.checkpoint(file_locks=True)
    assert ctr.status is S.EXITED
    ctr.restore(file_locks=True)
    assert ctr.status is S.RUNNING
    assert not lock_is_free(), "the restored process no longer holds its lock"
    assert_counts_on(ctr)


# -------------------------------------------------------------------- TCP
def test_established_tcp_connection(store: Store) -> None:
    """Server and client inside one container (network none), talking over its loopback."""
    tcp = host_capabilities(store.runtime.opts).features["tcp_checkpoint"]
    assert tcp.available, tcp.detail  # this kernel needs CRIU >= 4.2, which scripts/provision-criu.sh provides
    script = ("(sleep 100000 | nc -l -p 5000 > /tmp/received) & sleep 0.3; "
              "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done | nc 127.0.0.1 5000")
    ctr = store.runtime.run("busybox", ["sh", "-c", script], network="none")

    def received() -> int:
        out = ctr.exec_run(["sh", "-c", "tail -n 1 /tmp/received"]).output or b""
        return int(out) if out.strip().isdigit() else -1

    def connection_carries_data() -> bool:
        now = received()
        return wait_until(lambda: received() > now + 2, timeout=5)
    assert wait_until(lambda: received() >= 3)
    with pytest.raises(RuntimeFailure, match="consider using --tcp-established"):
        ctr.checkpoint()
    assert ctr.reload().status is S.RUNNING and connection_carries_data()

    for _ in range(2):  # the restored connection checkpoints again
        ctr.checkpoint(tcp_established=True)
        assert ctr.status is S.EXITED and not ctr.netns_path.exists()
        ctr.restore(tcp_established=True)
        # Restored into the namespace kernelext prepared (loopback up), where CRIU reconnects the sockets.
        assert ctr.status is S.RUNNING and in_netns(ctr) and connection_carries_data()


def test_restore_of_a_checkpoint_taken_in_a_namespace_runc_made(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints from before kernelext prepared namespaces: CRIU makes a new one, whose loopback comes up;
    it is held on the container's path, where runc's next checkpoint looks for it."""
    monkeypatch.setattr(Container, "netns_path", property(lambda self: None))
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER])
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    ctr.checkpoint()
    monkeypatch.undo()
    ctr.restore()
    assert in_netns(ctr)
    assert b"UP" in (ctr.exec_run(["ip", "-o", "link", "show", "lo"]).output or b"")
    assert_counts_on(ctr)
    ctr.checkpoint()  # and again, now in a namespace kernelext holds
    ctr.restore()
    assert in_netns(ctr)
    assert_counts_on(ctr)


# ------------------------------------------------------------- failures
def test_broken_or_killed_criu_leaves_the_container_running(store: Store, tmp_path: Path) -> None:
    real = find_criu()
    broken = tmp_path / "criu-broken"
    broken.write_text("#!/bin/sh\necho 'criu: this build is broken' >&2\nexit 1\n")
    # CRIU killed in the middle of its dump, with any helper it forked (in a group of its own: a helper
    # left alive would keep runc's end of the socket open, and runc would wait for it for ever).
    killed = tmp_path / "criu-killed"
    group = tmp_path / "criu-group"
    killed.write_text(f"#!/bin/sh\nrm -f {group}\nsetsid sh -c 'echo $$ > {group}; exec \"$0\" \"$@\"' \"{real}\" \"$@\" &\n"
                      f"sleep 0.05\n/bin/kill -KILL -- -$(cat {group})\nwait\n")  # dash's own kill takes no group
    for script in (broken, killed):
        script.chmod(0o755)
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="victim")
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    for criu in (broken, killed, tmp_path / "no-such-criu"):
        with (Runtime(store.runtime.opts.root, store.runtime.opts.runroot, criu=str(criu)) as other,
              pytest.raises(RuntimeFailure, match="checkpoint of container victim failed")):
            other.get("victim").checkpoint()
        assert ctr.reload().status is S.RUNNING and in_netns(ctr)
        assert ctr.state.checkpointed is False and not (ctr.bundle / "checkpoint").exists()
        assert ctr.exec_run(["echo", "alive"]).output == b"alive\n"
        assert_counts_on(ctr)
    proc = store.cli("--criu", str(broken), "checkpoint", "victim")
    assert proc.returncode == 125 and proc.stderr.startswith("Error: checkpoint of container victim failed")
    assert len(proc.stderr.splitlines()) == 1
    ctr.checkpoint()  # the real one still works afterwards
    ctr.restore()
    assert_counts_on(ctr)


def test_failed_restore_leaves_nothing_half_started(store: Store, tmp_path: Path) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="fragile")
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    archive = tmp_path / "fragile.tar"
    ctr.checkpoint(export=archive, compress="none", keep=True)
    (ctr.bundle / "checkpoint" / "pstree.img").write_bytes(b"garbage")
    with pytest.raises(RuntimeFailure, match=r"restore of container fragile failed: CRIU: .*\(log: .*restore.log\)"):
        ctr.restore()
    ctr.reload()
    assert ctr.status is S.EXITED and ctr.state.checkpointed
    assert not ctr.layer.is_mounted() and store.runc_containers() == [] and not ctr.netns_path.exists()
    # conmon of the failed attempt is gone once its exit command has run (it finds nothing to clean up).
    assert wait_until(lambda: conmons_of(ctr) == [])
    ctr.remove()
    subprocess.run(["tar", "--delete", "-f", str(archive), "checkpoint/pstree.img"], check=True)
    with pytest.raises(RuntimeFailure, match="restore of container fragile failed"):
        store.runtime.restore_from_archive(archive)
    assert store.runtime.list() == [] and store.runc_containers() == []


# -------------------------------------------------------------- refusals
def test_refusals_with_podmans_messages(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    created = store.runtime.create("busybox", ["sh", "-c", COUNTER], name="idle")
    with pytest.raises(ContainerStateError, match='^"created" is not running, cannot checkpoint'):
        created.checkpoint()
    running = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="busy")
    with pytest.raises(ContainerStateError, match=f"container {running.id} is running or paused, cannot restore"):
        running.restore()
    running.pause()
    with pytest.raises(ContainerStateError, match="is running or paused, cannot restore"):
        running.restore()
    running.unpause()
    with pytest.raises(ContainerStateError, match="a complete checkpoint for this container cannot be found"):
        created.restore()
    rm = store.runtime.run("busybox", ["sh", "-c", COUNTER], auto_remove=True)
    with pytest.raises(InvalidArgumentError, match="started with '--rm' unless '--export' is used"):
        rm.checkpoint()
    cli_refusals = {
        ("checkpoint", "-c", "gzip", "busy"): "--compress can only be used with --export",
        ("checkpoint", "--ignore-rootfs", "busy"): "--ignore-rootfs can only be used with --export",
        ("checkpoint", "--ignore-volumes", "busy"): "--ignore-volumes can only be used with --export",
        ("checkpoint", "-P", "--with-previous", "busy"): "--with-previous can not be used with --pre-checkpoint",
        ("checkpoint", "-e", "/tmp/x.tar", "-c", "bzip2", "busy"): "selected compression algorithm",
        ("restore", "-n", "new", "busy"): "--name can only be used with image or --import",
        ("restore", "--ignore-rootfs", "idle"): "--ignore-rootfs can only be used with image or --import",
        ("restore", "--import-previous", "/tmp/p.tar", "idle"): "--import-previous can only be used with image",
        ("restore", "-i", "/tmp/a.tar", "idle"): "cannot use --import with positional arguments",
        ("restore", "-i", "/tmp/a.tar", "-a"): "cannot use --import with --all or --latest",
        ("restore", "-i", "/tmp/a.tar", "-n", "x", "--tcp-established"): "--tcp-established cannot be used with --name",
        ("checkpoint", "-a", "busy"): "--all or --latest and containers cannot be used together",
        ("restore",): "you must provide at least one name or id",
    }
    for argv, message in cli_refusals.items():
        proc = store.cli(*argv)
        assert proc.returncode == 125 and proc.stderr.startswith("Error: ") and message in proc.stderr, (argv, proc)
    assert store.runtime.get("busy").status is S.RUNNING and store.runtime.get("idle").status is S.CONFIGURED
    # --rm with --export: checkpointed, then removed as podman does.
    rm.checkpoint(export=store.base / "rm.tar.zst")
    assert not store.runtime.exists(rm.id)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PermissionRequiredError, match="^checkpointing a container requires root$"):
        running.checkpoint()
    with pytest.raises(PermissionRequiredError, match="^restoring a container requires root$"):
        running.restore()


def test_all_and_latest(store: Store) -> None:
    first = store.runtime.run("busybox", ["sh", "-c", COUNTER])
    second = store.runtime.run("busybox", ["sh", "-c", COUNTER])
    proc = store.cli("checkpoint", "-l")
    assert (proc.returncode, proc.stdout) == (0, f"{second.id}\n")
    assert first.reload().status is S.RUNNING and second.reload().status is S.EXITED
    proc = store.cli("checkpoint", "--all")
    assert (proc.returncode, proc.stdout) == (0, f"{first.id}\n")
    proc = store.cli("restore", "--all")
    assert proc.returncode == 0 and sorted(proc.stdout.split()) == sorted([first.id, second.id])
    for ctr in (first, second):
        assert ctr.reload().status is S.RUNNING and ctr.state.restored


def test_a_log_follower_on_the_same_object_never_undoes_a_restore(store: Store) -> None:
    """A panel's output follows the container's log in a thread of its own, on the object its buttons act on:
    its checks must not replace the state an operation is filling in (the restore was saved as not done)."""
    import threading

    ctr = store.runtime.run("busybox", ["sh", "-c", COUNTER], name="followed")
    assert wait_until(lambda: len(numbers(ctr)) >= 3)
    ctr.checkpoint()
    stop = threading.Event()

    def follow() -> None:  # as LiveOutput does: polls the exit condition while the restore runs
        while not stop.is_set():
            for _ in ctr.logs(follow=True):
                pass

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        for _ in range(3):
            ctr.restore()
            assert ctr.status is S.RUNNING and ctr.reload().status is S.RUNNING
            ctr.checkpoint()
    finally:
        stop.set()
    ctr.restore()
    follower.join(timeout=10)
    assert ctr.reload().status is S.RUNNING and ctr.state.restored
