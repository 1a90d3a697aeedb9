"""``container clone`` (podman's): a new container from another's configuration, on real runc."""

from __future__ import annotations

import json

from kernelext import ContainerStateError
from kernelext import ContainerStatus as S
from kernelext.domain import containers as domain

from conftest import Store

MB = 1 << 20


def test_clone_copies_the_configuration(store: Store) -> None:
    rt = store.runtime
    orig = rt.run("busybox", ["sh", "-c", "echo $GREETING > /tmp/g; sleep 1000"], name="orig", env=["GREETING=hi"],
                  memory="64m", labels={"team": "a"})
    done = store.cli("container", "clone", "orig")
    assert done.returncode == 0, done.stderr
    clone = rt.get("orig-clone")
    assert clone.id == done.stdout.strip() and clone.id != orig.id and clone.status is S.CONFIGURED
    mine, theirs = clone.config.to_json(), orig.config.to_json()
    for key in ("id", "name", "created_at"):
        mine.pop(key), theirs.pop(key)
    assert mine == theirs
    assert store.cli("container", "clone", "orig").returncode == 0 and rt.exists("orig-clone1")  # podman's names
    # --run with new limits: the clone runs the same command under them.
    done = store.cli("container", "clone", "--run", "-m", "32m", "--cpus", "0.5", "orig", "small")
    assert done.returncode == 0, done.stderr
    small = rt.get("small")
    assert small.status is S.RUNNING and small.exec_run(["cat", "/tmp/g"]).output.strip() == b"hi"
    host = json.loads(store.cli("inspect", "small").stdout)[0]["HostConfig"]
    assert host["Memory"] == 32 * MB and host["NanoCpus"] == 500_000_000
    assert orig.config.resources.memory == 64 * MB  # the original keeps its own


def test_clone_destroy(store: Store) -> None:
    rt = store.runtime
    orig = rt.run("busybox", ["sleep", "1000"], name="orig")
    before = sorted(c.name for c in rt.list())
    refused = store.cli("container", "clone", "--destroy", "orig", "copy")
    assert refused.returncode == 125 and refused.stderr.startswith("Error: cannot remove container")
    assert sorted(c.name for c in rt.list()) == before  # refused before anything was made
    try:
        domain.clone(rt, "orig", name="copy", destroy=True)
    except ContainerStateError:
        pass
    else:
        raise AssertionError("a running original was destroyed without force")
    copy = domain.clone(rt, "orig", name="copy", destroy=True, force=True, run=True)
    assert not rt.exists(orig.id) and copy.status is S.RUNNING
    assert store.cli("container", "clone", "missing").returncode == 125
