"""Layered OCI images from a real registry on loopback: pull, run, save, load; hostile layers refused."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kernelext import Runtime
from kernelext.storage import busybox
from kernelext.storage.busybox import find_static_busybox

from conftest import ROOTLESS, Store
from ocilayout import Entry, Layout, directory, file, hardlink, push, symlink
from registry import Registry, registry  # noqa: F401 - the fixture

# Also in the rootless run (tests/test_rootless_suite.py, the user with subordinate IDs: images with files of
# several owners). There the store's user namespace unpacks the layers: opaque directories are user.overlay.*
# and what only root may keep or read is checked as root only.
OPAQUE_XATTR = "user.overlay.opaque" if ROOTLESS else "trusted.overlay.opaque"

#: A file capability as setcap writes it (VFS_CAP_REVISION_2, effective): cap_net_bind_service+ep.
CAP_NET_BIND_SERVICE = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)
BASE = [directory("bin"), file("etc/os-release", "base\n"), file("etc/motd", "hello\n"),
        directory("data"), file("data/old", "old\n"), file("etc/gone", "to be deleted\n")]


def _busybox_layer() -> list:
    """The host's static busybox with the applets the tests use (a real, runnable base)."""
    entries = [directory("bin"), file("bin/busybox", find_static_busybox().read_bytes(), mode=0o755)]
    return entries + [symlink(f"bin/{applet}", "busybox") for applet in ("sh", "cat", "ls", "pwd", "env", "test", "id")]


def _three_layer_image(layout: Layout, tag: str) -> str:
    changes = [file("etc/motd", "changed\n"), file("etc/.wh.gone", ""), directory("data"),
               file("data/.wh..wh..opq", ""), file("data/new", "new\n"), directory("srv"),
               file("srv/a", "linked\n"),
               hardlink("srv/b", "srv/a"), symlink("srv/link", "/srv/a"), file("srv/suid", "", mode=0o4755),
               file("srv/cap", "", mode=0o755, xattrs={"security.capability": CAP_NET_BIND_SERVICE,
                                                       "user.note": b"kept"}),
               Entry("srv/forged", tarfile.DIRTYPE, mode=0o755, xattrs={"trusted.overlay.opaque": b"y"})]
    return layout.add_image(tag, [_busybox_layer(), BASE, changes], config={
        "Cmd": ["sh", "-c", "echo $GREETING; pwd; cat /etc/motd"], "Env": ["PATH=/bin", "GREETING=hi"],
        "WorkingDir": "/srv", "User": "1000:1000", "StopSignal": "SIGINT", "Labels": {"lab": "1"}})


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # noqa: F811
    layout = Layout(tmp_path_factory.mktemp("layout"))
    ids = {"app": _three_layer_image(layout, "app"),
           "other": layout.add_image("other", [_busybox_layer(), [file("other", "x\n")]],
                                     config={"Cmd": ["cat", "/other"]})}
    for tag in ids:
        push(layout, tag, registry.ref(f"{tag}:latest"))
    return ids


def _run(store: Store, *argv: str) -> str:
    proc = store.cli("run", "--rm", *argv)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_pull_run_save_load(store: Store, registry: Registry, pushed: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    rt = store.runtime
    proc = store.cli("pull", "--tls-verify=false", f"docker://{registry.ref('app')}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == pushed["app"]  # the image ID is the config digest
    image = rt.image(registry.ref("app"))
    assert len(image.config.layers) == 3 and image.config.stop_signal == "SIGINT"
    assert _run(store, registry.ref("app")) == "hi\n/srv\nchanged\n"
    assert _run(store, registry.ref("app"), "test", "!", "-e", "/etc/gone") == ""
    assert _run(store, registry.ref("app"), "ls", "/data") == "new\n"  # opaque: the base's "old" hidden
    assert _run(store, registry.ref("app"), "cat", "/srv/b", "/srv/link") == "linked\nlinked\n"
    assert _run(store, registry.ref("app"), "id", "-u") == "1000\n"  # the image's User
    assert _run(store, "--user", "0", registry.ref("app"), "id", "-u") == "0\n"
    assert _run(store, "--entrypoint", "env", registry.ref("app")).count("GREETING=hi") == 1
    top = image.lowers[0]
    assert os.stat(top / "srv/a").st_ino == os.stat(top / "srv/b").st_ino
    assert stat.S_ISCHR(os.lstat(top / "etc/gone").st_mode) and os.lstat(top / "etc/gone").st_rdev == 0
    assert os.getxattr(top / "data", OPAQUE_XATTR) == b"y"
    assert os.stat(top / "srv/suid").st_mode & stat.S_ISUID
    assert os.getxattr(top / "srv/cap", "user.note") == b"kept"
    assert OPAQUE_XATTR not in os.listxattr(top / "srv/forged")  # a layer cannot forge overlay's own
    if not ROOTLESS:  # a namespace's file capability is stored in v3 form, with its root's host ID
        assert os.getxattr(top / "srv/cap", "security.capability") == CAP_NET_BIND_SERVICE
        assert "trusted.overlay.opaque" not in os.listxattr(top / "srv/forged")

    proc = store.cli("image", "inspect", registry.ref("app"))
    assert proc.returncode == 0, proc.stderr
    [doc] = json.loads(proc.stdout)
    assert doc["Id"] == pushed["app"] and doc["RepoTags"] == [registry.ref("app:latest")]
    assert doc["Config"]["Env"] == ["PATH=/bin", "GREETING=hi"] and doc["Config"]["WorkingDir"] == "/srv"
    assert doc["Config"]["User"] == "1000:1000" and doc["Config"]["Labels"] == {"lab": "1"}
    assert doc["RootFS"]["Layers"] == image.config.layers
    assert store.cli("image", "inspect", "-f", "{{.Config.StopSignal}}", image.short_id).stdout == "SIGINT\n"

    ctr = rt.create(registry.ref("app"))
    assert ctr.config.stop_signal == "SIGINT"
    ctr.remove()
    _check_diff(store, registry.ref("app"))

    for fmt in ("oci-archive", "docker-archive"):
        archive = tmp_path / f"app.{fmt}.tar"
        proc = store.cli("save", "--format", fmt, "-o", str(archive), registry.ref("app"))
        assert proc.returncode == 0, proc.stderr
        assert store.cli("rmi", registry.ref("app")).returncode == 0
        assert not any(rt.opts.root.joinpath("layers").iterdir()), "unused layers left behind"
        if fmt == "oci-archive":
            proc = store.cli("load", "-i", str(archive))
        else:  # from stdin
            with archive.open("rb") as stdin:
                proc = subprocess.run([sys.executable, "-m", "kernelext", *store.args, "load"], stdin=stdin,
                                      capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"Loaded image: {registry.ref('app')}:latest\n"
        if fmt == "oci-archive":  # docker-archive rewrites the config in Docker's format: a new digest
            assert rt.image(registry.ref("app")).id == pushed["app"]
        assert _run(store, registry.ref("app")) == "hi\n/srv\nchanged\n"


def _check_diff(store: Store, image: str) -> None:
    """diff compares with all the image's layers: a base layer's file deleted, a top layer's changed (rootless
    too, where the layers are mounted as one view inside the store's namespace)."""
    proc = store.cli("run", "--name", "differ", "--user", "0", image, "sh", "-c",
                     "rm /etc/os-release; echo x > /etc/motd; echo y > /data/new2")
    assert proc.returncode == 0, proc.stderr
    proc = store.cli("diff", "differ")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["C /data", "A /data/new2", "C /etc", "C /etc/motd", "D /etc/os-release"]
    assert store.cli("rm", "differ").returncode == 0


def test_shared_base_layer_stored_once(store: Store, registry: Registry, pushed: dict[str, str]) -> None:  # noqa: F811
    rt = store.runtime
    app = rt.pull(registry.ref("app"), tls_verify=False)
    other = rt.pull(f"docker://{registry.ref('other:latest')}", tls_verify=False)
    assert app.config.layers[0] == other.config.layers[0]
    assert sorted(p.name for p in (rt.opts.root / "layers").iterdir()) == \
        sorted({d.removeprefix("sha256:") for d in app.config.layers + other.config.layers})
    assert len(list((rt.opts.root / "layers").iterdir())) == 4
    assert _run(store, registry.ref("other")) == "x\n"
    rt.remove_image(registry.ref("app"))  # the shared base stays for the other image
    assert _run(store, registry.ref("other")) == "x\n"


def test_vfs_applies_layers_in_order(tmp_path: Path, registry: Registry, pushed: dict[str, str]) -> None:  # noqa: F811
    rt = Runtime(tmp_path / "root", tmp_path / "run", storage_driver="vfs")
    vfs = Store(tmp_path, rt)
    try:
        rt.pull(registry.ref("app"), tls_verify=False)
        assert _run(vfs, registry.ref("app")) == "hi\n/srv\nchanged\n"
        assert _run(vfs, registry.ref("app"), "ls", "/data") == "new\n"
        assert _run(vfs, registry.ref("app"), "test", "!", "-e", "/etc/gone") == ""
        assert _run(vfs, registry.ref("app"), "cat", "/srv/b", "/srv/link") == "linked\nlinked\n"
        _check_diff(vfs, registry.ref("app"))
    finally:
        _close(rt)


def test_pull_of_a_pushed_again_tag_moves_the_name(store: Store, registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    rt = store.runtime
    layout = Layout(tmp_path / "layout")
    first = layout.add_image("v1", [_busybox_layer()], config={"Cmd": ["sh", "-c", "echo one"]})
    second = layout.add_image("v2", [_busybox_layer()], config={"Cmd": ["sh", "-c", "echo two"]})
    push(layout, "v1", registry.ref("moving:latest"))
    assert rt.pull(registry.ref("moving"), tls_verify=False).id == first
    push(layout, "v2", registry.ref("moving:latest"))
    assert rt.pull(registry.ref("moving"), tls_verify=False).id == second
    assert _run(store, registry.ref("moving")) == "two\n"
    assert rt.image(first).name == first  # the old image is left without its name, as podman's <none>
    assert len(os.listdir(rt.opts.root / "layers")) == 1


def test_many_layers_fit_one_mount(store: Store, registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    """More layers than a page of full paths holds (podman's limit is the same page; it shortens them too)."""
    count = 100
    layout = Layout(tmp_path / "layout")
    layout.add_image("tall", [_busybox_layer()] + [[file(f"n/{i:03}", f"{i}\n")] for i in range(1, count)],
                     config={"Cmd": ["sh", "-c", "ls /n | wc -l; cat /n/099"]})
    push(layout, "tall", registry.ref("tall"))
    image = store.runtime.pull(registry.ref("tall"), tls_verify=False)
    assert len(":".join(map(str, image.lowers))) > os.sysconf("SC_PAGE_SIZE")
    assert _run(store, registry.ref("tall")).split() == [str(count - 1), "99"]


def test_busybox_is_a_one_layer_image_like_any_other(store: Store, tmp_path: Path) -> None:
    """The built-in image: made on first use, one layer under layers/, an OCI layout, its ID its config digest
    and the same in every store for the same host binary; saved and loaded back as it is."""
    rt = store.runtime
    assert _run(store, "busybox", "echo", "ok") == "ok\n"
    image = rt.image("busybox")
    [diff_id] = image.config.layers
    assert image.lowers == [rt.opts.root / "layers" / diff_id.removeprefix("sha256:")]
    assert image.layout is not None
    config_blob = rt.opts.root / "blobs" / "sha256" / image.id
    assert hashlib.sha256(config_blob.read_bytes()).hexdigest() == image.id  # the ID is the config's digest
    assert json.loads(config_blob.read_bytes())["rootfs"]["diff_ids"] == [diff_id]
    layer_blob = rt.opts.root / "blobs" / "sha256" / diff_id.removeprefix("sha256:")
    assert f"sha256:{hashlib.sha256(layer_blob.read_bytes()).hexdigest()}" == diff_id
    with tarfile.open(layer_blob) as tar:  # the blob holds what the layer directory holds
        assert sorted(m.name.rstrip("/") for m in tar.getmembers()) == \
            sorted(str(p.relative_to(image.lowers[0])) for p in image.lowers[0].rglob("*"))
        assert tar.getmember("bin/sh").issym() and tar.getmember("bin/busybox").mode == 0o755
    [doc] = json.loads(store.cli("image", "inspect", "busybox").stdout)
    assert doc["Id"] == image.id and doc["RootFS"]["Layers"] == [diff_id] and doc["Config"]["Cmd"] == ["sh"]
    history = store.cli("history", "--format", "{{.ID}} {{.CreatedBy}}", "busybox").stdout.splitlines()
    assert len(history) == 1 and history[0].startswith(image.short_id)
    assert not any(p.name.startswith(".") for p in (rt.opts.root / "images").iterdir())  # no staging left

    other = Runtime(tmp_path / "other" / "root", tmp_path / "other" / "run")
    try:
        assert other.image("busybox").id == image.id  # stable: the same binary, the same ID
    finally:
        _close(other)
    # Committed on, the busybox layer is shared as it is (not archived again as a flat image was).
    assert store.cli("run", "--name", "c", "busybox", "sh", "-c", "echo x > /x").returncode == 0
    committed = rt.commit("c", "onbusybox")
    assert committed.config.layers[0] == diff_id and len(committed.config.layers) == 2

    for fmt in ("oci-archive", "docker-archive"):
        archive = tmp_path / f"busybox.{fmt}.tar"
        proc = store.cli("image", "save", "--format", fmt, "-o", str(archive), "busybox")
        assert proc.returncode == 0, proc.stderr
        other = Runtime(tmp_path / fmt / "root", tmp_path / fmt / "run")
        try:
            loaded = other.load(archive)
            assert loaded.name == "busybox" and loaded.config.layers == [diff_id] and loaded.config.cmd == ["sh"]
            if fmt == "oci-archive":
                assert loaded.id == image.id
            assert _run(Store(tmp_path / fmt, other), "busybox", "ls", "/bin/busybox") == "/bin/busybox\n"
        finally:
            _close(other)


def _close(rt: Runtime) -> None:
    rt.close()
    if ROOTLESS:
        rt.namespace.stop()  # its pause process: a test must not leave it


def test_a_flat_busybox_of_an_old_store_keeps_working(store: Store, tmp_path: Path) -> None:
    """Stores made before the built-in image was layered hold it as one flat directory: it is read as it is
    (run, commit on it, save), never rebuilt under another ID."""
    rt = store.runtime
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    with open(tmp_path / "blob", "wb") as out:
        busybox.write_layer(find_static_busybox(), rootfs, out)
    tarball = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    flat = rt.images.import_tarball(tarball, "busybox", cmd=["sh"])  # what the old built-in image was: flat
    assert flat.config.layers == [] and rt.image("busybox").id == flat.id
    assert _run(store, "busybox", "sh", "-c", "echo old") == "old\n"
    assert store.cli("run", "--name", "c", "busybox", "sh", "-c", "echo y > /y").returncode == 0
    committed = rt.commit("c", "onflat", changes=["CMD cat /y"])
    assert len(committed.config.layers) == 2 and _run(store, "onflat") == "y\n"
    assert store.cli("save", "-o", str(tmp_path / "flat.tar"), "busybox").returncode == 0
    assert rt.image("busybox").id == flat.id


@pytest.mark.parametrize("hostile, refused", [
    ([file("../canary", "owned\n")], 'refusing tar entry "../canary"'),
    ([hardlink("stolen", "{outside}/canary")], "linking to"),
    ([file("etc/.wh...", "")], 'refusing whiteout "etc/.wh..."'),
    # Not refused, confined: the file lands in the layer, then the link (made last) replaces its directory.
    ([symlink("escape", "{outside}"), file("escape/canary", "owned\n")], None),
], ids=["dotdot", "hardlink-out", "whiteout-dotdot", "symlink-then-write"])
def test_hostile_layer(store: Store, registry: Registry, tmp_path: Path, hostile: list,  # noqa: F811
                       refused: str | None) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    canary = outside / "canary"
    canary.write_text("untouched\n")
    for entry in hostile:
        entry.link = entry.link.format(outside=outside)
    layout = Layout(tmp_path / "layout")
    tag = f"hostile-{os.urandom(4).hex()}"
    layout.add_image(tag, [[file("/abs", "stays inside\n"), *hostile]], config={"Cmd": ["sh"]})
    push(layout, tag, registry.ref(tag))
    proc = store.cli("pull", "--tls-verify=false", registry.ref(tag))
    assert canary.read_text() == "untouched\n"
    assert sorted(os.listdir(outside)) == ["canary"]
    assert not (store.runtime.opts.root / "canary").exists()
    if refused is None:
        assert proc.returncode == 0, proc.stderr
        top = store.runtime.image(registry.ref(tag)).lowers[0]
        assert (top / "abs").read_text() == "stays inside\n"
        assert os.readlink(top / "escape") == str(outside)
    else:
        assert proc.returncode == 125
        assert proc.stderr.startswith("Error: layer ") and proc.stderr.count("\n") == 1, proc.stderr
        assert refused in proc.stderr, proc.stderr
        assert os.listdir(store.runtime.opts.root / "layers") == []  # nothing half-unpacked stays
        assert [p.name for p in (store.runtime.opts.root / "images").iterdir()] == []


def test_failures_are_one_line_and_leave_nothing(store: Store, registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    proc = store.cli("pull", "--tls-verify=false", registry.ref("nosuch"))
    assert proc.returncode == 125 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"Error: pull {registry.ref('nosuch')}: ") and "level=" not in proc.stderr
    assert os.listdir(store.runtime.opts.root / "images") == []
    not_an_archive = tmp_path / "text"
    not_an_archive.write_text("hello\n")
    proc = store.cli("load", "-i", str(not_an_archive))
    expected = (f"Error: payload does not match any of the supported image formats: {not_an_archive} is not a "
                "(compressed) tar archive\n")
    assert (proc.returncode, proc.stderr) == (125, expected)


def test_run_pulls_a_missing_image_unless_never(store: Store, registry: Registry, pushed: dict[str, str]) -> None:  # noqa: F811
    ref = registry.ref("other")
    proc = store.cli("run", "--rm", "--pull=never", ref)
    assert (proc.returncode, proc.stderr) == (125, f"Error: {ref}: image not known\n")
    assert _run(store, "--tls-verify=false", ref) == "x\n"  # --pull=missing, podman's default
    assert store.runtime.image(ref).id == pushed["other"]
    assert _run(store, "--pull", "always", "--tls-verify=false", ref) == "x\n"
    proc = store.cli("run", "--rm", registry.ref("nosuch"))  # HTTPS to a plain-HTTP registry: refused
    assert proc.returncode == 125 and proc.stderr.startswith(f"Error: {registry.ref('nosuch')}: image not known, "
                                                             "and pulling it failed: "), proc.stderr
