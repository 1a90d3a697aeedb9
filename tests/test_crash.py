"""Kill it anywhere (issue #16): a command killed at any step leaves nothing that ``ps -a`` and ``rm -f``
do not account for, and no state that is not true.

Deterministic kills stop a command at each named step (``KERNELEXT_FAULT``,
:mod:`kernelext.faults`); timed kills hit commands at random moments with the
signals a terminal or a supervisor sends. The long form, with hundreds of
kills, is ``bench/kill_anywhere.py``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kernelext.core.state import DEFAULT_PIDS_LIMIT, ContainerStatus
from kernelext.faults import ENV_FAULT

from conftest import ROOTLESS, Store, needs_root, wait_until
from crashkit import STUBBORN, audit, audit_empty, conmons, eventually, kill_round, push_crash_image, runc_list, timed
from registry import Registry, registry  # noqa: F401 - the fixture

S = ContainerStatus
SETTLE_S = 5.0
#: The CLI's exit code after a Ctrl-C.
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Fault:
    """A command killed at ``point``; ``setup`` makes what it works on; ``then``: the state it leaves."""

    point: str
    argv: list[str]
    setup: list[list[str]] = field(default_factory=list)
    then: set[ContainerStatus] | None = None  # None: the container is gone


RUN = ["run", "-d", "--name", "victim", "busybox", *STUBBORN]
FAULTS = [
    Fault("create:recorded", ["create", "--name", "victim", "busybox", "true"]),
    Fault("init:mounted", RUN, then={S.CONFIGURED}),
    Fault("init:launched", RUN, then={S.CONFIGURED}),
    Fault("start:before-runc", RUN, then={S.CREATED}),
    Fault("start:after-runc", RUN, then={S.RUNNING}),
    Fault("stop:stopping", ["stop", "-t", "1", "victim"], [RUN], then={S.RUNNING}),
    Fault("stop:killed", ["stop", "-t", "1", "victim"], [RUN], then={S.STOPPED, S.EXITED}),
    Fault("remove:moved", ["rm", "-f", "victim"], [RUN]),
    Fault("remove:trashed", ["rm", "-f", "victim"], [RUN]),
]
ROOT_FAULTS = [
    Fault("checkpoint:dumped", ["checkpoint", "victim"], [["run", "-d", "--name", "victim", "busybox", "sleep", "100"]],
          then={S.EXITED}),
    # Killed with the history entry staged: the dump happened (the images go back to the bundle), no entry.
    Fault("checkpoint:entry-staged", ["checkpoint", "victim"],
          [["run", "-d", "--name", "victim", "busybox", "sleep", "100"]], then={S.EXITED}),
    Fault("restore:launched", ["restore", "victim"],
          [["run", "-d", "--name", "victim", "busybox", "sleep", "100"], ["checkpoint", "victim"]], then={S.RUNNING}),
]


def _cli_killed_at(store: Store, fault: Fault) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, ENV_FAULT: fault.point}
    return subprocess.run([sys.executable, "-m", "kernelext", *store.args, *fault.argv], capture_output=True,
                          text=True, timeout=120, env=env)


def _settled(store: Store) -> list[str]:
    return eventually(lambda: audit(store.runtime), SETTLE_S)


@pytest.mark.parametrize("fault", [*FAULTS, *(pytest.param(f, marks=needs_root) for f in ROOT_FAULTS)],
                         ids=lambda f: f.point)
def test_killed_at_each_step(store: Store, fault: Fault) -> None:
    for argv in fault.setup:
        assert store.cli(*argv).returncode == 0
    proc = _cli_killed_at(store, fault)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)  # it did reach the point
    assert _settled(store) == []
    listed = {c.name: c for c in store.runtime.list()}
    if fault.then is None:
        assert "victim" not in listed
        assert store.cli("create", "--name", "victim", "busybox", "true").returncode == 0  # the name is free
    else:
        assert listed["victim"].status in fault.then
        assert store.cli("inspect", "--format", "{{.State.Status}}", "victim").stdout.strip() in \
            {s.value for s in fault.then}
        if S.RUNNING in fault.then:  # a running container is stoppable as ever (not stuck in "stopping")
            stopped = store.cli("stop", "-t", "0", "victim")
            assert stopped.returncode == 0, stopped.stderr
    removed = store.cli("rm", "-fa")
    assert removed.returncode == 0, removed.stderr
    assert audit_empty(store.runtime) == []


@pytest.mark.parametrize("point, then", [("init:launched", S.CONFIGURED), ("start:before-runc", S.CREATED),
                                         ("start:after-runc", S.RUNNING)])
def test_interrupted_launch(store: Store, point: str, then: ContainerStatus) -> None:
    """A Ctrl-C part-way through a start unwinds in the command itself: at once, no conmon of the undone
    launch is left to write an exit file that the next run would take for its own (it made a running
    container look stopped)."""
    env = {**os.environ, ENV_FAULT: f"{point}@SIGINT"}
    proc = subprocess.run([sys.executable, "-m", "kernelext", *store.args, *RUN], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == EXIT_INTERRUPTED, (proc.returncode, proc.stderr)
    victim = store.runtime.get("victim")
    assert victim.status is then
    if then is S.CONFIGURED:  # not eventually: the command itself took it all down before it returned
        assert conmons(store.runtime) == {}
        assert not store.runtime.opts.exit_file(victim.id).exists()
    if then is not S.RUNNING:
        assert store.cli("start", "victim").returncode == 0
    assert _settled(store) == []
    assert store.runtime.get("victim").status is S.RUNNING
    assert store.cli("rm", "-f", "victim").returncode == 0
    assert audit_empty(store.runtime) == []


def test_remove_finishes_a_removal_that_died(store: Store) -> None:
    """Finding 3: a remove killed after moving the directory away left a container no rm could remove."""
    assert store.cli(*RUN).returncode == 0
    assert store.cli("create", "--name", "after", "busybox", "true").returncode == 0
    proc = _cli_killed_at(store, Fault("remove:moved", ["rm", "-f", "victim"]))
    assert proc.returncode == -signal.SIGKILL
    removed = store.cli("rm", "-fa")
    assert removed.returncode == 0, removed.stderr
    assert "after" in removed.stdout or store.runtime.list() == []
    assert audit_empty(store.runtime) == []


#: Timed kills in CI; bench/kill_anywhere.py runs hundreds.
CI_KILLS = 64


@pytest.mark.skipif(ROOTLESS, reason="the rootless suite runs the deterministic kills")
def test_timed_kills(store: Store) -> None:
    seed = int(os.environ.get("KERNELEXT_KILL_SEED", "16"))
    rng = random.Random(seed)
    commands = timed()
    for i in range(CI_KILLS):
        argv, window = commands[i % len(commands)]
        kill_round(store.args, rng, argv, window)
        problems = _settled(store)
        assert problems == [], f"seed {seed}, kill {i} of {argv}: {problems}"
    assert wait_until(lambda: store.cli("rm", "-fa").returncode == 0)
    assert audit_empty(store.runtime) == []
    assert runc_list(store.runtime) == {}


@dataclass(frozen=True)
class ImageFault:
    """An image command killed at ``point`` (``{ref}``: the registry image); ``setup`` runs before it."""

    point: str
    argv: list[str]
    setup: list[list[str]] = field(default_factory=list)


PULL = ["pull", "--tls-verify=false", "{ref}"]
COMMITTED = [["run", "--name", "c", "busybox", "sh", "-c", "echo x > /x"]]
IMAGE_FAULTS = [
    ImageFault("pull:unpacked", PULL),
    ImageFault("image:placed", PULL),
    ImageFault("commit:layer-written", ["commit", "c", "snap"], COMMITTED),
    ImageFault("image:placed", ["commit", "c", "snap"], COMMITTED),
    ImageFault("image:unrecorded", ["rmi", "{ref}"], [PULL]),
    ImageFault("image:placed", ["create", "busybox"]),  # the built-in image made on first use
]


@pytest.mark.parametrize("fault", IMAGE_FAULTS, ids=lambda f: f"{f.point}-{f.argv[0]}")
def test_image_command_killed_at_each_step(store: Store, registry: Registry, tmp_path: Path,  # noqa: F811
                                           fault: ImageFault) -> None:
    """A pull, commit or removal killed at each step leaves nothing that ``images`` and the next command do
    not account for; the next command does what the killed one did not."""
    ref = push_crash_image(registry.host, tmp_path / "layout")
    for argv in fault.setup:
        proc = store.cli(*(a.format(ref=ref) for a in argv))
        assert proc.returncode == 0, proc.stderr
    argv = [a.format(ref=ref) for a in fault.argv]
    proc = _cli_killed_at(store, Fault(fault.point, argv))
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    left = sorted(os.listdir(store.runtime.opts.root / "images"))
    assert any(name.startswith(".tmp-") for name in left), left  # the kill left its mark
    assert _settled(store) == []  # the audit lists the images first: that cleans up, as `images` does
    if argv[0] == "rmi":  # the record went first: the removal is finished, not undone
        assert not store.runtime.image_exists(ref)
    else:
        again = store.cli(*argv)  # the next command does the work
        assert again.returncode == 0, again.stderr
    assert _settled(store) == []
    removed = store.cli("rm", "-fa")
    assert removed.returncode == 0, removed.stderr
    assert store.cli("image", "prune", "-a", "-f").returncode == 0
    assert audit_empty(store.runtime) == []


#: Timed kills during pulls in CI (a pull and a removal each round).
CI_PULL_KILLS = 12


@pytest.mark.skipif(ROOTLESS, reason="the rootless suite runs the deterministic kills")
def test_timed_kills_during_pulls(store: Store, registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    seed = int(os.environ.get("KERNELEXT_KILL_SEED", "16"))
    rng = random.Random(seed)
    ref = push_crash_image(registry.host, tmp_path / "layout")
    commands = [(argv, window) for argv, window in timed(ref) if argv[0] in ("pull", "rmi")]
    for i in range(CI_PULL_KILLS):
        argv, window = commands[i % len(commands)]
        kill_round(store.args, rng, argv, window)
        problems = _settled(store)
        assert problems == [], f"seed {seed}, kill {i} of {argv}: {problems}"
    pulled = store.cli("pull", "--tls-verify=false", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert store.cli("rmi", "-fa").returncode == 0
    assert audit_empty(store.runtime) == []


def _pids_cgroup(ctr_id: str) -> Path:
    v1 = Path("/sys/fs/cgroup/pids/kernelext") / ctr_id
    return v1 if v1.exists() else Path("/sys/fs/cgroup/kernelext") / ctr_id


@needs_root
def test_a_fork_loop_cannot_take_every_pid(store: Store) -> None:
    """Finding 6: a container gets podman's pids limit, so a fork loop stops at it, not at the host's."""
    default = store.runtime.run("busybox", ["sleep", "100"], name="default")
    assert default.inspect()["HostConfig"]["PidsLimit"] == DEFAULT_PIDS_LIMIT
    assert (_pids_cgroup(default.id) / "pids.max").read_text().strip() == str(DEFAULT_PIDS_LIMIT)
    limit = 24
    bomb = store.cli("run", "-d", "--name", "bomb", "--pids-limit", str(limit), "busybox", "sh", "-c",
                     "i=0; while [ $i -lt 200 ]; do sleep 100 & i=$((i+1)); done 2>/dev/null; sleep 100")
    assert bomb.returncode == 0, bomb.stderr
    ctr = store.runtime.get("bomb")
    cgroup = _pids_cgroup(ctr.id)
    assert wait_until(lambda: "max 0" not in (cgroup / "pids.events").read_text())  # forks were refused
    assert int((cgroup / "pids.current").read_text()) <= limit
    assert ctr.inspect()["HostConfig"]["PidsLimit"] == limit
    assert subprocess.run(["true"]).returncode == 0  # the host still forks
    unlimited = store.cli("create", "--pids-limit", "-1", "busybox", "true")
    assert store.runtime.get(unlimited.stdout.strip()).config.pids_limit == 0
