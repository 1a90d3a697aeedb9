"""Resource usage of a container: its cgroup and its processes (psutil)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernelext.core.state import ContainerStatus
from kernelext.errors import ContainerStateError
from kernelext.oci.cgroups import CGROUP_ROOT, controller_paths, is_container_dir

if TYPE_CHECKING:
    from kernelext.core.container import Container

_NS_PER_S = 1e9


def _cgroup_dirs(pid: int) -> dict[str, Path]:
    """Controller name → cgroup directory of ``pid`` (v1 controllers, or "" for v2)."""
    unified = CGROUP_ROOT / "unified" if (CGROUP_ROOT / "unified").is_dir() else CGROUP_ROOT
    return {name: (CGROUP_ROOT / name if name else unified) / path.lstrip("/")
            for name, path in controller_paths(pid).items()}


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _require_running(ctr: Container, operation: str) -> int:
    if ctr.state.status not in (ContainerStatus.RUNNING, ContainerStatus.PAUSED) or not ctr.state.pid:
        raise ContainerStateError(f"container {ctr.name} is not running", container=ctr.name, operation=operation)
    return ctr.state.pid


def _own_cgroups(ctr: Container, dirs: dict[str, Path]) -> dict[str, Path]:
    """The container's own cgroups; none where its processes share the user's (rootless on cgroupfs)."""
    return {name: path for name, path in dirs.items() if is_container_dir(path.name, ctr.id)}


def _pids(ctr: Container, dirs: dict[str, Path]) -> list[int]:
    for key in ("pids", "memory", ""):
        if key in dirs and (dirs[key] / "cgroup.procs").exists():
            return [int(p) for p in (dirs[key] / "cgroup.procs").read_text().split()]
    import psutil

    try:
        return [ctr.state.pid, *(p.pid for p in psutil.Process(ctr.state.pid).children(recursive=True))]
    except psutil.Error:
        return [ctr.state.pid]


def _host_bounded(limit: int | None) -> int:
    """The memory limit as podman's stats shows it: the host's memory when there is none (or more)."""
    import psutil

    total = int(psutil.virtual_memory().total)
    return total if limit is None or limit <= 0 or limit > total else limit


def container_stats(ctr: Container) -> dict[str, Any]:
    pid = _require_running(ctr, "stats")
    dirs = _own_cgroups(ctr, _cgroup_dirs(pid))
    mem = _read_int(dirs["memory"] / "memory.usage_in_bytes") if "memory" in dirs else \
        _read_int(dirs[""] / "memory.current") if "" in dirs else None
    limit = _read_int(dirs["memory"] / "memory.limit_in_bytes") if "memory" in dirs else \
        _read_int(dirs[""] / "memory.max") if "" in dirs else None  # v2 says "max" when unlimited
    cpu_ns = _read_int(dirs["cpuacct"] / "cpuacct.usage") if "cpuacct" in dirs else None
    if cpu_ns is None and "" in dirs:
        usec = next((int(line.split()[1]) for line in (dirs[""] / "cpu.stat").read_text().splitlines()
                     if line.startswith("usage_usec")), None)
        cpu_ns = None if usec is None else usec * 1000
    pids = _pids(ctr, dirs)
    if mem is None or cpu_ns is None:
        import psutil

        procs = [psutil.Process(p) for p in pids if psutil.pid_exists(p)]
        mem = mem if mem is not None else sum(p.memory_info().rss for p in procs)
        cpu_ns = cpu_ns if cpu_ns is not None else int(sum(sum(p.cpu_times()[:2]) for p in procs) * _NS_PER_S)
    limit = _host_bounded(limit)
    uptime = max(time.time() - ctr.state.started_at, 1e-6)
    return {
        "ContainerID": ctr.id,
        "Name": ctr.name,
        "CPUNano": cpu_ns,
        "CPU": 100.0 * cpu_ns / (uptime * _NS_PER_S),
        "MemUsage": mem,
        "MemLimit": limit,
        "MemPerc": 100.0 * mem / limit if limit else 0.0,
        "PIDs": len(pids),
        "UpTime": uptime,
    }


def _namespace_pid(pid: int) -> int:
    """The PID the process has in its innermost PID namespace (the container's), as podman top shows it."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError, IndexError):
        pass
    return pid


def _inside_uid(pid: int, host_uid: int) -> int:
    """The UID a process of the container has in the container's user namespace (its uid_map read back)."""
    try:
        with open(f"/proc/{pid}/uid_map") as f:
            for line in f:
                inside, outside, count = (int(x) for x in line.split())
                if outside <= host_uid < outside + count:
                    return inside + host_uid - outside
    except (OSError, ValueError):
        pass
    return host_uid


def container_top(ctr: Container) -> list[dict[str, Any]]:
    """The container's processes; PID and PPID as the container sees them (0: a parent outside it); USER the
    name the container's own /etc/passwd gives its UID (read as data), as podman's top shows it."""
    import psutil

    from kernelext.storage.users import user_names

    pid = _require_running(ctr, "top")
    try:
        names = user_names(f"/proc/{pid}/root")
    except OSError:  # ended meanwhile: its processes are gone too, the rows below say so
        names = {}
    rows = []
    pids = _pids(ctr, _own_cgroups(ctr, _cgroup_dirs(pid)))
    inside = {p: _namespace_pid(p) for p in pids}
    for p in pids:
        try:
            proc = psutil.Process(p)
            with proc.oneshot():
                times = proc.cpu_times()
                rows.append({
                    "USER": names.get(uid := _inside_uid(pid, proc.uids().effective), str(uid)), "PID": inside[p], "PPID": inside.get(proc.ppid(), 0),
                    "%CPU": proc.cpu_percent(interval=None),
                    "ELAPSED": max(0.0, time.time() - proc.create_time()),
                    "TIME": times.user + times.system,
                    "COMMAND": " ".join(proc.cmdline()) or proc.name(),
                })
        except psutil.Error:
            continue
    return rows
