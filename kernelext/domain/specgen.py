"""kernelext's create/run options as libpod's ``SpecGenerator``: the body of ``POST /libpod/containers/create``.

podman's remote client sends the service a SpecGenerator built from its command line; the remote engine
does the same from the options the CLI and the magics parse (``kernelext.cli.parser.create_options``),
with the local core's parsers (``-p``, ``-v``, ``--mount``, ``--tmpfs``, sizes, ulimits), so a value the
local engine refuses is refused the same way. Paths of bind mounts are the remote host's (not checked
here); ``--env-file`` is read here, as podman's client reads it. An option with no mapping is refused by
name before anything is made (docs/architecture.md §16).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kernelext.core import mounts as mounts_mod
from kernelext.core import ports as ports_mod
from kernelext.domain.engine import unsupported
from kernelext.errors import InvalidArgumentError
from kernelext.oci.identity import read_env_file
from kernelext.oci.resources import DEFAULT_CPU_PERIOD, UNLIMITED, Ulimit, parse_size

#: create/run options that only matter locally (pull policy, credentials of a local pull).
LOCAL_ONLY = frozenset({"pull", "tls_verify", "authfile"})
#: Options whose kernelext default is podman's own: nothing to send unless the user changed them.
PODMAN_DEFAULTS: dict[str, Any] = {"read_only_tmpfs": True, "network": "none"}
#: ``--pid/--ipc/--uts`` values and the SpecGenerator namespace field of each.
NAMESPACES = {"pid": "pidns", "ipc": "ipcns", "uts": "utsns"}
NAMESPACE_MODES = frozenset({"host", "private"})
#: podman's network modes the remote engine passes on (a named network of the remote: not yet).
NETWORK_MODES = frozenset({"none", "host", "bridge", "slirp4netns", "private"})


def _empty(value: Any) -> bool:
    return value in (None, False, [], {}, (), "", 0)


def _env(options: dict[str, Any]) -> dict[str, str]:
    """``--env-file`` files (read on this machine, as podman's client does), then ``--env`` over them."""
    items = [item for path in options.get("env_file") or [] for item in read_env_file(path)]
    return dict(item.partition("=")[::2] for item in [*items, *(options.get("env") or [])])


def _mounts(options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(``mounts``, ``volumes``): bind mounts and tmpfs as OCI mounts, named volumes by name; a source path
    is the remote host's, so only its form is checked here."""
    parsed = [*(mounts_mod.parse_volume(t, local=False) for t in options.get("volumes") or []),
              *(mounts_mod.parse_mount(t, local=False) for t in options.get("mounts") or []),
              *(mounts_mod.parse_tmpfs(t) for t in options.get("tmpfs") or [])]
    mounts, volumes = [], []
    for mount in parsed:
        if mount.type is mounts_mod.MountType.VOLUME:
            # an anonymous volume: no name, the service makes one (podman's ``-v /path``)
            volumes.append({"Name": "" if mount.anonymous else mount.source, "Dest": mount.destination,
                            "Options": list(mount.options)})
        else:
            mounts.append({"destination": mount.destination, "type": mount.type.value,
                           "source": mount.source, "options": list(mount.options)})
    return mounts, volumes


def _resources(options: dict[str, Any]) -> dict[str, Any]:
    memory: dict[str, Any] = {}
    for key, field in (("memory", "limit"), ("memory_reservation", "reservation"), ("memory_swap", "swap")):
        value = options.get(key)
        if value not in (None, ""):
            memory[field] = -1 if str(value) == "-1" else parse_size(value, f"--{key.replace('_', '-')}")
    if options.get("oom_kill_disable"):
        memory["disableOOMKiller"] = True
    cpu: dict[str, Any] = {}
    if options.get("cpus"):
        cpu = {"quota": int(float(options["cpus"]) * DEFAULT_CPU_PERIOD), "period": DEFAULT_CPU_PERIOD}
    for key, field in (("cpu_quota", "quota"), ("cpu_period", "period"), ("cpu_shares", "shares"),
                       ("cpuset_cpus", "cpus")):
        if options.get(key) is not None:
            cpu[field] = options[key]
    limits: dict[str, Any] = {}
    if memory:
        limits["memory"] = memory
    if cpu:
        limits["cpu"] = cpu
    if options.get("pids_limit") is not None:
        limits["pids"] = {"limit": options["pids_limit"]}
    return limits


def _ulimit(text: str) -> dict[str, Any]:
    limit = Ulimit.parse(text)
    def value(n: int) -> int:
        return UNLIMITED if n < 0 else n
    return {"type": limit.name, "soft": value(limit.soft), "hard": value(limit.hard)}


def _security(options: dict[str, Any], spec: dict[str, Any], refuse: Callable[[str], Exception]) -> None:
    """``--security-opt``: no-new-privileges, seccomp=unconfined|PATH (the remote host's), mask, unmask."""
    for item in options.get("security_opt") or []:
        key, sep, value = item.partition("=")
        if key == "no-new-privileges" and (not sep or value == "true"):
            spec["no_new_privileges"] = True
        elif key == "seccomp" and value:
            spec["seccomp_profile_path"] = value
        elif key in ("mask", "unmask") and value:
            spec.setdefault(key, []).extend(p for p in value.split(":") if p)
        else:
            raise refuse(f"create --security-opt {item}")


def _restart(policy: str) -> dict[str, Any]:
    kind, _, count = (policy or "no").partition(":")
    if kind in ("", "no"):
        return {}
    try:
        return {"restart_policy": kind, **({"restart_tries": int(count)} if count else {})}
    except ValueError:
        raise InvalidArgumentError(f"invalid restart policy: {policy}") from None


#: Options copied as they are under the SpecGenerator's name.
_PLAIN = {"name": "name", "workdir": "work_dir", "user": "user", "hostname": "hostname",
          "stop_timeout": "stop_timeout", "entrypoint": "entrypoint", "privileged": "privileged",
          "read_only": "read_only_filesystem", "init": "init", "tz": "timezone", "umask": "umask",
          "oom_score_adj": "oom_score_adj", "timeout": "timeout", "group_add": "groups", "add_hosts": "hostadd",
          "annotations": "annotations", "unsetenv": "unsetenv", "unsetenv_all": "unsetenvall",
          "auto_remove": "remove", "volumes_from": "volumes_from"}
#: Options this module maps (the rest, when set, are refused by name).
MAPPED = frozenset({*_PLAIN, "command", "env", "env_file", "tty", "stdin", "labels", "network", "publish",
                    "volumes", "mounts", "tmpfs", "memory", "memory_reservation", "memory_swap", "oom_kill_disable",
                    "cpus", "cpu_quota", "cpu_period", "cpu_shares", "cpuset_cpus", "pids_limit", "ulimits",
                    "cap_add", "cap_drop", "security_opt", "restart_policy", "stop_signal", "pid", "ipc", "uts",
                    "devices"})


def spec_generator(image: str, options: dict[str, Any], engine: str) -> dict[str, Any]:
    """The SpecGenerator of ``create IMAGE`` with ``options`` for the remote engine named ``engine``."""
    def refuse(what: str) -> Exception:
        return unsupported(engine, what)
    for key, value in options.items():
        if key in LOCAL_ONLY or (key in PODMAN_DEFAULTS and value == PODMAN_DEFAULTS[key]):
            continue
        if key not in MAPPED and not _empty(value):
            raise refuse(f"create --{key.replace('_', '-')}")
    spec: dict[str, Any] = {"image": image, "terminal": bool(options.get("tty")),
                            "stdin": bool(options.get("stdin")), "env": _env(options),
                            "labels": dict(options.get("labels") or {})}
    if options.get("command"):
        spec["command"] = list(options["command"])
    for key, field in _PLAIN.items():
        if not _empty(options.get(key)) or (key == "entrypoint" and options.get(key) is not None):
            spec[field] = options[key]
    if options.get("stop_signal"):
        from kernelext.domain.containers import parse_signal

        spec["stop_signal"] = int(parse_signal(options["stop_signal"]))
    spec.update(_restart(str(options.get("restart_policy") or "no")))
    publish = ports_mod.parse_all(options.get("publish") or [])
    network = str(options.get("network") or "none")
    if network not in NETWORK_MODES:
        raise refuse(f"create --network {network}")
    # kernelext's default network is "none" with its own port forwarder; published ports on the service need
    # its default network (a bridge as root, slirp4netns rootless), so none is asked for then
    if not (publish and network == "none"):
        spec["netns"] = {"nsmode": network}
    if publish:
        spec["portmappings"] = [{"container_port": m.container_port, "host_port": m.host_port,
                                 "host_ip": m.host_ip, "protocol": m.protocol.value} for m in publish]
    spec["mounts"], spec["volumes"] = _mounts(options)
    resources = _resources(options)
    if resources:
        spec["resource_limits"] = resources
    if options.get("ulimits"):
        spec["r_limits"] = [_ulimit(text) for text in options["ulimits"]]
    for key in ("cap_add", "cap_drop"):
        if options.get(key):
            spec[key] = [c.upper() if c.upper() == "ALL" or c.upper().startswith("CAP_") else f"CAP_{c.upper()}"
                         for c in options[key]]
    _security(options, spec, refuse)
    for key, field in NAMESPACES.items():
        mode = options.get(key)
        if mode:
            if mode not in NAMESPACE_MODES:
                raise InvalidArgumentError(f"invalid --{key} {mode!r}: private or host")
            spec[field] = {"nsmode": mode}
    if options.get("devices"):
        spec["devices"] = [{"path": device} for device in options["devices"]]
    return spec
