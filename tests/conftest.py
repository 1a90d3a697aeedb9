"""Shared fixtures: every test gets its own store and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kernelext import Runtime
from kernelext.cli.launch import ENV_DIR
from kernelext.oci.monitor import process_start_time
from kernelext.rootless import is_rootless
from kernelext.storage.trash import TRASH_DIR

ROOTLESS = is_rootless()
CONMON_GRACE_S = 10.0
#: Features a normal user cannot have (CRIU, the freezer): tests/test_rootless.py checks their refusals.
needs_root = pytest.mark.skipif(ROOTLESS, reason="needs root (rootless refusals: tests/test_rootless.py)")
#: Fixtures that run real runc, conmon, CRIU, skopeo or a browser: a test using one is an integration test.
INTEGRATION_FIXTURES = frozenset({"store", "runtime", "registry", "pushed", "lab", "ip"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark integration tests by the fixtures they use, so ``-m "not integration"`` is the fast loop
    that needs neither root nor runc (modules whose every test runs the real tools say so themselves)."""
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def _mounts_under(base: Path, mountinfo: Path = Path("/proc/self/mountinfo"), fstype: str | None = None) -> list[str]:
    """Mount points under ``base`` (of one file system type: mountinfo's field after the " - ")."""
    with open(mountinfo) as f:
        entries = [line.split() for line in f]
    return [e[4] for e in entries if e[4].startswith(str(base)) and fstype in (None, e[e.index("-") + 1])]


def processes(match: Callable[[list[bytes]], bool]) -> set[int]:
    """Live (non-zombie) processes whose argument vector ``match`` accepts."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or process_start_time(int(entry)) is None:
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if match(argv):
            found.add(int(entry))
    return found


def _conmons_for(base: Path) -> set[int]:
    return processes(lambda argv: os.path.basename(argv[0]) == b"conmon" and any(bytes(base) in a for a in argv))


def forwarders(container_ids: set[str] | None = None) -> set[int]:
    """Live port forwarder processes: on the machine, or of these containers."""
    return processes(lambda argv: os.path.basename(argv[0]).startswith(b"kernelext-portfwd") and (
        container_ids is None or (len(argv) > 1 and argv[1].decode() in container_ids)))


def forkservers(directory: str | Path) -> set[int]:
    """The CLI's fork servers with their sockets in ``directory``."""
    return processes(lambda argv: b"kernelext.cli.forkserver" in b" ".join(argv)
                     and any(a.startswith(bytes(Path(directory)) + b"/") for a in argv))


@pytest.fixture(scope="session", autouse=True)
def private_forkserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The CLI commands of this session use their own fork server, stopped at the end."""
    directory = tmp_path_factory.mktemp("forkserver")
    directory.chmod(0o700)
    previous = os.environ.get(ENV_DIR)
    os.environ[ENV_DIR] = str(directory)
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(ENV_DIR)
        else:
            os.environ[ENV_DIR] = previous
        for pid in forkservers(directory):
            os.kill(pid, signal.SIGTERM)
        assert wait_until(lambda: not forkservers(directory)), "a fork server outlived SIGTERM"


@dataclass
class Store:
    """A private store: its runtime and the CLI pointed at it."""

    base: Path
    runtime: Runtime

    @property
    def args(self) -> list[str]:
        return ["--root", str(self.runtime.opts.root), "--runroot", str(self.runtime.opts.runroot)]

    def cli(self, *argv: str, timeout: float = 60, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kernelext", *self.args, *argv], capture_output=True,
                              text=True, timeout=timeout, input=None if input is None else input.decode())

    def runc_containers(self) -> list[str]:
        root = self.runtime.opts.runc_root
        return sorted(os.listdir(root)) if root.exists() else []


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    rt = Runtime(tmp_path / "root", tmp_path / "run")
    st = Store(tmp_path, rt)
    try:
        yield st
    finally:
        for ctr in rt.list():
            try:
                ctr.remove(force=True)
            except Exception:  # noqa: BLE001, S110 - best effort; the checks below report leaks
                pass
        rt.close()
    trash = rt.opts.root / TRASH_DIR
    # A CLI command's child may still be emptying it: its command returned as soon as the outcome was final.
    assert wait_until(lambda: not trash.exists() or os.listdir(trash) == []), "removed containers' files not deleted"
    # Network namespaces first: their mounts (nsfs) are the ones a forgotten clean-up path leaves.
    assert _mounts_under(tmp_path, fstype="nsfs") == [], "leftover network namespace mounts"
    netns_dir = rt.opts.runroot / "netns"
    assert not netns_dir.exists() or os.listdir(netns_dir) == [], "leftover network namespace files"
    assert _mounts_under(tmp_path, rt.namespace.mountinfo()) == [], "leftover mounts"
    assert st.runc_containers() == [], "leftover runc containers"
    # conmon outlives its container by the exit command's run time.
    deadline = time.monotonic() + CONMON_GRACE_S
    while _conmons_for(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _conmons_for(tmp_path) == set(), "leftover conmon processes"
    # Only this store's (any container it ever had): other tests may run beside this one.
    assert forwarders({event.id for event in rt.events.read()}) == set(), "leftover port forwarder processes"
    if ROOTLESS:
        rt.namespace.stop()  # the store's pause process: a user keeps it, a test must not


@pytest.fixture
def runtime(store: Store) -> Runtime:
    return store.runtime


@pytest.fixture
def ip(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An IPython shell with the magics loaded, on the test's store."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("KERNELEXT_ROOT", str(store.runtime.opts.root))
    monkeypatch.setenv("KERNELEXT_RUNROOT", str(store.runtime.opts.runroot))
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kernelext")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "kernelext")
