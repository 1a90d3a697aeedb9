"""Bind mounts, volumes and tmpfs (issue #15, mounts): real runc and conmon, podman's flags and messages."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from test_magics import magic  # the magic call (the IPython shell fixture `ip` is in conftest)

from kernelext import Runtime
from kernelext.core.container import Container
from kernelext.core.mounts import Mount, MountType, parse_mount, parse_tmpfs, parse_volume
from kernelext.core.state import ContainerConfig
from kernelext.errors import InvalidArgumentError, NoSuchVolumeError, VolumeInUseError

from conftest import ROOTLESS, Store, needs_root, wait_until


def output(ctr: Container) -> str:
    """What a container that runs to its end printed (stdout and stderr)."""
    ctr.start()
    ctr.wait(timeout=30)
    return b"".join(line.data for line in ctr.logs()).decode()


def sh(rt: Runtime, script: str, **create: object) -> str:
    return output(rt.create("busybox", ["sh", "-c", script], **create))


def data_dir(tmp_path: Path, **files: str) -> Path:
    host = tmp_path / "host"
    host.mkdir(exist_ok=True)
    for name, text in files.items():
        (host / name).write_text(text)
    return host


# ------------------------------------------------------------------ grammar
def test_volume_grammar(tmp_path: Path) -> None:
    host = data_dir(tmp_path)
    assert parse_volume(f"{host}:/data:ro,Z") == Mount(MountType.BIND, "/data", str(host), ("ro", "Z"))
    assert parse_volume("./host:/d", cwd=str(tmp_path)).source == str(host)  # podman: ./ is a host path
    assert parse_volume("vol:/d/") == Mount(MountType.VOLUME, "/d", "vol")  # a bare name is a volume
    assert parse_volume("/scratch") == Mount(MountType.VOLUME, "/scratch", anonymous=True)
    assert parse_volume(f"{host}:/d:rshared").propagation == "rshared"
    assert parse_tmpfs("/t").options == ("rw", "noexec", "nosuid", "nodev")
    assert parse_tmpfs("/t:size=1m,mode=1777").options == ("size=1m", "mode=1777")
    assert parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m").options == ("rw", "noexec", "nosuid", "nodev", "size=1m")
    assert parse_mount(f"type=bind,src={host},target=/d,readonly").read_only
    assert parse_mount("type=volume,dst=/d").anonymous


@pytest.mark.parametrize(("spec", "message"), [
    ("a:b:c:d", 'incorrect volume format "a:b:c:d", should be [host-dir:]ctr-dir[:option]'),
    ("vol:data", 'invalid container path "data", must be an absolute path'),
    ("vol:/d:rx", 'invalid option type "rx"'),
    ("vol:/d:ro,rw", "invalid options \"ro,rw\", can only specify 1 'rw' or 'ro' option"),
    ("/nonexistent-kernelext-source:/d", "statfs /nonexistent-kernelext-source: no such file or directory"),
])
def test_invalid_volumes_give_podmans_messages(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_volume(spec)
    assert str(caught.value) == message


def test_config_keeps_mounts_and_reads_configs_from_before_them() -> None:
    config = ContainerConfig("id", "n", "img", "busybox", ["true"],
                             mounts=[Mount(MountType.TMPFS, "/t", "tmpfs", ("rw",))])
    assert ContainerConfig.from_json(json.loads(json.dumps(config.to_json()))).mounts == config.mounts
    old = config.to_json()
    del old["mounts"]
    assert ContainerConfig.from_json(old).mounts == []


# --------------------------------------------------------------- bind mounts
def test_bind_mount_is_read_and_written_from_both_sides(store: Store, tmp_path: Path) -> None:
    host = data_dir(tmp_path, **{"from-host.txt": "host\n"})
    ctr = store.runtime.run("busybox", ["sleep", "1000"], volumes=[f"{host}:/data"])
    assert ctr.exec_run(["cat", "/data/from-host.txt"]).output == b"host\n"
    assert ctr.exec_run(["sh", "-c", "echo ctr > /data/from-ctr.txt"]).exit_code == 0
    assert (host / "from-ctr.txt").read_text() == "ctr\n"
    (host / "later.txt").write_text("later\n")
    assert ctr.exec_run(["cat", "/data/later.txt"]).output == b"later\n"
    mounts = ctr.inspect()["Mounts"]
    assert mounts == [{"Type": "bind", "Source": str(host), "Destination": "/data", "Driver": "", "Mode": "",
                       "Options": ["rbind"], "RW": True, "Propagation": "rprivate"}]
    assert ctr.inspect()["HostConfig"]["Binds"] == [f"{host}:/data:rw,rprivate,rbind"]
    ctr.remove(force=True)
    assert (host / "from-ctr.txt").exists()  # the host's files are the host's


def test_read_only_bind_refuses_writes(store: Store, tmp_path: Path) -> None:
    host = data_dir(tmp_path, keep="kept\n")
    out = sh(store.runtime, "cat /data/keep; echo x > /data/new && echo wrote", volumes=[f"{host}:/data:ro"])
    assert "kept" in out and "Read-only file system" in out and "wrote" not in out
    assert not (host / "new").exists()
    assert store.runtime.list()[0].inspect()["Mounts"][0]["RW"] is False


@needs_root
def test_U_chowns_the_source_to_the_container_user(store: Store, tmp_path: Path) -> None:
    host = data_dir(tmp_path, owned="x\n")
    out = sh(store.runtime, "id -u; echo w > /data/written && echo ok", user="1000:1000", volumes=[f"{host}:/data:U"])
    assert out == "1000\nok\n"
    assert {(p.stat().st_uid, p.stat().st_gid) for p in (host, host / "owned", host / "written")} == {(1000, 1000)}


def test_missing_bind_source_is_podmans_error_and_leaves_nothing(store: Store, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    proc = store.cli("run", "--rm", "-v", f"{missing}:/d", "-v", "newvol:/v", "busybox", "true")
    assert (proc.returncode, proc.stderr) == (125, f"Error: statfs {missing}: no such file or directory\n")
    assert store.runtime.list() == [] and store.runtime.volumes.list() == []


def test_relative_bind_source_is_resolved_from_the_working_directory(store: Store, tmp_path: Path) -> None:
    data_dir(tmp_path, rel="relative\n")
    proc = subprocess_in(store, tmp_path, "run", "--rm", "-v", "./host:/d:ro", "busybox", "cat", "/d/rel")
    assert (proc.returncode, proc.stdout) == (0, "relative\n"), proc.stderr


def subprocess_in(store: Store, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kernelext", *store.args, *argv], capture_output=True, text=True,
                          timeout=60, cwd=cwd, check=False)


# ------------------------------------------------------------------ volumes
def test_named_volume_is_filled_from_the_image_kept_across_rm_and_removed_by_volume_rm(store: Store) -> None:
    rt = store.runtime
    first = rt.create("busybox", ["sh", "-c", "echo mine >> /etc/passwd"], volumes=["etcvol:/etc"])
    assert output(first) == ""
    data = rt.volumes.path("etcvol")
    assert data == rt.opts.root / "volumes" / "etcvol" / "_data"
    assert (data / "group").exists() and (data / "passwd").read_text().startswith("root:")  # podman's copy-up
    proc = store.cli("volume", "rm", "etcvol")
    assert proc.returncode == 2 and proc.stderr == (
        f"Error: volume etcvol is being used by the following container(s): {first.id}: volume is being used\n")
    first.remove()
    assert rt.volumes.exists("etcvol")  # a named volume outlives its containers
    again = sh(rt, "tail -1 /etc/passwd", volumes=["etcvol:/etc"])
    assert again == "mine\n"  # filled once: the second container sees the first one's write
    rt.list()[0].remove()
    assert store.cli("volume", "rm", "etcvol").stdout == "etcvol\n"
    assert not rt.volumes.exists("etcvol")
    assert wait_until(lambda: not data.parent.exists())
    assert store.cli("volume", "exists", "etcvol").returncode == 1


def test_volume_commands(store: Store) -> None:
    assert store.cli("volume", "create", "--label", "course=lab", "v1").stdout == "v1\n"
    assert store.cli("volume", "create", "v2").stdout == "v2\n"
    again = store.cli("volume", "create", "v1")
    assert (again.returncode, again.stderr) == (125, "Error: volume with name v1 already exists: volume already exists\n")
    assert store.cli("volume", "create", "--ignore", "v1").returncode == 0
    assert store.cli("volume", "ls").stdout.splitlines() == ["DRIVER  VOLUME NAME", "local   v1", "local   v2"]
    assert store.cli("volume", "ls", "-q", "--filter", "label=course=lab").stdout == "v1\n"
    assert store.cli("volume", "ls", "--format", "{{.Name}} {{.Driver}}").stdout == "v1 local\nv2 local\n"
    doc = json.loads(store.cli("volume", "inspect", "v1").stdout)[0]
    assert (doc["Name"], doc["Driver"], doc["Labels"], doc["Scope"]) == ("v1", "local", {"course": "lab"}, "local")
    assert doc["Mountpoint"] == str(store.runtime.opts.root / "volumes" / "v1" / "_data")
    assert store.cli("volume", "exists", "v1").returncode == 0
    missing = store.cli("volume", "rm", "nope")
    assert (missing.returncode, missing.stderr) == (1, 'Error: no volume with name "nope" found: no such volume\n')
    ctr = store.runtime.create("busybox", ["true"], volumes=["v2:/v"])
    assert store.cli("volume", "prune", "-f").stdout == "v1\n"  # v2 is in use
    assert store.cli("volume", "rm", "-f", "v2").stdout == "v2\n"  # -f removes its container first
    assert not store.runtime.exists(ctr.id) and store.runtime.volumes.list() == []


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "/etc", ".hidden", "a b", "xyz\n"])
def test_hostile_volume_names_cannot_leave_the_volumes_directory(store: Store, name: str) -> None:
    proc = store.cli("volume", "create", name)
    assert proc.returncode == 125 and "names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*" in proc.stderr
    with pytest.raises((InvalidArgumentError, NoSuchVolumeError)):
        store.runtime.volumes.get(name)
    with pytest.raises(InvalidArgumentError):
        store.runtime.create("busybox", ["true"], mounts=[f"type=volume,src={name},dst=/v"])
    assert store.runtime.list() == [] and store.runtime.volumes.list() == []
    assert os.listdir(store.runtime.opts.root / "volumes") == [] if (store.runtime.opts.root / "volumes").exists() \
        else True


def test_anonymous_volumes_go_with_rm_v_and_rm_flag(store: Store) -> None:
    rt = store.runtime
    kept = rt.create("busybox", ["true"], volumes=["/scratch"])
    name = kept.config.mounts[0].source
    assert rt.volumes.get(name).anonymous and kept.inspect()["Mounts"][0]["Name"] == name
    kept.remove()
    assert rt.volumes.exists(name)  # podman: plain rm keeps it
    rt.volumes.remove(name)
    gone = rt.create("busybox", ["true"], volumes=["/scratch"])
    name = gone.config.mounts[0].source
    assert store.cli("rm", "-v", gone.id).returncode == 0
    assert not rt.volumes.exists(name)
    proc = store.cli("run", "--rm", "-v", "/scratch", "busybox", "true")
    assert proc.returncode == 0 and rt.volumes.list() == []


@needs_root
def test_image_volumes_become_anonymous_volumes_filled_from_the_image(store: Store, tmp_path: Path) -> None:
    """An image's ``Volumes`` are mounted as anonymous volumes, filled from the image (podman's copy-up)."""
    from test_images import _busybox_layer

    from ocilayout import Layout, directory, file

    layout = Layout(tmp_path / "layout")
    layout.add_image("withvol", [_busybox_layer(), [directory("srv"), file("srv/seed", "seed\n")]],
                     config={"Cmd": ["sh", "-c", "cat /srv/seed; echo more > /srv/more"], "Volumes": {"/srv": {}}})
    archive = tmp_path / "withvol.tar"
    subprocess.run(["tar", "-cf", str(archive), "-C", str(layout.path), "."], check=True)
    image = store.runtime.load(archive)
    assert image.inspect()["Config"]["Volumes"] == {"/srv": {}}
    ctr = store.runtime.create(image.name)
    assert output(ctr) == "seed\n"
    (mount,) = ctr.config.mounts
    assert mount.anonymous and sorted(os.listdir(store.runtime.volumes.path(mount.source))) == ["more", "seed"]
    explicit = store.runtime.create(image.name, ["true"], volumes=["named:/srv"])  # the user's mount wins
    assert [m.source for m in explicit.config.mounts] == ["named"]
    ctr.remove(volumes=True)
    assert not store.runtime.volumes.exists(mount.source)


def test_tmpfs_mounts(store: Store) -> None:
    out = sh(store.runtime, "grep -E ' /(t|m) ' /proc/mounts; echo x > /t/f && cat /t/f",
             tmpfs=["/t:size=1m"], mounts=["type=tmpfs,dst=/m,tmpfs-size=2m"])
    mounted = {line.split()[1]: line for line in out.splitlines()[:2]}
    assert mounted["/t"].startswith("tmpfs /t tmpfs rw") and "size=1024k" in mounted["/t"]
    assert mounted["/m"].startswith("tmpfs /m tmpfs rw,nosuid,nodev,noexec") and "size=2048k" in mounted["/m"]
    assert out.splitlines()[2] == "x"
    assert store.runtime.list()[0].inspect()["HostConfig"]["Tmpfs"] == {"/t": "size=1m",
                                                                     "/m": "rw,noexec,nosuid,nodev,size=2m"}


def test_volumes_from_shares_mounts_read_only_when_asked(store: Store, tmp_path: Path) -> None:
    rt = store.runtime
    host = data_dir(tmp_path, shared="shared\n")
    source = rt.create("busybox", ["true"], name="source", volumes=[f"{host}:/data", "vfvol:/vol", "/anon"])
    out = sh(rt, "cat /data/shared; ls -d /vol /anon; touch /data/x || echo refused", volumes_from=["source:ro"])
    assert out.splitlines()[:3] == ["shared", "/anon", "/vol"] and "refused" in out
    follower = rt.list()[-1]
    assert [m.source for m in follower.config.mounts] == [m.source for m in source.config.mounts]
    assert all(m.read_only for m in follower.config.mounts)
    anon = source.config.mounts[2].source
    follower.remove(volumes=True)
    assert rt.volumes.exists(anon)  # the anonymous volume is the source container's
    source.remove(volumes=True)
    assert not rt.volumes.exists(anon) and rt.volumes.exists("vfvol")


# --------------------------------------------------------------- cp and diff
def test_cp_into_a_bind_mounted_path_lands_in_the_host_directory(store: Store, tmp_path: Path) -> None:
    host = data_dir(tmp_path)
    local = tmp_path / "local.txt"
    local.write_text("copied\n")
    store.runtime.create("busybox", ["true"], name="stopped", volumes=[f"{host}:/data", "cpvol:/vol"])
    assert store.cli("cp", str(local), "stopped:/data/").returncode == 0
    assert (host / "local.txt").read_text() == "copied\n"  # podman resolves the mount: not the overlay
    assert store.cli("cp", str(local), "stopped:/vol/in-volume.txt").returncode == 0
    assert (store.runtime.volumes.path("cpvol") / "in-volume.txt").read_text() == "copied\n"
    assert store.cli("cp", "stopped:/vol/in-volume.txt", str(tmp_path / "back.txt")).returncode == 0
    assert (tmp_path / "back.txt").read_text() == "copied\n"
    running = store.runtime.run("busybox", ["sleep", "1000"], volumes=[f"{host}:/data"])
    assert store.cli("cp", str(local), f"{running.id}:/data/running.txt").returncode == 0
    assert (host / "running.txt").read_text() == "copied\n"
    assert running.exec_run(["cat", "/data/running.txt"]).output == b"copied\n"
    assert store.runtime.get("stopped").diff() == []  # nothing landed in its own layer


def test_diff_leaves_mounts_out(store: Store, tmp_path: Path) -> None:
    host = data_dir(tmp_path)
    ctr = store.runtime.create("busybox", ["sh", "-c", "touch /data/f /own"], volumes=[f"{host}:/data"],
                               tmpfs=["/t"])
    output(ctr)
    assert [str(c) for c in ctr.diff()] == ["A /own"]


# ------------------------------------------------------------------ security
def test_mounts_do_not_follow_container_symlinks_to_the_host(store: Store, tmp_path: Path) -> None:
    """runc resolves a destination inside the root: a symlink in the container to a host path leads to the
    same path inside the container, and copy-up of a volume never reads the host's files."""
    escape = tmp_path / "escape"
    escape.mkdir()
    (escape / "secret").write_text("host secret\n")
    host = data_dir(tmp_path, inside="inside\n")
    ctr = store.runtime.create("busybox", ["sh", "-c", "cat /link/data/inside; ls /vlink"], name="links",
                               volumes=[f"{host}:/link/data", "linkvol:/vlink"])
    links = io.BytesIO()
    with tarfile.open(fileobj=links, mode="w") as tar:
        for name in ("link", "vlink"):
            entry = tarfile.TarInfo(name)
            entry.type, entry.linkname = tarfile.SYMTYPE, str(escape)
            tar.addfile(entry)
    ctr.put_archive("/", io.BytesIO(links.getvalue()))
    out = output(ctr)
    assert out.startswith("inside\n") and "secret" not in out
    assert sorted(os.listdir(escape)) == ["secret"]  # runc made nothing on the host
    assert "secret" not in os.listdir(store.runtime.volumes.path("linkvol"))


# ------------------------------------------------------------- checkpoint
@needs_root
def test_checkpoint_export_with_a_named_volume_restores_its_content_on_a_fresh_store(
        store: Store, tmp_path: Path) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", "echo kept > /state/f; sleep 1000"], volumes=["state:/state"])
    assert wait_until(lambda: (store.runtime.volumes.path("state") / "f").exists())
    archive = tmp_path / "ctr.tar.zst"
    ctr.checkpoint(export=archive)
    ignored = tmp_path / "novol.tar.zst"
    ctr.restore()
    ctr.checkpoint(export=ignored, ignore_volumes=True)
    listing = subprocess.run(["tar", "--zstd", "-tf", str(archive)], capture_output=True, text=True, check=True)
    members = listing.stdout.split()
    assert "volumes/state.tar" in members
    fresh = Runtime(tmp_path / "fresh-root", tmp_path / "fresh-run")
    try:
        restored = fresh.restore_from_archive(archive)
        assert restored.exec_run(["cat", "/state/f"]).output == b"kept\n"
        assert fresh.volumes.exists("state")
        restored.remove(force=True)
        fresh.volumes.remove("state")
        bare = fresh.restore_from_archive(ignored, ignore_volumes=True)
        assert bare.exec_run(["ls", "/state"]).output == b""
        bare.remove(force=True)
    finally:
        fresh.close()


# ------------------------------------------------------------------ rootless
@pytest.mark.skipif(not ROOTLESS, reason="the user's own files, as a normal user (tests/test_rootless_suite.py)")
def test_rootless_bind_mount_and_volume_of_the_users_own_files(store: Store, tmp_path: Path) -> None:
    host = data_dir(tmp_path, mine="mine\n")
    out = sh(store.runtime, "id -u; cat /data/mine; echo back > /data/back; echo v > /vol/f",
             volumes=[f"{host}:/data", "uservol:/vol"])
    assert out == "0\nmine\n"
    assert (host / "back").read_text() == "back\n" and (host / "back").stat().st_uid == os.getuid()
    data = store.runtime.volumes.path("uservol")
    assert (data / "f").stat().st_uid == os.getuid()  # the store's root is the user


def test_panel_shows_the_mounts(store: Store, tmp_path: Path) -> None:
    from kernelext.widgets import ContainerPanel

    host = data_dir(tmp_path)
    ctr = store.runtime.create("busybox", ["true"], volumes=[f"{host}:/data:ro", "pv:/v"], tmpfs=["/t"])
    panel = ContainerPanel(ctr)
    try:
        assert panel.header.mounts == [f"{host}:/data:ro", "pv:/v", "tmpfs:/t"]
    finally:
        panel.stop()


def test_magics_take_mounts_and_volume_commands(ip: InteractiveShell, tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    host = data_dir(tmp_path, m="from a cell\n")
    magic(ip, f"run --rm -v {host}:/d:ro --tmpfs /t busybox cat /d/m")
    assert "from a cell" in capfd.readouterr().out
    assert magic(ip, "volume create --label k=v mv") == "mv"
    assert magic(ip, "volume ls") == [{"DRIVER": "local", "VOLUME NAME": "mv"}]
    assert magic(ip, "volume inspect mv")["Labels"] == {"k": "v"}
    assert magic(ip, "volume exists mv") is True
    magic(ip, "volume rm mv")
    assert magic(ip, "volume exists mv") is False and ip.user_ns["_exit_code"] == 1


def test_volume_in_use_error_is_a_runtime_error(store: Store) -> None:
    store.runtime.create("busybox", ["true"], volumes=["busy:/b"])
    with pytest.raises(VolumeInUseError) as caught:
        store.runtime.volumes.remove("busy")
    assert isinstance(caught.value, RuntimeError) and caught.value.exit_code == 2
