"""podman cp's path rules and the tar codec, without containers (docs/architecture.md §5)."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from kernelext.errors import CopyError, InvalidArgumentError
from kernelext.files.copyrules import (
    DIR_ONTO_FILE,
    CopyArg,
    Found,
    Plan,
    member_parts,
    parse_copy_arg,
    parse_copy_args,
    path_form,
    plan_copy,
    with_ending,
)
from kernelext.files.tarformat import Kind, Meta, TarReader, header, open_archive, padding


@pytest.mark.parametrize("arg, expected", [
    ("ctr:/tmp/x", CopyArg("ctr", "/tmp/x")),
    ("ctr:rel/x", CopyArg("ctr", "rel/x")),
    ("ctr:a:b", CopyArg("ctr", "a:b")),  # split at the first colon
    ("/path/file:name.txt", CopyArg(None, "/path/file:name.txt")),
    ("./file:name.txt", CopyArg(None, "./file:name.txt")),
    ("relative", CopyArg(None, "relative")),
    ("-", CopyArg(None, "-")),
    ("ctr:", CopyArg("ctr", "")),
])
def test_parse_copy_arg(arg: str, expected: CopyArg) -> None:
    assert parse_copy_arg(arg) == expected


@pytest.mark.parametrize("src, dst, message", [
    ("/a", "ctr:", 'invalid arguments "/a", "ctr:": you must specify paths'),
    ("/a", "/b", "one of them must be a container path"),
    ("-", "-", "one of them must be a container path"),
    ("-", "/b", "one of them must be a container path"),
])
def test_parse_copy_args_errors(src: str, dst: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        parse_copy_args(src, dst)


@pytest.mark.parametrize("path, base, expected", [
    ("/tmp", "/srv", ("/tmp", False, False)),
    ("/tmp/", "/srv", ("/tmp", False, True)),
    ("/tmp/.", "/srv", ("/tmp", True, False)),
    (".", "/srv", ("/srv", True, False)),
    ("./", "/srv", ("/srv", False, True)),
    ("subdir", "/srv", ("/srv/subdir", False, False)),
    ("subdir/.", "/srv", ("/srv/subdir", True, False)),
    ("dir.", "/srv", ("/srv/dir.", False, False)),  # only a final element of exactly "." is special
    ("/", "/srv", ("/", True, False)),  # "/" means its contents ("/.")
    ("/../../etc", "/srv", ("/etc", False, False)),  # ".." stops at the root
    ("../../../x", "/srv", ("/x", False, False)),
    ("//tmp//x/", "/", ("/tmp/x", False, True)),
    ("/tmp/*", "/", ("/tmp/*", False, False)),  # no globbing: "*" is a name
])
def test_path_form(path: str, base: str, expected: tuple[str, bool, bool]) -> None:
    form = path_form(path, base)
    assert (form.path, form.contents, form.trailing_slash) == expected


def test_with_ending_puts_back_slash_and_dot() -> None:
    assert with_ending(path_form("/tmp/link/."), "/etc") == "/etc/."
    assert with_ending(path_form("/tmp/link/"), "/etc") == "/etc/"
    assert with_ending(path_form("/"), "/") == "/."
    assert with_ending(path_form("/tmp/link"), "/etc") == "/etc"


@pytest.mark.parametrize("name, parts", [
    ("a/b.txt", ("a", "b.txt")),
    ("./a/./b/", ("a", "b")),
    ("/abs/path", ("abs", "path")),
    ("./", ()),
    ("", ()),
])
def test_member_parts(name: str, parts: tuple[str, ...]) -> None:
    assert member_parts(name) == parts


@pytest.mark.parametrize("name", ["../../x", "a/../../x", "a/..", ".."])
def test_member_parts_refuses_dotdot(name: str) -> None:
    with pytest.raises(CopyError, match="points outside the destination"):
        member_parts(name)


FILE = Found(True, False, "/src/file")
DIR = Found(True, True, "/src/dir")
WHERE = "container c"


@pytest.mark.parametrize("src, src_path, dst, dst_path, plan", [
    # file source
    (FILE, "/src/file", Found(False, False, "/d/new"), "/d/new", Plan("/d", "new", False)),
    (FILE, "/src/file", Found(True, False, "/d/old"), "/d/old", Plan("/d", "old", False)),
    (FILE, "/src/file", Found(True, True, "/d"), "/d", Plan("/d", "file", False)),
    (FILE, "/src/file", Found(True, True, "/d"), "/d/.", Plan("/d", "file", False)),
    # directory source
    (DIR, "/src/dir", Found(False, False, "/new"), "/new", Plan("/", "new", False)),
    (DIR, "/src/dir/.", Found(False, False, "/new"), "/new", Plan("/", "new", False)),
    (DIR, "/src/dir", Found(True, True, "/d"), "/d", Plan("/d", "dir", False)),
    (DIR, "/src/dir/", Found(True, True, "/d"), "/d", Plan("/d", "dir", False)),
    (DIR, "/src/dir/.", Found(True, True, "/d"), "/d", Plan("/d", "", True)),
    # a dangling symlink destination resolved to its target
    (FILE, "/src/file", Found(False, False, "/tmp/nonesuch1"), "/tmp/d1/x", Plan("/tmp", "nonesuch1", False)),
])
def test_plan_copy(src: Found, src_path: str, dst: Found, dst_path: str, plan: Plan) -> None:
    assert plan_copy(src, path_form(src_path), dst, path_form(dst_path), dst_path, WHERE) == plan


def test_plan_copy_errors() -> None:
    with pytest.raises(CopyError, match=f"^{DIR_ONTO_FILE}$"):
        plan_copy(DIR, path_form("/src/dir"), Found(True, False, "/etc/os-release"), path_form("/etc/os-release"),
                  "/etc/os-release", WHERE)
    with pytest.raises(CopyError) as info:
        plan_copy(FILE, path_form("/src/file"), Found(False, False, "/IdoNotExist"), path_form("/IdoNotExist/"),
                  "/IdoNotExist/", WHERE)
    assert str(info.value) == '"/IdoNotExist/" could not be found on container c: no such file or directory'


# ------------------------------------------------------------------ tar codec
def _ours(*members: tuple[Kind, str, Meta, bytes, str]) -> bytes:
    out = bytearray()
    for kind, name, meta, data, link in members:
        out += header(kind, os.fsencode(name), meta, os.fsencode(link)) + data + padding(len(data))
    return bytes(out + bytes(1024))


def test_our_tar_reads_back_in_tarfile() -> None:
    long_name = "d/" + "x" * 120 + "/" + "y" * 130
    blob = _ours((Kind.DIR, "d/", Meta(0o755, 1, 2, 100), b"", ""),
                 (Kind.FILE, long_name, Meta(0o4755, 70000, 3000000, 200, 3), b"abc", ""),
                 (Kind.SYMLINK, "d/l", Meta(0o777, 0, 0, 300), b"", "/" + "t" * 150),
                 (Kind.HARDLINK, "d/h", Meta(0o644, 0, 0, 300), b"", long_name))
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        got = {m.name: m for m in tar.getmembers()}
        assert got[long_name].size == 3 and got[long_name].mode == 0o4755
        assert (got[long_name].uid, got[long_name].gid, got[long_name].mtime) == (70000, 3000000, 200)
        assert tar.extractfile(long_name).read() == b"abc"  # type: ignore[union-attr]
        assert got["d/l"].linkname == "/" + "t" * 150 and got["d/l"].issym()
        assert got["d/h"].islnk() and got["d/h"].linkname == long_name
        assert tar.getmember("d").isdir()


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz"])
def test_reader_reads_tarfile_formats_and_compressions(fmt: int, compression: str) -> None:
    buf = io.BytesIO()
    name = "n" * 90 + "/" + "m" * 90
    with tarfile.open(fileobj=buf, mode=f"w:{compression}", format=fmt) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid, info.mtime = 5, 0o640, 1042, 1043, 12345
        tar.addfile(info, io.BytesIO(b"hello"))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "target"
        tar.addfile(link)
    reader = TarReader(open_archive(io.BytesIO(buf.getvalue())))
    first = next(reader)
    assert (first.kind, first.name, first.meta.mode, first.meta.uid, first.meta.gid, first.meta.mtime) == \
        (Kind.FILE, name, 0o640, 1042, 1043, 12345)
    chunks: list[bytes] = []
    reader.copy_data(chunks.append)
    assert b"".join(chunks) == b"hello"
    second = next(reader)
    assert (second.kind, second.name, second.link) == (Kind.SYMLINK, "link", "target")
    assert list(reader) == []


@pytest.mark.parametrize("data", [b"", b"just some text, not a tar archive\n" * 40, bytes(4096)])
def test_reader_refuses_what_is_not_a_tar(data: bytes) -> None:
    with pytest.raises(CopyError, match="^source must be a \\(compressed\\) tar archive"):
        list(TarReader(open_archive(io.BytesIO(data))))
