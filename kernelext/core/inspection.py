"""The ``inspect`` document, with podman's field names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kernelext.core.libpod import image_reference
from kernelext.core.mounts import binds, inspect_mounts, tmpfs_options
from kernelext.core.ports import inspect_ports
from kernelext.core.state import ContainerStatus
from kernelext.oci import cgroups
from kernelext.oci.spec import hostname_of
from kernelext.units import ZERO_TIME, format_time  # noqa: F401 - the callers' name for them

if TYPE_CHECKING:
    from kernelext.core.container import Container



def _image_digest(ctr: Container) -> str:
    """The ``Digest`` of the container's image, as ``image inspect`` shows it ("" once the image is gone)."""
    images = ctr.runtime.images
    if not ctr.config.image_id or not images.exists(ctr.config.image_id):
        return ""
    return str(images.get(ctr.config.image_id).inspect().get("Digest", ""))


def inspect_document(ctr: Container) -> dict[str, Any]:
    cfg, st = ctr.config, ctr.state
    netns = ctr.netns_path
    running = st.status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED)
    return {
        "Id": cfg.id,
        "Created": format_time(cfg.created_at),
        "Path": cfg.args[0] if cfg.args else "",
        "Args": cfg.args[1:],
        "State": {
            "OciVersion": "1.0.2",
            "Status": st.status.value,
            "Running": st.status is ContainerStatus.RUNNING,
            "Paused": st.status is ContainerStatus.PAUSED,
            "Restarting": False,
            "OOMKilled": st.oom_killed,
            "Dead": False,
            "Pid": st.pid if running else 0,
            "ConmonPid": st.conmon_pid if running else 0,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": format_time(st.started_at),
            "FinishedAt": format_time(st.finished_at),
            "Checkpointed": st.checkpointed,
            "CheckpointedAt": format_time(st.checkpointed_at),
            "Restored": st.restored,
            "RestoredAt": format_time(st.restored_at),
            "StoppedByUser": st.stopped_by_user,
            "CgroupPath": cgroups.own_cgroup(st.pid) if running and st.pid else "",
        },
        "Image": cfg.image_id,
        "ImageDigest": _image_digest(ctr),
        # podman's ImageName is the name the container was created with, in full (localhost/NAME:TAG).
        "ImageName": image_reference(cfg.image_name) if cfg.image_name != cfg.image_id else cfg.image_name,
        "Rootfs": "",
        "ResolvConfPath": str(ctr.bundle / "resolv.conf"),
        "HostnamePath": str(ctr.bundle / "hostname"),
        "HostsPath": str(ctr.bundle / "hosts"),
        "StaticDir": str(ctr.bundle),
        "OCIConfigPath": str(ctr.bundle / "config.json"),
        "OCIRuntime": "runc",
        "LogPath": str(ctr.log_path),
        "ConmonPidFile": cfg.monitor.conmon_pidfile or str(ctr._runtime.opts.conmon_pid_file(cfg.id)),
        "Name": cfg.name,
        "RestartCount": st.restart_count,
        "Driver": ctr.layer.driver,
        "MountLabel": "",
        "ProcessLabel": "",
        "Mounts": inspect_mounts(cfg.mounts, ctr._runtime.volumes.path),
        "Dependencies": [],
        "ExecIDs": [session_id for session_id, _, _ in ctr._exec_sessions()],
        # podman's SandboxKey: the network namespace's path while there is one (kernelext.oci.netns).
        "NetworkSettings": {"Ports": inspect_ports(cfg.ports),
                            "SandboxKey": str(netns) if netns is not None and netns.exists() else ""},
        "Namespace": "",
        "IsInfra": False,
        "GraphDriver": {"Name": ctr.layer.driver, "Data": ctr.layer.graph_data(st.mounted)},
        "Config": {
            "Hostname": hostname_of(cfg),
            "User": cfg.user,
            "Env": cfg.env,
            "Cmd": cfg.command,
            "Entrypoint": cfg.entrypoint,
            "Image": cfg.image_name,
            "WorkingDir": cfg.workdir,
            "Tty": cfg.tty,
            "OpenStdin": cfg.stdin,
            "Labels": cfg.labels,
            "StopSignal": cfg.stop_signal,
            "StopTimeout": cfg.stop_timeout,
            "Annotations": cfg.identity.annotations,
            "Umask": cfg.identity.umask,
            "Timeout": cfg.monitor.timeout,
            **({"Timezone": cfg.identity.tz} if cfg.identity.tz else {}),
        },
        "HostConfig": {
            "NetworkMode": cfg.network.value,
            "RestartPolicy": {"Name": cfg.restart_policy.name.value,
                              "MaximumRetryCount": cfg.restart_policy.max_retries},
            "AutoRemove": cfg.auto_remove,
            "PortBindings": inspect_ports(cfg.ports),
            "Binds": binds(cfg.mounts),
            "Tmpfs": tmpfs_options(cfg.mounts),
            **cfg.resources.host_config(),
            **cfg.security.inspect_fields(),
            "ExtraHosts": cfg.identity.add_hosts,
            "Init": cfg.identity.init,
            "LogConfig": cfg.monitor.log_config(str(ctr.log_path)),
            **cfg.cgroups.host_config(),
            **{f"{kind.capitalize()}Mode": getattr(cfg.identity, kind) or "private" for kind in ("pid", "ipc", "uts")},
        },
    }
