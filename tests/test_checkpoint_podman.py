"""Checkpoint archives that move between kernelext and podman (issue 24): real podman 4.3.1, runc, conmon
and CRIU both ways, an archive of an older kernelext, and the mapping of a podman 5.x ``config.dump``."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kernelext import Container
from kernelext.config import find_criu
from kernelext.core import libpod
from kernelext.core.checkpoint import CONFIG_DUMP, KERNELEXT_CONFIG
from kernelext.core.mounts import Mount, MountType
from kernelext.core.ports import PortMapping, Protocol
from kernelext.core.state import ContainerConfig, NetworkMode, RestartPolicy, RestartPolicyName
from kernelext.oci import netns
from kernelext.oci.monitoring import LogDriver

from conftest import ROOTLESS, Store, wait_until

#: A counter that first writes a file into its root, a volume and /dev/shm, and serves its root on 8080.
COUNTER = ("echo written > /written; echo kept > /data/kept; echo shared > /dev/shm/shared; mkdir -p /www; "
           "echo hello > /www/index.html; httpd -p 8080 -h /www; "
           "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done")
CTR_PORT = 8080
PODMAN_TIMEOUT_S = 180
#: The ulimits podman works with here (the machines' facts).
PODMAN_NOFILE, PODMAN_NPROC = 20000, 32768


# ------------------------------------------------------------------ podman
@dataclass
class Podman:
    """podman 4.3.1 on a private store: root, cgroupfs, file events, the provisioned CRIU first on PATH."""

    base: list[str]
    env: dict[str, str]
    root: Path
    runroot: Path

    def __call__(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *argv], capture_output=True, text=True, env=self.env,
                              timeout=PODMAN_TIMEOUT_S)

    def ok(self, *argv: str) -> str:
        proc = self(*argv)
        assert proc.returncode == 0, f"podman {' '.join(argv)}: {proc.stderr}"
        return proc.stdout


@pytest.fixture
def podman(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Podman]:
    binary, criu = shutil.which("podman"), find_criu(None)
    if ROOTLESS or binary is None or criu is None:
        pytest.skip("needs root, podman and CRIU (scripts/setup.sh installs them)")
    # podman only works here with ulimits within the hard limits (root lacks CAP_SYS_RESOURCE; conmon's
    # NPROC is 32768 whatever the caller's) and cgroupfs.
    nofile, nproc = (min(resource.getrlimit(r)[1], most) for r, most in ((resource.RLIMIT_NOFILE, PODMAN_NOFILE),
                                                                          (resource.RLIMIT_NPROC, PODMAN_NPROC)))
    conf = tmp_path / "containers.conf"
    root = tmp_path / "podman-root"
    conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
                    '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    f'volume_path = "{root}/volumes"\n')
    runroot = Path(tempfile.mkdtemp(prefix="kx-pm-"))  # podman refuses a runroot longer than 50 characters
    storage_conf = tmp_path / "storage.conf"
    storage_conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{root}"\nrunroot = "{runroot}"\n')
    # kernelext finds podman's volumes and images where podman's configuration says, as podman does.
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(storage_conf))
    env = {"PATH": f"{Path(criu).parent}:/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERS_CONF": str(conf),
           "CONTAINERS_STORAGE_CONF": str(storage_conf), "HOME": str(tmp_path)}
    pm = Podman([binary, "--root", str(root), "--runroot", str(runroot), "--cgroup-manager", "cgroupfs",
                 "--events-backend", "file", "--storage-driver", "overlay"], env, root, runroot)
    try:
        yield pm
    finally:
        pm("rm", "-a", "-f", "-t", "0")
        pm("volume", "rm", "-a", "-f")
        pm("rmi", "-a", "-f")
        leftover = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                    if line.split()[4].startswith((str(root), str(runroot)))]
        for mountpoint in reversed(leftover):  # podman's storage keeps its own driver mounts
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        shutil.rmtree(runroot, ignore_errors=True)


@pytest.fixture
def shared(store: Store, podman: Podman, tmp_path: Path) -> str:
    """One image in both stores under the same ID and name: kernelext's busybox, loaded by podman, pulled
    back from podman's store (podman keeps its config, so the ID)."""
    archive = tmp_path / "busybox.tar"
    store.runtime.save("busybox", archive)
    podman.ok("load", "-q", "-i", str(archive))
    podman_id = podman.ok("image", "inspect", "--format", "{{.Id}}", "localhost/busybox:latest").strip()
    pulled = store.runtime.pull(f"containers-storage:[overlay@{podman.root}+{podman.runroot}]localhost/busybox:latest")
    assert pulled.id == podman_id and store.runtime.image("busybox").id == podman_id
    return "busybox"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        return str(response.read().decode())


def counted(log: str) -> list[int]:
    return [int(line) for line in log.splitlines() if line.strip().isdigit()]


def assert_unbroken(seen: list[int], past: int) -> None:
    """One run 0, 1, 2, ... with no restart or gap, gone on past what was printed before the checkpoint."""
    assert seen == list(range(len(seen))) and seen[-1] > past, seen


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# ------------------------------------------------------- kernelext -> podman
def test_kernelext_checkpoint_restored_by_podman_counts_on(store: Store, podman: Podman, shared: str,
                                                           tmp_path: Path) -> None:
    """A kernelext counter (a written file, a named volume, a published port) checkpointed with
    ``--export`` comes back under podman's ``restore --import``, with its ID and name, and counts on."""
    rt = store.runtime
    ctr = rt.run(shared, ["sh", "-c", COUNTER], name="mover", volumes=["kept:/data"],
                 publish=[f"127.0.0.1::{CTR_PORT}"], labels={"app": "counter"})
    port = ctr.ports[0].host_port
    assert wait_until(lambda: len(counted(ctr_log(ctr))) >= 5)
    assert get(port) == "hello\n"
    archive = tmp_path / "mover.tar.zst"
    _ok(store.cli("checkpoint", "-e", str(archive), "mover"))
    past = counted(ctr_log(ctr))[-1]
    _ok(store.cli("rm", "-v", "mover"))
    _ok(store.cli("volume", "rm", "kept"))

    restored = podman("container", "restore", "--import", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.strip() == ctr.id
    inspect = json.loads(podman.ok("inspect", "mover"))[0]
    assert (inspect["Id"], inspect["Name"], inspect["State"]["Status"]) == (ctr.id, "mover", "running")
    assert inspect["ImageName"] == "localhost/busybox:latest" and inspect["Config"]["Labels"] == {"app": "counter"}
    assert wait_until(lambda: counted(podman.ok("logs", "mover"))[-1] >= past + 3, timeout=20)
    assert_unbroken(counted(podman.ok("logs", "mover")), past)
    assert podman.ok("exec", "mover", "cat", "/written", "/data/kept") == "written\nkept\n"
    assert podman.ok("volume", "ls", "-q").split() == ["kept"]
    assert get(port) == "hello\n"  # podman forwards the same host port to the restored server
    podman.ok("rm", "-f", "-t", "0", "mover")


def ctr_log(ctr: Container) -> str:
    return b"".join(line.data for line in ctr.logs()).decode()


# ------------------------------------------------------- podman -> kernelext
def test_podman_checkpoint_restored_by_kernelext_counts_on(store: Store, podman: Podman, shared: str,
                                                           tmp_path: Path) -> None:
    """podman's counter (a written file, a named volume, /dev/shm, a published port) exported by podman
    comes back under ``kernelext restore -i -n``: a new name and ID, counting on, its files, volume and
    shared memory there, its port forwarded; one line says what did not travel."""
    port = free_port()
    podman.ok("run", "-d", "--name", "origin", "-v", "kept:/data", "-p", f"127.0.0.1:{port}:{CTR_PORT}",
              "-e", "GREETING=hi", "--restart", "on-failure:2", "localhost/busybox:latest", "sh", "-c", COUNTER)
    assert wait_until(lambda: len(counted(podman.ok("logs", "origin"))) >= 5, timeout=20)
    assert get(port) == "hello\n"
    archive = tmp_path / "origin.tar.zst"
    podman.ok("container", "checkpoint", "--export", str(archive), "origin")
    past = counted(podman.ok("logs", "origin"))[-1]
    origin_id = podman.ok("inspect", "--format", "{{.Id}}", "origin").strip()
    podman.ok("rm", "-f", "origin")

    proc = store.cli("restore", "-i", str(archive), "-n", "copy")
    assert proc.returncode == 0, proc.stderr
    warning = proc.stderr.strip().splitlines()
    assert len(warning) == 1 and re.fullmatch(r"WARN\[\d+\] origin: restoring without what kernelext does not "
                                              r"support: networks: podman \(loopback only here\)", warning[0]), warning
    ctr = store.runtime.get("copy")
    assert ctr.id == proc.stdout.strip() != origin_id and ctr.state.restored
    assert wait_until(lambda: counted(ctr_log(ctr))[-1] >= past + 3)
    assert_unbroken(counted(ctr_log(ctr)), past)
    assert ctr.exec_run(["cat", "/written", "/data/kept", "/dev/shm/shared"]).output == b"written\nkept\nshared\n"
    assert "GREETING=hi" in ctr.config.env and str(ctr.config.restart_policy) == "on-failure:2"
    assert store.runtime.volumes.exists("kept")
    assert [str(p) for p in ctr.ports] == [f"{CTR_PORT}/tcp -> 127.0.0.1:{port}"]
    assert get(port) == "hello\n"
    _ok(store.cli("rm", "-f", "-v", "copy"))


def test_round_trip_through_both_keeps_shared_memory(store: Store, podman: Podman, shared: str,
                                                     tmp_path: Path) -> None:
    """podman → kernelext → podman (and kernelext again): kernelext exports podman's /dev/shm (a bind CRIU
    leaves out) as ``devshm-checkpoint.tar``, as podman does, so it survives the second move too."""
    podman.ok("run", "-d", "--name", "trip", "localhost/busybox:latest", "sh", "-c",
              "echo shared > /dev/shm/shared; i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done")
    assert wait_until(lambda: len(counted(podman.ok("logs", "trip"))) >= 3, timeout=20)
    first, second = tmp_path / "first.tar.zst", tmp_path / "second.tar.gz"
    podman.ok("container", "checkpoint", "-e", str(first), "trip")
    podman.ok("rm", "-f", "trip")
    ctr = store.runtime.restore_from_archive(first)
    assert ctr.name == "trip" and ctr.exec_run(["cat", "/dev/shm/shared"]).output == b"shared\n"
    _ok(store.cli("checkpoint", "-e", str(second), "--compress", "gzip", "trip"))
    past = counted(ctr_log(ctr))[-1]
    _ok(store.cli("rm", "trip"))
    # kernelext's own archive of it, under a new name: /dev/shm is beside the new container, not the old one.
    again = store.runtime.restore_from_archive(second, name="again")
    assert again.exec_run(["cat", "/dev/shm/shared"]).output == b"shared\n"
    assert [m.source for m in again.config.mounts] == [str(again.bundle / "shm")]
    again.remove(force=True)
    podman.ok("container", "restore", "-i", str(second))
    assert podman.ok("exec", "trip", "cat", "/dev/shm/shared") == "shared\n"
    assert wait_until(lambda: counted(podman.ok("logs", "trip"))[-1] >= past + 3, timeout=20)
    assert_unbroken(counted(podman.ok("logs", "trip")), past)
    podman.ok("rm", "-f", "-t", "0", "trip")


def test_missing_image_comes_from_podmans_store(store: Store, podman: Podman, tmp_path: Path) -> None:
    """A store without the archive's image takes it from podman's store on this host (where podman's
    storage.conf says), under podman's ID, rather than from a registry."""
    archive = tmp_path / "busybox.tar"
    store.runtime.save("busybox", archive)
    podman.ok("load", "-q", "-i", str(archive))
    podman.ok("tag", "localhost/busybox:latest", "localhost/tool:1")
    # The built-in busybox is one image with one ID everywhere (the same host binary): this store must lack it.
    store.runtime.remove_image("busybox")
    podman_id = podman.ok("image", "inspect", "--format", "{{.Id}}", "localhost/tool:1").strip()
    podman.ok("run", "-d", "--name", "tool", "localhost/tool:1", "sh", "-c",
              "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done")
    assert wait_until(lambda: len(counted(podman.ok("logs", "tool"))) >= 3, timeout=20)
    checkpoint = tmp_path / "tool.tar.zst"
    podman.ok("container", "checkpoint", "-e", str(checkpoint), "tool")
    past = counted(podman.ok("logs", "tool"))[-1]
    podman.ok("rm", "-f", "tool")
    assert not store.runtime.images.exists("tool:1") and not store.runtime.images.exists(podman_id)

    ctr = store.runtime.restore_from_archive(checkpoint)
    assert (ctr.config.image_id, ctr.config.image_name) == (podman_id, "tool:1")
    assert wait_until(lambda: counted(ctr_log(ctr))[-1] >= past + 3)
    assert_unbroken(counted(ctr_log(ctr)), past)
    ctr.remove(force=True)


def test_host_network_init_and_terminal_travel_both_ways(store: Store, podman: Podman, shared: str,
                                                         tmp_path: Path) -> None:
    """kernelext → podman → kernelext: ``--network host``, ``--init`` (catatonit bound at /run/podman-init,
    which CRIU needs bound again) and a terminal (``-t``) survive both moves."""
    ctr = store.runtime.run(shared, ["sh", "-c", "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"],
                            name="hostnet", network="host", init=True, tty=True)
    assert wait_until(lambda: len(counted(ctr_log(ctr))) >= 3)
    there, back = tmp_path / "there.tar.zst", tmp_path / "back.tar.zst"
    _ok(store.cli("checkpoint", "-e", str(there), "hostnet"))
    _ok(store.cli("rm", "hostnet"))
    podman.ok("container", "restore", "-i", str(there))
    inspect = json.loads(podman.ok("inspect", "hostnet"))[0]
    assert (inspect["HostConfig"]["NetworkMode"], inspect["State"]["Status"]) == ("host", "running")
    podman.ok("container", "checkpoint", "-e", str(back), "hostnet")
    past = counted(podman.ok("logs", "hostnet"))[-1]
    podman.ok("rm", "hostnet")
    again = store.runtime.restore_from_archive(back)
    assert again.config.network is NetworkMode.HOST and again.config.identity.init and again.config.tty
    assert inspect["Config"]["Tty"] is True
    assert wait_until(lambda: counted(ctr_log(again))[-1] >= past + 3)
    assert_unbroken(counted(ctr_log(again)), past)
    again.remove(force=True)


def test_podmans_network_none_counter_checkpoints_again_here(store: Store, podman: Podman, shared: str,
                                                             tmp_path: Path) -> None:
    """podman's ``--network none`` leaves the namespace to runc, so CRIU dumps it and restores a new one:
    restored here, that is the namespace held on the container's path, and kernelext checkpoints the
    container again, in place and exported (runc failed with "no such file or directory" before)."""
    podman.ok("run", "-d", "--name", "nonet", "--network", "none", "localhost/busybox:latest", "sh", "-c",
              "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done")
    assert wait_until(lambda: len(counted(podman.ok("logs", "nonet"))) >= 3, timeout=20)
    archive = tmp_path / "nonet.tar.zst"
    podman.ok("container", "checkpoint", "-e", str(archive), "nonet")
    past = counted(podman.ok("logs", "nonet"))[-1]
    podman.ok("rm", "nonet")
    ctr = store.runtime.restore_from_archive(archive)
    assert ctr.netns_path is not None and netns.holds(ctr.netns_path, ctr.state.pid)
    assert wait_until(lambda: counted(ctr_log(ctr))[-1] >= past + 3)
    _ok(store.cli("checkpoint", "nonet"))
    _ok(store.cli("restore", "nonet"))
    assert netns.holds(ctr.netns_path, ctr.reload().state.pid)  # a prepared namespace from now on
    again = tmp_path / "again.tar.zst"
    _ok(store.cli("checkpoint", "-e", str(again), "nonet"))
    past = counted(ctr_log(ctr))[-1]
    _ok(store.cli("rm", "nonet"))
    back = store.runtime.restore_from_archive(again)
    assert wait_until(lambda: counted(ctr_log(back))[-1] >= past + 3)
    assert_unbroken(counted(ctr_log(back)), past)
    back.remove(force=True)


# ------------------------------------------------- older kernelext archives
def test_archive_of_an_older_kernelext_restores(store: Store, tmp_path: Path) -> None:
    """Before libpod's config.dump, kernelext wrote its own config there (and no kernelext.config.json):
    such an archive still restores, its ports and all."""
    rt = store.runtime
    ctr = rt.run("busybox", ["sh", "-c", "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"],
                 name="old", publish=[f"127.0.0.1::{CTR_PORT}"], restart_policy="always")
    assert wait_until(lambda: len(counted(ctr_log(ctr))) >= 3)
    archive = tmp_path / "new.tar.zst"
    ctr.checkpoint(export=archive)
    past = counted(ctr_log(ctr))[-1]
    ctr.remove()
    # The older layout: kernelext's own schema as config.dump, no kernelext.config.json.
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(archive), "-C", str(unpacked)], check=True)
    own = (unpacked / KERNELEXT_CONFIG).read_text()
    (unpacked / CONFIG_DUMP).write_text(own)
    (unpacked / KERNELEXT_CONFIG).unlink()
    older = tmp_path / "older.tar.zst"
    subprocess.run(["tar", "--zstd", "-cf", str(older), "-C", str(unpacked), *sorted(os.listdir(unpacked))], check=True)

    back = rt.restore_from_archive(older)
    assert (back.id, back.name, str(back.config.restart_policy)) == (ctr.id, "old", "always")
    assert back.ports == ctr.ports and back.config.to_json() == json.loads(own)
    assert wait_until(lambda: counted(ctr_log(back))[-1] >= past + 3)
    assert_unbroken(counted(ctr_log(back)), past)
    back.remove(force=True)


# ------------------------------------------------------------- field mapping
#: A podman 5.x ``config.dump`` written from the field list (JSON tags) of libpod's ``ContainerConfig``
#: in podman v5.8's ``libpod/container_config.go`` (what 5.x added over 4.x: ``startupHealthCheck``,
#: ``shm_size_systemd``, ``label_nested``, ``baseHostsFile``, ``artifactVolumes``, ...), with the values
#: ``podman run -d --name web -p 8080-8081:80 -v data:/data:ro --restart on-failure:3 --label tier=front
#: --stop-signal SIGINT --stop-timeout 5 --cap-add NET_RAW --cap-drop KILL --add-host db:10.0.0.5 --tz UTC --umask 0027 --group-add 10
#: --log-opt max-size=1mb --health-cmd true --dns 1.1.1.1 --entrypoint '["/bin/sh","-c"]' busybox 'httpd -f'``
#: give there; not an archive podman here (4.3.1) could write.
PODMAN5_CONFIG_DUMP: dict[str, object] = {
    "id": "3f" * 32, "name": "web", "pod": "", "namespace": "", "lockID": 4,
    "CreateCommand": ["podman", "run", "-d", "--name", "web", "busybox"], "RawImageName": "docker.io/library/busybox",
    "idMappingsOptions": {"HostUIDMapping": True, "HostGIDMapping": True, "UIDMap": None, "GIDMap": None,
                          "AutoUserNs": False},
    "rootfsImageID": "ab" * 32, "rootfsImageName": "docker.io/library/busybox:latest",
    "ShmDir": "/var/lib/containers/storage/overlay-containers/x/userdata/shm", "shmSize": 65536000,
    "shmSizeSystemd": 0, "staticDir": "/var/lib/containers/storage/overlay-containers/x/userdata",
    "mounts": ["/var/lib/containers/storage/overlay-containers/x/userdata/shm"],
    "namedVolumes": [{"volumeName": "data", "dest": "/data", "options": ["ro", "rprivate", "nosuid", "rbind"],
                      "isAnonymous": False, "subPath": ""}],
    "createWorkingDir": True, "secretsPath": "/var/lib/containers/storage/secrets", "storageOpts": None,
    "volatile": False, "passwd": True, "privileged": False, "labelopts": ["disable"], "label_nested": False,
    "groups": ["10"], "createNetNS": True, "UseImageResolvConf": False, "UseImageHosts": False,
    "baseHostsFile": "", "dnsServer": ["1.1.1.1"], "hostsAdd": ["db:10.0.0.5"],
    "newNetworks": {"podman": {"interface_name": "eth0"}}, "networkMode": "bridge",
    "newPortMappings": [{"host_ip": "", "container_port": 80, "host_port": 8080, "range": 2, "protocol": "tcp"}],
    "userVolumes": ["/data"], "entrypoint": ["/bin/sh", "-c"], "command": ["httpd -f"],
    "labels": {"tier": "front"}, "stopSignal": 2, "stopTimeout": 5, "createdTime": "2026-01-02T03:04:05.123456789Z",
    "cgroupManager": "systemd", "cgroupsMode": "enabled", "cgroupParent": "machine.slice",
    "logPath": "/var/lib/containers/storage/overlay-containers/x/userdata/ctr.log", "logTag": "",
    "logSize": 1000000, "logDriver": "journald", "restart_policy": "on-failure", "restart_retries": 3,
    "postConfigureNetNS": False, "runtime": "crun", "pause": False, "isService": False, "sdnotifyMode": "container",
    "healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000}, "healthcheck_on_failure_action": 0,
    "startupHealthCheck": None, "healthMaxLogCount": 5, "healthMaxLogSize": 500, "healthLogDestination": "local",
    "timezone": "UTC", "umask": "0027", "pid_file": "/run/containers/storage/overlay-containers/x/userdata/pidfile",
    "conmonPidFile": "/run/containers/storage/overlay-containers/x/userdata/conmon.pid",
    "readWriteTmpfs": False, "mountAllDevices": False, "kubeExitCodePropagation": "invalid",
    "defaultPause": False, "useImageHostname": False, "use_image_hosts": False,
}
PODMAN5_SPEC_DUMP: dict[str, object] = {
    "ociVersion": "1.2.0",
    "process": {"user": {"uid": 0, "gid": 0, "umask": 23}, "args": ["/bin/sh", "-c", "httpd -f"],
                "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "container=podman", "HOSTNAME=3f3f3f3f3f3f"],
                "cwd": "/", "capabilities": {"bounding": [
                    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
                    "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"]},
                "noNewPrivileges": False},
    "root": {"path": "/var/lib/containers/storage/overlay/y/merged"},
    "hostname": "3f3f3f3f3f3f",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev/shm", "type": "bind", "source": "/var/lib/x/userdata/shm",
                "options": ["bind", "rprivate", "nosuid", "noexec", "nodev"]},
               {"destination": "/data", "type": "bind", "source": "/var/lib/containers/storage/volumes/data/_data",
                "options": ["ro", "rbind"]},
               {"destination": "/srv", "type": "bind", "source": "/srv/site", "options": ["rbind", "ro"]},
               {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["rw", "size=1m"]},
               {"destination": "/etc/hosts", "type": "bind", "source": "/run/x/hosts", "options": ["bind"]}],
    "annotations": {"io.container.manager": "libpod", "io.podman.annotations.autoremove": "FALSE",
                    "io.podman.annotations.init": "FALSE", "org.opencontainers.image.stopSignal": "2",
                    "team": "web"},
    "linux": {"resources": {"pids": {"limit": 4096}, "memory": {"limit": 67108864, "swap": 134217728},
                            "cpu": {"quota": 50000, "period": 100000}},
              "namespaces": [{"type": "pid"}, {"type": "network", "path": "/run/netns/netns-1"}, {"type": "ipc"},
                             {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
              "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}},
}


def test_podman5_config_dump_maps_to_a_kernelext_config() -> None:
    config, ignored = libpod.from_config_dump(PODMAN5_CONFIG_DUMP, PODMAN5_SPEC_DUMP)
    assert (config.id, config.name, config.image_id) == ("3f" * 32, "web", "ab" * 32)
    assert config.image_name == "docker.io/library/busybox:latest"
    assert (config.entrypoint, config.command) == (["/bin/sh", "-c"], ["httpd -f"])
    assert config.env == ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "container=podman"]  # HOSTNAME is the engine's
    assert config.network is NetworkMode.NONE and config.labels == {"tier": "front"}
    assert config.restart_policy == RestartPolicy(RestartPolicyName.ON_FAILURE, 3)
    assert (config.stop_signal, config.stop_timeout) == ("SIGINT", 5)
    assert config.created_at == pytest.approx(1767323045.123456)
    # A range of two ports, on loopback (the only address kernelext publishes on).
    assert config.ports == [PortMapping(80, 8080), PortMapping(81, 8081)]
    assert config.mounts == [Mount(MountType.VOLUME, "/data", "data", ("ro",)),
                             Mount(MountType.BIND, "/srv", "/srv/site", ("ro",)),
                             Mount(MountType.TMPFS, "/scratch", "", ("rw",)),
                             Mount(MountType.BIND, "/dev/shm")]  # a directory beside the container, on import
    assert config.resources.pids_limit == 4096 and config.resources.memory == 64 << 20
    assert (config.resources.cpu_quota, config.resources.cpu_period) == (50000, 100000)
    assert (config.security.cap_add, config.security.cap_drop) == (["CAP_NET_RAW"], ["CAP_KILL"])
    assert config.security.group_add == ["10"] and config.security.seccomp == ""
    identity = config.identity
    assert (identity.hostname, identity.add_hosts, identity.tz, identity.umask) == ("", ["db:10.0.0.5"], "UTC", "0027")
    assert identity.annotations == {"team": "web"} and not identity.init
    # journald is not a driver here: conmon's k8s-file; podman's own conmon PID file is not carried.
    assert config.monitor.log_driver is LogDriver.K8S_FILE and config.monitor.log_size_max == 1000000
    assert config.monitor.conmon_pidfile == ""
    # What kernelext cannot carry, named: the rest is either mapped or set afresh on restore.
    assert ignored == ["dnsServer", "healthcheck", "logDriver: journald (k8s-file here)",
                       "networks: podman (loopback only here)"]


def test_podman3_port_mappings_and_host_network() -> None:
    """podman 3's ``portMappings`` (CNI's) still map; the host network has no ports of its own."""
    data = {"id": "1" * 64, "name": "a", "portMappings": [{"hostPort": 5353, "containerPort": 53, "protocol": "udp",
                                                           "hostIP": ""}]}
    config, ignored = libpod.from_config_dump(data, {"process": {"args": ["true"]}})
    assert config.ports == [PortMapping(53, 5353, protocol=Protocol.UDP)] and ignored == []
    assert config.command == ["true"] and config.identity.pid == "host"  # no pid namespace in that spec
    host, _ = libpod.from_config_dump({**data, "networkMode": "host"}, {})
    assert host.network is NetworkMode.HOST and host.ports == []
    # A user namespace's mappings, devices, secrets and a pod: named, as kernelext has none of them.
    mapped = {**data, "idMappingsOptions": {"UIDMap": [{"container_id": 0, "host_id": 100000, "size": 65536}]},
              "secrets": [{"Name": "token"}], "pod": "p1"}
    _, ignored = libpod.from_config_dump(mapped, {"linux": {"devices": [{"path": "/dev/fuse"}]}})
    assert ignored == ["pod", "secrets", "idMappingsOptions", "devices"]


def test_kernelext_config_dump_is_what_podman_restore_reads() -> None:
    """The fields podman's ``restore --import`` uses, with libpod's names and types; and back again."""
    config = ContainerConfig(
        id="c" * 64, name="web", image_id="d" * 64, image_name="busybox", command=["httpd", "-f"],
        entrypoint=["/bin/sh"], labels={"a": "b"}, stop_signal="SIGKILL", stop_timeout=3, created_at=0.0,
        restart_policy=RestartPolicy(RestartPolicyName.ALWAYS), ports=[PortMapping(80, 8080)],
        mounts=[Mount(MountType.VOLUME, "/data", "data", ("ro",)), Mount(MountType.BIND, "/src", "/tmp", ())])
    dump = libpod.to_config_dump(config)
    assert (dump["id"], dump["name"], dump["rootfsImageID"]) == ("c" * 64, "web", "d" * 64)
    assert dump["rootfsImageName"] == "localhost/busybox:latest" and dump["runtime"] == "runc"
    assert (dump["stopSignal"], dump["stopTimeout"], dump["createdTime"]) == (9, 3, "1970-01-01T00:00:00Z")
    assert (dump["restart_policy"], dump["labels"]) == ("always", {"a": "b"})
    # Ports need podman's network to forward them; without, a namespace of podman's with loopback only.
    assert (dump["createNetNS"], dump["networkMode"]) == (True, "bridge")
    assert dump["newNetworks"] == {"podman": {"interface_name": "eth0"}}
    alone = libpod.to_config_dump(ContainerConfig(id="e" * 64, name="alone", image_id="", image_name="", command=[]))
    assert (alone["createNetNS"], alone["networkMode"]) == (True, "none") and "newNetworks" not in alone
    assert dump["newPortMappings"] == [{"host_ip": "127.0.0.1", "container_port": 80, "host_port": 8080,
                                        "range": 1, "protocol": "tcp"}]
    assert dump["namedVolumes"] == [{"volumeName": "data", "dest": "/data", "options": ["ro"]}]
    assert dump["userVolumes"] == ["/data", "/src"]
    spec = {"process": {"args": ["/bin/sh", "httpd", "-f"], "rlimits": [{"type": "RLIMIT_NOFILE"}]},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/run/kx/netns/c"}]},
            "mounts": [{"destination": "/data", "type": "bind", "source": "/v/data/_data", "options": ["rbind", "ro"]},
                       {"destination": "/src", "type": "bind", "source": "/tmp", "options": ["rbind"]}]}
    config.auto_remove = True
    spec["annotations"] = {"io.kernelext.name": "web", "a": "b", "team": "web"}  # kernelext's: its labels too
    podman_spec = libpod.to_spec_dump(spec, config, lambda name: f"/podman/volumes/{name}/_data")
    assert podman_spec["annotations"]["io.podman.annotations.autoremove"] == "TRUE"  # podman's --rm
    assert podman_spec["linux"]["namespaces"] == [{"type": "pid"}, {"type": "network"}]
    # podman binds a volume from the spec's path as it is: where podman keeps that volume.
    assert [m["source"] for m in podman_spec["mounts"]] == ["/podman/volumes/data/_data", "/tmp"]
    assert "rlimits" not in podman_spec["process"]  # the caller's limits podman's exec might not be allowed
    back, ignored = libpod.from_config_dump(json.loads(json.dumps(dump)), podman_spec)
    assert ignored == ["networks: podman (loopback only here)"]
    assert back.identity.annotations == {"team": "web"}  # neither kernelext's own nor the labels
    for name in ("id", "name", "image_id", "command", "entrypoint", "labels", "stop_signal", "stop_timeout",
                 "restart_policy", "ports", "mounts", "auto_remove"):
        assert getattr(back, name) == getattr(config, name), name
