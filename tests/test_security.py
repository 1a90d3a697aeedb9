"""podman's security defaults on real runc: seccomp profile, capabilities, privileged, read-only root (issue 15)."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import pytest

from kernelext.errors import InvalidArgumentError
from kernelext.oci.security import (
    DEFAULT_CAPABILITIES,
    MASKED_PATHS,
    SECCOMP_PROFILE,
    SecurityOptions,
    merge_capabilities,
    seccomp_section,
)

from conftest import ROOTLESS, Store, needs_root

#: Calls the keyring syscalls directly (busybox has no keyctl) and prints what the kernel, or the
#: seccomp filter, answered.
KEYRING_PROBE = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    long key = syscall(SYS_add_key, "user", "probe", "v", 1, -3 /* KEY_SPEC_SESSION_KEYRING */);
    printf("add_key %d\n", key < 0 ? errno : 0);
    long ses = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0);
    char desc[256] = {0};
    long got = syscall(SYS_keyctl, 6 /* KEYCTL_DESCRIBE */, ses, desc, sizeof desc - 1);
    printf("keyctl %d %s\n", got < 0 ? errno : 0, got < 0 ? "" : desc);
    return 0;
}
"""
ENOSYS, EPERM = 38, 1


def _spec(store: Store, name: str) -> dict:
    ctr = store.runtime.get(name)
    return json.loads((ctr.bundle / "config.json").read_text())


def _status(text: str) -> dict[str, str]:
    """``/proc/PID/status`` lines as a dict."""
    return {key: value.strip() for key, _, value in (line.partition(":") for line in text.splitlines()) if value}


def _run(store: Store, *argv: str) -> subprocess.CompletedProcess[str]:
    return store.cli("run", "--rm", *argv)


# ------------------------------------------------------------------ pure logic
def test_capability_merging_follows_containers_common() -> None:
    assert merge_capabilities(DEFAULT_CAPABILITIES, [], ["ALL"]) == []
    assert merge_capabilities(DEFAULT_CAPABILITIES, ["chown"], ["ALL"]) == ["CAP_CHOWN"]
    assert "CAP_NET_RAW" in merge_capabilities(DEFAULT_CAPABILITIES, ["net_raw"], [])
    assert "CAP_KILL" not in merge_capabilities(DEFAULT_CAPABILITIES, [], ["CAP_KILL"])
    assert "CAP_SYS_ADMIN" in merge_capabilities(DEFAULT_CAPABILITIES, ["ALL"], ["SYS_TIME"])
    with pytest.raises(InvalidArgumentError, match='unknown capability: "CAP_BOGUS"'):
        merge_capabilities(DEFAULT_CAPABILITIES, ["bogus"], [])


def test_profile_rules_are_kept_by_arch_and_capability() -> None:
    """containers/common's conversion: a rule is kept only for this machine's architecture and when the
    capabilities it includes are granted (the ones it excludes are not)."""
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["bpf"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
            {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        ]}
    plain = seccomp_section(profile, DEFAULT_CAPABILITIES)
    admin = seccomp_section(profile, [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"])
    names = [(rule["names"][0], rule["action"]) for rule in plain["syscalls"]]
    assert ("bpf", "SCMP_ACT_ERRNO") in names and ("bpf", "SCMP_ACT_ALLOW") not in names
    assert ("bpf", "SCMP_ACT_ALLOW") in [(r["names"][0], r["action"]) for r in admin["syscalls"]]
    if platform.machine() == "x86_64":
        assert plain["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
        assert ("arch_prctl", "SCMP_ACT_ALLOW") in names and ("set_tls", "SCMP_ACT_ALLOW") not in names
    assert plain["defaultErrnoRet"] == 38
    assert plain["syscalls"][-1]["args"] == [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]


def test_security_opt_parsing() -> None:
    opts = SecurityOptions.build(security_opt=["no-new-privileges", "seccomp=unconfined", "unmask=/proc/kcore",
                                               "mask=/proc/version"])
    assert opts.no_new_privileges and opts.seccomp_spec() is None
    masked, readonly = opts.masked_paths()
    assert "/proc/kcore" not in masked and "/proc/version" in masked and readonly
    assert SecurityOptions.build(security_opt=["unmask=ALL"]).masked_paths() == ([], [])
    with pytest.raises(InvalidArgumentError, match="invalid --security-opt"):
        SecurityOptions.build(security_opt=["bogus=1"])
    with pytest.raises(InvalidArgumentError, match="opening seccomp profile failed"):
        SecurityOptions.build(security_opt=["seccomp=/nonexistent.json"])


# ------------------------------------------------------------------ real containers
def test_default_container_has_podmans_seccomp_profile(store: Store) -> None:
    proc = store.cli("create", "--name", "plain", "busybox", "sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' "
                     "/proc/self/status")
    assert proc.returncode == 0, proc.stderr
    store.runtime.get("plain").init()
    spec = _spec(store, "plain")
    profile = json.loads(SECCOMP_PROFILE.read_text())
    seccomp = spec["linux"]["seccomp"]
    assert seccomp["defaultAction"] == profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert seccomp["architectures"] and seccomp["defaultErrnoRet"] == profile["defaultErrnoRet"]
    allowed = {n for rule in seccomp["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for n in rule["names"]}
    assert "read" in allowed and "add_key" not in allowed and "bpf" not in allowed
    assert spec["process"]["noNewPrivileges"] is False
    assert spec["linux"]["maskedPaths"] == MASKED_PATHS
    assert sorted(spec["process"]["capabilities"]["bounding"]) == sorted(DEFAULT_CAPABILITIES)
    out = store.cli("start", "-a", "plain")
    assert _status(out.stdout) == {"Seccomp": "2", "NoNewPrivs": "0"}, out.stdout + out.stderr


@pytest.fixture(scope="module")
def keyring_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("probe")
    (directory / "probe.c").write_text(KEYRING_PROBE)
    subprocess.run(["gcc", "-static", "-O", "-o", str(directory / "probe"), str(directory / "probe.c")], check=True)
    directory.chmod(0o755)
    return directory / "probe"


def _probe(store: Store, probe: Path, *flags: str) -> tuple[dict[str, list[str]], str]:
    created = store.cli("create", *flags, "busybox", "/probe")
    assert created.returncode == 0, created.stderr
    ctr_id = created.stdout.strip()
    store.runtime.copy(str(probe), f"{ctr_id}:/probe")
    out = store.cli("start", "-a", ctr_id)
    assert out.returncode == 0, out.stderr
    store.runtime.remove(ctr_id, force=True)
    return {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}, ctr_id


def test_keyring_under_the_default_profile(store: Store, keyring_probe: Path) -> None:
    """podman's profile does not list add_key: the call fails with the profile's ENOSYS, so a container
    cannot add keys; keyctl is allowed, and it sees the session keyring runc made for this container
    alone (named for it), never the host's."""
    default, ctr_id = _probe(store, keyring_probe)
    assert default["add_key"] == [str(ENOSYS)]
    assert default["keyctl"][0] == "0" and default["keyctl"][1].startswith("keyring;")
    assert default["keyctl"][1].endswith(f";_ses.{ctr_id}")
    unconfined, _ = _probe(store, keyring_probe, "--security-opt", "seccomp=unconfined")
    assert unconfined["add_key"] != [str(ENOSYS)]  # the kernel itself answers without the filter


@needs_root
def test_privileged_lifts_seccomp_masks_and_capabilities(store: Store, keyring_probe: Path) -> None:
    proc = _run(store, "--privileged", "busybox", "sh", "-c",
                "grep -E '^(Seccomp|CapEff):' /proc/self/status; wc -c < /proc/keys")
    assert proc.returncode == 0, proc.stderr
    status = _status(proc.stdout)
    assert status["Seccomp"] == "0"
    assert status["CapEff"] == _status(Path("/proc/self/status").read_text())["CapBnd"]  # all the host can give
    assert int(proc.stdout.split()[-1]) > 0  # /proc/keys is not masked (an empty file by default)
    privileged, _ = _probe(store, keyring_probe, "--privileged")
    assert privileged["add_key"] == ["0"]


@needs_root
def test_cap_drop_all_and_cap_add(store: Store) -> None:
    # /tmp: the root directory is 0555 as in podman, which a root without CAP_DAC_OVERRIDE cannot write.
    script = "touch /tmp/f && chown 5 /tmp/f && echo changed"
    dropped = _run(store, "--cap-drop", "ALL", "busybox", "sh", "-c", script)
    assert "Operation not permitted" in dropped.stderr + dropped.stdout and "changed" not in dropped.stdout
    back = _run(store, "--cap-drop", "ALL", "--cap-add", "CHOWN", "busybox", "sh", "-c", script)
    assert back.returncode == 0 and "changed" in back.stdout, back.stderr
    bad = _run(store, "--cap-add", "bogus", "busybox", "true")
    assert bad.returncode == 125 and bad.stderr.strip() == 'Error: unknown capability: "CAP_BOGUS"'


def test_read_only_refuses_writes_outside_tmpfs(store: Store) -> None:
    proc = _run(store, "--read-only", "busybox", "sh", "-c",
                "touch /x 2>&1; touch /tmp/a /run/b /var/tmp/c && echo tmpfs-ok")
    assert "Read-only file system" in proc.stdout and "tmpfs-ok" in proc.stdout, proc.stderr
    strict = _run(store, "--read-only", "--read-only-tmpfs=false", "busybox", "sh", "-c", "touch /tmp/a")
    assert strict.returncode != 0 and "Read-only file system" in strict.stderr


def test_no_new_privileges_and_devices(store: Store) -> None:
    proc = _run(store, "--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs", "/proc/self/status")
    assert proc.stdout.split() == ["NoNewPrivs:", "1"], proc.stderr
    if ROOTLESS:
        return
    dev = _run(store, "--device", "/dev/fuse", "busybox", "ls", "-l", "/dev/fuse")
    assert dev.returncode == 0 and dev.stdout.startswith("c"), dev.stderr
    missing = _run(store, "--name", "nodev", "--device", "/dev/nonexistent", "busybox", "true")
    assert missing.returncode == 125 and "no such file or directory" in missing.stderr
    assert not store.runtime.exists("nodev")
    not_a_device = store.cli("create", "--name", "nodev", "--device", "/etc/hostname", "busybox", "true")
    assert not_a_device.returncode == 125 and "is not a device" in not_a_device.stderr
    assert not store.runtime.exists("nodev")


@pytest.mark.parametrize(("rule", "message"), [
    ("b 7:* rmX", "invalid device access in device-access-add: X"),
    ("b 7:2", 'invalid device cgroup rule requires type, major:Minor, and access rules: "b 7:2"'),
    ("x 7:* rmw", "invalid device type in device-access-add: x"),
    ("a a:* rmw", 'strconv.ParseUint: parsing "a": invalid syntax'),
])
def test_device_cgroup_rule_refusals_are_podmans(rule: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        SecurityOptions.build(device_cgroup_rules=[rule])
    assert str(caught.value) == message


def test_device_cgroup_rule_reaches_the_cgroup(store: Store) -> None:
    opts = SecurityOptions.build(device_cgroup_rules=["c 7:* rmw", "a 7 rw"])
    assert opts.device_spec()[1] == [{"allow": True, "type": "c", "major": 7, "access": "rmw"},
                                     {"allow": True, "type": "a", "major": 7, "access": "rw"}]
    if ROOTLESS:  # no device cgroup of its own on cgroup v1
        return
    proc = _run(store, "--device-cgroup-rule=b 7:* rmw", "busybox", "cat", "/sys/fs/cgroup/devices/devices.list")
    assert proc.returncode == 0 and "b 7:* rwm" in proc.stdout.splitlines(), proc.stderr
    bad = store.cli("run", "--rm", "--device-cgroup-rule=b 7:* rmX", "busybox", "true")
    assert (bad.returncode, bad.stderr) == (125, "Error: invalid device access in device-access-add: X\n")


def test_group_add(store: Store) -> None:
    proc = _run(store, "--group-add", "1234", "--group-add", "daemon", "busybox", "id", "-G")
    assert proc.returncode == 0, proc.stderr
    assert {"1234", "1"} <= set(proc.stdout.split())
