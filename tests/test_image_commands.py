"""Image commands with podman's output and exit codes, and commit, on a real registry, skopeo and runc.

Runs as root and in the rootless run (tests/test_rootless_suite.py): pull,
commit, save and load work for a normal user, layers unpacked inside the
store's user namespace.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from kernelext import Runtime
from kernelext.errors import InvalidArgumentError, NoSuchImageError
from kernelext.storage.imagechanges import apply_changes
from kernelext.storage.images import ImageConfig, repo_tag

from conftest import ROOTLESS, Store, wait_until
from ocilayout import Layout, directory, file, push, symlink
from registry import Registry, registry  # noqa: F401 - the fixture

SIZE = r"\d+(\.\d+)? [kMG]?B"
WHITEOUT_DEVICE = 0


def _busybox_layer() -> list:
    from kernelext.storage.busybox import find_static_busybox

    entries = [directory("bin"), file("bin/busybox", find_static_busybox().read_bytes(), mode=0o755)]
    return entries + [symlink(f"bin/{applet}", "busybox")
                      for applet in ("sh", "cat", "ls", "pwd", "env", "test", "id", "rm", "echo", "mkdir", "sleep")]


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # noqa: F811
    """``base``: busybox + a config layer; ``app``: base's two layers and one more (the base shared)."""
    layout = Layout(tmp_path_factory.mktemp("layout"))
    base_layers = [_busybox_layer(), [directory("etc"), file("etc/motd", "base\n"), file("etc/os-release", "x\n"),
                                      directory("data"), file("data/keep", "k\n"), file("data/old", "o\n")]]
    ids = {"base": layout.add_image("base", base_layers, config={"Cmd": ["cat", "/etc/motd"], "Env": ["PATH=/bin"]}),
           "app": layout.add_image("app", [*base_layers, [file("app", "app\n")]],
                                   config={"Cmd": ["cat", "/app"], "Env": ["PATH=/bin"]})}
    for tag in ids:
        push(layout, tag, registry.ref(f"{tag}:latest"))
    return ids


def _ok(proc) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _pull(store: Store, registry: Registry, name: str) -> str:  # noqa: F811
    return _ok(store.cli("pull", "--tls-verify=false", registry.ref(name))).strip()


def test_images_lists_with_podman_columns_filters_and_formats(store: Store, registry: Registry,  # noqa: F811
                                                               pushed: dict[str, str]) -> None:
    assert _pull(store, registry, "base") == pushed["base"]
    assert _pull(store, registry, "app") == pushed["app"]
    # Blobs kept once in the store: app brought its manifest, config and one new layer, not base's two again.
    assert len(os.listdir(store.runtime.opts.root / "blobs" / "sha256")) == 4 + 3
    lines = _ok(store.cli("images")).splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    rows = {re.split(r"\s{2,}", line)[0]: re.split(r"\s{2,}", line) for line in lines[1:]}
    app = rows[registry.ref("app")]
    assert app[1:3] == ["latest", pushed["app"][:12]] and app[3].endswith(" ago") and re.fullmatch(SIZE, app[4])
    assert _ok(store.cli("images", "-q")).split() == [pushed["app"][:12], pushed["base"][:12]]  # newest first
    assert _ok(store.cli("images", "-q", "--no-trunc")).split()[0] == f"sha256:{pushed['app']}"
    without_created = [re.split(r"\s{2,}", line)[:3] for line in lines[1:]]  # CREATED may tick meanwhile
    assert [re.split(r"\s{2,}", line)[:3] for line in _ok(store.cli("images", "--noheading")).splitlines()] == \
        without_created
    digests = _ok(store.cli("images", "--digests")).splitlines()
    assert re.split(r"\s{2,}", digests[0])[2] == "DIGEST" and "sha256:" in digests[1]
    assert _ok(store.cli("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}",
                         "--filter", f"reference={registry.ref('ba*')}")) == \
        f"{registry.ref('base')}:latest {pushed['base'][:12]}\n"
    assert _ok(store.cli("images", "--format", "table {{.ID}}\t{{.Tag}}", registry.ref("app"))).splitlines() == \
        ["IMAGE ID      TAG", f"{pushed['app'][:12]}  latest"]
    [doc] = [d for d in json.loads(_ok(store.cli("images", "--format", "json"))) if d["Id"] == pushed["app"]]
    assert doc["Names"] == [f"{registry.ref('app')}:latest"] and doc["Containers"] == 0 and doc["Size"] > 0
    assert _ok(store.cli("images", "-f", "dangling=true", "-q")) == ""
    proc = store.cli("images", "--filter", "color=red")
    assert proc.returncode == 125 and proc.stderr.startswith('Error: invalid image filter "color=red"')
    proc = store.cli("images", "--format", "{{.Nope}}")
    assert proc.returncode == 125 and "can't evaluate field Nope" in proc.stderr


def test_tag_untag_exists_prefixes_and_rmi(store: Store, registry: Registry,  # noqa: F811
                                           pushed: dict[str, str]) -> None:
    _pull(store, registry, "app")
    app_id = pushed["app"]
    assert store.cli("image", "exists", registry.ref("app")).returncode == 0
    assert store.cli("image", "exists", "nosuch").returncode == 1
    _ok(store.cli("tag", app_id[:5], "mine", "mine:v2", "example.com/team/mine:1"))
    assert store.runtime.image("localhost/mine:latest").id == app_id
    assert _ok(store.cli("images", "--format", "{{.Repository}} {{.Tag}}")).splitlines() == [
        f"{registry.ref('app')} latest", "localhost/mine latest", "localhost/mine v2", "example.com/team/mine 1"]
    proc = store.cli("tag", "mine", "Bad/Name")
    assert (proc.returncode, proc.stderr) == (125, ('Error: normalizing name "Bad/Name": repository name must be '
                                                    "lowercase\n"))
    # A name of an image that has several: only untagged.
    assert _ok(store.cli("rmi", "mine:v2")) == "Untagged: localhost/mine:v2\n"
    proc = store.cli("rmi", app_id[:12])  # by ID while it has several names: refused without -f
    assert proc.returncode == 125 and "by ID with more than one tag" in proc.stderr
    _ok(store.cli("untag", "mine", "example.com/team/mine:1"))
    proc = store.cli("untag", "mine", "never:1")
    assert (proc.returncode, proc.stderr) == (125, "Error: localhost/never:1: tag not known\n")
    # In use: podman's message and exit code 2; -f removes the container too.
    _ok(store.cli("create", "--name", "user", "mine"))
    proc = store.cli("rmi", registry.ref("app"))
    assert proc.stdout == f"Untagged: {registry.ref('app')}:latest\n"
    proc = store.cli("rmi", "mine")
    assert proc.returncode == 2
    assert proc.stderr == ("Error: image used by user: image is in use by a container: consider listing external "
                           "containers and force-removing image\n")
    assert _ok(store.cli("rmi", "-f", "mine")) == f"Untagged: localhost/mine:latest\nDeleted: {app_id}\n"
    assert store.runtime.list() == [] and os.listdir(store.runtime.opts.root / "layers") == []
    assert os.listdir(store.runtime.opts.root / "blobs" / "sha256") == []  # nothing kept that no image names
    proc = store.cli("rmi", "mine")
    assert (proc.returncode, proc.stderr) == (1, "Error: mine: image not known\n")
    assert store.cli("rmi", "-i", "mine").returncode == 0


def test_container_records_the_image_name_it_was_created_with(store: Store) -> None:
    """podman's ImageName: the name given to create (in full), not the image's first name."""
    _ok(store.cli("tag", "busybox", "localhost/other/name", "other/name:v2"))
    for ref, shown in (("localhost/other/name", "localhost/other/name:latest"),
                       ("other/name:v2", "localhost/other/name:v2"), ("busybox", "localhost/busybox:latest")):
        ctr_id = _ok(store.cli("create", ref)).strip()
        assert store.runtime.get(ctr_id).inspect()["ImageName"] == shown
    image_id = store.runtime.image("busybox").id
    by_id = store.runtime.create(image_id, ["true"])
    assert by_id.inspect()["ImageName"] == "localhost/busybox:latest"  # an ID: the image's first name
    image_doc = _ok(store.cli("inspect", "busybox", "--format", "{{.ID}} {{.Digest}}")).strip()
    ctr_doc = _ok(store.cli("container", "inspect", by_id.id, "--format", "{{.Image}} {{.ImageDigest}}")).strip()
    assert ctr_doc == image_doc and image_doc.startswith(image_id)


def test_ambiguous_id_prefix_is_refused(tmp_path: Path) -> None:
    """Two images whose IDs share a prefix: the prefix names neither (the store's lookup, no runtime needed)."""
    rt = Runtime(tmp_path / "root", tmp_path / "run")
    try:
        for image_id in ("abc1" + "0" * 60, "abc2" + "0" * 60):
            rt.db.add_image(image_id, [], ImageConfig().__dict__)
        with pytest.raises(NoSuchImageError, match="ambiguous"):
            rt.image("abc")
        assert rt.image("abc1").id.startswith("abc1") and rt.image_exists("abc2") and not rt.image_exists("abc")
    finally:
        rt.close()


def test_commit_makes_a_layer_with_whiteouts_on_the_image_layers(store: Store, registry: Registry,  # noqa: F811
                                                                  pushed: dict[str, str], tmp_path: Path) -> None:
    rt = store.runtime
    _pull(store, registry, "base")
    base = rt.image(registry.ref("base"))
    _ok(store.cli("run", "--name", "work", registry.ref("base"), "sh", "-c",
                  "echo new > /etc/motd; rm /etc/os-release; rm -r /data; mkdir /data; echo n > /data/fresh; "
                  "echo made > /made"))
    image_id = _ok(store.cli("commit", "-c", "CMD=cat /made /etc/motd", "-c", "ENV GREETING=hi", "-c",
                             "WORKDIR /data", "-c", 'LABEL lab="4"', "-c", "EXPOSE 8080", "-m", "first step",
                             "-a", "Ada", "work", "step1")).strip()
    image = rt.image("step1")
    assert image.id == image_id and image.names == ["step1"]
    assert image.config.layers[:2] == base.config.layers and len(image.config.layers) == 3  # shared, not copied
    assert len(os.listdir(rt.opts.root / "layers")) == 3
    assert _ok(store.cli("run", "--rm", "step1")) == "made\nnew\n"
    assert _ok(store.cli("run", "--rm", "step1", "sh", "-c", "pwd; echo $GREETING; ls /data; test ! -e "
                         "/etc/os-release && echo gone")) == "/data\nhi\nfresh\ngone\n"
    top = image.lowers[0]
    whiteout = os.lstat(top / "etc/os-release")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == WHITEOUT_DEVICE
    opaque = "user.overlay.opaque" if ROOTLESS else "trusted.overlay.opaque"
    if rt.storage_driver.value == "overlay":
        # The recreated directory hides the old one's files: opaque, or a whiteout each.
        assert os.getxattr(top / "data", opaque) == b"y" or \
            stat.S_ISCHR(os.lstat(top / "data/old").st_mode)
    [doc] = json.loads(_ok(store.cli("image", "inspect", "step1")))
    assert doc["Config"]["Cmd"] == ["/bin/sh", "-c", "cat /made /etc/motd"] and doc["Author"] == "Ada"
    assert doc["Config"]["Env"] == ["PATH=/bin", "GREETING=hi"] and doc["Config"]["WorkingDir"] == "/data"
    assert doc["Config"]["Labels"] == {"lab": "4"} and doc["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert doc["RepoTags"] == ["localhost/step1:latest"]
    history = _ok(store.cli("history", "step1")).splitlines()
    assert re.split(r"\s{2,}", history[0]) == ["ID", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert history[1].startswith(image_id[:12]) and history[1].endswith("first step") and len(history) == 4
    assert history[2].startswith("<missing>")
    tree = _ok(store.cli("image", "tree", "step1")).splitlines()
    assert tree[0] == f"Image ID: {image_id[:12]}" and tree[3] == "Image Layers"
    assert "Shared by: 2 images" in tree[4] and tree[-1].endswith("Top Layer of: [localhost/step1:latest]")

    # A second commit on top of the first, then save, remove and load it back: the change is still there.
    _ok(store.cli("run", "--name", "work2", "step1", "sh", "-c", "rm /made"))
    step2 = _ok(store.cli("commit", "-q", "--change", "CMD [\"ls\", \"/\"]", "work2", "step2")).strip()
    listing = _ok(store.cli("run", "--rm", "step2")).split()
    assert "made" not in listing and "data" in listing
    archive = tmp_path / "step2.tar"
    _ok(store.cli("save", "-o", str(archive), "step2"))
    for ctr in ("work", "work2"):
        _ok(store.cli("rm", ctr))
    _ok(store.cli("rmi", "step2", "step1", registry.ref("base")))
    assert os.listdir(rt.opts.root / "layers") == []
    assert _ok(store.cli("load", "-i", str(archive))) == "Loaded image: localhost/step2:latest\n"
    assert rt.image("step2").id == step2 and len(rt.image("step2").config.layers) == 4
    listing = _ok(store.cli("run", "--rm", "step2")).split()
    assert "made" not in listing and "data" in listing


def test_commit_of_a_running_container_pauses_it_and_it_goes_on(store: Store) -> None:
    rt = store.runtime
    ctr = rt.run("busybox", ["sh", "-c", "echo state > /state; sleep 1000"], name="live")
    assert wait_until(lambda: ctr.exec_run(["cat", "/state"]).output == b"state\n")
    image = rt.commit("live", "snap", changes=["CMD cat /state"], message="live")
    assert rt.get("live").status.value == "running"
    statuses = [e.status for e in rt.events.read() if e.id == ctr.id]
    if ROOTLESS:  # cgroup v1 has no freezer for a normal user: the commit does not pause
        assert statuses[-1] == "commit" and "pause" not in statuses
    else:
        assert statuses[-3:] == ["pause", "unpause", "commit"]
    assert image.config.history[-1]["comment"] == "live"
    assert _ok(store.cli("run", "--rm", "snap")) == "state\n"
    ctr.remove(force=True)


def test_commit_refusals_leave_nothing(store: Store) -> None:
    rt = store.runtime
    _ok(store.cli("run", "--name", "c", "busybox", "true"))
    before = sorted(os.listdir(rt.opts.root / "images"))
    proc = store.cli("commit", "-c", "FROM scratch", "c", "bad")
    assert (proc.returncode, proc.stderr) == (125, ('Error: invalid change "FROM scratch" - invalid instruction '
                                                    "FROM\n"))
    proc = store.cli("commit", "c", "Bad")
    assert proc.returncode == 125 and "must be lowercase" in proc.stderr
    proc = store.cli("commit", "nosuch", "x")
    assert proc.returncode == 125 and "nosuch" in proc.stderr and proc.stderr.count("\n") == 1
    assert sorted(os.listdir(rt.opts.root / "images")) == before
    assert not rt.image_exists("bad")


def test_vfs_commit_records_deletions_as_whiteouts(tmp_path: Path) -> None:
    rt = Runtime(tmp_path / "root", tmp_path / "run", storage_driver="vfs")
    vfs = Store(tmp_path, rt)
    try:
        _ok(vfs.cli("run", "--name", "v", "busybox", "sh", "-c", "rm /etc/group; echo v > /v"))
        image = rt.commit("v", "vfsimg", changes=["CMD cat /v"])
        assert _ok(vfs.cli("run", "--rm", "vfsimg")) == "v\n"
        assert vfs.cli("run", "--rm", "vfsimg", "test", "-e", "/etc/group").returncode == 1
        assert stat.S_ISCHR(os.lstat(image.lowers[0] / "etc/group").st_mode)
    finally:
        for ctr in rt.list():
            ctr.remove(force=True)
        rt.close()
        if ROOTLESS:
            rt.namespace.stop()  # its pause process: a test must not leave it


def test_prune_removes_dangling_then_unused(store: Store) -> None:
    rt = store.runtime
    _ok(store.cli("run", "--name", "c", "busybox", "sh", "-c", "echo 1 > /one"))
    dangling = rt.commit("c")
    assert dangling.dangling and _ok(store.cli("images", "-f", "dangling=true", "-q")) == f"{dangling.short_id}\n"
    assert _ok(store.cli("images", "--format", "{{.Repository}} {{.Tag}}", "-f", "dangling=true")) == \
        "<none> <none>\n"
    proc = store.cli("image", "prune", input=b"n\n")
    assert proc.stdout.startswith("WARNING! This command removes all dangling images.") and rt.image_exists(
        dangling.id)
    assert _ok(store.cli("image", "prune", "-f")) == f"{dangling.id}\n"
    kept = rt.commit("c", "kept")
    assert _ok(store.cli("image", "prune", "-a", "-f")) == f"{kept.id}\n"  # busybox: container c uses it
    assert [i.names for i in rt.images()] == [["busybox"]]


def test_change_instructions() -> None:
    base = ImageConfig(cmd=["sh"], env=["PATH=/bin", "A=1"], workdir="/srv")
    changed = apply_changes(base, ['CMD ["a", "b"]', "ENV A=2 B=3", "WORKDIR sub", "USER 1000:1000",
                                   "ENTRYPOINT=/init", "LABEL x=y", "EXPOSE 53/udp 80", "STOPSIGNAL SIGINT"])
    assert changed.cmd == [] and changed.entrypoint == ["/bin/sh", "-c", "/init"]
    assert changed.env == ["PATH=/bin", "A=2", "B=3"] and changed.workdir == "/srv/sub" and changed.user == "1000:1000"
    assert changed.labels == {"x": "y"} and changed.exposed_ports == ["53/udp", "80/tcp"]
    assert changed.stop_signal == "SIGINT" and base.env == ["PATH=/bin", "A=1"]  # the original untouched
    with pytest.raises(InvalidArgumentError, match="invalid instruction RUN"):
        apply_changes(base, ["RUN make"])
    assert repo_tag("busybox") == ("localhost/busybox", "latest")
    assert repo_tag("127.0.0.1:5000/app:v2") == ("127.0.0.1:5000/app", "v2")
    assert repo_tag("team/app") == ("localhost/team/app", "latest")


def test_magics_images_commit_history(store: Store, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The same grammar in a cell: ``images`` as a table with the containers that use each image, ``commit``."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("KERNELEXT_ROOT", str(store.runtime.opts.root))
    monkeypatch.setenv("KERNELEXT_RUNROOT", str(store.runtime.opts.runroot))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "kernelext")
    try:
        ip.run_line_magic("container", "run --name m1 busybox sh -c 'echo cell > /cell'")
        image_id = ip.run_line_magic("container", "commit -c 'CMD cat /cell' -m 'from a cell' m1 fromcell")
        assert store.runtime.image("fromcell").id == image_id
        table = ip.run_line_magic("container", "images")
        rows = {row["REPOSITORY"]: row for row in table}
        assert rows["localhost/busybox"]["CONTAINERS"] == "m1" and rows["localhost/fromcell"]["CONTAINERS"] == ""
        assert rows["localhost/fromcell"]["IMAGE ID"] == image_id[:12]
        assert repr(table).splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE",
                                                       "CONTAINERS"]
        history = ip.run_line_magic("container", "history fromcell")
        assert history[0]["COMMENT"] == "from a cell" and history[0]["ID"] == image_id[:12]
        ip.run_line_magic("container", "tag fromcell again")
        assert ip.run_line_magic("container", "image exists again") is True
        capsys.readouterr()
        ip.run_line_magic("container", "rmi again")
        assert capsys.readouterr().out == "Untagged: localhost/again:latest\n"
        ip.run_line_magic("container", "image tree fromcell")
        assert "Top Layer of: [localhost/fromcell:latest]" in capsys.readouterr().out
    finally:
        ip.run_line_magic("unload_ext", "kernelext")


@pytest.mark.skipif(ROOTLESS, reason="checkpointing needs root")
def test_checkpoint_archive_records_the_image_and_restore_pulls_or_refuses(
        store: Store, registry: Registry, pushed: dict[str, str], tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    import tarfile

    _pull(store, registry, "base")
    _ok(store.cli("run", "-d", "--name", "cp1", registry.ref("base"), "sh", "-c", "echo $$ > /pid; sleep 1000"))
    archive = tmp_path / "cp1.tar.zst"
    _ok(store.cli("checkpoint", "-e", str(archive), "cp1"))
    _ok(store.cli("rm", "-f", "cp1"))
    with tarfile.open(fileobj=__import__("io").BytesIO(__import__("subprocess").run(
            ["zstd", "-dc", str(archive)], capture_output=True, check=True).stdout)) as tar:
        config = json.load(tar.extractfile("config.dump"))  # type: ignore[arg-type]  # libpod's ContainerConfig
    assert (config["rootfsImageID"], config["rootfsImageName"]) == (pushed["base"], f"{registry.ref('base')}:latest")

    # A store without the image pulls it (podman's policy "missing"); registries.conf marks the registry HTTP.
    conf = tmp_path / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n')
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(conf))
    other = Runtime(tmp_path / "other" / "root", tmp_path / "other" / "run")
    try:
        restored = other.restore_from_archive(archive)
        assert restored.status.value == "running" and other.image(registry.ref("base")).id == pushed["base"]
        assert restored.exec_run(["cat", "/etc/motd"]).output == b"base\n"
        restored.remove(force=True)
    finally:
        other.close()

    # An image no registry has: refused in one line, nothing left behind.
    _ok(store.cli("run", "--name", "local", "busybox", "true"))
    rt = store.runtime
    rt.commit("local", "onlyhere")
    _ok(store.cli("run", "-d", "--name", "cp2", "onlyhere", "sleep", "1000"))
    archive2 = tmp_path / "cp2.tar.zst"
    _ok(store.cli("checkpoint", "-e", str(archive2), "cp2"))
    third = Store(tmp_path / "third", Runtime(tmp_path / "third" / "root", tmp_path / "third" / "run"))
    try:
        proc = third.cli("restore", "-i", str(archive2))
        assert proc.returncode == 125 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("Error: onlyhere: image not known, and pulling it failed: "), proc.stderr
        assert third.runtime.list() == [] and third.runtime.images() == []
    finally:
        third.runtime.close()


def test_pull_progress_callback_terminal_lines_and_cell_bar(store: Store, registry: Registry,  # noqa: F811
                                                            pushed: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import pty
    import subprocess
    import sys

    from kernelext.storage.progress import Phase

    rt = store.runtime
    events = []
    image = rt.pull(registry.ref("app"), tls_verify=False, progress=events.append)
    steps = [e.message for e in events if e.phase is Phase.STEP]
    assert steps[0] == "Getting image source signatures" and sum(s.startswith("Copying blob sha256:") for s in steps) == 3
    written = [e for e in events if e.phase is Phase.BYTES]
    assert written and written[-1].total and written[-1].done >= written[-1].total  # the blobs and the config
    assert [(e.done, e.total) for e in events if e.phase is Phase.UNPACK] == [(0, 3), (1, 3), (2, 3)]
    assert events[-1].phase is Phase.DONE and events[-1].message == image.id
    rt.remove_image(image.id)

    # The CLI: podman's lines on a terminal (stderr), the ID alone on stdout; quiet on a pipe.
    master, slave = pty.openpty()
    proc = subprocess.run([sys.executable, "-m", "kernelext", *store.args, "pull", "--tls-verify=false",
                           registry.ref("base")], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                          timeout=120)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert proc.returncode == 0 and proc.stdout.decode() == f"{pushed['base']}\n"
    lines = shown.decode().replace("\r", "").splitlines()
    assert lines[0] == f"Trying to pull {registry.ref('base')}:latest..." and lines[1] == "Getting image source signatures"
    assert sum(line.startswith("Copying blob sha256:") for line in lines) == 2 and "Storing signatures" in lines
    rt.remove_image(pushed["base"])
    proc = store.cli("pull", "--tls-verify=false", registry.ref("base"))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"{pushed['base']}\n", "")

    # A cell: a bar while it runs, one summary line left.
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("KERNELEXT_ROOT", str(rt.opts.root))
    monkeypatch.setenv("KERNELEXT_RUNROOT", str(rt.opts.runroot))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "kernelext")
    try:
        capsys.readouterr()
        pulled = ip.run_line_magic("container", f"pull --tls-verify=false {registry.ref('app')}")
        assert pulled.id == pushed["app"]
        assert re.fullmatch(rf"Pulled {re.escape(registry.ref('app'))}: 3 layers, \d+\.\d MB in \d+\.\ds\n",
                            capsys.readouterr().out.lstrip("\n"))  # the bar: empty as text
    finally:
        ip.run_line_magic("unload_ext", "kernelext")


@pytest.mark.skipif(ROOTLESS, reason="a rootless podman store is readable only in podman's own user namespace")
def test_pull_from_a_podman_store(store: Store, tmp_path: Path) -> None:
    """``containers-storage:``: an image podman has (in a podman store of the test's own) comes over by skopeo."""
    import shutil
    import subprocess

    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("needs podman (scripts/setup.sh installs it)")
    rt = store.runtime
    _ok(store.cli("run", "--name", "src", "busybox", "sh", "-c", "echo from podman > /where"))
    image = rt.commit("src", "handover", changes=["CMD cat /where"])
    archive = tmp_path / "handover.tar"
    rt.save("handover", archive)
    import tempfile

    proot = tmp_path / "podman-root"
    prun = Path(tempfile.mkdtemp(prefix="kx-podman-"))  # podman refuses a runroot longer than 50 characters
    base = [podman, "--root", str(proot), "--runroot", str(prun), "--storage-driver", "vfs"]
    try:
        loaded = subprocess.run([*base, "load", "-q", "-i", str(archive)], capture_output=True, text=True, timeout=120)
        assert loaded.returncode == 0, loaded.stderr
        _ok(store.cli("rmi", "-f", "handover"))
        ref = f"containers-storage:[vfs@{proot}+{prun}]localhost/handover:latest"
        assert _ok(store.cli("pull", ref)) == f"{image.id}\n"  # podman keeps the config: the same ID
        assert rt.image("handover").names == ["handover"]
        assert _ok(store.cli("run", "--rm", "handover")) == "from podman\n"
    finally:
        subprocess.run([*base, "rmi", "-a", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(proot, ignore_errors=True)
        shutil.rmtree(prun, ignore_errors=True)


def test_image_list_widget_shows_sizes_and_users(store: Store) -> None:
    """``ImageList`` (``%container imagelist``): a row per image name, its size and the containers using it;
    the browser's refresh message brings a change made meanwhile by another process."""
    from kernelext.widgets import ImageList

    rt = store.runtime
    _ok(store.cli("create", "--name", "user1", "busybox"))
    widget = ImageList(rt)
    try:
        [row] = widget.rows
        assert (row["repository"], row["tag"], row["containers"]) == ("localhost/busybox", "latest", "user1")
        assert re.fullmatch(SIZE, row["size"]) and row["id"] == rt.image("busybox").short_id
        _ok(store.cli("tag", "busybox", "second"))
        widget._on_message(widget, {"type": "refresh"}, [])
        assert sorted(r["repository"] for r in widget.rows) == ["localhost/busybox", "localhost/second"]
    finally:
        widget.close()


def test_since_and_before_filters_and_podmans_inspect_fields(store: Store) -> None:
    rt = store.runtime
    _ok(store.cli("run", "--name", "c", "busybox", "sh", "-c", "echo 1 > /one"))
    first = rt.commit("c", "first", message="one", changes=["USER 1", "LABEL a=b"])
    second = rt.commit("c", "second")
    busybox = rt.image("busybox")
    assert _ok(store.cli("images", "-q", "--filter", "since=first")).split() == [second.short_id]
    assert _ok(store.cli("images", "-q", "-f", f"before={second.short_id}")).split() == \
        [first.short_id, busybox.short_id]
    assert _ok(store.cli("images", "-q", "-f", "since=busybox", "-f", "before=second")).split() == [first.short_id]
    proc = store.cli("images", "-f", "since=nosuch")
    assert (proc.returncode, proc.stderr) == (125, "Error: nosuch: image not known\n")
    fields = "{{.Architecture}} {{.Os}} {{.User}} {{.Comment}} {{.Labels.a}} {{.VirtualSize}} {{.Size}} {{.ManifestType}}"
    line = _ok(store.cli("image", "inspect", "--format", fields, "first")).split()
    assert line[:5] == [os.uname().machine.replace("x86_64", "amd64").replace("aarch64", "arm64"), "linux", "1",
                        "one", "b"]
    assert line[5] == line[6] == str(first.config.size) and line[7] == "application/vnd.oci.image.manifest.v1+json"
    [doc] = json.loads(_ok(store.cli("image", "inspect", "first")))
    assert [step.get("comment") for step in doc["History"]] == [None, "one"] and doc["RepoDigests"] == []


def test_pull_all_tags(store: Store, registry: Registry, pushed: dict[str, str], tmp_path: Path,  # noqa: F811
                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``pull --all-tags REPO``: every tag of the repository, an ID a line; a tag with it is refused."""
    layout = Layout(tmp_path / "layout")
    ids = {tag: layout.add_image(tag, [[file(tag, f"{tag}\n")]], config={"Cmd": ["cat", f"/{tag}"]})
           for tag in ("v1", "v2")}
    for tag in ids:
        push(layout, tag, registry.ref(f"multi:{tag}"))
    proc = store.cli("pull", "--tls-verify=false", "--all-tags", registry.ref("multi"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == sorted(ids.values())
    assert {tag: store.runtime.image(registry.ref(f"multi:{tag}")).id for tag in ids} == ids
    proc = store.cli("pull", "--tls-verify=false", "-a", registry.ref("multi:v1"))
    assert (proc.returncode, proc.stderr) == (125, "Error: tag can't be used with --all-tags/-a\n")
    proc = store.cli("pull", "--tls-verify=false", "-a", registry.ref("nosuch"))
    assert proc.returncode == 125 and proc.stderr.startswith(f"Error: pull {registry.ref('nosuch')}: ")
    assert proc.stderr.count("\n") == 1, proc.stderr

    # A cell: the images, and one summary line.
    from IPython.core.interactiveshell import InteractiveShell

    store.runtime.remove_image(ids["v1"])
    monkeypatch.setenv("KERNELEXT_ROOT", str(store.runtime.opts.root))
    monkeypatch.setenv("KERNELEXT_RUNROOT", str(store.runtime.opts.runroot))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "kernelext")
    try:
        capsys.readouterr()
        pulled = ip.run_line_magic("container", f"pull --tls-verify=false -a {registry.ref('multi')}")
        assert sorted(image.id for image in pulled) == sorted(ids.values())
        assert capsys.readouterr().out.strip().startswith("Pulled 2 images: ")
    finally:
        ip.run_line_magic("unload_ext", "kernelext")


def test_prune_filters(store: Store) -> None:
    """``image prune --filter``: podman's ``label=``, ``label!=`` and ``until=``; other keys refused."""
    rt = store.runtime
    _ok(store.cli("run", "--name", "c", "busybox", "true"))
    web = rt.commit("c", "web", changes=["LABEL tier=web"])
    db = rt.commit("c", "db", changes=["LABEL tier=db"])
    plain = rt.commit("c", "plain")
    assert _ok(store.cli("image", "prune", "-a", "-f", "--filter", "label=tier=web")) == f"{web.id}\n"
    assert _ok(store.cli("image", "prune", "-a", "-f", "--filter", "until=1h")) == ""  # all made just now
    assert _ok(store.cli("image", "prune", "-a", "-f", "--filter", "label!=tier")) == f"{plain.id}\n"
    assert [i.names for i in rt.images()] == [["busybox"], ["db"]]  # busybox: container c uses it
    proc = store.cli("image", "prune", "-f", "--filter", "color=red")
    assert proc.returncode == 125 and proc.stderr.startswith('Error: invalid image filter "color=red"')
    assert _ok(store.cli("image", "prune", "-a", "-f", "--filter", "label=tier")) == f"{db.id}\n"
