"""libpod's ``ContainerConfig`` as podman writes it into a checkpoint archive's ``config.dump``
(docs/architecture.md §4).

podman's ``restore --import`` re-creates the container from ``config.dump``
(libpod's ``ContainerConfig`` JSON) and ``spec.dump`` (the OCI spec runc ran
it with). :func:`to_config_dump` writes the fields podman's restore reads
from a kernelext :class:`ContainerConfig`; :func:`from_config_dump` maps a
podman archive (4.x and 5.x: the field names below are the same in both;
5.x only adds fields) back, naming what kernelext has no use for.

Pure data: no I/O here.
"""

from __future__ import annotations

import datetime
import signal
from collections.abc import Callable
from typing import Any

from kernelext.core.mounts import Mount, MountType
from kernelext.core.ports import PortMapping, Protocol
from kernelext.core.state import ContainerConfig, NetworkMode, RestartPolicy, RestartPolicyName
from kernelext.oci.identity import INIT_PATH, Identity
from kernelext.oci.monitoring import LogDriver, MonitorOptions
from kernelext.oci.resources import Resources
from kernelext.oci.security import DEFAULT_CAPABILITIES, SecurityOptions
from kernelext.oci.spec import SHM
from kernelext.storage.images import repo_tag

#: podman's default network (root): a kernelext container with published ports joins it on podman's side,
#: as podman forwards ports only into a network it set up.
PODMAN_NETWORK = "podman"
#: The OCI runtime kernelext runs containers with, by the name podman knows it.
OCI_RUNTIME = "runc"
#: podman's default ``/dev/shm`` size (``shmSize``, bytes).
PODMAN_SHM_SIZE = 65536000
#: Destinations podman (and kernelext) bind from the container's own files; re-made by each on restore.
ENGINE_FILES = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run/.containerenv", "/run/secrets"})
#: ``--tz``'s bind (kernelext's spec makes it from the config's time zone, as podman does).
LOCALTIME = "/etc/localtime"
#: Mounts every container has (the kernel's file systems): made by the spec, not the user.
SYSTEM_MOUNTS = frozenset({"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup"})
#: Annotations podman adds to every spec: not the user's.
_PODMAN_ANNOTATION_PREFIXES = ("io.container.manager", "io.kubernetes.cri-o.", "io.podman.annotations.",
                               "org.opencontainers.image.stopSignal", "io.kernelext.")
#: The spec annotations podman's ``--rm`` reads and its ``--init`` writes.
AUTOREMOVE = "io.podman.annotations.autoremove"
INIT = "io.podman.annotations.init"
_TRUE = "TRUE"

#: ``config.dump`` fields kernelext maps (besides the spec's settings).
MAPPED = frozenset({
    "id", "name", "rootfsImageID", "rootfsImageName", "RawImageName", "command", "entrypoint", "user", "groups",
    "stdin", "labels", "stopSignal", "stopTimeout", "createdTime", "createNetNS", "networkMode", "newPortMappings",
    "portMappings", "restart_policy", "restart_retries", "namedVolumes", "userVolumes", "privileged", "hostsAdd",
    "timezone", "umask", "logDriver", "logSize", "timeout", "conmonPidFile", "ShmDir", "shmSize", "mounts",
    "newNetworks", "NoShm", "NOShmShare",
})
#: Fields podman sets afresh on restore (paths, locks, the runtime, cgroups) or that only describe defaults:
#: nothing to carry.
RECOMPUTED = frozenset({
    "spec", "lockID", "CreateCommand", "idMappingsOptions", "Dependencies", "staticDir", "secretsPath",
    "storageOpts", "passwd", "labelopts", "createWorkingDir", "UseImageResolvConf", "UseImageHosts",
    "use_image_hosts", "useImageHostname", "use_image_hostname", "cgroupManager", "cgroupsMode", "cgroupParent",
    "logPath", "logTag", "postConfigureNetNS", "pause", "isService", "sdnotifyMode", "pid_file",
    "mountAllDevices", "runtime", "healthcheck_on_failure_action", "namespace", "rewrite", "ProcessLabel", "MountLabel",
    "shmSizeSystemd", "shm_size_systemd", "kubeExitCodePropagation", "label_nested", "readWriteTmpfs",
    "defaultPause", "healthMaxLogCount", "healthMaxLogSize", "healthLogDestination", "rootfs_mapping",
    "baseHostsFile", "passwd_entry", "group_entry",
})


# ------------------------------------------------------------------- export
def _podman_time(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat().replace("+00:00", "Z")


def _signal_number(name: str) -> int:
    try:
        return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
    except KeyError:
        return int(signal.SIGTERM)


def image_reference(name: str) -> str:
    """A stored image name as podman names it in full (``localhost/busybox:latest``): podman resolves a
    short name through its registries, never to kernelext's local image."""
    return ":".join(repo_tag(name)) if name else ""


def to_config_dump(config: ContainerConfig) -> dict[str, Any]:
    """libpod's ``ContainerConfig`` JSON for ``config`` (the fields podman's restore reads)."""
    volumes = [m for m in config.mounts if m.type is MountType.VOLUME]
    data: dict[str, Any] = {
        "id": config.id,
        "name": config.name,
        "RawImageName": image_reference(config.image_name),
        "idMappingsOptions": {"HostUIDMapping": True, "HostGIDMapping": True, "UIDMap": None, "GIDMap": None},
        "rootfsImageID": config.image_id,
        "rootfsImageName": image_reference(config.image_name),
        "shmSize": PODMAN_SHM_SIZE,
        "privileged": config.security.privileged,
        "command": config.command,
        "stopSignal": _signal_number(config.stop_signal),
        "stopTimeout": config.stop_timeout,
        "createdTime": _podman_time(config.created_at),
        "logDriver": config.monitor.log_driver.value,
        "logSize": config.monitor.log_size_max,
        "umask": config.identity.umask,
        # podman's restore runs the archive's runtime: an empty name is "must provide a valid path".
        "runtime": OCI_RUNTIME,
    }
    if config.entrypoint:
        data["entrypoint"] = config.entrypoint
    if config.user:
        data["user"] = config.user
    if config.security.group_add:
        data["groups"] = config.security.group_add
    if config.stdin:
        data["stdin"] = True
    if config.labels:
        data["labels"] = config.labels
    if config.network is NetworkMode.HOST:
        data["networkMode"] = "host"
    else:
        # A namespace podman makes (loopback up), as kernelext's; ports need podman's network behind them.
        data["createNetNS"] = True
        data["networkMode"] = "bridge" if config.ports else "none"
        if config.ports:
            data["newNetworks"] = {PODMAN_NETWORK: {"interface_name": "eth0"}}
            data["newPortMappings"] = [{"host_ip": p.host_ip, "container_port": p.container_port,
                                        "host_port": p.host_port, "range": 1, "protocol": p.protocol.value}
                                       for p in config.ports]
    if config.restart_policy.name is not RestartPolicyName.NO:
        data["restart_policy"] = config.restart_policy.name.value
        if config.restart_policy.max_retries:
            data["restart_retries"] = config.restart_policy.max_retries
    if volumes:
        data["namedVolumes"] = [{"volumeName": m.source, "dest": m.destination,
                                 "options": [o for o in m.options if o not in ("U", "z", "Z")]} for m in volumes]
    user_volumes = [m.destination for m in config.mounts if m.type is not MountType.TMPFS and m.destination != SHM]
    if user_volumes:
        data["userVolumes"] = user_volumes
    if config.identity.add_hosts:
        data["hostsAdd"] = config.identity.add_hosts
    if config.identity.tz:
        data["timezone"] = config.identity.tz
    if config.monitor.timeout:
        data["timeout"] = config.monitor.timeout
    if config.monitor.conmon_pidfile:
        data["conmonPidFile"] = config.monitor.conmon_pidfile
    return data


def to_spec_dump(spec: dict[str, Any], config: ContainerConfig,
                 volume_source: Callable[[str], str]) -> dict[str, Any]:
    """The spec as podman reads it: no path to kernelext's network namespace (podman puts its own there);
    named volumes bound from where podman keeps them (``volume_source``: podman binds the spec's paths as
    they are); no resource limits the user did not ask for (kernelext copies its caller's hard limits,
    which podman's exec may not be allowed to set; the restored process keeps its own, from CRIU's images)."""
    spec = dict(spec)
    spec["annotations"] = {**spec.get("annotations", {}), AUTOREMOVE: _TRUE if config.auto_remove else "FALSE",
                           INIT: _TRUE if config.identity.init else "FALSE"}
    volumes = {m.destination: m.source for m in config.mounts if m.type is MountType.VOLUME}
    spec["mounts"] = [{**m, "source": volume_source(volumes[m["destination"]])}
                      if m.get("destination") in volumes else m for m in spec.get("mounts", [])]
    if not config.resources.ulimits:
        spec["process"] = {k: v for k, v in spec.get("process", {}).items() if k != "rlimits"}
    linux = dict(spec.get("linux", {}))
    linux["namespaces"] = [{"type": ns["type"]} if ns.get("type") == "network" else ns
                           for ns in linux.get("namespaces", [])]
    spec["linux"] = linux
    return spec


# ------------------------------------------------------------------- import
def _parse_time(text: Any) -> float:
    if not isinstance(text, str) or not text:
        return 0.0
    # Go writes nanoseconds; Python's parser takes at most microseconds.
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


def _signal_name(number: Any) -> str:
    try:
        return signal.Signals(int(number)).name
    except (TypeError, ValueError):
        return "SIGTERM"


def _ports(data: dict[str, Any]) -> list[PortMapping]:
    """``newPortMappings`` (ranges expanded), or podman 3's ``portMappings`` (CNI's, which podman 4 still
    migrates); every host address becomes loopback, the only one kernelext publishes on."""
    mappings: list[PortMapping] = []
    for item in data.get("newPortMappings") or []:
        for offset in range(int(item.get("range") or 1)):
            for proto in str(item.get("protocol") or "tcp").split(","):
                host = int(item.get("host_port") or 0)
                mappings.append(PortMapping(int(item["container_port"]) + offset, host + offset if host else 0,
                                            protocol=Protocol(proto)))
    for item in data.get("portMappings") or []:
        mappings.append(PortMapping(int(item["containerPort"]), int(item.get("hostPort") or 0),
                                    protocol=Protocol(str(item.get("protocol") or "tcp"))))
    return mappings


def _mounts(data: dict[str, Any], spec: dict[str, Any]) -> tuple[list[Mount], bool]:
    """Named volumes, then the spec's binds and tmpfs mounts the user asked for; and whether /dev/shm is
    podman's bind of a directory beside the container (it then binds one beside kernelext's: a mount with no
    source here, which the import fills in, as the directory depends on the container's ID)."""
    volumes = {v.get("dest", ""): v for v in data.get("namedVolumes") or []}
    mounts = [Mount(MountType.VOLUME, dest, str(v.get("volumeName", "")),
                    tuple(o for o in v.get("options") or [] if o in ("ro", "rw")))
              for dest, v in volumes.items()]
    shm_bind = False
    for m in spec.get("mounts", []):
        dest, kind = m.get("destination", ""), m.get("type", "")
        options = tuple(o for o in m.get("options", []) if o in ("ro", "rw"))
        if dest == SHM:
            shm_bind = kind == "bind"
        elif dest in SYSTEM_MOUNTS or dest in ENGINE_FILES or dest in volumes or dest in (INIT_PATH, LOCALTIME):
            continue
        elif kind == "bind" or "bind" in m.get("options", []) or "rbind" in m.get("options", []):
            mounts.append(Mount(MountType.BIND, dest, m.get("source", ""), options))
        elif kind == "tmpfs":
            mounts.append(Mount(MountType.TMPFS, dest, "", options))
    if shm_bind:
        mounts.append(Mount(MountType.BIND, SHM))
    return mounts, shm_bind


def _resources(spec: dict[str, Any]) -> Resources:
    res = spec.get("linux", {}).get("resources") or {}
    memory, cpu = res.get("memory") or {}, res.get("cpu") or {}
    return Resources(memory=int(memory.get("limit") or 0),
                     memory_swap=int(memory.get("swap") or 0) if memory.get("limit") else 0,
                     memory_reservation=int(memory.get("reservation") or 0),
                     cpu_shares=int(cpu.get("shares") or 0), cpu_quota=int(cpu.get("quota") or 0),
                     cpu_period=int(cpu.get("period") or 0), cpuset_cpus=str(cpu.get("cpus") or ""),
                     pids_limit=max(0, int((res.get("pids") or {}).get("limit") or 0)),
                     oom_kill_disable=bool(memory.get("disableOOMKiller")),
                     oom_score_adj=spec.get("process", {}).get("oomScoreAdj"))


def _security(data: dict[str, Any], spec: dict[str, Any]) -> SecurityOptions:
    process = spec.get("process", {})
    privileged = bool(data.get("privileged"))
    bounding = set((process.get("capabilities") or {}).get("bounding") or [])
    add = [] if privileged else sorted(bounding - set(DEFAULT_CAPABILITIES))
    drop = [] if privileged else sorted(set(DEFAULT_CAPABILITIES) - bounding)
    return SecurityOptions(cap_add=add, cap_drop=drop, privileged=privileged,
                           no_new_privileges=bool(process.get("noNewPrivileges")),
                           seccomp="" if privileged or "seccomp" in spec.get("linux", {}) else "unconfined",
                           read_only=bool((spec.get("root") or {}).get("readonly")),
                           group_add=list(data.get("groups") or []))


def _identity(data: dict[str, Any], spec: dict[str, Any], ctr_id: str) -> Identity:
    annotations, labels = spec.get("annotations") or {}, data.get("labels") or {}
    kinds = {ns.get("type") for ns in spec.get("linux", {}).get("namespaces", [])}
    hostname = str(spec.get("hostname") or "")
    return Identity(hostname="" if hostname == ctr_id[:12] else hostname,
                    add_hosts=list(data.get("hostsAdd") or []),
                    # kernelext's spec carries the labels as annotations too: they are labels.
                    annotations={k: v for k, v in annotations.items()
                                 if not k.startswith(_PODMAN_ANNOTATION_PREFIXES) and k not in labels},
                    init=annotations.get(INIT) == _TRUE or any(m.get("destination") == INIT_PATH
                                                                for m in spec.get("mounts", [])),
                    umask=str(data.get("umask") or "0022"), tz=str(data.get("timezone") or ""),
                    pid="" if "pid" in kinds else "host", ipc="" if "ipc" in kinds else "host",
                    uts="" if "uts" in kinds else "host")


def _monitor(data: dict[str, Any]) -> MonitorOptions:
    try:
        driver = LogDriver(data.get("logDriver") or LogDriver.K8S_FILE.value)
    except ValueError:
        driver = LogDriver.K8S_FILE  # journald, json-file: conmon's k8s-file here
    pidfile = str(data.get("conmonPidFile") or "")
    if pidfile.endswith("/userdata/conmon.pid"):
        pidfile = ""  # podman's own default, in podman's run directory
    return MonitorOptions(log_driver=driver, log_size_max=max(0, int(data.get("logSize") or 0)),
                          timeout=int(data.get("timeout") or 0), conmon_pidfile=pidfile)


def _process_args(data: dict[str, Any], spec: dict[str, Any], init: bool) -> tuple[list[str], list[str]]:
    """(entrypoint, command): libpod's, when they make the spec's argv; else the argv as the command."""
    args = list(spec.get("process", {}).get("args") or [])
    if init and args[:2] == [INIT_PATH, "--"]:
        args = args[2:]
    entrypoint, command = list(data.get("entrypoint") or []), list(data.get("command") or [])
    return (entrypoint, command) if entrypoint + command == args else ([], args)


def ignored_fields(data: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """The fields of a podman ``config.dump`` that say something kernelext cannot carry."""
    ignored = sorted(k for k, v in data.items() if k not in MAPPED and k not in RECOMPUTED and v)
    networks = set(data.get("newNetworks") or {}) | set(data.get("networks") or [])
    driver = data.get("logDriver")
    if driver and driver not in {d.value for d in LogDriver}:
        ignored.append(f"logDriver: {driver} (k8s-file here)")
    if networks:
        ignored.append(f"networks: {', '.join(sorted(networks))} (loopback only here)")
    if data.get("networkMode") not in (None, "", "bridge", "host", "none"):
        ignored.append(f"networkMode {data['networkMode']}")
    mappings = data.get("idMappingsOptions") or {}
    if mappings.get("UIDMap") or mappings.get("GIDMap") or mappings.get("AutoUserNs"):
        ignored.append("idMappingsOptions")
    if (spec.get("linux") or {}).get("devices"):
        ignored.append("devices")
    if (spec.get("process") or {}).get("selinuxLabel") or (spec.get("process") or {}).get("apparmorProfile"):
        ignored.append("security labels")
    return ignored


def from_config_dump(data: dict[str, Any], spec: dict[str, Any]) -> tuple[ContainerConfig, list[str]]:
    """A kernelext config from podman's ``config.dump`` and ``spec.dump``, and what it leaves out."""
    ctr_id = str(data["id"])
    identity = _identity(data, spec, ctr_id)
    entrypoint, command = _process_args(data, spec, identity.init)
    process = spec.get("process") or {}
    env = [e for e in process.get("env") or [] if not e.startswith("HOSTNAME=")]
    mounts, _ = _mounts(data, spec)
    user = str(data.get("user") or "")
    policy = RestartPolicy()
    if data.get("restart_policy") not in (None, "", "no"):
        policy = RestartPolicy(RestartPolicyName(data["restart_policy"]), int(data.get("restart_retries") or 0))
    host_network = data.get("networkMode") == "host"
    config = ContainerConfig(
        id=ctr_id, name=str(data["name"]), image_id=str(data.get("rootfsImageID") or ""),
        image_name=str(data.get("rootfsImageName") or data.get("RawImageName") or ""),
        command=command, entrypoint=entrypoint, env=env, workdir=str(process.get("cwd") or "/"), user=user,
        tty=bool(process.get("terminal")), stdin=bool(data.get("stdin")),
        network=NetworkMode.HOST if host_network else NetworkMode.NONE, restart_policy=policy,
        stop_signal=_signal_name(data.get("stopSignal", signal.SIGTERM)),
        stop_timeout=int(data.get("stopTimeout") or 10),
        auto_remove=(spec.get("annotations") or {}).get(AUTOREMOVE) == _TRUE,
        labels=dict(data.get("labels") or {}), created_at=_parse_time(data.get("createdTime")),
        ports=[] if host_network else _ports(data), mounts=mounts, resources=_resources(spec),
        security=_security(data, spec), identity=identity, monitor=_monitor(data))
    return config, ignored_fields(data, spec)
