"""The `podman` shim and test image of tests/podman-system/ (podman's own system tests run through them).

Fast checks that the pieces work, without bats or podman's files: the shim drives kernelext on its private
store, the stand-in for podman's test image has what podman's tests look for, and the shim's three
housekeeping rewrites answer as podman's helpers.bash expects.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOTLESS, _mounts_under

SYSTEM = Path(__file__).resolve().parent / "podman-system"
IMAGE = "quay.io/libpod/testimage:20220615"

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(ROOTLESS, reason="image load (layered images) needs root for now")]


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    base = tmp_path_factory.mktemp("podman-shim")
    env = {**os.environ, "PODMAN_SHIM_STORE": str(base / "store"), "KERNELEXT_PYTHON": sys.executable,
           "KERNELEXT_FORKSERVER": "0", "PODMAN_TEST_IMAGE_FQN": IMAGE}
    archive = base / "testimage.tar"
    subprocess.run([sys.executable, str(SYSTEM / "testimage.py"), str(archive), IMAGE], check=True, env=env)
    loaded = subprocess.run([str(SYSTEM / "podman"), "load", "-i", str(archive)], capture_output=True, text=True,
                            env=env)
    assert loaded.returncode == 0, loaded.stderr
    try:
        yield base, env
    finally:
        subprocess.run([str(SYSTEM / "podman"), "rm", "--all", "--force"], env=env, capture_output=True)
        assert _mounts_under(base) == [], "the shim's store left mounts"


def shim(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SYSTEM / "podman"), *argv], capture_output=True, text=True, env=env, timeout=120)


def test_the_shim_is_kernelext_on_its_private_store(podman: tuple[Path, dict[str, str]]) -> None:
    base, env = podman
    run = shim(env, "run", "--name", "shimmed", IMAGE)
    assert run.returncode == 0 and run.stdout == "This container is intended for podman CI testing\n"
    assert (base / "store" / "root").is_dir() and (base / "store" / "run").is_dir()
    listed = shim(env, "ps", "-a", "--format", "{{.Names}}")
    assert listed.stdout.split() == ["shimmed"]
    assert shim(env, "rm", "shimmed").returncode == 0
    # podman's exit codes come through: an unknown subcommand is a usage error.
    assert shim(env, "no-such-command").returncode == 125


def test_the_test_image_has_what_podmans_tests_read(podman: tuple[Path, dict[str, str]]) -> None:
    _, env = podman
    run = shim(env, "run", "--rm", IMAGE, "sh", "-c",
               "pwd; cat testimage-id; stat -c %Y testimage-id; test -x pause && echo pause; "
               "command -v httpd nc top >/dev/null && echo tools; readlink /etc/os-release; grep -c ID= /etc/os-release")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n") == ["/home/podman", "20220615", "1600000000", "pause", "tools",
                                      "../usr/lib/os-release", "1", ""]
    paused = shim(env, "run", "-d", IMAGE, "/home/podman/pause")
    cid = paused.stdout.strip()
    logs = ""
    for _ in range(50):
        logs = shim(env, "logs", cid).stdout
        if logs:
            break
    assert logs == "Confirmed: testimage pause invoked as /home/podman/pause\n"
    assert shim(env, "rm", "-f", cid).returncode == 0


def test_the_housekeeping_calls_of_helpers_bash(podman: tuple[Path, dict[str, str]]) -> None:
    _, env = podman
    images = shim(env, "images", "--all", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    name, image_id = images.stdout.split()
    assert images.returncode == 0 and name == IMAGE and len(image_id) == 64
    assert shim(env, "ps", "--all", "--external", "--format", "{{.ID}} {{.Names}}").stdout == ""
    assert shim(env, "run", "-d", IMAGE, "sleep", "100").returncode == 0
    cleared = shim(env, "rm", "-t", "0", "--all", "--force", "--ignore")
    assert cleared.returncode == 0
    assert shim(env, "ps", "-a", "-q").stdout == ""
