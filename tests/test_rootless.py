"""Rootless containers (issue #7): run by .ci/run as normal users, with and without subordinate IDs.

The rest of the suite (lifecycle, copy, magics) runs as those users too; this
module holds what only a normal user sees: the user's own store, the refusals
for what the kernel does not grant (CRIU, the freezer), and ID mapping.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kernelext import PermissionRequiredError, Runtime, host_capabilities
from kernelext.core.state import ContainerStatus as S
from kernelext.rootless import pause_refusal, user_id_map

from conftest import ROOTLESS, Store, wait_until

pytestmark = pytest.mark.skipif(not ROOTLESS, reason="rootless behaviour: .ci/run runs this module as normal users")

SUBORDINATE = ROOTLESS and user_id_map().subordinate


def _owners_under(base: Path) -> set[int]:
    owners = set()
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            owners.add(os.lstat(os.path.join(dirpath, name)).st_uid)
    return owners


def _own_ids() -> set[int]:
    id_map = user_id_map()
    return {r.outside + i for r in id_map.uids for i in range(r.count)} if id_map.subordinate else {os.getuid()}


@pytest.mark.integration
def test_cli_lifecycle_in_the_users_default_store(tmp_path: Path) -> None:
    """podman's rootless tour: run --rm, run -d, logs, exec, cp both ways, stop, rm — all in $XDG dirs."""
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_RUNTIME_DIR": str(tmp_path / "xdg-run")}
    for key in ("KERNELEXT_ROOT", "KERNELEXT_RUNROOT"):
        env.pop(key, None)
    (tmp_path / "xdg-run").mkdir(mode=0o700)

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kernelext", *argv], capture_output=True, text=True,
                              env=env, timeout=60, cwd=tmp_path)

    rt = None
    try:
        proc = cli("run", "--rm", "busybox", "id")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("uid=0(root) gid=0(root)")
        assert cli("run", "-d", "--name", "web", "busybox", "sh", "-c", "echo up; sleep 1000").returncode == 0
        assert wait_until(lambda: cli("logs", "web").stdout == "up\n")
        assert cli("exec", "web", "cat", "/proc/self/uid_map").stdout.split()[:3] == ["0", str(os.getuid()), "1"]
        (tmp_path / "in.txt").write_text("from the host\n")
        assert cli("cp", str(tmp_path / "in.txt"), "web:/tmp/").returncode == 0
        assert cli("exec", "web", "stat", "-c", "%u:%g %n", "/tmp/in.txt").stdout == "0:0 /tmp/in.txt\n"
        assert cli("cp", "web:/etc/hostname", str(tmp_path / "out.txt")).returncode == 0
        assert (tmp_path / "out.txt").read_text().strip() == json.loads(cli("inspect", "web").stdout)[0]["Id"][:12]
        assert cli("stop", "-t", "0", "web").returncode == 0
        assert cli("rm", "web").returncode == 0
        store = tmp_path / "data" / "kernelext" / "storage"
        runroot = tmp_path / "xdg-run" / "kernelext"
        assert (store / "db.sqlite").is_file() and (runroot / "exits").is_dir()
        assert stat.S_IMODE(store.stat().st_mode) == 0o700 and stat.S_IMODE(runroot.stat().st_mode) == 0o700
        assert os.listdir(store / "containers") == [] and os.listdir(store / "overlay") == []
        # Nothing owned by anyone but this user (and its subordinate IDs): no root-owned leftovers.
        assert _owners_under(tmp_path) <= _own_ids()
        rt = Runtime(store, runroot)
        assert rt.list() == []
    finally:
        rt = rt or Runtime(tmp_path / "data" / "kernelext" / "storage", tmp_path / "xdg-run" / "kernelext")
        for ctr in rt.list():
            ctr.remove(force=True)
        rt.close()  # first: it waits for the trash, which is emptied inside the namespace
        rt.namespace.stop()


def test_checkpoint_and_restore_are_refused_and_the_container_keeps_running(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="frozen")
    with pytest.raises(PermissionRequiredError, match="^checkpointing a container requires root$"):
        ctr.checkpoint()
    proc = store.cli("container", "checkpoint", "frozen")
    assert (proc.returncode, proc.stderr) == (125, "Error: checkpointing a container requires root\n")
    proc = store.cli("container", "restore", "frozen")
    assert (proc.returncode, proc.stderr) == (125, "Error: restoring a container requires root\n")
    assert ctr.reload().status is S.RUNNING and ctr.exec_run(["true"]).exit_code == 0


def test_pause_is_refused_with_the_reason(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="busy")
    with pytest.raises(PermissionRequiredError) as info:
        ctr.pause()
    assert str(info.value) == pause_refusal()
    proc = store.cli("pause", "busy")
    assert (proc.returncode, proc.stderr) == (125, f"Error: {pause_refusal()}\n")
    assert ctr.reload().status is S.RUNNING


def test_host_capabilities_say_what_works_for_this_user() -> None:
    caps = host_capabilities()
    assert caps.rootless
    assert caps.available("runc") and caps.available("user_namespace") and caps.available("overlay")
    assert caps.features["id_mapping"].available is SUBORDINATE
    assert caps.features["checkpoint"].detail == "checkpointing a container requires root"
    assert not caps.available("checkpoint") and not caps.available("freezer") and not caps.available("cgroups")


def test_network_none_and_host(store: Store) -> None:
    none = store.cli("run", "--rm", "busybox", "ip", "-o", "link")
    assert none.returncode == 0, none.stderr
    assert [line.split(":")[1].strip() for line in none.stdout.splitlines()] == ["lo"]
    host = store.cli("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    assert host.returncode == 0, host.stderr
    host_links = sorted(os.listdir("/sys/class/net"))
    assert sorted(line.split(":")[1].strip().split("@")[0] for line in host.stdout.splitlines()) == host_links


def test_stats_come_from_the_processes(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", "sleep 1000 & sleep 1000"])
    assert wait_until(lambda: len(ctr.top()) == 2)
    # the user's UID is root inside: top names it from the container's passwd, as podman's top does
    assert {row["USER"] for row in ctr.top()} == {"root"}
    stats = ctr.stats()
    assert stats["PIDs"] == 2 and 0 < stats["MemUsage"] < 64 << 20  # two sleeps, not the user's session


def test_a_run_directory_of_someone_else_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PermissionRequiredError, match="belongs to another user"):
        Runtime(tmp_path / "root", "/tmp")


def _image_with_owned_file(tmp_path: Path) -> Path:
    tarball = tmp_path / "owned.tar"
    busybox = Path("/bin/busybox").read_bytes()
    with tarfile.open(tarball, "w") as tar:
        for name in ("bin", "home", "home/user"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            info.uid = info.gid = 1000 if name == "home/user" else 0
            tar.addfile(info)
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(busybox), 0o755
        tar.addfile(info, io.BytesIO(busybox))
        info = tarfile.TarInfo("home/user/notes")
        info.size, info.mode, info.uid, info.gid = 3, 0o600, 1000, 1000
        tar.addfile(info, io.BytesIO(b"hi\n"))
    return tarball


@pytest.mark.skipif(not SUBORDINATE, reason="needs subordinate ID ranges and newuidmap")
def test_subordinate_ids_keep_an_images_file_owners(store: Store, tmp_path: Path) -> None:
    store.runtime.images.import_tarball(_image_with_owned_file(tmp_path), "owned")
    proc = store.cli("run", "--rm", "owned", "/bin/busybox", "stat", "-c", "%u:%g", "/home/user/notes")
    assert (proc.returncode, proc.stdout) == (0, "1000:1000\n"), proc.stderr
    sub = user_id_map().uids[1]
    assert store.cli("image", "rm", "owned").returncode == 0
    assert not any(p.name == "notes" for p in store.runtime.opts.root.rglob("notes")), "image files left behind"
    assert sub.outside + 999 not in _owners_under(store.runtime.opts.root)


@pytest.mark.skipif(SUBORDINATE, reason="the single-user mapping")
def test_without_subordinate_ids_everything_is_root_inside(store: Store, tmp_path: Path) -> None:
    store.runtime.images.import_tarball(_image_with_owned_file(tmp_path), "owned")
    proc = store.cli("run", "--rm", "owned", "/bin/busybox", "stat", "-c", "%u:%g", "/home/user/notes")
    assert (proc.returncode, proc.stdout) == (0, "0:0\n"), proc.stderr
    assert "no subordinate IDs" in host_capabilities().features["id_mapping"].detail
    ctr = store.runtime.run("busybox", ["sleep", "1000"])
    assert ctr.exec_run(["cat", "/proc/self/uid_map"]).output.split() == [b"0", str(os.getuid()).encode(), b"1"]


def test_panel_and_timeline_offer_only_what_a_normal_user_can_do(store: Store) -> None:
    from kernelext.widgets import CheckpointTimeline, ContainerPanel

    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="offered")
    panel, timeline = ContainerPanel(ctr), CheckpointTimeline(ctr)
    try:
        assert panel.header.allowed == ["stop", "kill", "restart"]
        assert timeline.allowed == []
    finally:
        panel.close()
        timeline.close()


def test_a_killed_pause_process_is_replaced_in_the_same_namespace(store: Store, tmp_path: Path) -> None:
    """podman rejoins through a conmon: mounts made before stay visible, so the container stays manageable."""
    ctr = store.runtime.run("busybox", ["sh", "-c", "echo kept > /tmp/kept; sleep 1000"], name="survivor")
    assert wait_until(lambda: ctr.exec_run(["test", "-s", "/tmp/kept"]).exit_code == 0)
    old = store.runtime.namespace.pid()
    os.kill(old, signal.SIGKILL)
    assert wait_until(lambda: not os.path.exists(f"/proc/{old}") or "Z" in Path(f"/proc/{old}/stat").read_text())
    fresh = Runtime(store.runtime.opts.root, store.runtime.opts.runroot)  # another process's view
    try:
        again = fresh.get("survivor")
        assert fresh.namespace.pid() != old
        assert os.stat(f"/proc/{fresh.namespace.pid()}/ns/mnt").st_ino == os.stat(f"/proc/{ctr.state.conmon_pid}/ns/mnt").st_ino
        assert (again.mount() / "tmp" / "kept").read_text() == "kept\n"  # the same overlay mount, seen again
        again.unmount()
        again.stop(timeout=0)
        again.remove()
        assert store.runtime.list() == []
    finally:
        fresh.close()
