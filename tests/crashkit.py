"""Killing commands, and what a store then leaves on the host (issue #16).

Shared by the crash tests (tests/test_crash.py) and the long kill harness
(bench/kill_anywhere.py). :func:`kill_round` runs one CLI command and sends it
a signal at a random moment; after it, :func:`audit`
lists every process, mount, cgroup, network namespace, runc container or
directory of the store that ``ps -a`` does not account for, every state
that ``inspect`` reports but runc contradicts, and every image directory,
layer, blob or staging entry that ``images`` does not account for. An empty
list is the pass.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from kernelext import Runtime
from kernelext.core.state import ContainerStatus
from kernelext.errors import ImageFormatError
from kernelext.oci.runc import Runc
from kernelext.storage.ocilayout import read_layout
from kernelext.storage.trash import TRASH_DIR

from ocilayout import Layout, file, push

S = ContainerStatus
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "kernelext"
#: What runc's ``list`` says, and the states kernelext may record for it.
RUNC_AGREES = {"created": {S.CREATED}, "running": {S.RUNNING}, "paused": {S.PAUSED},
               "stopped": {S.STOPPED, S.STOPPING}}
#: conmon outlives its container by the exit command's run; the trash empties in the background.
SETTLE_S = 10.0


#: A container whose main process ignores the stop signal: a stop has to wait, then kill.
STUBBORN = ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]
#: (command, how long it may run before the kill): the commands of a lifecycle, in an order that keeps
#: the store busy: each may find the container in any state an earlier kill left.
TIMED = [
    (["run", "-d", "--name", "t", "busybox", *STUBBORN], 0.25),
    (["stop", "-t", "1", "t"], 1.2),
    (["start", "t"], 0.25),
    (["restart", "-t", "0", "t"], 0.4),
    (["kill", "t"], 0.15),
    (["rm", "-f", "t"], 0.25),
    (["create", "--name", "t", "busybox", *STUBBORN], 0.2),
    (["cp", "/etc/hostname", "t:/tmp/x"], 0.2),
]
#: The image commands, with the container ``t`` the lifecycle above leaves in any state.
IMAGE_TIMED = [
    (["commit", "t", "snap"], 0.6),
    (["rmi", "-f", "snap"], 0.3),
]
#: The image the harness pulls, removes and pulls again: layers of incompressible data, so that kills
#: land in the transfer and in the unpacking.
CRASH_IMAGE = "crash:latest"
DATA_LAYERS = 3
DATA_LAYER_BYTES = 4 << 20


def push_crash_image(registry_host: str, workdir: Path) -> str:
    """Push the pull's image to the registry; its reference."""
    layout = Layout(workdir)
    layout.add_image("crash", [[file(f"data{i}", os.urandom(DATA_LAYER_BYTES))] for i in range(DATA_LAYERS)],
                     config={"Cmd": ["sh"]})
    ref = f"{registry_host}/{CRASH_IMAGE}"
    push(layout, "crash", ref)
    return ref


def timed(pulled: str | None = None) -> list[tuple[list[str], float]]:
    """The lifecycle, commit and removal of images, and, with a registry image ``pulled``, its pull."""
    pulls = [(["pull", "--tls-verify=false", pulled], 1.5), (["rmi", "-f", pulled], 0.3)] if pulled else []
    return TIMED + IMAGE_TIMED + pulls


#: What a closed terminal, a supervisor, Ctrl-C and the OOM killer send.
KILL_SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT]


def kill_round(store_args: list[str], rng: random.Random, argv: list[str], window: float) -> signal.Signals:
    """Run one command and send it a signal at a random moment of its likely run time; the signal."""
    proc = subprocess.Popen([sys.executable, "-m", "kernelext", *store_args, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0, window))
    sig = rng.choice(KILL_SIGNALS)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return sig


def eventually(check: Callable[[], list[str]], timeout: float = SETTLE_S) -> list[str]:
    deadline = time.monotonic() + timeout
    while (problems := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return problems


def runc_list(rt: Runtime) -> dict[str, str]:
    """runc's containers of this store: ID -> status."""
    if not rt.opts.runc_root.exists():
        return {}
    # Asked of runc itself, not through kernelext's runtime seam: the audit must not trust the code it audits.
    runc = Runc(rt.opts.runc, rt.opts.runc_root, rt.namespace)
    proc = subprocess.run(runc.argv("list", "--format", "json"), capture_output=True, text=True, check=False)
    return {entry["id"]: entry["status"] for entry in json.loads(proc.stdout or "null") or []}


def _processes(predicate: Callable[[list[str]], bool]) -> dict[int, list[str]]:
    found = {}
    for proc in psutil.process_iter(["cmdline", "status"]):
        argv = proc.info["cmdline"] or []
        if argv and proc.info["status"] != psutil.STATUS_ZOMBIE and predicate(argv):
            found[proc.pid] = argv
    return found


def conmons(rt: Runtime) -> dict[int, str]:
    """Live conmons of this store: PID -> container ID."""
    root = str(rt.opts.root)
    found = _processes(lambda argv: os.path.basename(argv[0]) == "conmon" and any(root in a for a in argv))
    return {pid: argv[argv.index("-c") + 1] for pid, argv in found.items() if "-c" in argv}


def cgroups(ids: set[str]) -> dict[str, list[Path]]:
    """The cgroups of these containers that exist (cgroup v1: one per controller; v2: one)."""
    found: dict[str, list[Path]] = {}
    parents = [CGROUP_ROOT / CGROUP_PARENT, *CGROUP_ROOT.glob(f"*/{CGROUP_PARENT}")]
    for parent in parents:
        for ctr_id in ids:
            if (parent / ctr_id).is_dir():
                found.setdefault(ctr_id, []).append(parent / ctr_id)
    return found


def mounts_under(base: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[str]:
    with open(mountinfo) as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(base) + "/")]


def container_ids(rt: Runtime) -> set[str]:
    """Every container the store's events name (an image's pull event has no ID, as podman's)."""
    return {event.id for event in rt.events.read() if event.type == "container" and event.id}


def audit(rt: Runtime) -> list[str]:
    """Everything wrong with the store now, one line each (listing it first recovers abandoned operations,
    as ``ps -a`` does)."""
    problems: list[str] = []
    containers = {c.id: c for c in rt.list()}
    known_ids = container_ids(rt) | set(containers)
    for ctr_id, status in runc_list(rt).items():
        ctr = containers.get(ctr_id)
        if ctr is None:
            problems.append(f"runc has {ctr_id[:12]} ({status}), ps -a does not")
        elif ctr.status not in RUNC_AGREES.get(status, set()):
            problems.append(f"{ctr.name}: inspect says {ctr.status.value}, runc says {status}")
    runc_ids = set(runc_list(rt))
    for ctr in containers.values():
        if ctr.status in (S.CREATED, S.RUNNING, S.PAUSED) and ctr.id not in runc_ids:
            problems.append(f"{ctr.name}: inspect says {ctr.status.value}, runc does not know it")
    for pid, ctr_id in conmons(rt).items():
        ctr = containers.get(ctr_id)
        if ctr is None or ctr.status in (S.CONFIGURED, S.EXITED, S.REMOVING):
            problems.append(f"conmon {pid} of {ctr_id[:12]} lives, ps -a says "
                            f"{'nothing' if ctr is None else ctr.status.value}")
    for ctr_id, paths in cgroups(known_ids - runc_ids).items():
        problems.append(f"cgroup of {ctr_id[:12]} left: {paths[0]}")
    merged = {path for ctr in containers.values() for path in (str(ctr.layer.merged),)
              if ctr.state.mounted}
    namespace_mounts = rt.namespace.mountinfo()
    for mount in mounts_under(rt.opts.root, namespace_mounts):
        if mount not in merged:
            problems.append(f"mount left: {mount}")
    for mount in mounts_under(rt.opts.runroot, namespace_mounts):
        if not any(ctr_id in mount for ctr_id in containers):
            problems.append(f"mount left: {mount}")
    for folder in (rt.opts.root / "containers", rt.opts.root / "overlay"):
        for entry in (os.listdir(folder) if folder.exists() else []):
            if entry.removeprefix(".removing-") not in containers:
                problems.append(f"directory left: {folder / entry}")
    netns_dir = rt.opts.runroot / "netns"
    for entry in (os.listdir(netns_dir) if netns_dir.exists() else []):
        if entry not in containers:
            problems.append(f"network namespace left: {netns_dir / entry}")
    return problems + image_problems(rt)


def _listed(folder: Path) -> list[str]:
    return os.listdir(folder) if folder.is_dir() else []


def image_problems(rt: Runtime) -> list[str]:
    """What of the image store ``images`` does not account for (listing first cleans up after operations that
    died, as ``images`` does): staging entries (no command runs while the audit does), image directories
    without a record, records without their directory or layers, layers no image lists, blobs no layout names."""
    images = rt.images()
    root = rt.opts.root
    problems: list[str] = []
    blobs = root / "blobs" / "sha256"
    for folder in (root / "images", root / "layers", blobs):
        problems += [f"staging entry left: {folder / entry}" for entry in _listed(folder) if entry.startswith(".")]
    ids = {image.id for image in images}
    problems += [f"image directory without an image: {entry[:12]}" for entry in _listed(root / "images")
                 if not entry.startswith(".") and entry not in ids]
    layers: set[str] = set()
    needed: set[str] = set()
    for image in images:
        if not rt.opts.image_dir(image.id).is_dir():
            problems.append(f"image {image.short_id} has no directory")
        for diff_id in image.config.layers:
            layers.add(diff_id.removeprefix("sha256:"))
            if not (root / "layers" / diff_id.removeprefix("sha256:")).is_dir():
                problems.append(f"image {image.short_id} lacks its layer {diff_id[7:19]}")
        if image.layout is not None:
            try:
                needed.update(d.removeprefix("sha256:") for d in read_layout(image.layout, root / "blobs").digests)
            except ImageFormatError as exc:
                problems.append(f"image {image.short_id}: {exc}")
    problems += [f"layer no image lists: {entry[:12]}" for entry in _listed(root / "layers")
                 if not entry.startswith(".") and entry not in layers]
    problems += [f"blob no image names: {entry[:12]}" for entry in _listed(blobs)
                 if not entry.startswith(".") and entry not in needed]
    problems += [f"blob missing: {digest[:12]}" for digest in needed if not (blobs / digest).is_file()]
    return problems


def audit_empty(rt: Runtime) -> list[str]:
    """After ``rm -fa``: nothing of any container the store ever had may remain (given time to settle)."""
    def check() -> list[str]:
        problems = audit(rt)
        problems += [f"{c.name} still listed ({c.status.value})" for c in rt.list()]
        known = container_ids(rt)
        problems += [f"conmon {pid} of {ctr_id[:12]} lives" for pid, ctr_id in conmons(rt).items()]
        problems += [f"cgroup of {ctr_id[:12]} left" for ctr_id in cgroups(known)]
        trash = rt.opts.root / TRASH_DIR
        problems += [f"trash not emptied: {entry}" for entry in (os.listdir(trash) if trash.exists() else [])]
        return problems
    return eventually(check)
