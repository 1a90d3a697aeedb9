"""The commands the remote engine carries beyond the lifecycle: volumes, diff, export, commit, update, image
history/save/load/prune, against a real podman service (Debian's podman 4.3), each compared with the local
engine's result of the same command line. Where podman's service gives something else, the test names the
difference (docs/architecture.md §16 lists them).
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import re
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from podmanservice import PODMAN, PodmanService
from test_remote import NO_SUCH, both, podman, remote  # noqa: F401 - podman: the module's service

import kernelext

from conftest import Store
from registry import Registry, registry  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(PODMAN), reason="needs root and podman")]

Run = Callable[..., subprocess.CompletedProcess[str]]
#: What one test made on both engines, as the command lines that made it.
CHANGES = "echo hi > /new; rm /bin/zcat; mkdir /etc/x"


@pytest.fixture
def service(podman: PodmanService) -> Iterator[PodmanService]:  # noqa: F811 - the imported fixture
    """The module's service (test_remote's fixture: one per module), with no container, volume or image of the
    test's left."""
    yield podman
    podman.podman("rm", "-fa", "-t", "0", check=False)
    podman.podman("volume", "prune", "-f", check=False)
    podman.podman("rmi", "-f", "localhost/snap:v1", "localhost/extra:2", "localhost/imp:1", "localhost/imp:2",
                  check=False)
    podman.podman("image", "prune", "-f", check=False)


def engines(store: Store, service: PodmanService) -> list[tuple[str, Run]]:
    return [("local", store.cli), ("remote", lambda *argv: remote(service, *argv))]


def same(store: Store, service: PodmanService, *argv: str) -> subprocess.CompletedProcess[str]:
    """The command on both engines, with the same exit code, stdout and stderr; the remote's result."""
    local, far = both(store, service, *argv)
    assert (far.returncode, far.stdout, far.stderr) == (local.returncode, local.stdout, local.stderr), argv
    return far


# -------------------------------------------------------------------- volumes
def test_volume_commands_match_the_local_engine(store: Store, service: PodmanService) -> None:
    assert same(store, service, "volume", "create", "--label", "team=a", "data").stdout == "data\n"
    assert same(store, service, "volume", "create", "plain").stdout == "plain\n"
    # a second of the same name: the store's line and podman's 125; --ignore answers with the name
    refused = same(store, service, "volume", "create", "data")
    assert (refused.returncode, refused.stderr) == (
        125, "Error: volume with name data already exists: volume already exists\n")
    assert same(store, service, "volume", "create", "--ignore", "data").stdout == "data\n"
    assert same(store, service, "volume", "ls").stdout == "DRIVER  VOLUME NAME\nlocal   data\nlocal   plain\n"
    assert same(store, service, "volume", "ls", "-q", "--filter", "label=team=a").stdout == "data\n"
    assert same(store, service, "volume", "ls", "--format", "{{.Name}} {{.Driver}}").stdout == "data local\nplain local\n"
    assert same(store, service, "volume", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Scope}}", "data"
                ).stdout == "data local local\n"
    local, far = both(store, service, "volume", "inspect", "data")
    docs = [json.loads(r.stdout)[0] for r in (local, far)]
    for doc in docs:  # where each engine keeps it, and when it was made
        assert doc.pop("Mountpoint").endswith("/volumes/data/_data")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)", doc.pop("CreatedAt"))
    # podman's document: NeedsChown, no Anonymous (kernelext's addition)
    assert docs[1].pop("NeedsChown") is True and docs[0].pop("Anonymous") is False
    assert docs[0] == docs[1]
    assert same(store, service, "volume", "exists", "data").returncode == 0
    assert same(store, service, "volume", "exists", "nope").returncode == 1
    missing = same(store, service, "volume", "inspect", "nope")
    assert (missing.returncode, missing.stderr) == (125, 'Error: no volume with name "nope" found: no such volume\n')
    missing = same(store, service, "volume", "rm", "nope")
    assert (missing.returncode, missing.stderr) == (1, 'Error: no volume with name "nope" found: no such volume\n')
    assert same(store, service, "volume", "rm", "--force", "nope").returncode == 0  # --force: no such, no error


def test_a_volume_in_use_and_prune(store: Store, service: PodmanService) -> None:
    same(store, service, "volume", "create", "used")
    same(store, service, "volume", "create", "spare")
    for _engine, run in engines(store, service):
        assert run("run", "-d", "--name", "user", "-v", "used:/data", "busybox", "sleep", "1000").returncode == 0
    local, far = both(store, service, "volume", "rm", "used")
    for result in (local, far):  # podman's 2, the users' IDs in the line
        assert result.returncode == 2
        assert re.fullmatch(r"Error: volume used is being used by the following container\(s\): [0-9a-f]{64}: "
                            r"volume is being used\n", result.stderr), result.stderr
    assert same(store, service, "volume", "prune", "-f").stdout == "spare\n"  # the one no container uses
    assert same(store, service, "volume", "rm", "-f", "used").stdout == "used\n"  # its user removed first
    assert same(store, service, "ps", "-aq").stdout == ""
    assert same(store, service, "volume", "ls", "-q").stdout == ""
    assert service.remote("volume", "ls", "-q").stdout == ""  # podman itself sees them gone


# ------------------------------------------------------ a container's filesystem
def _changed(store: Store, service: PodmanService) -> None:
    """A running container ``box`` on both engines with a file added, one deleted, a directory made."""
    for _engine, run in engines(store, service):
        assert run("run", "-d", "--name", "box", "busybox", "sleep", "1000").returncode == 0
        assert run("exec", "box", "sh", "-c", CHANGES).returncode == 0


def test_diff_matches_the_local_engine(store: Store, service: PodmanService) -> None:
    _changed(store, service)
    assert same(store, service, "diff", "box").stdout == "C /bin\nD /bin/zcat\nC /etc\nA /etc/x\nA /new\n"
    assert json.loads(same(store, service, "diff", "--format", "json", "box").stdout) == {
        "changed": ["/bin", "/etc"], "added": ["/etc/x", "/new"], "deleted": ["/bin/zcat"]}
    assert same(store, service, "diff", "--latest").stdout.startswith("C /bin\n")
    missing = same(store, service, "diff", "nope")
    assert (missing.returncode, missing.stderr) == (125, NO_SUCH)


def _members(archive: Path) -> dict[str, bytes | str]:
    """A tar's entries by path (``./`` dropped): a file's bytes, else its type and link target."""
    found: dict[str, bytes | str] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            name = member.name.removeprefix("./").rstrip("/")
            if not name or name == ".":
                continue
            extracted = tar.extractfile(member) if member.isreg() else None
            found[name] = extracted.read() if extracted else f"{member.type!r} {member.linkname}"
    return found


def test_export_matches_the_local_engine(store: Store, service: PodmanService, tmp_path: Path) -> None:
    _changed(store, service)
    for name, run in engines(store, service):
        assert run("export", "-o", str(tmp_path / f"{name}.tar"), "box").returncode == 0
    local, far = _members(tmp_path / "local.tar"), _members(tmp_path / "remote.tar")
    # podman's own: /etc/mtab, a link to /proc/mounts it makes in every container
    assert far.pop("etc/mtab") == f"{tarfile.SYMTYPE!r} /proc/mounts"
    assert local == far
    assert far["new"] == b"hi\n" and "bin/zcat" not in far
    # to stdout (a pipe): the same archive, byte for byte
    piped = subprocess.run([*remote_argv(service), "export", "box"], capture_output=True, timeout=120,
                           env=remote_env(service))
    assert piped.returncode == 0 and piped.stdout == (tmp_path / "remote.tar").read_bytes()
    missing = same(store, service, "export", "-o", str(tmp_path / "none.tar"), "nope")
    assert (missing.returncode, missing.stderr) == (125, NO_SUCH)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["local.tar", "remote.tar"]  # no partial
    # a device is written into, never replaced by a file: a null device of the test's own (the host's
    # /dev/null is shared with every other process)
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    for _name, run in engines(store, service):
        assert run("export", "-o", str(null), "box").returncode == 0
        assert run("save", "-o", str(null), "busybox").returncode == 0
        assert stat.S_ISCHR(os.stat(null).st_mode)
    # into a FIFO: the archive whole (skopeo writes a file beside, copied in)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        received = pool.submit(lambda: fifo.read_bytes())
        assert store.cli("save", "-o", str(fifo), "busybox").returncode == 0
        with tarfile.open(fileobj=io.BytesIO(received.result(timeout=120))) as archive:
            assert "manifest.json" in archive.getnames()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def remote_argv(service: PodmanService) -> list[str]:
    import sys

    return [sys.executable, "-m", "kernelext", "--url", service.url]


def remote_env(service: PodmanService) -> dict[str, str]:
    from test_remote import private_store

    return {**os.environ, "KERNELEXT_FORKSERVER": "0", **private_store(service.directory)}


def test_commit_and_history(store: Store, service: PodmanService) -> None:
    _changed(store, service)
    committed = {}
    for name, run in engines(store, service):
        done = run("commit", "-q", "-m", "first", "-a", "me", "-c", 'CMD ["sh"]', "box", "snap:v1")
        assert done.returncode == 0, done.stderr
        committed[name] = done.stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{64}", committed[name])
        # the new image's top step is the commit, named as given
        assert run("history", "-q", "snap:v1").stdout.splitlines()[0] == committed[name][:12]
        rows = json.loads(run("history", "--format", "json", "snap:v1").stdout)
        assert rows[0]["Tags"] == ["localhost/snap:v1"] and all(row["Tags"] is None for row in rows[1:])
    assert same(store, service, "image", "inspect", "--format", "{{.Author}}|{{.Comment}}|{{.Config.Cmd}}",
                "snap:v1").stdout == 'me|first|["sh"]\n'
    # the committed filesystem: the container's changes
    assert same(store, service, "run", "--rm", "snap:v1", "cat", "/new").stdout == "hi\n"
    assert same(store, service, "run", "--rm", "snap:v1", "ls", "/bin/zcat").returncode == 1
    missing = same(store, service, "history", "nope")
    assert (missing.returncode, missing.stderr) == (125, "Error: nope: image not known\n")
    missing = same(store, service, "commit", "nope", "x")
    assert (missing.returncode, missing.stderr) == (125, NO_SUCH)


def test_stat_and_system_df(store: Store, service: PodmanService) -> None:
    _changed(store, service)
    local, far = both(store, service, "stat", "box", "/bin/sh")
    docs = [json.loads(r.stdout) for r in (local, far)]
    for doc in docs:  # each container's own times
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", doc.pop("mtime"))
    # the link resolved inside the container: its target's size and Go file mode
    assert docs[0] == docs[1] == {"name": "busybox", "size": docs[0]["size"], "mode": 0o755, "isDir": False,
                                  "linkTarget": "/bin/busybox"}
    assert same(store, service, "stat", "--format", "{{.name}} {{.isDir}} {{.mode}}", "box", "/etc").stdout == \
        f"etc true {(1 << 31) | 0o755}\n"
    missing = same(store, service, "stat", "box", "/nope")
    assert (missing.returncode, missing.stderr) == (
        125, 'Error: "/nope" could not be found on container box: no such file or directory\n')
    same(store, service, "volume", "create", "spare")
    counts = "{{.Type}} {{.Total}} {{.Active}}"
    local, far = both(store, service, "system", "df", "--format", counts)
    # the service keeps no checkpoint history: no Checkpoints row there
    assert local.stdout == far.stdout + "Checkpoints 0 0\n"
    assert far.stdout == "Images 1 1\nContainers 1 1\nLocal Volumes 1 0\n"
    assert far.stdout == service.remote("system", "df", "--format", counts).stdout  # podman's own sums

def test_rename_and_container_prune(store: Store, service: PodmanService) -> None:
    for _engine, run in engines(store, service):
        assert run("run", "-d", "--name", "a", "busybox", "sleep", "1000").returncode == 0
        assert run("create", "--name", "b", "busybox", "true").returncode == 0
        assert run("run", "--name", "c", "busybox", "true").returncode == 0
    taken = both(store, service, "rename", "a", "b")
    for result, run in zip(taken, (store.cli, lambda *argv: remote(service, *argv)), strict=True):
        ident = run("inspect", "--format", "{{.Id}}", "a").stdout.strip()
        line = (f"Error: renaming container {ident}: name b already in use, cannot rename container {ident}: "
                "container already exists\n")
        assert (result.returncode, result.stderr) == (125, line)
    assert same(store, service, "inspect", "--format", "{{.Name}}", "a").stdout == "a\n"  # a refusal changes nothing
    invalid = same(store, service, "rename", "a", "bad/name")
    assert (invalid.returncode, invalid.stderr) == (
        125, "Error: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument\n")
    missing = same(store, service, "rename", "nope", "x")
    assert (missing.returncode, missing.stderr) == (125, NO_SUCH)
    # a running container renamed: it runs on under the new name, the old one is free at once
    assert same(store, service, "rename", "a", "a2").stdout == ""
    assert same(store, service, "exec", "a2", "echo", "still").stdout == "still\n"
    assert same(store, service, "ps", "-a", "--format", "{{.Names}} {{.State}}").stdout == \
        "a2 running\nb created\nc exited\n"
    for _engine, run in engines(store, service):
        assert run("events", "--since", "1m", "--stream=false", "--filter", "event=rename",
                   "--format", "{{.Name}}").stdout == "a2\n"
    # prune: what is not running goes (its IDs), the running one stays
    local, far = both(store, service, "container", "prune", "-f")
    for result, run in zip((local, far), (store.cli, lambda *argv: remote(service, *argv)), strict=True):
        assert result.returncode == 0 and len(result.stdout.split()) == 2, result.stderr
        assert run("ps", "-a", "--format", "{{.Names}}").stdout == "a2\n"
    declined = same(store, service, "container", "prune")  # no answer on stdin: nothing removed
    assert declined.stdout == "WARNING! This will remove all non running containers.\n" \
                              "Are you sure you want to continue? [y/N] "
    assert same(store, service, "stop", "-t", "0", "a2").stdout == "a2\n"
    assert [r.returncode for r in both(store, service, "create", "--name", "a", "busybox", "true")] == [0, 0]

def test_exec_with_stdin_and_no_terminal(store: Store, service: PodmanService) -> None:
    """``exec -i`` without ``-t``: stdin fed to the command until its end, then its exit code."""
    for _engine, run in engines(store, service):
        assert run("run", "-d", "--name", "sink", "busybox", "sleep", "1000").returncode == 0
    text = "".join(f"line {i}\n" for i in range(20000))  # more than a pipe's or a socket's buffer
    local, far = (subprocess.run([*argv, "exec", "-i", "sink", "sh", "-c", "wc -l; cat >&2; exit 4"], input=text,
                                 capture_output=True, text=True, timeout=120, env=env)
                  for argv, env in ((_local_argv(store), None), (remote_argv(service), remote_env(service))))
    assert (far.returncode, far.stdout, far.stderr) == (local.returncode, local.stdout, local.stderr) == (4, "20000\n", "")
    closed = both(store, service, "exec", "-i", "sink", "cat")  # an empty stdin ends at once
    assert [(r.returncode, r.stdout) for r in closed] == [(0, ""), (0, "")]
    refused = subprocess.run(["sh", "-c", 'exec 3</dev/null; exec "$@"', "sh", *remote_argv(service), "exec",
                              "--preserve-fds", "1", "sink", "true"], capture_output=True, text=True, timeout=120,
                             env=remote_env(service))
    assert refused.returncode == 125 and "exec --preserve-fds: descriptors of this machine" in refused.stderr

def _cgroup_file(pid: int, controller: str, name: str) -> str:
    """A value of the container's own cgroup (cgroup v1 here), found from its process's /proc entry."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return (Path("/sys/fs/cgroup") / controllers / path.lstrip("/") / name).read_text().strip()
    raise AssertionError(f"no {controller} cgroup for {pid}")


def test_update_sets_the_same_limits(store: Store, service: PodmanService) -> None:
    for _engine, run in engines(store, service):
        assert run("run", "-d", "--name", "limited", "--memory", "64m", "busybox", "sleep", "1000").returncode == 0
    for _engine, run in engines(store, service):
        ident, pid = run("inspect", "--format", "{{.Id}} {{.State.Pid}}", "limited").stdout.split()
        # the container's ID, as podman's update prints it; the limits given kept by the next update
        shown = run("update", "--pids-limit", "100", "--cpu-shares", "512", "limited")
        assert (shown.returncode, shown.stdout, shown.stderr) == (0, f"{ident}\n", "")
        assert run("update", "--memory", "32m", "limited").stdout == f"{ident}\n"
        # podman 4.3's inspect shows the create-time limits: the cgroup is what is compared
        assert _cgroup_file(int(pid), "memory", "memory.limit_in_bytes") == str(32 * (1 << 20))
        assert _cgroup_file(int(pid), "pids", "pids.max") == "100"
        assert _cgroup_file(int(pid), "cpu", "cpu.shares") == "512"
    refused = same(store, service, "update", "--memory", "1m", "limited")
    assert (refused.returncode, refused.stderr) == (125, "Error: minimum memory limit allowed is 6MB\n")
    missing = same(store, service, "update", "--memory", "32m", "nope")
    assert (missing.returncode, missing.stderr) == (125, NO_SUCH)


# ------------------------------------------------------------ image archives
def test_save_load_and_prune(store: Store, service: PodmanService, tmp_path: Path) -> None:
    _changed(store, service)
    for name, run in engines(store, service):
        assert run("commit", "-q", "box", "snap:v1").returncode == 0
        archive = tmp_path / f"{name}.tar"
        assert run("save", "-o", str(archive), "snap:v1").returncode == 0
        assert oct(archive.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == ["localhost/snap:v1"]
        assert run("save", "--format", "oci-archive", "-o", str(tmp_path / f"{name}-oci.tar"), "snap:v1"
                   ).returncode == 0
        with tarfile.open(tmp_path / f"{name}-oci.tar") as tar:
            assert "index.json" in tar.getnames()
        # an image that does not exist: podman's line, and no file left behind
        missing = run("save", "-o", str(tmp_path / f"{name}-none.tar"), "nope")
        assert (missing.returncode, missing.stderr) == (125, "Error: nope: image not known\n")
        assert not [p.name for p in tmp_path.iterdir() if "none" in p.name or p.name.startswith(".")]
        assert run("rm", "-f", "-t", "0", "box").returncode == 0
        assert run("rmi", "snap:v1").returncode == 0
        assert run("load", "-i", str(archive)).stdout == "Loaded image: localhost/snap:v1\n"
        assert run("run", "--rm", "snap:v1", "cat", "/new").stdout == "hi\n"
        assert run("rmi", "snap:v1").returncode == 0
    # from stdin
    local = subprocess.run([*_local_argv(store), "load"], stdin=open(tmp_path / "local.tar", "rb"),
                           capture_output=True, text=True, timeout=120)
    far = subprocess.run([*remote_argv(service), "load"], stdin=open(tmp_path / "remote.tar", "rb"),
                         capture_output=True, text=True, timeout=120, env=remote_env(service))
    assert local.stdout == far.stdout == "Loaded image: localhost/snap:v1\n"
    # prune: the dangling image a commit without a name makes, and nothing else
    for _name, run in engines(store, service):
        assert run("run", "-d", "--name", "base", "busybox", "sleep", "1000").returncode == 0
        dangling = run("commit", "-q", "base").stdout.strip()
        assert run("image", "prune", "-f").stdout == f"{dangling}\n"
        listed = run("images", "-q", "--no-trunc").stdout
        assert dangling[:12] not in listed and run("image", "exists", "snap:v1").returncode == 0


def _local_argv(store: Store) -> list[str]:
    import sys

    return [sys.executable, "-m", "kernelext", *store.args]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_untag_import_tree_and_push(store: Store, service: PodmanService, tmp_path: Path,
                                    registry: Registry) -> None:  # noqa: F811
    assert same(store, service, "tag", "busybox", "extra:1", "extra:2").returncode == 0
    refused = same(store, service, "untag", "busybox", "extra:9")
    assert (refused.returncode, refused.stderr) == (125, "Error: localhost/extra:9: tag not known\n")
    assert same(store, service, "untag", "busybox", "extra:1").returncode == 0
    assert same(store, service, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout == \
        "localhost/busybox:latest\nlocalhost/extra:2\n"
    missing = same(store, service, "untag", "nope")
    assert (missing.returncode, missing.stderr) == (125, "Error: nope: image not known\n")
    # podman's own tree text: its sizes ("2.134MB"), no "Shared by" (kernelext's addition)
    local, far = both(store, service, "image", "tree", "busybox")
    assert far.returncode == local.returncode == 0
    assert far.stdout.splitlines()[:2] == local.stdout.splitlines()[:2] == [
        "Image ID: " + local.stdout.split()[2], "Tags:     [localhost/busybox:latest localhost/extra:2]"]
    assert far.stdout.splitlines()[3] == local.stdout.splitlines()[3] == "Image Layers"
    missing = same(store, service, "image", "tree", "nope")
    assert (missing.returncode, missing.stderr) == (125, "Error: nope: image not known\n")
    # import: a root filesystem tarball (a file or stdin) with a CMD
    _changed(store, service)
    assert same(store, service, "export", "-o", str(tmp_path / "rootfs.tar"), "box").returncode == 0
    for _name, run in engines(store, service):
        imported = run("import", "-c", "CMD=cat /new", str(tmp_path / "rootfs.tar"), "imp:1")
        assert re.fullmatch(r"[0-9a-f]{64}\n", imported.stdout), imported.stderr
        assert run("run", "--rm", "imp:1").stdout == "hi\n"
    piped = subprocess.run([*remote_argv(service), "import", "-", "imp:2"], capture_output=True, text=True,
                           stdin=open(tmp_path / "rootfs.tar", "rb"), timeout=120, env=remote_env(service))
    assert piped.returncode == 0 and service.remote("image", "exists", "imp:2").returncode == 0
    missing = same(store, service, "import", str(tmp_path / "none.tar"))
    assert (missing.returncode, missing.stderr) == (125, f"Error: {tmp_path / 'none.tar'}: no such file\n")
    # push: by the service, from where it stands, to a registry (the loopback one here)
    for name, run in engines(store, service):
        pushed = run("push", "--tls-verify=false", "imp:1", registry.ref(f"{name}:1"))
        assert pushed.returncode == 0, pushed.stderr
        found = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.ref(f'{name}:1')}"],
                               capture_output=True, text=True)
        assert found.returncode == 0 and json.loads(found.stdout)["Layers"], found.stderr
    refused = remote(service, "push", "imp:1", f"dir:{tmp_path / 'out'}")
    assert refused.returncode == 125 and "the service would write it on its own machine" in refused.stderr
    assert not (tmp_path / "out").exists()

# -------------------------------------------------------------- refusals
@pytest.mark.parametrize(("argv", "why"), [
    (("mount", "box"), "the service mounts it on its own machine"),
    (("clone", "box"), "podman's API has no endpoint for it"),
    (("network", "reload", "box"), "podman's API has no endpoint for it"),
    (("checkpoint", "ls", "box"), "kernelext's checkpoint history is kept by the local store"),
])
def test_what_the_api_cannot_do_is_one_line_saying_why(service: PodmanService, argv: tuple[str, ...],
                                                      why: str) -> None:
    refused = remote(service, *argv)
    assert refused.returncode == 125 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(f"Error: {' '.join(argv[:-1])}: {why}") and service.url in refused.stderr


def test_magics_carry_the_same_commands(store: Store, service: PodmanService, ip: Any, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``%container`` on the local store and with ``--url``: the same values for the same lines."""
    _changed(store, service)
    values = {}
    for name, prefix in (("local", ""), ("remote", f"--url {service.url} ")):
        magic = lambda line: ip.run_line_magic("container", prefix + line)  # noqa: B023 - used in this turn
        assert magic("volume create nbdata") == "nbdata"
        assert magic("volume exists nbdata") is True and ip.user_ns["_exit_code"] == 0
        assert magic("volume inspect nbdata")["Name"] == "nbdata"
        magic(f"export -o {tmp_path / name}.tar box")
        image = magic("commit -q box nbsnap")
        capsys.readouterr()
        magic("volume rm nbdata")
        assert capsys.readouterr().out == "nbdata\n"
        assert magic("volume exists nbdata") is False and ip.user_ns["_exit_code"] == 1
        assert magic("rename box box2") is None
        assert magic("run --name gone busybox true") is None
        pruned = magic("container prune -f")
        assert len(pruned) == 1 and re.fullmatch(r"[0-9a-f]{64}", pruned[0])
        values[name] = (list(magic("volume ls")), list(magic("diff box2")),
                        magic("image history nbsnap")[0]["ID"] == image[:12],
                        magic("update --pids-limit 99 box2").name, magic("image prune -f"), magic("version"))
        assert (tmp_path / f"{name}.tar").stat().st_size > 0
    assert values["local"] == values["remote"] == ([], [
        {"KIND": "C", "PATH": "/bin"}, {"KIND": "D", "PATH": "/bin/zcat"}, {"KIND": "C", "PATH": "/etc"},
        {"KIND": "A", "PATH": "/etc/x"}, {"KIND": "A", "PATH": "/new"}], True, "box2", [], kernelext.__version__)
    assert store.cli("rmi", "nbsnap").returncode == 0


def test_magics_stat_df_import_and_push(store: Store, service: PodmanService, ip: Any, tmp_path: Path,
                                        registry: Registry) -> None:  # noqa: F811
    """``%container stat``, ``system df``, ``image import`` and ``push`` on the local store and with ``--url``:
    the same values; import and push answer with the image's ID on a connection (as ``pull``: no local
    ``Image`` there), the local store's ``Image`` carrying the same ID."""
    from kernelext.core.filecopy import FileInfo

    _changed(store, service)
    assert store.cli("export", "-o", str(tmp_path / "rootfs.tar"), "box").returncode == 0
    values: dict[str, Any] = {}
    for name, prefix in (("local", ""), ("remote", f"--url {service.url} ")):
        magic = lambda line: ip.run_line_magic("container", prefix + line)  # noqa: B023 - used in this turn
        info = magic("stat box /bin/sh")
        assert isinstance(info, FileInfo) and info.mtime > 0
        df = magic("system df")
        # podman's own counts of the same moment (with what an earlier test of the module left)
        own = [(kind, int(total), int(active)) for kind, total, active in (
            line.rsplit(" ", 2) for line in service.remote(
                "system", "df", "--format", "{{.Type}} {{.Total}} {{.Active}}").stdout.splitlines())]
        imported = magic(f"image import -c CMD=cat\\ /new {tmp_path / 'rootfs.tar'} imp:1")
        ident = imported if isinstance(imported, str) else imported.id
        assert re.fullmatch(r"[0-9a-f]{64}", ident)
        pushed = magic(f"push -q --tls-verify=false imp:1 {registry.ref(f'm{name}:1')}")
        assert (pushed if isinstance(pushed, str) else pushed.id) == ident
        found = subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false",
                                f"docker://{registry.ref(f'm{name}:1')}"], capture_output=True, text=True)
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["config"]["Cmd"] == ["/bin/sh", "-c", "cat /new"]
        values[name] = ((info.name, info.size, info.mode, info.is_dir, info.link_target),
                        df.columns, [(r["TYPE"], r["TOTAL"], r["ACTIVE"]) for r in df], own)
    # the service keeps no checkpoint history: no Checkpoints row there
    assert values["local"][:2] == values["remote"][:2] and values["remote"][1] == [
        "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert values["local"][2] == [("Images", 1, 1), ("Containers", 1, 1), ("Local Volumes", 0, 0),
                                  ("Checkpoints", 0, 0)]
    # the service's are podman's own sums; no Checkpoints row there: the service keeps no checkpoint history
    assert values["remote"][2] == values["remote"][3] and [kind for kind, *_ in values["remote"][2]] == [
        "Images", "Containers", "Local Volumes"]
    assert values["local"][0][1:] == values["remote"][0][1:] == (values["local"][0][1], 0o100755, False, "/bin/busybox")
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="a cell has no stdin"):
        ip.run_line_magic("container", f"--url {service.url} image import - imp:2")
    assert store.cli("rmi", "imp:1").returncode == 0
