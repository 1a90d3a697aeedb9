"""Images in files and directories as podman's ``pull``, ``run``, ``create`` and ``push`` take them
(``docker-archive:PATH``, ``oci-archive:PATH``, ``dir:PATH``, ``oci:PATH``), ``commit`` keeping the
container's entrypoint, and podman's image events (issue 17: podman's 030-run 11 and 090-events 3), on real
skopeo, runc and a loopback registry."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path
from typing import Any

from conftest import Store, needs_root
from registry import Registry, registry  # noqa: F401 - the fixture


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@needs_root
def test_run_and_create_from_a_docker_archive(store: Store, tmp_path: Path) -> None:
    assert _ok(store.cli("run", "--name", "myc", "--entrypoint", '["/bin/echo","magic42"]', "busybox")) == "magic42\n"
    _ok(store.cli("commit", "-q", "myc", "myi"))
    archive = tmp_path / "archive.tar"
    assert _ok(store.cli("save", "--quiet", "myi", "-o", str(archive))) == ""
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()  # podman's default format: docker-archive
    _ok(store.cli("rmi", "myi"))
    _ok(store.cli("rm", "myc"))

    ran = store.cli("run", f"docker-archive:{archive}")  # re-imported, then run: its entrypoint came along
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "magic42\n", "")  # a pull's lines: on a terminal
    assert store.runtime.image("myi").config.entrypoint == ["/bin/echo", "magic42"]
    _ok(store.cli("rm", "-a"))
    _ok(store.cli("rmi", "myi"))

    created = store.cli("create", "-q", f"docker-archive:{archive}")
    assert created.stderr == "" and len(created.stdout.strip()) == 64
    assert _ok(store.cli("start", "--attach", created.stdout.strip())) == "magic42\n"
    _ok(store.cli("rm", created.stdout.strip()))
    _ok(store.cli("rmi", "myi"))
    pulls = [e.name for e in store.runtime.events.read() if e.type == "image" and e.status == "pull"]
    assert pulls == [f"docker-archive:{archive}"] * 2  # podman names the reference given

    missing = store.cli("run", f"docker-archive:{tmp_path}/nosuch.tar")
    assert missing.returncode == 125 and missing.stderr.startswith("Error: ") and "nosuch.tar" in missing.stderr
    assert store.runtime.list() == [] and not store.runtime.image_exists("myi")


@needs_root
def test_push_to_files_and_podmans_image_events(store: Store, tmp_path: Path) -> None:
    rt = store.runtime
    pushed, tarball = tmp_path / "dir", tmp_path / "ball.tar"
    _ok(store.cli("save", "busybox", "-o", str(tarball)))  # the built-in image as layers: its ID is kept now
    _ok(store.cli("load", "-q", "-i", str(tarball)))
    image_id = rt.image("busybox").id
    since = str(rt.events.read()[-1].time + 0.001)  # after the load above
    pushed.mkdir()
    assert _ok(store.cli("push", "-q", "busybox", f"dir:{pushed}")) == ""
    assert (pushed / "manifest.json").is_file()
    _ok(store.cli("save", "busybox", "-o", str(tarball)))
    _ok(store.cli("load", "-q", "-i", str(tarball)))
    _ok(store.cli("pull", "-q", f"docker-archive:{tarball}"))
    _ok(store.cli("tag", "busybox", "registry.com/other"))
    _ok(store.cli("untag", "busybox", "registry.com/other"))
    _ok(store.cli("tag", "busybox", "registry.com/other"))
    _ok(store.cli("rmi", "-f", image_id))
    shown = _ok(store.cli("events", "--stream=false", "--filter", "type=image", "--since", since,
                          "--format", "{{.Status}}--{{.Name}}")).splitlines()
    assert shown == [f"push--dir:{pushed}", f"save--{tarball}", f"loadfromarchive--{tarball}",
                     f"pull--docker-archive:{tarball}", "tag--registry.com/other", "untag--registry.com/other:latest",
                     "tag--registry.com/other", "untag--localhost/busybox:latest",
                     "untag--registry.com/other:latest", f"remove--{image_id}"]
    lines = _ok(store.cli("events", "--stream=false", "--filter", "type=image", "--since", since)).splitlines()
    assert lines[0].endswith(f" image push {image_id} dir:{pushed}")  # podman's line: ID, then name
    assert lines[3].endswith(f" image pull  docker-archive:{tarball}")  # podman's pull event has no ID

    # What was pushed comes back: from the directory, and from an OCI layout with a name in it.
    assert _ok(store.cli("pull", "-q", f"dir:{pushed}")).strip() == image_id
    _ok(store.cli("push", "-q", image_id, f"oci:{tmp_path}/layout:kept"))
    _ok(store.cli("rmi", image_id))
    assert _ok(store.cli("pull", "-q", f"oci:{tmp_path}/layout:kept")).strip() == image_id
    assert rt.image("kept").id == image_id
    assert _ok(store.cli("run", "--rm", "kept", "echo", "back")) == "back\n"


@needs_root
def test_push_to_a_registry(store: Store, registry: Registry) -> None:  # noqa: F811
    ref = registry.ref("pushed:v1")
    proc = store.cli("push", "--tls-verify=false", "busybox", ref)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), proc.stderr  # progress: on a terminal
    _ok(store.cli("tag", "busybox", ref))
    _ok(store.cli("push", "-q", "--tls-verify=false", ref))  # no destination: the registry its name says
    _ok(store.cli("rmi", ref))
    assert _ok(store.cli("pull", "-q", "--tls-verify=false", ref)).strip() == store.runtime.image("busybox").id
    refused = store.cli("push", "-q", "--tls-verify=false", "nosuch", ref)
    assert refused.returncode == 125 and refused.stderr.startswith("Error: ")


def test_configs_are_written_as_go_marshals_them() -> None:
    """Byte for byte what skopeo writes when it converts a docker-archive's config to OCI (so the digest, the
    image's ID, survives podman's default save format)."""
    from kernelext.storage.ocilayout import go_config_json

    document = {"architecture": "amd64", "os": "linux", "created": "2026-12-07T00:00:57.448850+00:00",
                "history": [{"created_by": "sh -c 'a > b && c'", "created": "2026-05-07T20:33:45Z",
                             "empty_layer": False}],
                "rootfs": {"type": "layers", "diff_ids": ["sha256:55"]},
                "config": {"WorkingDir": "/", "Cmd": ["sh"], "Env": [], "Labels": {"b": "é", "a": "1"}}}
    assert go_config_json(document) == (
        '{"created":"2026-12-07T00:00:57.44885Z","architecture":"amd64","os":"linux",'
        '"config":{"Cmd":["sh"],"WorkingDir":"/","Labels":{"a":"1","b":"é"}},'
        '"rootfs":{"type":"layers","diff_ids":["sha256:55"]},'
        '"history":[{"created":"2026-05-07T20:33:45Z","created_by":"sh -c \'a \\u003e b \\u0026\\u0026 c\'"}]}'
    ).encode()


@needs_root
def test_push_in_a_cell(store: Store, ip: Any, tmp_path: Path) -> None:
    pushed = ip.run_line_magic("container", f"push -q busybox dir:{tmp_path}/cell")
    assert pushed.id == store.runtime.image("busybox").id and (tmp_path / "cell" / "manifest.json").is_file()
    assert ip.run_line_magic("container", f"pull -q dir:{tmp_path}/cell").id == pushed.id
