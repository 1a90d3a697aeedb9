"""Where containers and conmon go in the cgroup tree, and that nothing of a container's cgroup outlives it
(issue #23; docs/architecture.md §15). The expectations are computed from the host (systemd or not,
v1 or v2, root or not) so the same file runs on this v1 build machine and in the cgroup v2 VM
(scripts/vm-cgroup2.sh)."""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import psutil
import pytest

from kernelext.errors import InvalidArgumentError
from kernelext.oci import cgroups, kmsg
from kernelext.oci.cgroups import CgroupManager, CgroupOptions, CgroupsMode

from conftest import ROOTLESS, Store, wait_until

ROOT = Path("/sys/fs/cgroup")
V2 = (ROOT / "cgroup.controllers").exists()
SYSTEMD = Path("/run/systemd/system").is_dir()
#: podman's manager here: systemd where it runs (a normal user also needs v2), cgroupfs otherwise.
EXPECTED_MANAGER = "systemd" if SYSTEMD and (V2 or not ROOTLESS) and cgroups.systemd_reachable(ROOTLESS) \
    else "cgroupfs"
#: Whether containers get a cgroup of their own (rootless on cgroupfs: none, as with podman).
OWN_CGROUP = not ROOTLESS or EXPECTED_MANAGER == "systemd"



def _proc_cgroup(pid: int) -> str:
    """The unified (v2) path of ``pid``, else its v1 memory controller's."""
    lines = dict(line.split(":", 2)[1:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    return lines[""] if V2 else lines["memory"]


def _leftovers(ctr_id: str) -> list[str]:
    """Any cgroup directory named for the container (cgroupfs, systemd scope, split payload), in any
    hierarchy, under the parents kernelext uses."""
    names = {ctr_id, f"libpod-{ctr_id}.scope", f"libpod-payload-{ctr_id}", f"libpod-conmon-{ctr_id}.scope"}
    found = []
    for top in [ROOT, *(p for p in ROOT.iterdir() if p.is_dir())] if not V2 else [ROOT]:
        for parent in (top / "kernelext", top / "machine.slice", top):
            if parent.is_dir():
                found += [str(parent / n) for n in names if (parent / n).exists()]
    return found


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _info(store: Store) -> dict:
    proc = store.cli("info", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_info_reports_hierarchy_manager_and_controllers(store: Store) -> None:
    host = _info(store)["host"]
    assert host["cgroupVersion"] == ("v2" if V2 else "v1 (hybrid)" if (ROOT / "unified").is_dir() else "v1")
    assert host["cgroupManager"] == EXPECTED_MANAGER
    if V2 and not ROOTLESS:
        assert host["cgroupControllers"] == (ROOT / "cgroup.controllers").read_text().split()
    elif not V2 and not ROOTLESS:
        assert {"memory", "pids", "cpu", "freezer"} <= set(host["cgroupControllers"])
    elif not V2:
        assert host["cgroupControllers"] == []  # a normal user has nothing delegated on v1
    features = _info(store)["features"]
    assert features["overlay"]["available"], features["overlay"]


def test_container_and_conmon_are_where_podman_puts_them(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="placed")
    doc = ctr.inspect()
    assert doc["HostConfig"]["CgroupManager"] == EXPECTED_MANAGER
    assert doc["HostConfig"]["CgroupnsMode"] == ("private" if V2 else "host")
    path = _proc_cgroup(ctr.state.pid)
    assert doc["State"]["CgroupPath"] == path
    conmon_path = _proc_cgroup(ctr.state.conmon_pid)
    if EXPECTED_MANAGER == "systemd":
        assert path.endswith(f"/libpod-{ctr.id}.scope")
        assert path.startswith("/machine.slice/") if not ROOTLESS else "/user.slice/" in path
        assert conmon_path.endswith(f"/libpod-conmon-{ctr.id}.scope"), conmon_path
        assert doc["HostConfig"]["CgroupParent"] == ("user.slice" if ROOTLESS else "machine.slice")
    elif OWN_CGROUP:
        assert path == f"/kernelext/{ctr.id}" and doc["HostConfig"]["CgroupParent"] == "/kernelext"
        assert conmon_path != path
    else:
        assert path == _proc_cgroup(os.getpid()) or ctr.id not in path
    ctr.remove(force=True)
    assert wait_until(lambda: _leftovers(ctr.id) == []), _leftovers(ctr.id)


@pytest.mark.skipif(ROOTLESS, reason="checkpoint/restore needs root (CRIU), as with podman")
def test_no_cgroup_outlives_run_checkpoint_restore_crash_and_rm(store: Store, tmp_path: Path) -> None:
    rt = store.runtime
    ids = []
    ctr = rt.run("busybox", ["sh", "-c", "while :; do sleep 0.2; done"], name="counted")
    ids.append(ctr.id)
    assert _leftovers(ctr.id), "a running container has a cgroup"
    ctr.checkpoint()
    # Checkpointed, its processes are gone: so is its cgroup (systemd stops an emptied scope a moment later).
    assert wait_until(lambda: _leftovers(ctr.id) == [], timeout=30), _leftovers(ctr.id)
    ctr.restore()
    assert ctr.status.value == "running" and _leftovers(ctr.id)
    archive = tmp_path / "c.tar.zst"
    ctr.checkpoint(export=str(archive), leave_running=True)
    copy = rt.restore_from_archive(str(archive), name="copy")
    ids.append(copy.id)
    for c in (ctr, copy):
        c.remove(force=True)
    # A crash: conmon and the container killed behind kernelext's back, then rm.
    crashed = rt.run("busybox", ["sleep", "1000"], name="crashed")
    ids.append(crashed.id)
    os.kill(crashed.state.conmon_pid, signal.SIGKILL)
    os.kill(crashed.state.pid, signal.SIGKILL)
    assert wait_until(lambda: _gone(crashed.state.pid))
    assert store.cli("rm", "-f", "crashed").returncode == 0
    proc = store.cli("run", "--rm", "--name", "once", "busybox", "true")
    assert proc.returncode == 0, proc.stderr
    for ctr_id in ids:
        assert wait_until(lambda c=ctr_id: _leftovers(c) == [], timeout=30), _leftovers(ctr_id)


def test_bad_cgroup_flags_are_refused_and_leave_nothing(store: Store) -> None:
    cases = [(["--cgroups", "disabled"], "requested OCI runtime runc is not compatible with NoCgroups"),
             (["--cgroups", "split", "--cgroup-parent", "x"], "cannot specify --cgroup-parent with --cgroups=split"),
             (["--cgroups", "sometimes"], "invalid cgroup mode"),
             (["--cgroupns", "shared"], "invalid --cgroupns")]
    if EXPECTED_MANAGER == "cgroupfs":
        cases.append((["--cgroup-parent", "kx.slice"], "systemd slice received as cgroup parent when using cgroupfs"))
    else:
        cases.append((["--cgroup-parent", "/kx"], "did not receive systemd slice as cgroup parent"))
    for flags, message in cases:
        proc = store.cli("run", "--rm", *flags, "busybox", "true")
        assert proc.returncode == 125 and proc.stderr.startswith("Error: ") and message in proc.stderr, (flags, proc)
    if not SYSTEMD:
        proc = store.cli("--cgroup-manager", "systemd", "run", "--rm", "busybox", "true")
        assert proc.returncode == 125 and "systemd is not running" in proc.stderr
    assert store.cli("ps", "-aq").stdout.strip() == ""


@pytest.mark.skipif(not OWN_CGROUP, reason="rootless on cgroupfs: containers share the user's cgroup (podman too)")
def test_cgroup_parent_and_namespace(store: Store) -> None:
    if EXPECTED_MANAGER == "systemd":
        parent, where = "kxtest.slice", "/kxtest.slice/libpod-{id}.scope"
    else:
        name = f"kxtest-{uuid.uuid4().hex[:8]}"
        parent, where = f"/{name}", f"/{name}/{{id}}"
    if ROOTLESS:  # a user's own manager: its slices are under user@UID.service
        where = where.split("/", 2)[2]
    ctr = store.runtime.run("busybox", ["sleep", "1000"], cgroup_parent=parent, cgroupns="host")
    try:
        assert _proc_cgroup(ctr.state.pid).endswith(where.format(id=ctr.id))
        inside = ctr.exec_run(["cat", "/proc/self/cgroup"]).output.decode()
        assert ctr.id in inside  # the host's cgroup namespace: the full path
        private = store.runtime.run("busybox", ["cat", "/proc/self/cgroup"], cgroupns="private")
        private.wait()
        text = b"".join(line.data for line in private.logs()).decode()
        assert text.strip() == "0::/" if V2 else ctr.id not in text and private.id not in text
        private.remove()
    finally:
        ctr.remove(force=True)
        if EXPECTED_MANAGER == "cgroupfs":
            for top in [ROOT] if V2 else [p for p in ROOT.iterdir() if p.is_dir()]:
                if (top / parent.lstrip("/")).is_dir():
                    (top / parent.lstrip("/")).rmdir()
    assert wait_until(lambda: _leftovers(ctr.id) == [])


@pytest.mark.skipif(ROOTLESS, reason="split as a normal user: the container gets no cgroup (rootless cgroupfs)")
def test_split_puts_the_container_under_the_callers_cgroup(store: Store) -> None:
    """podman's split: the caller's cgroup holds the container's payload cgroup and, on v2, a ``supervisor``
    child where the caller's processes (this test, then conmon) were moved so it may have children."""
    before = _proc_cgroup(os.getpid())
    ctr = store.runtime.run("busybox", ["sleep", "1000"], cgroups="split")
    try:
        mine = _proc_cgroup(os.getpid())
        if V2:
            assert mine.endswith("/supervisor") and mine in (f"{before.rstrip('/')}/supervisor", before)
            caller = mine.rpartition("/")[0] or "/"
        else:
            caller = mine
        assert _proc_cgroup(ctr.state.pid) == f"{caller.rstrip('/')}/libpod-payload-{ctr.id}"
        assert _proc_cgroup(ctr.state.conmon_pid) == mine  # conmon stays with the caller
        assert ctr.inspect()["HostConfig"]["Cgroups"] == "split"
        assert ctr.inspect()["HostConfig"]["CgroupParent"] == caller
        again = store.runtime.run("busybox", ["true"], cgroups="split")  # a second split: the same layout
        assert again.wait(timeout=60) == 0 and _proc_cgroup(os.getpid()) == mine
        again.remove()
    finally:
        ctr.remove(force=True)
    payload = f"{caller.rstrip('/')}/libpod-payload-{ctr.id}"
    assert wait_until(lambda: _leftovers(ctr.id) == [] and
                      not Path(f"{ROOT}{'' if V2 else '/memory'}{payload}").exists())


@pytest.mark.skipif(not OWN_CGROUP, reason="rootless on cgroupfs: no cgroup, so no limits (podman's refusal)")
def test_stats_show_the_memory_limit_pids_and_cpu(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000"],
                            memory="64m")
    free = store.runtime.run("busybox", ["sleep", "1000"])
    try:
        assert wait_until(lambda: ctr.stats()["CPUNano"] > 0)
        stats = ctr.stats()
        assert stats["MemLimit"] == 64 << 20 and 0 < stats["MemUsage"] < 64 << 20 and stats["PIDs"] >= 1
        assert free.stats()["MemLimit"] == psutil.virtual_memory().total  # no limit: the host's memory
        table = store.cli("stats", "--no-stream", ctr.name).stdout
        assert "/ 67.1MB" in table, table
    finally:
        ctr.remove(force=True)
        free.remove(force=True)


def test_pause_where_the_container_has_a_freezable_cgroup(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"])
    try:
        if OWN_CGROUP and (not ROOTLESS or V2):
            ctr.pause()
            assert ctr.status.value == "paused"
            if V2:
                assert (ROOT / _proc_cgroup(ctr.state.pid).lstrip("/") / "cgroup.freeze").read_text().strip() == "1"
            ctr.unpause()
            assert ctr.status.value == "running"
        else:
            proc = store.cli("pause", ctr.name)
            assert proc.returncode == 125 and "cannot pause" in proc.stderr or "can not pause" in proc.stderr
    finally:
        ctr.remove(force=True)


# Pure logic (no runc): the paths and names each manager gives runc, systemd and inspect.
ID = "ab" * 32


def test_systemd_paths_and_scopes() -> None:
    root = CgroupOptions(manager=CgroupManager.SYSTEMD)
    assert root.cgroups_path(ID) == f"machine.slice:libpod:{ID}"
    assert root.expected_path(ID) == f"/machine.slice/libpod-{ID}.scope"
    assert root.runtime_args() == ["--systemd-cgroup"] and root.conmon_scope(ID) == f"libpod-conmon-{ID}.scope"
    nested = CgroupOptions(manager=CgroupManager.SYSTEMD, parent="kx-web.slice")
    assert nested.expected_path(ID) == f"/kx.slice/kx-web.slice/libpod-{ID}.scope"  # systemd's slice nesting
    user = CgroupOptions(manager=CgroupManager.SYSTEMD, rootless=True)
    assert user.cgroups_path(ID) == f"user.slice:libpod:{ID}" and user.inspect_parent == "user.slice"
    assert CgroupOptions(manager=CgroupManager.SYSTEMD, mode=CgroupsMode.NO_CONMON).conmon_scope(ID) is None


def test_cgroupfs_paths_and_rootless_without_a_cgroup() -> None:
    root = CgroupOptions()
    assert root.cgroups_path(ID) == f"/kernelext/{ID}" and root.runtime_args() == [] and root.conmon_scope(ID) is None
    assert CgroupOptions(rootless=True).cgroups_path(ID) is None
    split = CgroupOptions(mode=CgroupsMode.SPLIT, split_parent="/user.slice/x.scope")
    assert split.cgroups_path(ID) == f"/user.slice/x.scope/libpod-payload-{ID}"
    assert all(cgroups.is_container_dir(n, ID) for n in (ID, f"libpod-{ID}.scope", f"libpod-payload-{ID}"))
    assert not cgroups.is_container_dir(f"libpod-conmon-{ID}.scope", ID)


def test_restore_names_the_own_cgroup_to_criu_only_on_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    # runc 1.1 gives CRIU the cgroup root on v1 itself; on v2 kernelext must (the VM run proves the restore).
    systemd = CgroupOptions(manager=CgroupManager.SYSTEMD)
    monkeypatch.setattr(cgroups, "hierarchy", lambda: cgroups.Hierarchy.V2)
    assert systemd.restore_root(ID) == f"/machine.slice/libpod-{ID}.scope"
    assert CgroupOptions().restore_root(ID) == f"/kernelext/{ID}"
    assert CgroupOptions(manager=CgroupManager.SYSTEMD, rootless=True).restore_root(ID) is None
    for other in (cgroups.Hierarchy.V1, cgroups.Hierarchy.HYBRID):
        monkeypatch.setattr(cgroups, "hierarchy", lambda h=other: h)
        assert systemd.restore_root(ID) is None


def test_options_survive_the_store_and_old_configs_load() -> None:
    opts = CgroupOptions(manager=CgroupManager.SYSTEMD, parent="a.slice", rootless=True)
    assert CgroupOptions.from_json(opts.to_json()) == opts
    old = CgroupOptions.from_json({})  # made before cgroup options: cgroupfs, /kernelext, none rootless
    assert old.manager is CgroupManager.CGROUPFS and old.cgroups_path(ID) == (None if ROOTLESS else f"/kernelext/{ID}")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cgroup_manager": "upstart"}, 'invalid cgroup manager "upstart"'),
    ({"cgroup_manager": "cgroupfs", "cgroup_parent": "a.slice"}, "systemd slice received as cgroup parent"),
    ({"cgroup_manager": "cgroupfs", "cgroups": "disabled"}, "not compatible with NoCgroups"),
])
def test_build_refuses_as_podman(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        CgroupOptions.build(**kwargs)


# ------------------------------------------------------------------ OOM kills from the kernel's report
KMSG_OOM = ("6,12345,57556519657,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=libpod-ab.scope,"
            "mems_allowed=0,oom_memcg=/machine.slice/libpod-ab.scope,task_memcg=/machine.slice/libpod-ab.scope,"
            "task=sh,pid=22134,uid=0\n SUBSYSTEM=memory")


def test_kernel_oom_records_are_parsed() -> None:
    kill = kmsg.parse_record(KMSG_OOM)
    assert kill == kmsg.OomKill(at=57556.519657, cgroup="/machine.slice/libpod-ab.scope", task="sh", pid=22134)
    assert kmsg.parse_record("6,12346,57556519700,-;Memory cgroup out of memory: Killed process 22134 (sh)") is None
    assert kmsg.parse_record("garbage") is None


@pytest.mark.skipif(ROOTLESS, reason="the kernel's log needs CAP_SYSLOG (dmesg_restrict), so root only")
def test_an_oom_kill_is_found_in_the_kernels_report_after_the_cgroup_is_gone(store: Store) -> None:
    """What OOMKilled rests on where conmon misses the kill (v2 with systemd: kernelext.oci.kmsg):
    the kernel's report names the container's cgroup, and only that container's run."""
    hog = store.runtime.run("busybox", ["sh", "-c", "x=a; while :; do x=$x$x; done"], name="hog", memory="24m")
    assert hog.wait(timeout=120) == 137
    calm = store.runtime.run("busybox", ["true"], name="calm", memory="24m")
    assert calm.wait(timeout=60) == 0
    hog_names, calm_names = cgroups.container_dir_names(hog.id), cgroups.container_dir_names(calm.id)
    assert kmsg.oom_killed_since(hog_names, hog.state.started_at)
    assert not kmsg.oom_killed_since(calm_names, calm.state.started_at)
    # A later run of the same container does not inherit the earlier kill.
    assert not kmsg.oom_killed_since(hog_names, hog.state.finished_at + 2 * kmsg.CLOCK_SLACK_S)
    assert hog.inspect()["State"]["OOMKilled"] is True
    store.runtime.remove(hog.id, force=True)  # its cgroup (and memory.events) go: the report stays
    assert wait_until(lambda: _leftovers(hog.id) == [], timeout=30), _leftovers(hog.id)  # conmon's scope goes a bit later
    assert kmsg.oom_killed_since(hog_names, hog.state.started_at)
