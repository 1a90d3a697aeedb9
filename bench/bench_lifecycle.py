"""Lifecycle speed: kernelext next to the floor (raw conmon + runc), in one run.

    sudo .venv/bin/python bench/bench_lifecycle.py [--runs N]

Measures, for a container running ``true``:
- floor: conmon + ``runc create/start/delete`` on a prepared bundle (what any
  conmon-based engine must do), and a plain ``runc run``;
- the in-process API: ``create`` + ``start`` + ``wait`` + ``remove``;
- the CLI: ``kernelext run --rm busybox true`` (Python start-up included),
  served by its fork server (kernelext.cli.launch) and, for comparison,
  without it (``KERNELEXT_FORKSERVER=0``: imports paid by every command);
- ``list`` and ``inspect`` with 200 containers in the store;
- RSS growth of a process that runs and removes 200 containers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kernelext import Runtime
from kernelext.cli.launch import ENV_DIR
from kernelext.oci.monitor import ExitWatcher, wait_until

STORE_CONTAINERS = 200
RUN_TMPFS = "/run"


def median_ms(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def start_forkserver(work: Path, warm_up: list[str]) -> Path:
    """A fork server of this run's own for the CLI's commands, started and warmed by running ``warm_up``."""
    directory = work / "forkserver"
    directory.mkdir(mode=0o700)
    os.environ[ENV_DIR] = str(directory)
    subprocess.run(warm_up, check=True, stdout=subprocess.DEVNULL)  # runs in-process and starts the server
    while not any(directory.glob("*.sock")):
        time.sleep(0.01)
    subprocess.run(warm_up, check=True, stdout=subprocess.DEVNULL)  # served: the server has imported it all
    return directory


def stop_forkserver(directory: Path) -> None:
    subprocess.run(["pkill", "-f", f"kernelext.cli.forkserver.*{directory}"], check=False)


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


class Floor:
    """conmon + runc on a bundle prepared once: the least any conmon-based engine does."""

    def __init__(self, rt: Runtime, work: Path) -> None:
        self.work = work
        self.rt = rt
        template = rt.create("busybox", ["true"])
        template.init()
        spec = json.loads((template.bundle / "config.json").read_text())
        rootfs = work / "rootfs"
        shutil.copytree(template.layer.lower, rootfs, symlinks=True)
        template.remove(force=True)
        spec["root"]["path"] = str(rootfs)
        spec["mounts"] = [m for m in spec["mounts"] if m["type"] != "bind"]
        spec["linux"]["cgroupsPath"] = "/kernelext-floor/ctr"
        for namespace in spec["linux"]["namespaces"]:
            namespace.pop("path", None)  # plain runc makes the network namespace kernelext prepares itself
        self.bundle = work / "bundle"
        self.bundle.mkdir()
        (self.bundle / "config.json").write_text(json.dumps(spec))
        self.runc_root = rt.opts.runroot / "floor-runc"
        self.exits = rt.opts.runroot / "floor-exits"
        self.exits.mkdir()
        self.n = 0

    def conmon_cycle(self) -> None:
        self.n += 1
        cid = f"floor{self.n}"
        persist = self.rt.opts.runroot / "floor-persist" / cid
        persist.mkdir(parents=True)
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [self.rt.opts.conmon, "--api-version", "1", "-c", cid, "-u", cid, "-r", self.rt.opts.runc,
                "--runtime-arg", f"--root={self.runc_root}", "-b", str(self.bundle), "-p",
                str(self.work / f"{cid}.pid"), "-n", cid, "--exit-dir", str(self.exits), "--persist-dir",
                str(persist), "--full-attach", "--socket-dir-path", str(self.work), "-l",
                f"k8s-file:{self.work / 'ctr.log'}", "--log-level", "warning", "--syslog=false",
                "--conmon-pidfile", str(self.work / f"{cid}.conmon")]
        env = dict(os.environ, _OCI_SYNCPIPE=str(child.fileno()))
        proc = subprocess.Popen(argv, env=env, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        child.close()
        parent.recv(4096)
        parent.close()
        proc.wait()
        runc = [self.rt.opts.runc, "--root", str(self.runc_root)]
        subprocess.run([*runc, "start", cid], check=True)
        exit_file = self.exits / cid
        with ExitWatcher(exit_file) as watcher:
            wait_until(exit_file.exists, watcher, 30)
        subprocess.run([*runc, "delete", "--force", cid], check=True)

    def runc_run(self) -> None:
        self.n += 1
        subprocess.run([self.rt.opts.runc, "--root", str(self.runc_root), "run", "--bundle", str(self.bundle),
                        f"raw{self.n}"], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kx-bench-"))
    # As the default store: persistent root on disk, runroot on tmpfs (/run).
    runroot = Path(tempfile.mkdtemp(prefix="kx-bench-", dir=RUN_TMPFS if os.path.isdir(RUN_TMPFS) else None))
    rt = Runtime(work / "root", runroot)
    try:
        rt.images.get("busybox")
        floor = Floor(rt, work / "floor")

        def api_cycle() -> None:
            ctr = rt.create("busybox", ["true"])
            ctr.start()
            ctr.wait()
            ctr.remove()

        cli = [str(Path(sys.executable).with_name("kernelext")), "--root", str(rt.opts.root), "--runroot",
               str(rt.opts.runroot), "run", "--rm", "busybox", "true"]

        def cli_cycle() -> None:
            subprocess.run(cli, check=True)

        def cli_cycle_alone() -> None:
            subprocess.run(cli, check=True, env=dict(os.environ, KERNELEXT_FORKSERVER="0"))

        for fn in (floor.conmon_cycle, api_cycle):  # warm caches once
            fn()
        start_forkserver(work, cli)
        results = {
            "floor: conmon + runc create/start/delete": median_ms(floor.conmon_cycle, args.runs),
            "floor: runc run": median_ms(floor.runc_run, args.runs),
            "API: create + start + wait + remove": median_ms(api_cycle, args.runs),
            "CLI: kernelext run --rm busybox true": median_ms(cli_cycle, args.runs),
            "CLI, fork server off (KERNELEXT_FORKSERVER=0)": median_ms(cli_cycle_alone, args.runs),
        }
        containers = [rt.create("busybox", ["true"]) for _ in range(STORE_CONTAINERS)]
        results[f"API: list() with {STORE_CONTAINERS} containers"] = median_ms(rt.list, args.runs)
        results[f"API: get(name).inspect() with {STORE_CONTAINERS} containers"] = median_ms(
            lambda: rt.get(containers[100].name).inspect(), args.runs)
        for ctr in containers:
            ctr.remove()
        before = rss_kb()
        for _ in range(STORE_CONTAINERS):
            api_cycle()
        growth_mb = (rss_kb() - before) / 1024

        floor_ms = results["floor: conmon + runc create/start/delete"]
        width = max(map(len, results))
        print(f"\n{'measurement'.ljust(width)}  median ms  vs conmon floor")
        for name, ms in results.items():
            ratio = f"{ms / floor_ms:.2f}x" if "with" not in name else ""
            print(f"{name.ljust(width)}  {ms:9.1f}  {ratio}")
        print(f"RSS growth after {STORE_CONTAINERS} create/start/wait/remove cycles: {growth_mb:.1f} MB")
    finally:
        for ctr in rt.list():
            ctr.remove(force=True)
        rt.close()
        stop_forkserver(work / "forkserver")
        subprocess.run(["rm", "-rf", str(work), str(runroot)], check=False)


if __name__ == "__main__":
    main()
