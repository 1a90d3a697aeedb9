"""A real registry on loopback for the image tests: Debian's ``docker-registry`` (CNCF Distribution)."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from loopback import free_port, stop

REGISTRY_BINARY = "/usr/bin/docker-registry"
START_TIMEOUT_S = 20.0
CONFIG = """version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@dataclass(frozen=True)
class Registry:
    host: str  # "127.0.0.1:PORT", the prefix of every reference pushed to it

    def ref(self, name: str) -> str:
        return f"{self.host}/{name}"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def available() -> bool:
    return shutil.which("skopeo") is not None and Path(REGISTRY_BINARY).exists()


@contextmanager
def serve(base: Path) -> Iterator[Registry]:
    """A registry on a free loopback port, its storage under ``base``; stopped on leaving."""
    port = free_port()
    config = base / "config.yml"
    config.write_text(CONFIG.format(storage=base / "storage", port=port))
    proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=(base / "registry.log").open("wb"))
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(f"http://127.0.0.1:{port}/v2/"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start: {(base / 'registry.log').read_text()}")
            time.sleep(0.05)
        yield Registry(f"127.0.0.1:{port}")
    finally:
        stop(proc, 10)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if not available():
        pytest.skip("needs skopeo and docker-registry (scripts/setup.sh installs them)")
    with serve(tmp_path_factory.mktemp("registry")) as running:
        yield running
