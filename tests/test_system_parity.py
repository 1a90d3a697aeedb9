"""Commands as podman's wider system tests use them (issue 17): ``images``' ``after`` filter, template
pipelines, ``rmi --force`` of a missing image (010-images), ``mount --notruncate`` (060-mount), tmpfs
copy-up (065-cp), ``{{.CreatedAt}}`` and ``load``'s message for what it cannot read (110-history, 120-load)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kernelext.cli.template import Template, TemplateError

from conftest import Store, needs_root


def test_template_pipelines_are_function_calls() -> None:
    assert Template.parse("{{.ID| upper}}", "images").render({"ID": "abc1"}) == "ABC1"
    assert Template.parse("{{ .ID | lower }}-{{upper .ID}}", "images").render({"ID": "Ab"}) == "ab-AB"
    assert Template.parse('{{"a|b"}}', "images").render({}) == "a|b"  # a literal's bar is no pipe
    with pytest.raises(TemplateError, match='function "nosuch" not defined'):
        Template.parse("{{.ID | nosuch}}", "images")


@needs_root
def test_after_filter_and_rmi_force_of_a_missing_image(store: Store) -> None:
    rt = store.runtime
    base = rt.image("busybox").id
    opts = ["--noheading", "--no-trunc", "--format", "{{.ID}}--{{.Repository}}:{{.Tag}}"]
    assert store.cli("images", "--noheading", f"--filter=after={base}").stdout == ""
    assert store.cli("run", "--name", "tiny", "busybox", "true").returncode == 0
    new = rt.commit("tiny", "mynewimage").id
    for key in ("after", "since"):
        shown = store.cli("images", *opts, f"--filter={key}={base}")
        assert shown.stdout == f"sha256:{new}--localhost/mynewimage:latest\n", shown.stderr
    assert store.cli("images", *opts, "--filter=before=mynewimage").stdout == \
        f"sha256:{base}--localhost/busybox:latest\n"

    missing = store.cli("image", "rm", "bogus")
    assert (missing.returncode, missing.stderr) == (1, "Error: bogus: image not known\n")
    forced = store.cli("image", "rm", "--force", "bogus")
    assert (forced.returncode, forced.stdout, forced.stderr) == (0, "", "")
    assert store.cli("tag", "busybox", "foo").returncode == 0
    both = store.cli("image", "rm", "--force", "bogus", "foo")
    assert (both.returncode, both.stdout) == (0, "Untagged: localhost/foo:latest\n")  # only a name: "tiny" stays
    assert store.cli("rm", "tiny").returncode == 0


@needs_root
def test_mount_lists_full_ids_with_notruncate(store: Store) -> None:
    assert store.cli("run", "--name", "m", "busybox", "sh", "-c", "echo hi > /hi").returncode == 0
    path = store.cli("mount", "m").stdout.strip()
    ctr = store.runtime.get("m")
    assert store.cli("mount").stdout == f"{ctr.short_id}  {path}\n"
    assert store.cli("mount", "--notruncate").stdout == f"{ctr.id}  {path}\n"
    assert store.cli("umount", "m").returncode == 0 and store.cli("mount").stdout == ""
    assert store.cli("rm", "m").returncode == 0


@needs_root
def test_a_tmpfs_starts_with_what_it_covers(store: Store, tmp_path: Path) -> None:
    """podman's tmpcopyup (065-cp): a file copied into a created container's /tmp is there once a tmpfs covers
    /tmp; ``notmpcopyup`` leaves the tmpfs empty."""
    (tmp_path / "file").write_text("copied up\n")
    assert store.cli("create", "--mount", "type=tmpfs,dst=/tmp", "--name", "t", "busybox", "sleep", "60").returncode == 0
    assert store.cli("cp", str(tmp_path / "file"), "t:/tmp").returncode == 0
    assert store.cli("start", "t").returncode == 0
    assert store.cli("exec", "t", "cat", "/tmp/file").stdout == "copied up\n"
    assert "tmpfs /tmp " in store.cli("exec", "t", "cat", "/proc/mounts").stdout  # a tmpfs, filled
    for step in ("checkpoint", "restore"):  # runc restores the tmpfs from CRIU's image, not copied up again
        assert store.cli("container", step, "t").returncode == 0
    assert store.cli("exec", "t", "cat", "/tmp/file").stdout == "copied up\n"
    assert store.cli("rm", "-f", "-t", "0", "t").returncode == 0
    assert store.cli("run", "--rm", "--tmpfs", "/etc", "busybox", "grep", "-c", "root", "/etc/passwd").stdout == "1\n"
    empty = store.cli("run", "--rm", "--tmpfs", "/etc:rw,notmpcopyup", "busybox", "ls", "-A", "/etc")
    assert (empty.returncode, empty.stdout) == (0, ""), empty.stderr


def test_go_time_is_time_unix_string(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from kernelext.units import go_time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert go_time(1655316706.512) == "2022-06-15 18:11:46 +0000 UTC"
    finally:
        monkeypatch.undo()
        time.tzset()


@needs_root
def test_images_created_at_and_an_unreadable_archive(store: Store, tmp_path: Path) -> None:
    store.runtime.image("busybox")  # the built-in image, made on first use
    shown = store.cli("image", "list", "--format", "{{.CreatedSince}}--{{.CreatedAt}}", "busybox").stdout
    assert re.fullmatch(r"[0-9].* ago--[0-9]+-[0-9]+-[0-9]+ [0-9:]+ [+-][0-9]{4} \S+\n", shown), shown
    listed = json.loads(store.cli("images", "-a", "--format", "json").stdout)
    assert re.fullmatch(r"[0-9-]+T[0-9:.]+Z", listed[0]["CreatedAt"])  # the JSON keeps RFC 3339
    invalid = tmp_path / "invalid"
    invalid.write_text("not an image\n")
    for argv, given in ((["load", "-i", str(invalid)], None), (["load"], b"not an image\n")):
        proc = store.cli(*argv, input=given)
        assert proc.returncode == 125 and proc.stderr.count("\n") == 1
        assert proc.stderr.startswith("Error: payload does not match any of the supported image formats: ")
    assert store.runtime.list_images() == [store.runtime.image("busybox")]


@needs_root
def test_volumes_as_podmans_160_volumes_uses_them(store: Store, tmp_path: Path) -> None:
    for name in ("volume_1_x", "volume_2_x"):
        assert store.cli("volume", "create", name).returncode == 0
    names = ["volume", "ls", "--format", "{{.Name}}", "--filter"]
    assert store.cli(*names, "name=volume_1.+").stdout == "volume_1_x\n"  # a regular expression, found
    assert store.cli(*names, "name=volume_1*").stdout == "volume_1_x\nvolume_2_x\n"  # "_1*": "_" then any "1"s
    assert store.cli("volume", "ls", "--noheading").stdout.split() == ["local", "volume_1_x", "local", "volume_2_x"]
    assert store.cli("volume", "ls").stdout.splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"]
    gone = store.cli("volume", "rm", "--force", "bogus")
    assert (gone.returncode, gone.stdout, gone.stderr) == (0, "", "")
    assert store.cli("volume", "rm", "bogus").returncode == 1

    host = tmp_path / "v1"
    host.mkdir()
    assert store.cli("run", "--rm", "-v", f"{host}:/vol1", "-v", f"{host}:/vol1", "busybox", "true").returncode == 0
    assert store.cli("run", "--rm", "--tmpfs", "/t", "--tmpfs", "/t", "busybox", "true").returncode == 0
    clash = store.cli("run", "--rm", "-v", "volume_1_x:/vol1", "-v", "volume_2_x:/vol1", "busybox", "true")
    assert (clash.returncode, clash.stderr) == (125, "Error: /vol1: duplicate mount destination\n")
    assert store.cli("volume", "rm", "volume_1_x", "volume_2_x").returncode == 0
    shown = store.cli("info", "--format", "{{.Store.GraphRoot}} {{.Store.RunRoot}}").stdout
    assert shown == f"{store.runtime.opts.root} {store.runtime.opts.runroot}\n"


@needs_root
def test_import_as_podmans_125_import_uses_it(store: Store, tmp_path: Path) -> None:
    assert store.cli("run", "--name", "src", "busybox", "sh", "-c", "echo random > /random.txt").returncode == 0
    archive = tmp_path / "archive.tar"
    assert store.cli("export", "src", "-o", str(archive)).returncode == 0
    assert store.cli("rm", "src").returncode == 0
    plain = store.cli("import", "-q", str(archive))  # no name: a dangling image, its ID printed
    assert plain.returncode == 0 and store.runtime.image(plain.stdout.strip()).dangling, plain.stderr
    assert store.cli("run", "--rm", plain.stdout.strip(), "cat", "/random.txt").stdout == "random\n"
    piped = subprocess.run([sys.executable, "-m", "kernelext", *store.args, "import", "-q", "-",
                            "localhost/fromstdin:t1"], stdin=archive.open("rb"), capture_output=True, timeout=60)
    assert piped.returncode == 0 and store.runtime.image("fromstdin:t1").id == piped.stdout.decode().strip()
    assert store.cli("run", "--rm", "fromstdin:t1", "cat", "/random.txt").stdout == "random\n"
    assert list((store.runtime.opts.root).glob(".import-*")) == []  # the spool of stdin is gone
    for image in (plain.stdout.strip(), "fromstdin:t1"):  # by ID, by name
        assert store.cli("rmi", "-f", image).returncode == 0


@needs_root
def test_an_image_saved_by_id_loads_without_a_name(store: Store, tmp_path: Path) -> None:
    """podman's 120-load: ``save ID`` records no name, ``save NAME`` that name (not the image's first)."""
    rt = store.runtime
    image_id = rt.image("busybox").id
    assert store.cli("tag", "busybox", "second").returncode == 0
    by_id, by_name = tmp_path / "by-id.tar", tmp_path / "by-name.tar"
    assert store.cli("save", image_id, "-o", str(by_id)).returncode == 0
    assert store.cli("save", "second", "-o", str(by_name)).returncode == 0
    assert store.cli("rmi", "-f", image_id).returncode == 0
    loaded = store.cli("load", "-i", str(by_id))
    assert loaded.stdout.startswith("Loaded image: sha256:") and rt.image(loaded.stdout.split(":")[-1].strip()).dangling
    assert store.cli("load", "-q", "-i", str(by_name)).stdout == "localhost/second:latest\n"


@needs_root
def test_history_created_at_matches_the_image_list(store: Store) -> None:
    """podman's 110-history 4: ``{{.CreatedSince}}--{{.CreatedAt}}`` of history's newest step and of the list agree;
    history's JSON keeps RFC 3339."""
    store.runtime.image("busybox")
    template = "{{.CreatedSince}}--{{.CreatedAt}}"
    listed = store.cli("image", "list", "--format", template, "busybox").stdout.strip()
    steps = store.cli("image", "history", "--format", template, "busybox").stdout.splitlines()
    assert steps[0] == listed  # the newest step: the image itself
    shown = json.loads(store.cli("history", "--format", "json", "busybox").stdout)
    assert re.fullmatch(r"[0-9-]+T[0-9:.]+Z", shown[-1]["created"])
