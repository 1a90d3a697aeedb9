"""Resource limits on real runc/conmon: memory and the OOM killer, CPU quota, update, ulimits (issue 15)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from kernelext.core.state import ContainerConfig
from kernelext.errors import InvalidArgumentError
from kernelext.oci.resources import DEFAULT_PIDS_LIMIT, Resources, Ulimit

from conftest import ROOTLESS, Store, needs_root, wait_until

CGROUP = Path("/sys/fs/cgroup")
MIB = 1 << 20


def _cgroup(controller: str, ctr_id: str) -> Path:
    return CGROUP / controller / "kernelext" / ctr_id


def _error_line(proc: object) -> str:
    lines = proc.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr  # type: ignore[attr-defined]
    return lines[0]


# ------------------------------------------------------------------ pure logic
def test_podman_sizes_and_defaults() -> None:
    res = Resources.build(memory="64m", cpus=0.5, memory_reservation="32m")
    assert (res.memory, res.memory_reservation, res.nano_cpus) == (64 * MIB, 32 * MIB, 500_000_000)
    assert res.swap_limit == 128 * MIB  # podman: twice the memory when --memory-swap is not given
    assert res.quota_period == (50_000, 100_000)
    spec = res.linux_resources()
    assert spec["memory"] == {"limit": 64 * MIB, "swap": 128 * MIB, "reservation": 32 * MIB}
    assert spec["cpu"] == {"quota": 50_000, "period": 100_000}
    assert spec["pids"] == {"limit": DEFAULT_PIDS_LIMIT}
    assert Resources.build(memory="1g", memory_swap="-1").swap_limit == -1
    assert Resources.build(pids_limit=-1).linux_resources() == {}
    assert not Resources.build().needs_cgroup and Resources.build(memory="8m").needs_cgroup


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"memory": "1m"}, "minimum memory limit allowed is 6MB"),
    ({"memory": "64x"}, "invalid size: '64x'"),
    ({"memory": "64m", "memory_swap": "32m"}, "memoryswap limit should be larger than memory limit"),
    ({"memory_swap": "64m"}, "you should always set a memory limit when using a memoryswap limit"),
    ({"cpus": 1.0, "cpu_quota": 1000}, "--cpu-quota and --cpus cannot be set together"),
    ({"cpu_period": 10}, "CPU cfs period cannot be less than 1ms"),
    ({"cpuset_cpus": "0-999"}, "requested CPUs are not available - requested 0-999, available: "),
    ({"cpuset_cpus": "a-b"}, "invalid value a-b for cpuset cpus"),
    ({"oom_score_adj": 1001}, "must be between -1000 and 1000"),
    ({"ulimits": ["nofile=10:5"]}, "soft limit must be less than or equal to hard limit: 10 > 5"),
    ({"ulimits": ["bogus=1"]}, "invalid ulimit type: bogus"),
])
def test_bad_limits_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Resources.build(**kwargs)  # type: ignore[arg-type]


def test_update_keeps_what_was_not_given() -> None:
    res = Resources.build(memory="64m", cpus=1.0, pids_limit=50)
    new = res.updated(memory="128m", cpus=None)
    assert (new.memory, new.nano_cpus, new.pids_limit) == (128 * MIB, 1_000_000_000, 50)
    assert res.updated(cpu_quota=20_000).quota_period == (20_000, 0)
    assert res.updated(cpu_quota=20_000, cpu_period=50_000).quota_period == (20_000, 50_000)
    assert res.updated(memory_swap="256m").swap_limit == 256 * MIB  # the memory limit it has counts
    with pytest.raises(InvalidArgumentError, match="larger than memory limit"):
        res.updated(memory_swap="32m")


def test_config_saved_before_limits_still_loads() -> None:
    old = {"id": "a" * 64, "name": "old", "image_id": "i", "image_name": "busybox", "command": ["true"],
           "network": "none", "restart_policy": "no", "pids_limit": 77}
    config = ContainerConfig.from_json(old)
    assert config.pids_limit == 77 and config.resources.memory == 0 and not config.security.privileged
    assert ContainerConfig.from_json(config.to_json()) == config
    assert Ulimit.parse("nofile=-1").hard == -1


# ------------------------------------------------------------------ real containers
@needs_root
def test_a_container_over_its_memory_limit_is_oom_killed(store: Store) -> None:
    hog = 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived'
    proc = store.cli("run", "--name", "hog", "--memory", "32m", "--memory-swap", "32m", "busybox", "sh", "-c", hog)
    assert proc.returncode == 137, proc.stderr
    assert "survived" not in proc.stdout
    doc = store.runtime.get("hog").inspect()
    assert doc["State"]["OOMKilled"] is True and doc["State"]["ExitCode"] == 137
    assert doc["HostConfig"]["Memory"] == 32 * MIB and doc["HostConfig"]["MemorySwap"] == 32 * MIB
    # The flag belongs to that run: a run that ends normally clears it.
    calm = store.runtime.run("busybox", ["true"], name="calm", memory="32m")
    assert calm.wait(timeout=30) == 0
    assert calm.inspect()["State"]["OOMKilled"] is False


@needs_root
def test_memory_limit_is_in_the_cgroup_and_stats(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "60"], memory="48m", memory_reservation="16m",
                            oom_kill_disable=True, oom_score_adj=500)
    cg = _cgroup("memory", ctr.id)
    assert int((cg / "memory.limit_in_bytes").read_text()) == 48 * MIB
    assert int((cg / "memory.soft_limit_in_bytes").read_text()) == 16 * MIB
    assert int((cg / "memory.memsw.limit_in_bytes").read_text()) == 96 * MIB
    assert "oom_kill_disable 1" in (cg / "memory.oom_control").read_text()
    assert Path(f"/proc/{ctr.state.pid}/oom_score_adj").read_text().strip() == "500"
    stats = ctr.stats()
    assert stats["MemLimit"] == 48 * MIB and 0 < stats["MemUsage"] < 48 * MIB
    host = ctr.inspect()["HostConfig"]
    assert (host["MemoryReservation"], host["OomKillDisable"], host["OomScoreAdj"]) == (16 * MIB, True, 500)
    import psutil

    free = store.runtime.run("busybox", ["sleep", "60"])  # no limit: podman shows the host's memory
    assert free.stats()["MemLimit"] == psutil.virtual_memory().total


def _cpu_usage_ns(ctr_id: str) -> int:
    return int((_cgroup("cpuacct", ctr_id) / "cpuacct.usage").read_text())


@needs_root
def test_cpus_caps_a_busy_loop(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", "while :; do :; done"], cpus=0.5)
    assert (_cgroup("cpu", ctr.id) / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (_cgroup("cpu", ctr.id) / "cpu.cfs_period_us").read_text().strip() == "100000"
    time.sleep(0.3)  # past its start
    used, began = _cpu_usage_ns(ctr.id), time.monotonic()
    time.sleep(1.5)
    share = (_cpu_usage_ns(ctr.id) - used) / ((time.monotonic() - began) * 1e9)
    assert 0.05 < share < 0.65, share  # capped at half a CPU (a free loop takes a whole one)
    assert ctr.inspect()["HostConfig"]["NanoCpus"] == 500_000_000


@needs_root
def test_update_changes_the_cgroup_of_a_running_container(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "60"], name="upd", memory="32m")
    proc = store.cli("update", "--memory", "64m", "--memory-swap", "128m", "--cpus", "1.5", "--pids-limit", "99",
                     "upd")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ctr.id
    assert int((_cgroup("memory", ctr.id) / "memory.limit_in_bytes").read_text()) == 64 * MIB
    assert (_cgroup("cpu", ctr.id) / "cpu.cfs_quota_us").read_text().strip() == "150000"
    assert (_cgroup("pids", ctr.id) / "pids.max").read_text().strip() == "99"
    host = store.runtime.get("upd").inspect()["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == (
        64 * MIB, 128 * MIB, 1_500_000_000, 99)
    # Kept for the next run.
    ctr = store.runtime.get("upd")
    ctr.restart(timeout=0)
    assert int((_cgroup("memory", ctr.id) / "memory.limit_in_bytes").read_text()) == 64 * MIB
    bad = store.cli("update", "--memory", "1m", "upd")
    assert bad.returncode == 125 and "minimum memory limit" in _error_line(bad)


@needs_root
def test_cpuset_and_shares(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "60"], cpuset_cpus="0", cpu_shares=512)
    assert (_cgroup("cpuset", ctr.id) / "cpuset.cpus").read_text().strip() == "0"
    assert (_cgroup("cpu", ctr.id) / "cpu.shares").read_text().strip() == "512"
    host = ctr.inspect()["HostConfig"]
    assert (host["CpusetCpus"], host["CpuShares"]) == ("0", 512)


@needs_root
def test_device_read_bps_throttles_a_block_device(store: Store) -> None:
    loop = os.stat("/dev/loop0").st_rdev  # a block device every test host has (the kernel's loop driver)
    proc = store.cli("run", "--rm", "--device-read-bps=/dev/loop0:1M", "busybox", "cat",
                     "/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device")
    assert (proc.returncode, proc.stdout) == (0, f"{os.major(loop)}:{os.minor(loop)} 1048576\n"), proc.stderr
    bad = store.cli("run", "--rm", "--device-read-bps=/dev/loop0:fast", "busybox", "true")
    assert bad.returncode == 125 and bad.stderr.startswith("Error: invalid rate for device: /dev/loop0:fast.")
    kept = Resources.build(device_read_bps=["/dev/loop0:2k"]).updated(memory="64m")
    assert kept.device_read_bps == [(os.major(loop), os.minor(loop), 2048)]  # update keeps the throttle


def test_ulimit_within_the_host_and_beyond(store: Store) -> None:
    proc = store.cli("run", "--rm", "--ulimit", "nofile=100:200", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["100", "200"]
    too_high = 1 << 40
    proc = store.cli("run", "--rm", "--name", "nope", "--ulimit", f"nofile=100:{too_high}", "busybox", "true")
    assert proc.returncode == 125
    line = _error_line(proc)
    assert "RLIMIT_NOFILE" in line and "exceeds the maximum this host grants" in line and "runc" not in line
    assert not store.runtime.exists("nope")  # refused before anything was made
    tiny = store.cli("run", "--rm", "--ulimit", "nofile=8", "busybox", "true")
    assert tiny.returncode == 125
    line = _error_line(tiny)
    assert 'ulimit option "nofile=8:8"' in line and "so few open files" in line and "runc" not in line


@pytest.mark.skipif(not ROOTLESS, reason="rootless only")
def test_rootless_v1_refuses_cgroup_limits(store: Store) -> None:
    proc = store.cli("run", "--rm", "--memory", "64m", "busybox", "true")
    assert proc.returncode == 125
    assert "Resource limits are not supported" in _error_line(proc)


@needs_root
def test_python_api_takes_the_same_options(store: Store) -> None:
    ctr = store.runtime.create("busybox", ["true"], memory="64m", cpus=0.25, pids_limit=10,
                               ulimits=["nproc=50"])
    doc = json.loads(json.dumps(ctr.inspect()))
    assert doc["HostConfig"]["Memory"] == 64 * MIB and doc["HostConfig"]["PidsLimit"] == 10
    assert doc["HostConfig"]["Ulimits"] == [{"Name": "RLIMIT_NPROC", "Soft": 50, "Hard": 50}]
    with pytest.raises(TypeError, match="memroy"):
        store.runtime.create("busybox", ["true"], memroy="64m")
    assert os.path.exists(store.runtime.opts.root)
    assert wait_until(lambda: len(store.runtime.list()) == 1)


@needs_root
def test_magics_take_limits_and_update(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("KERNELEXT_ROOT", str(store.runtime.opts.root))
    monkeypatch.setenv("KERNELEXT_RUNROOT", str(store.runtime.opts.runroot))
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kernelext")
    try:
        ctr = shell.run_line_magic("container", "run -d --name lim --memory 40m --cpus 0.5 busybox sleep 60")
        assert int((_cgroup("memory", ctr.id) / "memory.limit_in_bytes").read_text()) == 40 * MIB
        shell.run_line_magic("container", "update --memory 80m lim")
        assert int((_cgroup("memory", ctr.id) / "memory.limit_in_bytes").read_text()) == 80 * MIB
        raw = shell.run_line_magic("container", "stats --format json lim")  # raw values, as podman's --format
        assert [row["MemLimit"] for row in raw] == [80 * MIB]
    finally:
        shell.run_line_magic("unload_ext", "kernelext")


@needs_root
def test_panel_shows_limits_and_an_oom_kill(store: Store) -> None:
    from kernelext.widgets.panel import ContainerPanel

    hog = store.runtime.run("busybox", ["sh", "-c", 'x=$(head -c 100000000 /dev/zero | tr "\\0" a)'], name="hog",
                            memory="32m", memory_swap="32m", cpus=0.5, read_only=True)
    assert hog.wait(timeout=30) == 137
    panel = ContainerPanel(hog)
    try:
        assert panel.header.limits == "memory 32 MiB · 0.5 CPUs · pids 2048 · read-only"
        assert panel.header.oom_killed and panel.header.exit_code == 137
    finally:
        panel.close()
