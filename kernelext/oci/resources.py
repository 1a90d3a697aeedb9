"""A container's resource limits: podman's ``--memory``, ``--cpus``, ``--pids-limit``, ``--ulimit``, ...

Parsed from podman's flag values, kept in the container config, turned into the
OCI spec's ``linux.resources`` and ``process.rlimits`` and shown by ``inspect``
under podman's ``HostConfig`` names (docs/architecture.md §13).
"""

from __future__ import annotations

import os
import re
import resource
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kernelext.errors import InvalidArgumentError
from kernelext.oci.security import capability_mask

#: podman's default (containers.conf ``pids_limit``): one fork loop cannot take every PID of the host.
DEFAULT_PIDS_LIMIT = 2048
#: The CFS period podman uses with ``--cpus`` (microseconds).
DEFAULT_CPU_PERIOD = 100_000
#: The smallest memory limit podman accepts (below it the runtime itself cannot start).
MIN_MEMORY = 6 * 1024 * 1024
_NS_PER_CPU = 1_000_000_000
#: The unit letters in order of their power (``FromHumanSize``'s decimal multipliers).
_POWERS = ("", "k", "m", "g", "t", "p")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$", re.IGNORECASE)
#: Where the kernel puts the ceiling of RLIMIT_NOFILE (CAP_SYS_RESOURCE may raise up to it, no further).
NR_OPEN = "/proc/sys/fs/nr_open"
#: The capability that lets a process raise a hard limit (capability.h).
CAP_SYS_RESOURCE_BIT = 24


def parse_size(text: str | int, flag: str, *, decimal: bool = False) -> int:
    """podman's ``RAMInBytes``: ``64m``, ``1g``, ``512k``, ``1048576`` (binary units); with ``decimal``,
    its ``FromHumanSize`` (powers of 1000, as ``--log-opt max-size`` is read)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text.strip())
    if not match:
        raise InvalidArgumentError(f"invalid value for {flag}: invalid size: '{text}'")
    unit = match[2].lower()
    factor = 1000 ** _POWERS.index(unit) if decimal else _UNITS[unit]
    return int(float(match[1]) * factor)


@dataclass(frozen=True)
class Ulimit:
    """One ``--ulimit TYPE=SOFT[:HARD]`` (-1: unlimited)."""

    name: str
    soft: int
    hard: int

    @property
    def rlimit(self) -> str:
        return f"RLIMIT_{self.name.upper()}"

    @classmethod
    def parse(cls, text: str) -> Ulimit:
        name, sep, values = text.partition("=")
        if not sep or not values:
            raise InvalidArgumentError(f"invalid ulimit argument: {text}")
        if not hasattr(resource, f"RLIMIT_{name.upper()}"):
            raise InvalidArgumentError(f"invalid ulimit type: {name}")
        soft_text, _, hard_text = values.partition(":")
        try:
            soft, hard = int(soft_text), int(hard_text or soft_text)
        except ValueError:
            raise InvalidArgumentError(f"invalid ulimit argument: {text}") from None
        if _as_limit(soft) > _as_limit(hard):
            raise InvalidArgumentError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        return cls(name.lower(), soft, hard)

    def __str__(self) -> str:
        return f"{self.name}={self.soft}:{self.hard}"


#: "unlimited" for comparisons (the OCI spec's value, 2**64-1; Python's RLIM_INFINITY is -1).
UNLIMITED = (1 << 64) - 1


def _as_limit(value: int) -> int:
    return UNLIMITED if value in (-1, resource.RLIM_INFINITY) else value


def _host_ceiling(ulimit: Ulimit, can_raise: bool) -> int:
    """The highest hard limit runc can set: with CAP_SYS_RESOURCE up to the kernel's ceiling, else ours."""
    res = getattr(resource, ulimit.rlimit)
    hard = _as_limit(resource.getrlimit(res)[1])
    if not can_raise:
        return hard
    if res == resource.RLIMIT_NOFILE:
        try:
            with open(NR_OPEN) as f:
                return int(f.read())
        except (OSError, ValueError):
            return hard
    return UNLIMITED


def check_ulimits(ulimits: list[Ulimit], *, rootless: bool) -> None:
    """Refuse before runc runs a limit the container's process could not raise itself to
    (runc's own failure is a bare ``error setting rlimit type 7``). Raising a hard limit takes
    CAP_SYS_RESOURCE of the host's user namespace: a rootless runc never has it, root only if granted."""
    can_raise = not rootless and bool(capability_mask("CapEff") >> CAP_SYS_RESOURCE_BIT & 1)
    for ulimit in ulimits:
        ceiling = _host_ceiling(ulimit, can_raise)
        wanted = _as_limit(ulimit.hard)
        if wanted > ceiling:
            raise InvalidArgumentError(
                f"ulimit option \"{ulimit}\": the hard limit exceeds the maximum this host grants "
                f"({ceiling}): cannot set {ulimit.rlimit}")


#: The CPUs the host's cgroups offer (v1 cpuset root, v2 root's effective set).
_HOST_CPUSETS = (Path("/sys/fs/cgroup/cpuset/cpuset.cpus"), Path("/sys/fs/cgroup/cpuset.cpus.effective"),
                 Path("/sys/devices/system/cpu/online"))


def _cpu_list(text: str) -> set[int]:
    """``0-3,5`` as a set; ValueError when malformed."""
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", text):
        raise ValueError(text)
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def _check_cpuset(cpuset: str) -> None:
    try:
        wanted = _cpu_list(cpuset)
    except ValueError:
        raise InvalidArgumentError(f"invalid value {cpuset} for cpuset cpus") from None
    available = next((path.read_text().strip() for path in _HOST_CPUSETS if path.exists()), "")
    if available and not wanted <= _cpu_list(available):
        raise InvalidArgumentError(f"requested CPUs are not available - requested {cpuset}, available: {available}")


def throttle(item: str | tuple[int, int, int]) -> tuple[int, int, int]:
    """podman's ``--device-read-bps PATH:RATE`` (``/dev/sda:1mb``): the device's numbers and the rate."""
    if not isinstance(item, str):
        return (int(item[0]), int(item[1]), int(item[2]))
    path, sep, rate_text = item.rpartition(":")
    if not sep or not path:
        raise InvalidArgumentError(f"bad format: {item}")
    try:
        rate = parse_size(rate_text, "--device-read-bps")
    except InvalidArgumentError:
        raise InvalidArgumentError(f"invalid rate for device: {item}. The correct format is "
                                   "<device-path>:<number>[<unit>]. Number must be a positive integer. "
                                   "Unit is optional and can be kb, mb, or gb") from None
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidArgumentError(f"stat {path}: {(exc.strerror or str(exc)).lower()}") from None
    if not (stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        raise InvalidArgumentError(f"{path} is not a device")
    return (os.major(st.st_rdev), os.minor(st.st_rdev), rate)


@dataclass(frozen=True)
class Resources:
    """What ``--memory``, ``--cpus``, ... asked for; 0 (or empty): not set."""

    memory: int = 0
    #: Memory plus swap; -1: unlimited swap; 0: podman's default (twice the memory limit).
    memory_swap: int = 0
    memory_reservation: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    #: The cgroup's pids limit; 0: none (podman's ``--pids-limit``, where -1 and 0 mean unlimited).
    pids_limit: int = DEFAULT_PIDS_LIMIT
    oom_kill_disable: bool = False
    oom_score_adj: int | None = None
    ulimits: list[Ulimit] = field(default_factory=list)
    #: ``--device-read-bps PATH:RATE``: (major, minor, bytes per second) of each throttled block device.
    device_read_bps: list[tuple[int, int, int]] = field(default_factory=list)

    # ------------------------------------------------------------ parsing
    @classmethod
    def build(cls, *, memory: str | int | None = None, memory_swap: str | int | None = None,
              memory_reservation: str | int | None = None, cpus: float | None = None,
              cpu_shares: int | None = None, cpu_quota: int | None = None, cpu_period: int | None = None,
              cpuset_cpus: str | None = None, pids_limit: int | None = None, oom_kill_disable: bool = False,
              oom_score_adj: int | None = None, ulimits: list[str] | None = None,
              device_read_bps: list[str] | list[tuple[int, int, int]] | None = None) -> Resources:
        """From podman's flag values, with podman's checks."""
        mem = parse_size(memory, "--memory") if memory not in (None, "") else 0
        swap = -1 if str(memory_swap) == "-1" else (
            parse_size(memory_swap, "--memory-swap") if memory_swap not in (None, "") else 0)
        if mem and mem < MIN_MEMORY:
            raise InvalidArgumentError("minimum memory limit allowed is 6MB")
        if swap and not mem:
            raise InvalidArgumentError("you should always set a memory limit when using a memoryswap limit, see usage")
        if swap > 0 and swap < mem:
            raise InvalidArgumentError(
                "minimum memoryswap limit should be larger than memory limit, see usage")
        reservation = parse_size(memory_reservation, "--memory-reservation") if memory_reservation else 0
        if mem and reservation > mem:
            raise InvalidArgumentError(
                "minimum memory limit cannot be less than memory reservation limit, see usage")
        for flag, given in (("--cpu-period", cpu_period), ("--cpu-quota", cpu_quota)):
            if cpus is not None and given:
                raise InvalidArgumentError(f"{flag} and --cpus cannot be set together")
        if cpu_period and not 1000 <= cpu_period <= 1_000_000:
            raise InvalidArgumentError(
                "CPU cfs period cannot be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
        if cpu_quota and cpu_quota < 1000:
            raise InvalidArgumentError("CPU cfs quota cannot be less than 1ms (i.e. 1000)")
        if cpus is not None and cpus < 0:
            raise InvalidArgumentError(f"invalid value for --cpus: {cpus}: must be a positive number")
        if oom_score_adj is not None and not -1000 <= oom_score_adj <= 1000:
            raise InvalidArgumentError(f"oom_score_adj {oom_score_adj} must be between -1000 and 1000")
        if cpuset_cpus:
            _check_cpuset(cpuset_cpus)
        return cls(memory=mem, memory_swap=swap, memory_reservation=reservation,
                   nano_cpus=round((cpus or 0) * _NS_PER_CPU), cpu_shares=cpu_shares or 0,
                   cpu_quota=cpu_quota or 0, cpu_period=cpu_period or 0, cpuset_cpus=cpuset_cpus or "",
                   pids_limit=DEFAULT_PIDS_LIMIT if pids_limit is None else max(pids_limit, 0),
                   oom_kill_disable=oom_kill_disable, oom_score_adj=oom_score_adj,
                   ulimits=[Ulimit.parse(text) for text in ulimits or []],
                   device_read_bps=[throttle(item) for item in device_read_bps or []])

    def updated(self, **changes: Any) -> Resources:
        """``podman update``: the given flags replace these values, the rest stay; checked as a whole."""
        given = {k: v for k, v in changes.items() if v is not None}
        current: dict[str, Any] = {
            "memory": self.memory or None, "memory_swap": self.memory_swap or None,
            "memory_reservation": self.memory_reservation or None, "cpu_shares": self.cpu_shares or None,
            "cpuset_cpus": self.cpuset_cpus or None, "pids_limit": self.pids_limit,
            "oom_kill_disable": self.oom_kill_disable, "oom_score_adj": self.oom_score_adj,
            "ulimits": [str(u) for u in self.ulimits], "device_read_bps": self.device_read_bps}
        if self.nano_cpus and not given.keys() & {"cpu_quota", "cpu_period"}:
            current["cpus"] = self.nano_cpus / _NS_PER_CPU
        elif "cpus" not in given:
            current.update(cpu_quota=self.cpu_quota or None, cpu_period=self.cpu_period or None)
        return Resources.build(**{**current, **given})

    @property
    def needs_cgroup(self) -> bool:
        """A cgroup limit the user asked for (podman's default pids limit does not count)."""
        return bool(self.linux_resources().keys() - {"pids"}) or self.pids_limit != DEFAULT_PIDS_LIMIT

    # ------------------------------------------------------------ derived values
    @property
    def swap_limit(self) -> int:
        """memory+swap as the cgroup gets it: podman doubles the memory limit when no swap was given."""
        if not self.memory:
            return 0
        return self.memory_swap or 2 * self.memory

    @property
    def quota_period(self) -> tuple[int, int]:
        if self.nano_cpus:
            return self.nano_cpus * DEFAULT_CPU_PERIOD // _NS_PER_CPU, DEFAULT_CPU_PERIOD
        return self.cpu_quota, self.cpu_period

    def linux_resources(self) -> dict[str, Any]:
        """The OCI spec's ``linux.resources`` (without devices)."""
        out: dict[str, Any] = {}
        memory: dict[str, Any] = {}
        if self.memory:
            memory["limit"] = self.memory
            memory["swap"] = self.swap_limit
        if self.memory_reservation:
            memory["reservation"] = self.memory_reservation
        if self.oom_kill_disable:
            memory["disableOOMKiller"] = True
        if memory:
            out["memory"] = memory
        cpu: dict[str, Any] = {}
        quota, period = self.quota_period
        if quota:
            cpu["quota"] = quota
        if period:
            cpu["period"] = period
        if self.cpu_shares:
            cpu["shares"] = self.cpu_shares
        if self.cpuset_cpus:
            cpu["cpus"] = self.cpuset_cpus
        if cpu:
            out["cpu"] = cpu
        if self.pids_limit > 0:
            out["pids"] = {"limit": self.pids_limit}
        if self.device_read_bps:
            out["blockIO"] = {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": rate}
                                                        for major, minor, rate in self.device_read_bps]}
        return out

    def startup_failure(self, runtime_message: str) -> str | None:
        """A clear reason for runc's failure when a ``--ulimit`` caused it: runc sets the limits before it
        loads the seccomp filter, which needs a few more descriptors than a tiny ``nofile`` leaves."""
        low = next((u for u in self.ulimits if u.rlimit == "RLIMIT_NOFILE"), None)
        if low is None or "too many open files" not in runtime_message:
            return None
        return (f"ulimit option \"{low}\": the OCI runtime cannot start the container with so few open files "
                "(it needs more to set the container up)")

    def rlimits(self, defaults: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``process.rlimits``: the defaults, each ``--ulimit`` replacing its type (-1: unlimited)."""
        given = {u.rlimit: {"type": u.rlimit, "soft": _as_limit(u.soft), "hard": _as_limit(u.hard)}
                 for u in self.ulimits}
        return [*(d for d in defaults if d["type"] not in given), *given.values()]

    def host_config(self) -> dict[str, Any]:
        """podman's ``inspect`` ``HostConfig`` fields for these limits."""
        quota, period = self.quota_period
        return {
            "Memory": self.memory, "MemorySwap": self.swap_limit, "MemoryReservation": self.memory_reservation,
            "NanoCpus": self.nano_cpus, "CpuShares": self.cpu_shares, "CpuQuota": quota, "CpuPeriod": period,
            "CpusetCpus": self.cpuset_cpus, "PidsLimit": self.pids_limit, "OomKillDisable": self.oom_kill_disable,
            "OomScoreAdj": self.oom_score_adj or 0,
            "Ulimits": [{"Name": u.rlimit, "Soft": u.soft, "Hard": u.hard} for u in self.ulimits],
        }

    # ------------------------------------------------------------ storage
    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Resources:
        data = dict(data)
        data["ulimits"] = [Ulimit(**u) for u in data.get("ulimits", [])]
        data["device_read_bps"] = [tuple(item) for item in data.get("device_read_bps", [])]
        return cls(**data)


def cgroup_oom_killed(cgroup_root: Path, cgroup_path: str) -> bool:
    """Whether the kernel's OOM killer killed a process of the cgroup, from its own counters (cgroup v1:
    ``memory.oom_control``'s ``oom_kill``; v2: ``memory.events``' ``oom_kill``), as podman checks when
    conmon's ``oom`` file is missing. False when the cgroup is gone."""
    cgroup_path = cgroup_path.lstrip("/")  # relative, or it would replace the root in the joins below
    if not cgroup_path:
        return False
    for path in (cgroup_root / "memory" / cgroup_path / "memory.oom_control",
                 cgroup_root / "unified" / cgroup_path / "memory.events",
                 cgroup_root / cgroup_path / "memory.events"):
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        counters = dict(line.split(None, 1) for line in lines if " " in line)
        return int(counters.get("oom_kill", "0")) > 0
    return False
