"""A container's security settings as podman makes them: capabilities, seccomp, masked paths, read-only root.

The default seccomp profile is podman's own, the file Debian ships in
``golang-github-containers-common`` (``/usr/share/containers/seccomp.json``),
turned into the OCI spec's ``linux.seccomp`` the way containers/common does:
only this machine's architectures, and each rule kept or dropped by the
architecture and the capabilities it names (docs/architecture.md §13).
"""

from __future__ import annotations

import json
import os
import platform
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kernelext.errors import InvalidArgumentError

SECCOMP_PROFILE = Path("/usr/share/containers/seccomp.json")
UNCONFINED = "unconfined"

#: podman's default capability set (containers.conf ``default_capabilities``).
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
]
#: Linux's capabilities by number (capability.h); the kernel's ``cap_last_cap`` says how many exist.
_CAPABILITY_NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
]
ALL = "ALL"

MASKED_PATHS = [
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/dev/block",
]
READONLY_PATHS = ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
#: What ``--read-only`` still leaves writable (podman's ``--read-only-tmpfs``, on by default).
READ_ONLY_TMPFS = ("/run", "/tmp", "/var/tmp")

#: Go's names for this machine's architecture, as the profile's ``includes.arches`` spells them.
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}
_SCMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "386": "SCMP_ARCH_X86",
              "arm": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
              "riscv64": "SCMP_ARCH_RISCV64"}


def capability_mask(field_name: str = "CapBnd") -> int:
    """A capability set of this process (``/proc/self/status``: CapBnd, CapEff, ...) as a bit mask."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1], 16)
    return 0


def all_capabilities() -> list[str]:
    """Every capability this process may still grant (its bounding set: runc cannot give more; podman's
    privileged containers get the same)."""
    bounding = capability_mask()
    return [f"CAP_{name}" for bit, name in enumerate(_CAPABILITY_NAMES) if bounding >> bit & 1]


def _normalize(cap: str) -> str:
    name = cap.strip().upper()
    if name == ALL:
        return ALL
    name = name if name.startswith("CAP_") else f"CAP_{name}"
    if name[4:] not in _CAPABILITY_NAMES:
        raise InvalidArgumentError(f"unknown capability: \"{name}\"")
    return name


def merge_capabilities(base: list[str], add: list[str], drop: list[str]) -> list[str]:
    """containers/common's rule: ``--cap-drop ALL`` keeps only what is added; ``--cap-add ALL`` gives
    every capability but the dropped ones."""
    adds, drops = [_normalize(c) for c in add], [_normalize(c) for c in drop]
    for cap in adds:
        if cap != ALL and cap in drops:
            raise InvalidArgumentError(f"capability \"{cap}\" cannot be dropped and added")
    if ALL in adds:
        return [c for c in all_capabilities() if c not in drops]
    start = [] if ALL in drops else [c for c in base if c not in drops]
    return [*start, *(c for c in adds if c not in start)]


def _kernel_version() -> tuple[int, ...]:
    release = platform.release().split("-")[0]
    return tuple(int(part) for part in release.split(".")[:2] if part.isdigit())


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2])


def seccomp_section(profile: dict[str, Any], caps: list[str]) -> dict[str, Any]:
    """A profile in podman's format (``seccomp.json``) as the OCI spec's ``linux.seccomp``."""
    goarch = _GOARCH.get(platform.machine(), platform.machine())
    native = _SCMP_ARCH.get(goarch, "")
    arches: list[str] = []
    for arch in profile.get("archMap") or []:
        if arch.get("architecture") == native:
            arches += [arch["architecture"], *arch.get("subArchitectures", [])]
    kernel = _kernel_version()
    syscalls = []
    for rule in profile.get("syscalls") or []:
        includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
        if goarch in (excludes.get("arches") or []) or any(c in caps for c in excludes.get("caps") or []):
            continue
        if excludes.get("minKernel") and kernel >= _version(excludes["minKernel"]):
            continue
        if includes.get("arches") and goarch not in includes["arches"]:
            continue
        if any(c not in caps for c in includes.get("caps") or []):
            continue
        if includes.get("minKernel") and kernel < _version(includes["minKernel"]):
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        entry: dict[str, Any] = {"names": names, "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            entry["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            entry["args"] = [{"index": a["index"], "value": a["value"], "valueTwo": a.get("valueTwo", 0),
                              "op": a["op"]} for a in rule["args"]]
        syscalls.append(entry)
    section: dict[str, Any] = {"defaultAction": profile["defaultAction"], "architectures": arches,
                               "syscalls": syscalls}
    if profile.get("defaultErrnoRet") is not None:
        section["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if profile.get("flags"):
        section["flags"] = profile["flags"]
    return section


@dataclass(frozen=True)
class Device:
    """``--device HOST[:CONTAINER][:PERMISSIONS]``."""

    host: str
    container: str
    permissions: str = "rwm"

    @classmethod
    def parse(cls, text: str) -> Device:
        parts = text.split(":")
        if len(parts) > 3 or not parts[0]:
            raise InvalidArgumentError(f"invalid device specification: {text}")
        perms = "rwm"
        if len(parts) == 3 or (len(parts) == 2 and parts[1] and set(parts[1]) <= set("rwm")
                               and not parts[1].startswith("/")):
            perms = parts.pop()
        if not set(perms) <= set("rwm") or not perms:
            raise InvalidArgumentError(f"invalid device mode: {perms}")
        return cls(parts[0], parts[1] if len(parts) > 1 and parts[1] else parts[0], perms)

    def spec(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The ``linux.devices`` entry and its device-cgroup rule (podman's error if it is no device)."""
        try:
            st = os.stat(self.host)
        except OSError as exc:
            raise InvalidArgumentError(f"stat {self.host}: {(exc.strerror or str(exc)).lower()}") from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise InvalidArgumentError(f"{self.host} is not a device")
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        device = {"path": self.container, "type": kind, "major": major, "minor": minor,
                  "fileMode": stat.S_IMODE(st.st_mode), "uid": 0, "gid": 0}
        rule = {"allow": True, "type": kind, "major": major, "minor": minor, "access": self.permissions}
        return device, rule


def host_devices() -> list[Device]:
    """Every device node directly under the host's /dev (what ``--privileged`` gets)."""
    found = []
    for entry in sorted(os.scandir("/dev"), key=lambda e: e.name):
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError:
            continue
        if (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and entry.name not in ("console", "tty", "ptmx"):
            found.append(Device(entry.path, entry.path))
    return found


#: What a device cgroup rule may name and allow (podman's ``--device-cgroup-rule``).
DEVICE_TYPES = frozenset("abc")
DEVICE_ACCESS = frozenset("rwm")


def device_cgroup_rule(text: str) -> dict[str, Any]:
    """podman's ``--device-cgroup-rule "c 7:* rmw"`` as an OCI ``linux.resources.devices`` entry, with its
    errors (``*`` or a missing minor: any)."""
    parts = text.split(" ")
    if len(parts) != 3:
        raise InvalidArgumentError(f"invalid device cgroup rule requires type, major:Minor, and access rules: "
                                   f"\"{text}\"")
    kind, numbers, access = parts
    if kind not in DEVICE_TYPES:
        raise InvalidArgumentError(f"invalid device type in device-access-add: {kind}")
    rule: dict[str, Any] = {"allow": True, "type": kind}
    for key, number in zip(("major", "minor"), numbers.split(":", 1), strict=False):
        if number != "*":
            if not number.isdigit():
                raise InvalidArgumentError(f'strconv.ParseUint: parsing "{number}": invalid syntax')
            rule[key] = int(number)
    for char in access:
        if char not in DEVICE_ACCESS:
            raise InvalidArgumentError(f"invalid device access in device-access-add: {char}")
    return {**rule, "access": access}


@dataclass(frozen=True)
class SecurityOptions:
    """``--cap-add/--cap-drop``, ``--privileged``, ``--security-opt``, ``--read-only``, ``--group-add``,
    ``--device``."""

    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    no_new_privileges: bool = False
    #: "": podman's default profile; ``unconfined``; or the path of a profile in its format.
    seccomp: str = ""
    mask: list[str] = field(default_factory=list)
    #: Paths taken off the masked and read-only lists; ``ALL``: all of them.
    unmask: list[str] = field(default_factory=list)
    read_only: bool = False
    read_only_tmpfs: bool = True
    group_add: list[str] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    #: ``--device-cgroup-rule "TYPE MAJOR:MINOR ACCESS"``: devices the cgroup also allows (none are made).
    device_cgroup_rules: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, *, cap_add: list[str] | None = None, cap_drop: list[str] | None = None,
              privileged: bool = False, security_opt: list[str] | None = None, read_only: bool = False,
              read_only_tmpfs: bool = True, group_add: list[str] | None = None,
              devices: list[str] | None = None, device_cgroup_rules: list[str] | None = None) -> SecurityOptions:
        """From podman's flag values, refusing what podman refuses."""
        nnp, seccomp, mask, unmask = False, "", [], []
        for opt in security_opt or []:
            key, _, value = opt.partition("=" if "=" in opt else ":")
            if key == "no-new-privileges" and value in ("", "true"):
                nnp = True
            elif key == "no-new-privileges" and value == "false":
                nnp = False
            elif key == "seccomp" and value:
                if value != UNCONFINED and not Path(value).is_file():
                    raise InvalidArgumentError(f"opening seccomp profile failed: open {value}: "
                                               "no such file or directory")
                seccomp = value if value == UNCONFINED else str(Path(value).absolute())
            elif key == "mask" and value:
                mask += value.split(":")
            elif key == "unmask" and value:
                unmask += value.split(":")
            elif key in ("label", "apparmor"):
                continue  # no SELinux or AppArmor here: accepted as podman accepts them without one
            else:
                raise InvalidArgumentError(f"invalid --security-opt 1: \"{opt}\"")
        merge_capabilities(DEFAULT_CAPABILITIES, cap_add or [], cap_drop or [])  # refuse unknown names now
        parsed = [Device.parse(text) for text in devices or []]
        for device in parsed:
            device.spec()  # a path that is no device is refused before anything is made
        for rule in device_cgroup_rules or []:
            device_cgroup_rule(rule)
        return cls(cap_add=list(cap_add or []), cap_drop=list(cap_drop or []), privileged=privileged,
                   no_new_privileges=nnp, seccomp=seccomp, mask=mask, unmask=unmask, read_only=read_only,
                   read_only_tmpfs=read_only_tmpfs, group_add=list(group_add or []),
                   devices=parsed, device_cgroup_rules=list(device_cgroup_rules or []))

    @property
    def capabilities(self) -> list[str]:
        if self.privileged:
            return merge_capabilities(all_capabilities(), self.cap_add, self.cap_drop)
        return merge_capabilities(DEFAULT_CAPABILITIES, self.cap_add, self.cap_drop)

    def masked_paths(self) -> tuple[list[str], list[str]]:
        """The masked and read-only paths: none when privileged, else podman's with mask=/unmask=."""
        if self.privileged or ALL in self.unmask:
            return list(self.mask), []
        masked = [p for p in MASKED_PATHS if p not in self.unmask] + [p for p in self.mask if p not in MASKED_PATHS]
        return masked, [p for p in READONLY_PATHS if p not in self.unmask]

    def seccomp_spec(self) -> dict[str, Any] | None:
        """``linux.seccomp``, or None: privileged or unconfined containers have no filter."""
        if self.privileged or self.seccomp == UNCONFINED:
            return None
        path = Path(self.seccomp) if self.seccomp else SECCOMP_PROFILE
        try:
            profile = json.loads(path.read_text())
        except OSError as exc:
            raise InvalidArgumentError(
                f"opening seccomp profile failed: open {path}: {(exc.strerror or str(exc)).lower()}") from None
        except ValueError as exc:
            raise InvalidArgumentError(f"decoding seccomp profile failed: {exc}") from None
        return seccomp_section(profile, self.capabilities)

    def tmpfs_mounts(self) -> list[dict[str, Any]]:
        """podman's ``--read-only-tmpfs``: what stays writable under a read-only root."""
        if not (self.read_only and self.read_only_tmpfs):
            return []
        return [{"destination": dest, "type": "tmpfs", "source": "tmpfs",
                 "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]} for dest in READ_ONLY_TMPFS]

    def device_spec(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``linux.devices`` and their cgroup rules (all of the host's when privileged)."""
        chosen = [*(host_devices() if self.privileged else []), *self.devices]
        pairs = [device.spec() for device in chosen]
        rules = [{"allow": True, "access": "rwm"}] if self.privileged else [rule for _, rule in pairs]
        rules += [device_cgroup_rule(rule) for rule in self.device_cgroup_rules]
        return [device for device, _ in pairs], rules

    def inspect_fields(self) -> dict[str, Any]:
        """podman's ``inspect`` ``HostConfig`` fields."""
        opts = [*(["no-new-privileges"] if self.no_new_privileges else []),
                *([f"seccomp={self.seccomp}"] if self.seccomp else []),
                *([f"mask={':'.join(self.mask)}"] if self.mask else []),
                *([f"unmask={':'.join(self.unmask)}"] if self.unmask else [])]
        return {"CapAdd": [_normalize(c) for c in self.cap_add], "CapDrop": [_normalize(c) for c in self.cap_drop],
                "Privileged": self.privileged, "ReadonlyRootfs": self.read_only, "SecurityOpt": opts,
                "GroupAdd": list(self.group_add),
                "Devices": [{"PathOnHost": d.host, "PathInContainer": d.container,
                             "CgroupPermissions": d.permissions} for d in self.devices]}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SecurityOptions:
        data = dict(data)
        data["devices"] = [Device(**d) for d in data.get("devices", [])]
        return cls(**data)
