"""Files in and out of real containers: podman cp's tables, messages, confinement and diff (issue #3)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernelext import Container, ContainerStatus, CopyError
from kernelext.cli.launch import ENV_SWITCH
from kernelext.files.confined import FILE_BATCH
from kernelext.storage.busybox import FILES

from conftest import Store, needs_root

S = ContainerStatus
STATES = ["running", "created"]


# ------------------------------------------------------------------ helpers
def tar_of(*members: tuple[tarfile.TarInfo, bytes | None], compression: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, *, mode: int = 0o644, link: str = "", uid: int = 0,
          gid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.uid, info.gid, info.mtime = kind, mode, link, uid, gid, 1_700_000_000
    return info


def put(ctr: Container, path: str, files: dict[str, bytes | str], **kwargs: bool) -> None:
    """Create files (value bytes), directories (name ending in /) and symlinks (value "->target")."""
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for name, value in files.items():
        if name.endswith("/"):
            members.append((entry(name, tarfile.DIRTYPE, mode=0o755), None))
        elif isinstance(value, str):
            members.append((entry(name, tarfile.SYMTYPE, link=value.removeprefix("->")), None))
        else:
            members.append((entry(name), value))
    ctr.put_archive(path, io.BytesIO(tar_of(*members)), **kwargs)


def read_in(ctr: Container, path: str) -> bytes:
    """A file's content read back through get_archive (works in every state)."""
    stream, _ = ctr.get_archive(path)
    with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            assert member.isfile(), member.name
            data = tar.extractfile(member)
            assert data is not None
            return data.read()
    raise AssertionError(f"no file in the archive of {path}")


def members_of(ctr: Container, path: str) -> dict[str, tarfile.TarInfo]:
    stream, _ = ctr.get_archive(path)
    with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        return {m.name: m for m in tar}


def exists_in(ctr: Container, path: str) -> bool:
    try:
        ctr.stat(path)
        return True
    except CopyError:
        return False


def cli(store: Store, *argv: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "kernelext", *store.args, *argv], capture_output=True,
                          input=input, timeout=120, check=False)


def one_error_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    assert proc.returncode == 125, proc
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    return lines[0]


def make(store: Store, state: str, name: str = "cpcontainer", **kwargs: str) -> Container:
    rt = store.runtime
    if state == "running":
        return rt.run("busybox", ["sleep", "1000"], name=name, workdir="/srv", **kwargs)
    return rt.create("busybox", ["sleep", "1000"], name=name, workdir="/srv", **kwargs)


def assert_unmounted(ctr: Container) -> None:
    ctr.reload()
    if ctr.status is not S.RUNNING:
        assert ctr.state.user_mounts == 0 and not ctr.layer.is_mounted()


@pytest.fixture(params=STATES)
def state(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ------------------------------------------------------------ host → container
FILE_TABLE = [  # id | destination | full path
    (0, "/", "/hostfile0"),
    (0, "/anotherbase.txt", "/anotherbase.txt"),
    (0, "/tmp", "/tmp/hostfile0"),
    (1, "/tmp/", "/tmp/hostfile1"),
    (2, "/tmp/.", "/tmp/hostfile2"),
    (0, "/tmp/anotherbase.txt", "/tmp/anotherbase.txt"),
    (0, ".", "/srv/hostfile0"),
    (1, "./", "/srv/hostfile1"),
    (0, "anotherbase.txt", "/srv/anotherbase.txt"),
    (0, "subdir", "/srv/subdir/hostfile0"),
]


def test_file_from_host_to_container(store: Store, state: str, tmp_path: Path) -> None:
    ctr = make(store, state)
    put(ctr, "/srv", {"subdir/": b""})
    content = [f"random-{i}-{os.urandom(6).hex()}\n".encode() for i in range(3)]
    for i, data in enumerate(content):
        (tmp_path / f"hostfile{i}").write_bytes(data)
    (tmp_path / "dotfile.").write_bytes(content[2])
    for i, dest, _ in FILE_TABLE:
        store.runtime.copy(str(tmp_path / f"hostfile{i}"), f"cpcontainer:{dest}")
    store.runtime.copy(str(tmp_path / "dotfile."), "cpcontainer:/tmp")
    for i, dest, full in FILE_TABLE:
        assert read_in(ctr, full) == content[i], (dest, full)
    assert read_in(ctr, "/tmp/dotfile.") == content[2]
    assert_unmounted(ctr)
    if state == "created":
        ctr.start()
    assert ctr.exec_run(["cat", "/srv/subdir/hostfile0"]).output == content[0]  # the container sees it too


DIR_TABLE = [  # source (under the host dir) | destination | full path
    ("dir", "/", "/dir/sub"),
    ("dir.", "/", "/dir./sub"),
    ("dir/", "/tmp", "/tmp/dir/sub"),
    ("dir/.", "/usr/", "/usr/sub"),
    ("dir/sub", ".", "/srv/sub"),
    ("dir/sub/.", "subdir/.", "/srv/subdir"),
    ("dir", "/newdir1", "/newdir1/sub"),
    ("dir/", "/newdir2", "/newdir2/sub"),
    ("dir/.", "/newdir3", "/newdir3/sub"),
]


def test_dir_from_host_to_container(store: Store, state: str, tmp_path: Path) -> None:
    ctr = make(store, state)
    put(ctr, "/srv", {"subdir/": b""})
    content = [f"random-{i}-{os.urandom(6).hex()}\n".encode() for i in range(2)]
    for top in ("dir", "dir."):
        (tmp_path / top / "sub").mkdir(parents=True)
        for i, data in enumerate(content):
            (tmp_path / top / "sub" / f"hostfile{i}").write_bytes(data)
    for src, dest, _ in DIR_TABLE:
        store.runtime.copy(f"{tmp_path}/{src}", f"cpcontainer:{dest}")  # pathlib would drop "/." and "/"
    for src, dest, full in DIR_TABLE:
        for i, data in enumerate(content):
            assert read_in(ctr, f"{full}/hostfile{i}") == data, (src, dest, full)
    with pytest.raises(CopyError, match="^destination must be a directory when copying a directory$"):
        store.runtime.copy(str(tmp_path / "dir"), "cpcontainer:/etc/passwd")
    assert_unmounted(ctr)


def files_in(ctr: Container, path: str) -> dict[str, tuple[bytes, tarfile.TarInfo]]:
    """Every regular file under ``path``: its data and its header, read back through get_archive."""
    stream, _ = ctr.get_archive(path)
    found = {}
    with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            data = tar.extractfile(member) if member.isfile() else None
            if data is not None:
                found[member.name] = (data.read(), member)
    return found


def test_many_files_are_written_in_batches(store: Store, tmp_path: Path) -> None:
    """Several batches of files (written by worker threads): each exactly as one at a time, and the
    failure reported is the file that failed, with podman's message."""
    ctr = make(store, "running")
    src = tmp_path / "many"
    expected = {}
    for i in range(FILE_BATCH * 5):
        name = f"d{i % 3}/f{i:03d}"
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        data = f"file {i}\n".encode() * (i % 7)
        (src / name).write_bytes(data)
        (src / name).chmod(0o600 if i % 2 else 0o755)
        os.utime(src / name, (1_600_000_000 + i, 1_600_000_000 + i))
        expected[f"many/{name}"] = (data, 0o600 if i % 2 else 0o755, 1_600_000_000 + i)
    store.runtime.copy(str(src), "cpcontainer:/tmp")
    found = files_in(ctr, "/tmp/many")
    assert {name: (data, m.mode, m.mtime) for name, (data, m) in found.items()} == expected
    assert all((m.uid, m.gid) == (0, 0) for _, m in found.values())
    put(ctr, "/tmp", {"again/": b"", "again/many/": b"", "again/many/d1/": b"", "again/many/d1/f100/": b""})
    with pytest.raises(CopyError, match='^error creating "/tmp/again/many/d1/f100": '
                                        'creat /tmp/again/many/d1/f100: file exists$'):
        store.runtime.copy(str(src), "cpcontainer:/tmp/again")
    store.runtime.copy(str(src), "cpcontainer:/tmp/again", overwrite=True)
    assert {name: data for name, (data, _) in files_in(ctr, "/tmp/again/many").items()} == {
        name: data for name, (data, _, _) in expected.items()}


# ------------------------------------------------------------ container → host
CONTAINER_FILES: dict[str, bytes | str] = {
    "tmp/containerfile": b"c0\n", "tmp/dotfile.": b"c0\n", "srv/containerfile1": b"c1\n",
    "srv/subdir/containerfile2": b"c2\n", "srv/subdir/containerfile0": b"c0\n", "srv/subdir/containerfile1": b"c1\n",
    "tmp/subdir./containerfile0": b"c0\n", "tmp/subdir./containerfile1": b"c1\n",
}

FILE_OUT_TABLE = [  # source | destination (under the host dir) | full path
    ("/tmp/containerfile", "", "/containerfile", b"c0\n"),
    ("/tmp/dotfile.", "", "/dotfile.", b"c0\n"),
    ("/tmp/containerfile", "/", "/containerfile", b"c0\n"),
    ("/tmp/containerfile", "/.", "/containerfile", b"c0\n"),
    ("/tmp/containerfile", "/newfile", "/newfile", b"c0\n"),
    ("containerfile1", "/", "/containerfile1", b"c1\n"),
    ("subdir/containerfile2", "/", "/containerfile2", b"c2\n"),
]


def test_file_from_container_to_host(store: Store, state: str, tmp_path: Path) -> None:
    ctr = make(store, state)
    put(ctr, "/", CONTAINER_FILES)
    for n, (src, dest, full, data) in enumerate(FILE_OUT_TABLE):
        out = tmp_path / f"out{n}"
        out.mkdir()
        store.runtime.copy(f"cpcontainer:{src}", f"{out}{dest}")
        assert (Path(f"{out}{full}")).read_bytes() == data, (src, dest)
    assert_unmounted(ctr)


DIR_OUT_TABLE = [  # source | destination (under the host dir) | full path
    ("/srv", "", "/srv/subdir"),
    ("/srv", "/newdir", "/newdir/subdir"),
    ("/srv/", "", "/srv/subdir"),
    ("/srv/.", "", "/subdir"),
    ("/srv/.", "/newdir", "/newdir/subdir"),
    ("/srv/subdir/.", "", ""),
    ("/tmp/subdir.", "", "/subdir."),
]


def test_dir_from_container_to_host(store: Store, state: str, tmp_path: Path) -> None:
    ctr = make(store, state)
    put(ctr, "/", CONTAINER_FILES)
    for n, (src, dest, full) in enumerate(DIR_OUT_TABLE):
        out = tmp_path / f"out{n}"
        out.mkdir()
        store.runtime.copy(f"cpcontainer:{src}", f"{out}{dest}")
        assert Path(f"{out}{full}/containerfile0").read_bytes() == b"c0\n", (src, dest)
        assert Path(f"{out}{full}/containerfile1").read_bytes() == b"c1\n", (src, dest)
    (tmp_path / "testfile").touch()
    with pytest.raises(CopyError, match="^destination must be a directory when copying a directory$"):
        store.runtime.copy("cpcontainer:/etc/", str(tmp_path / "testfile"))
    assert_unmounted(ctr)


def test_container_to_container(store: Store) -> None:
    src = make(store, "running", "src")
    put(src, "/", CONTAINER_FILES)
    for dst_state in STATES:
        dst = make(store, dst_state, f"dst-{dst_state}")
        for source, dest, full, data in [("/tmp/containerfile", "/", "/containerfile", b"c0\n"),
                                         ("/tmp/containerfile", "/newfile", "/newfile", b"c0\n"),
                                         ("containerfile1", "/", "/containerfile1", b"c1\n")]:
            store.runtime.copy(f"src:{source}", f"{dst.name}:{dest}")
            assert read_in(dst, full) == data, (source, dest)
        for source, dest, full in [("/srv/.", "/newdir", "/newdir/subdir"), ("/srv", "/", "/srv/subdir"),
                                   ("/tmp/subdir.", "/", "/subdir.")]:
            store.runtime.copy(f"src:{source}", f"{dst.name}:{dest}")
            assert read_in(dst, f"{full}/containerfile1") == b"c1\n", (source, dest)
        assert_unmounted(dst)
    store.runtime.copy("src:/tmp/containerfile", "src:/srv/again")  # a container onto itself
    assert read_in(src, "/srv/again") == b"c0\n"


# ------------------------------------------------------------ messages (CLI)
def test_error_messages(store: Store, tmp_path: Path) -> None:
    make(store, "running")
    tmp_path = tmp_path / "host"  # the store lives in tmp_path itself
    tmp_path.mkdir()
    put(store.runtime.get("cpcontainer"), "/tmp", {"file.txt": b"x\n", "foo": b"file\n"})
    host = tmp_path / "hostfile0"
    host.write_bytes(b"h\n")
    cases = [
        (("cp", f"{tmp_path}/IdoNotExist", "cpcontainer:/tmp"), None,
         f'Error: "{tmp_path}/IdoNotExist" could not be found on the host: no such file or directory'),
        (("cp", str(host), "cpcontainer:/IdoNotExist/"), None,
         'Error: "/IdoNotExist/" could not be found on container cpcontainer: no such file or directory'),
        (("cp", str(tmp_path), "cpcontainer:/etc/passwd"), None,
         "Error: destination must be a directory when copying a directory"),
        (("cp", "-", "cpcontainer:/tmp"), b"not a tar archive\n" * 100,
         "Error: source must be a (compressed) tar archive when copying from stdin"),
        (("cp", "-", "cpcontainer:/tmp/file.txt"), tar_of((entry("a"), b"a")),
         "Error: destination must be a directory when copying from stdin"),
        (("cp", "-", "cpcontainer:/tmp/IdoNotExist"), tar_of((entry("a"), b"a")),
         "Error: destination must be a directory when copying from stdin"),
        (("cp", "cpcontainer:/tmp/file.txt", "/dev/stdout"), None,
         'Error: invalid destination: "/dev/stdout" must be a directory or a regular file'),
        (("cp", "cpcontainer:/tmp/*", str(tmp_path)), None,
         'Error: "/tmp/*" could not be found on container cpcontainer: no such file or directory'),
        (("cp", str(tmp_path), "cpcontainer:/tmp/foo"), None,  # exists as a file: dir onto file
         "Error: destination must be a directory when copying a directory"),
        (("cp", "nosuch:/tmp", str(tmp_path)), None, None),
    ]
    for argv, stdin, message in cases:
        line = one_error_line(cli(store, *argv, input=stdin))
        if message is not None:
            assert line == message, argv
    assert sorted(os.listdir(tmp_path)) == ["hostfile0"]  # nothing copied by the failures


def test_overwrite_between_file_and_directory(store: Store, tmp_path: Path) -> None:
    file_ctr = make(store, "running", "ctr-file")
    dir_ctr = make(store, "created", "ctr-dir")
    put(file_ctr, "/tmp", {"foo": b"file content\n"})
    put(dir_ctr, "/tmp", {"foo/": b"", "foo/file.txt": b"dir content\n"})
    line = one_error_line(cli(store, "cp", "ctr-file:/tmp/foo", "ctr-dir:/tmp"))
    assert line == 'Error: error creating "/tmp/foo": creat /tmp/foo: file exists'
    assert cli(store, "cp", "--overwrite", "ctr-file:/tmp/foo", "ctr-dir:/tmp").returncode == 0
    assert read_in(dir_ctr, "/tmp/foo") == b"file content\n"
    put(file_ctr, "/srv", {"foo/": b"", "foo/file.txt": b"dir content\n"})
    line = one_error_line(cli(store, "cp", "ctr-file:/srv/foo", "ctr-file:/tmp"))
    assert line == 'Error: error creating "/tmp/foo": mkdir /tmp/foo: file exists'
    store.runtime.copy("ctr-file:/srv/foo", "ctr-file:/tmp", overwrite=True)
    assert read_in(file_ctr, "/tmp/foo/file.txt") == b"dir content\n"
    (tmp_path / "foo").mkdir()
    # podman copies onto the host rooted at the destination directory: its message names "/foo"
    with pytest.raises(CopyError, match='^error creating "/foo": creat /foo: file exists$'):
        store.runtime.copy("ctr-dir:/tmp/foo", str(tmp_path))
    store.runtime.copy("ctr-dir:/tmp/foo", str(tmp_path), overwrite=True)
    assert (tmp_path / "foo").read_bytes() == b"file content\n"


def test_stdin_and_stdout_streams(store: Store, tmp_path: Path) -> None:
    ctr = make(store, "running")
    for compression in ("", "gz", "bz2", "xz"):
        archive = tar_of((entry(f"in-{compression or 'plain'}/f.txt"), b"streamed\n"), compression=compression)
        assert cli(store, "cp", "-", "cpcontainer:/tmp", input=archive).returncode == 0
        assert read_in(ctr, f"/tmp/in-{compression or 'plain'}/f.txt") == b"streamed\n"
    zstd = subprocess.run(["zstd", "-c"], input=tar_of((entry("in-zstd"), b"z\n")), capture_output=True,
                          check=False)
    if zstd.returncode == 0:
        assert cli(store, "cp", "-", "cpcontainer:/tmp", input=zstd.stdout).returncode == 0
        assert read_in(ctr, "/tmp/in-zstd") == b"z\n"
    put(ctr, "/tmp", {"file.txt": b"rand\n", "empty.txt": b""})
    proc = cli(store, "cp", "cpcontainer:/tmp/file.txt", "-")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        assert tar.getnames() == ["file.txt"]
        assert tar.extractfile("file.txt").read() == b"rand\n"  # type: ignore[union-attr]
    proc = cli(store, "cp", "cpcontainer:/tmp", "-")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        names = tar.getnames()
        assert "tmp/file.txt" in names and "tmp/empty.txt" in names and "tmp/in-gz/f.txt" in names


def test_archive_ownership(store: Store, tmp_path: Path) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="owned", user="daemon")
    (tmp_path / "hostfile").write_bytes(b"content\n")
    store.runtime.copy(str(tmp_path / "hostfile"), "owned:/tmp/hostfile")
    owned = members_of(ctr, "/tmp/hostfile")["hostfile"]
    assert (owned.uid, owned.gid) == (1, 1)  # daemon in the container's own /etc/passwd
    archive = tar_of((entry("a.txt", uid=1042, gid=1043), b""))
    assert cli(store, "cp", "-a=false", "-", "owned:/tmp/", input=archive).returncode == 0
    kept = members_of(ctr, "/tmp/a.txt")["a.txt"]
    assert (kept.uid, kept.gid) == (1042, 1043)
    assert cli(store, "cp", "-a", "-", "owned:/tmp/", input=tar_of((entry("b.txt", uid=7), b""))).returncode == 0
    assert members_of(ctr, "/tmp/b.txt")["b.txt"].uid == 1


# ------------------------------------------------------- symlinks and races
@pytest.mark.parametrize("link", ["/etc", "../../../../etc"])
def test_symlinks_resolve_inside_the_container(store: Store, state: str, link: str, tmp_path: Path) -> None:
    ctr = make(store, state)
    put(ctr, "/tmp", {"link": "->" + link, "rootlink": "->/", "loop1": "->loop2", "loop2": "->/tmp/loop1"})
    assert read_in(ctr, "/tmp/link/passwd") == FILES["etc/passwd"] != Path("/etc/passwd").read_bytes()
    store.runtime.copy("cpcontainer:/tmp/link/passwd", str(tmp_path))
    assert (tmp_path / "passwd").read_bytes() == FILES["etc/passwd"]
    store.runtime.copy("cpcontainer:/tmp/rootlink/etc/group", str(tmp_path))
    assert (tmp_path / "group").read_bytes() == read_in(ctr, "/etc/group")
    assert ctr.stat("/tmp/link/passwd").link_target == "/etc/passwd"
    name = f"kx-{os.urandom(6).hex()}"
    (tmp_path / name).write_bytes(b"in\n")
    store.runtime.copy(str(tmp_path / name), "cpcontainer:/tmp/link/")
    store.runtime.copy(str(tmp_path / name), f"cpcontainer:/tmp/rootlink/etc/{name}.2")
    assert read_in(ctr, f"/etc/{name}") == b"in\n" == read_in(ctr, f"/etc/{name}.2")
    assert not os.path.lexists(f"/etc/{name}") and not os.path.lexists(f"/etc/{name}.2")
    with pytest.raises(CopyError, match='^"/tmp/loop1" could not be found on container cpcontainer: '
                                        "too many levels of symbolic links$"):
        store.runtime.copy("cpcontainer:/tmp/loop1", str(tmp_path))


def test_dangling_symlink_destination(store: Store, state: str, tmp_path: Path) -> None:
    ctr = make(store, state)
    put(ctr, "/tmp", {"d1/": b"", "d1/x": "->/tmp/nonesuch1", "d2/": b"", "d2/x": "->/tmp/nonesuch2", "d3/": b""})
    for i in (1, 2, 3):
        (tmp_path / f"f{i}").write_bytes(f"content{i}\n".encode())
    store.runtime.copy(str(tmp_path / "f1"), "cpcontainer:/tmp/d1/x")
    with pytest.raises(CopyError) as info:
        store.runtime.copy(str(tmp_path / "f2"), "cpcontainer:/tmp/d2/x/")
    assert str(info.value) == '"/tmp/d2/x/" could not be found on container cpcontainer: no such file or directory'
    store.runtime.copy(str(tmp_path / "f3"), "cpcontainer:/tmp/d3/x")
    assert read_in(ctr, "/tmp/nonesuch1") == b"content1\n"
    assert not exists_in(ctr, "/tmp/nonesuch2")
    assert read_in(ctr, "/tmp/d3/x") == b"content3\n"
    assert not os.path.lexists("/tmp/nonesuch1")


def _tree(path: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None) for p in sorted(path.rglob("*"))}


RACE_ROUNDS = 60


def test_copies_stay_inside_while_links_flip(store: Store, tmp_path: Path) -> None:
    """A container process flips /tmp/race/d between a directory and a symlink to /."""
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret").write_bytes(b"HOST\n")
    host_before, root_before = _tree(canary), sorted(os.listdir("/"))
    script = (f"mkdir -p /tmp/race/d{canary} {canary}; echo CTR-DIR > /tmp/race/d{canary}/secret; "
              f"echo CTR-ROOT > {canary}/secret; cd /tmp/race; "
              "while :; do mv d hide; ln -s / d; rm d; mv hide d; done")
    ctr = store.runtime.run("busybox", ["sh", "-c", script], name="race")
    src_dir = tmp_path / "payload"
    src_dir.mkdir()
    for i in range(FILE_BATCH * 3):  # several batches: the worker threads write under the race too
        (src_dir / f"p{i}").write_bytes(b"PAYLOAD\n")
    (tmp_path / "one").write_bytes(b"PAYLOAD\n")
    deadline = time.monotonic() + 10
    while not exists_in(ctr, f"{canary}/secret") and time.monotonic() < deadline:
        time.sleep(0.05)
    outcomes = {"ok": 0, "failed": 0}
    seen: set[bytes] = set()
    for n in range(RACE_ROUNDS):
        out = tmp_path / f"out{n}"
        out.mkdir()
        for src, dst in [(str(tmp_path / "one"), f"race:/tmp/race/d{canary}/"),
                         (str(src_dir), f"race:/tmp/race/d{canary}/payload{n}"),
                         (f"race:/tmp/race/d{canary}/secret", str(out)),
                         (f"race:/tmp/race/d{canary}", str(out / "tree"))]:
            try:
                store.runtime.copy(src, dst)
                outcomes["ok"] += 1
            except CopyError as exc:
                assert "\n" not in str(exc)
                outcomes["failed"] += 1
        for found in out.rglob("secret"):
            seen.add(found.read_bytes())
        try:
            ctr.put_archive(f"/tmp/race/d{canary}", io.BytesIO(tar_of((entry(f"tar{n}/x"), b"PAYLOAD\n"))))
        except CopyError:
            outcomes["failed"] += 1
    assert _tree(canary) == host_before, "the host canary directory changed"
    assert sorted(os.listdir("/")) == root_before
    assert seen <= {b"CTR-DIR\n", b"CTR-ROOT\n"} and seen, seen
    assert outcomes["ok"] > 0


# ---------------------------------------------------------- hostile archives
def hostile_target(store: Store) -> Container:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="hostile", user="daemon")
    put(ctr, "/tmp", {"dest/": b""})
    return ctr


@pytest.mark.parametrize("member, message", [
    ((entry("../../escape"), b"x"), 'Error: refusing tar entry "../../escape": it points outside the destination'),
    ((entry("hl", tarfile.LNKTYPE, link="../../etc/passwd"), None),
     'Error: refusing tar entry "../../etc/passwd": it points outside the destination'),
    ((entry("hl", tarfile.LNKTYPE, link="/etc/passwd"), None),
     'Error: error linking to "/etc/passwd" at "/tmp/dest/hl": no such file or directory'),
    ((entry("null", tarfile.CHRTYPE), None),
     'Error: refusing to create device node "/tmp/dest/null": container hostile is unprivileged (no CAP_MKNOD)'),
])
def test_hostile_entries_are_refused(store: Store, member: tuple[tarfile.TarInfo, bytes | None],
                                     message: str) -> None:
    ctr = hostile_target(store)
    if member[0].type == tarfile.CHRTYPE:
        member[0].devmajor, member[0].devminor = 1, 3
    line = one_error_line(cli(store, "cp", "-", "hostile:/tmp/dest", input=tar_of(member)))
    assert line == message
    for path in ("/escape", "/tmp/escape", "/tmp/dest/null", "/tmp/dest/hl"):
        assert not exists_in(ctr, path)
    assert not os.path.lexists("/escape") and not os.path.lexists("/tmp/escape")


def test_hostile_archive_lands_only_in_the_destination(store: Store, tmp_path: Path) -> None:
    ctr = hostile_target(store)
    archive = tar_of((entry("/abs/file"), b"abs\n"),
                     (entry("evil", tarfile.SYMTYPE, link="/etc"), None),
                     (entry("evil/pwned"), b"pwned\n"),
                     (entry("suid", mode=0o4755), b"#!/bin/sh\n"))
    with pytest.raises(CopyError, match='^error creating "/tmp/dest/evil": creat /tmp/dest/evil: file exists$'):
        ctr.put_archive("/tmp/dest", io.BytesIO(archive), chown=False)
    assert read_in(ctr, "/tmp/dest/abs/file") == b"abs\n"  # a leading "/" is stripped, as tar does
    assert read_in(ctr, "/tmp/dest/evil/pwned") == b"pwned\n"  # the link is never written through
    assert not exists_in(ctr, "/etc/pwned")
    assert members_of(ctr, "/tmp/dest/suid")["suid"].mode == 0o755  # not set-ID for root under user daemon
    ctr.put_archive("/tmp/dest", io.BytesIO(tar_of((entry("suid2", mode=0o4755), b"x"))))
    suid = members_of(ctr, "/tmp/dest/suid2")["suid2"]
    assert (suid.mode, suid.uid) == (0o4755, 1)  # owned by the container user: kept
    store.runtime.copy("hostile:/tmp/dest/suid2", str(tmp_path))
    assert (tmp_path / "suid2").stat().st_mode & 0o7777 == 0o755  # never set-ID on the host


def test_a_later_entry_of_a_stream_replaces_an_earlier_one_of_another_type(store: Store) -> None:
    ctr = make(store, "running")
    archive = tar_of((entry("x", tarfile.SYMTYPE, link="/etc/passwd"), None), (entry("x"), b"file wins\n"),
                     (entry("d", tarfile.SYMTYPE, link="/etc"), None), (entry("d", tarfile.DIRTYPE, mode=0o755), None),
                     (entry("d/inside"), b"in\n"),
                     (entry("f"), b"first\n"), (entry("f", tarfile.SYMTYPE, link="x"), None))
    assert cli(store, "cp", "-", "cpcontainer:/tmp", input=archive).returncode == 0
    assert read_in(ctr, "/tmp/x") == b"file wins\n"
    assert ctr.stat("/tmp/d").is_dir and read_in(ctr, "/tmp/d/inside") == b"in\n"
    assert ctr.stat("/tmp/f").link_target == "/tmp/x"  # the symlink came last: it wins


def test_a_truncated_stream_leaves_no_partial_file(store: Store) -> None:
    ctr = make(store, "running")
    whole = tar_of((entry("done.txt"), b"complete\n"), (entry("big.bin"), os.urandom(200_000)))
    line = one_error_line(cli(store, "cp", "-", "cpcontainer:/tmp", input=whole[:100_000]))
    assert line == "Error: unexpected end of tar archive"
    assert read_in(ctr, "/tmp/done.txt") == b"complete\n"
    assert not exists_in(ctr, "/tmp/big.bin")


@needs_root
def test_an_unreadable_host_file_is_one_error_line(store: Store, tmp_path: Path) -> None:
    make(store, "running")
    source = tmp_path / "host"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "secret").write_text("s\n")
    (source / "sub" / "secret").chmod(0)
    # Root reads anything: without the capabilities that let it, the file's mode applies to it too.
    blind = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m", "kernelext",
             *store.args, "cp"]
    env = {**os.environ, ENV_SWITCH: "0"}  # run here: a fork server would run the command with its own capabilities
    for src, path in ((source / "sub" / "secret", source / "sub" / "secret"), (source, source / "sub" / "secret")):
        proc = subprocess.run([*blind, str(src), "cpcontainer:/tmp"], capture_output=True, timeout=120, check=False,
                              env=env)
        assert one_error_line(proc) == f'Error: error reading "{path}": permission denied'


# ---------------------------------------------------------------- diff, API
def test_diff_lists_exactly_the_changes(store: Store) -> None:
    rt = store.runtime
    script = ("mkdir /srv/newdir && echo a > /srv/newdir/f && echo x >> /etc/passwd && rm /etc/group && "
              "rm -rf /usr/sbin && mkdir /usr/sbin && touch /usr/sbin/x && sleep 1000")
    ctr = rt.run("busybox", ["sh", "-c", script], name="differ")
    deadline = time.monotonic() + 10
    while not exists_in(ctr, "/usr/sbin/x") and time.monotonic() < deadline:
        time.sleep(0.05)
    sbin = sorted(os.listdir(rt.images.get(ctr.config.image_id).lowers[0] / "usr" / "sbin"))
    expected = (["C /etc", "D /etc/group", "C /etc/passwd", "C /srv", "A /srv/newdir", "A /srv/newdir/f", "C /usr",
                 "C /usr/sbin"] + [f"D /usr/sbin/{name}" for name in sbin] + ["A /usr/sbin/x"])
    assert [str(c) for c in ctr.diff()] == sorted(expected, key=lambda line: line[2:])
    proc = cli(store, "diff", "differ")
    assert proc.stdout.decode().splitlines() == [str(c) for c in ctr.diff()]
    doc = json.loads(cli(store, "diff", "--format", "json", "differ").stdout)
    assert doc["deleted"][0] == "/etc/group" and "/srv/newdir" in doc["added"]


def test_stat_get_and_put_archive(store: Store) -> None:
    ctr = make(store, "created")
    put(ctr, "/srv", {"d/": b"", "d/f": b"12345", "l": "->d/f"})
    info = ctr.stat("l")
    assert (info.name, info.size, info.is_dir, info.link_target) == ("f", 5, False, "/srv/d/f")
    doc = json.loads(cli(store, "container", "stat", "cpcontainer", "/srv/d/.").stdout)
    assert doc["isDir"] and doc["linkTarget"] == "/srv/d/." and doc["mode"] == (1 << 31) | 0o755
    stream, info = ctr.get_archive("/srv/d")
    with stream:
        data = stream.read()
    assert info.is_dir and info.name == "d"
    other = make(store, "running", "other")
    other.put_archive("/tmp", io.BytesIO(data))
    assert read_in(other, "/tmp/d/f") == b"12345"
    assert_unmounted(ctr)


def test_copy_keeps_an_existing_mount(store: Store, tmp_path: Path) -> None:
    ctr = make(store, "created")
    merged = ctr.mount()
    (tmp_path / "f").write_bytes(b"f\n")
    store.runtime.copy(str(tmp_path / "f"), "cpcontainer:/tmp")
    ctr.reload()
    assert ctr.layer.is_mounted() and ctr.state.user_mounts == 1 and (merged / "tmp" / "f").exists()
    ctr.unmount()


@needs_root
def test_copy_works_paused(store: Store, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"f\n")
    running = make(store, "running", "paused")
    running.pause()
    try:
        store.runtime.copy(str(tmp_path / "f"), "paused:/tmp/g")
        assert read_in(running, "/tmp/g") == b"f\n"
        store.runtime.copy("paused:/tmp/g", str(tmp_path / "back"))
        assert (tmp_path / "back").read_bytes() == b"f\n"
    finally:
        running.unpause()


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() <= before
