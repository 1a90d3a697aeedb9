"""Rootless next to root (issue #7): the same start, stop and copy measurements, in one run.

    sudo .venv/bin/python bench/bench_rootless.py [--runs N] [--user kernelext-test]

Run as root: measures as root, then runs itself as the normal user (from the
copy of the checkout that scripts/setup-rootless.sh prepares, refreshed first)
and prints both with the ratio rootless / root. Each side uses a private store
(persistent root on disk, run directory beside it).

- start: ``create`` + ``start`` + ``wait`` + ``remove`` of a container running ``true``
- stop: ``stop(timeout=0)`` of a running ``sleep`` container
- copy in / out: a directory of small files, and one large file, with ``Runtime.copy``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_lifecycle import median_ms  # this folder's: the same measuring as the lifecycle bench

from kernelext import Runtime

REPO = Path(__file__).resolve().parent.parent
STAGE = Path(os.environ.get("KERNELEXT_ROOTLESS_STAGE", "/var/lib/kernelext-rootless-tests"))
SMALL_FILES = 1000
LARGE_MIB = 50


def stop_ms(rt: Runtime, runs: int) -> float:
    samples = []
    for _ in range(runs):
        ctr = rt.run("busybox", ["sleep", "1000"])
        t0 = time.perf_counter()
        ctr.stop(timeout=0)
        samples.append(time.perf_counter() - t0)
        ctr.remove()
    return statistics.median(samples) * 1000


def measure(runs: int, work: Path) -> dict[str, float]:
    """The measurements, as whoever runs this, in a store under ``work`` (left for the caller to delete)."""
    rt = Runtime(work / "root", work / "run")
    try:
        rt.images.get("busybox")

        def start_cycle() -> None:
            ctr = rt.create("busybox", ["true"])
            ctr.start()
            ctr.wait()
            ctr.remove()

        start_cycle()
        small = work / "small"
        small.mkdir()
        for i in range(SMALL_FILES):
            (small / f"f{i:05d}").write_bytes(b"x" * 512)
        large = work / "large.bin"
        with large.open("wb") as f:
            f.write(os.urandom(1 << 20) * LARGE_MIB)
        rt.run("busybox", ["sleep", "100000"], name="target")
        out = work / "out"
        out.mkdir()

        def copy_in(src: Path) -> Callable[[], None]:
            return lambda: rt.copy(str(src), "target:/tmp/", overwrite=True)

        def copy_out(name: str) -> Callable[[], None]:
            def run() -> None:
                dest = out / name
                if dest.is_dir():
                    shutil.rmtree(dest)
                else:
                    dest.unlink(missing_ok=True)
                rt.copy(f"target:/tmp/{name}", str(out))
            return run

        results = {
            "start: create+start+wait+remove (ms)": median_ms(start_cycle, runs),
            "stop -t 0 of a running container (ms)": stop_ms(rt, runs),
            f"copy in: {SMALL_FILES} small files (ms)": median_ms(copy_in(small), max(3, runs // 5)),
            f"copy out: {SMALL_FILES} small files (ms)": median_ms(copy_out("small"), max(3, runs // 5)),
            f"copy in: {LARGE_MIB} MiB file (ms)": median_ms(copy_in(large), max(3, runs // 5)),
            f"copy out: {LARGE_MIB} MiB file (ms)": median_ms(copy_out("large.bin"), max(3, runs // 5)),
        }
        return results
    finally:
        for ctr in rt.list():
            ctr.remove(force=True)
        if rt.namespace.rootless:
            rt.namespace.stop()
        rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--user", default=os.environ.get("KERNELEXT_TEST_USER", "kernelext-test"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kx-bench-rootless-"))
    try:
        if args.child:
            print(json.dumps(measure(args.runs, work)))
            return
        if os.geteuid() != 0:
            sys.exit("run as root: it measures root, then the same as --user")
        root = measure(args.runs, work)
        # root's files stay until the user's run is over: a mass delete slows the small-file
        # creations that follow on these disks (docs/architecture.md §7), which would favour root.
        subprocess.run([str(REPO / "scripts" / "stage-checkout.sh"), str(STAGE), args.user], check=True)
        proc = subprocess.run(["runuser", "-u", args.user, "--", f"{STAGE}/.venv/bin/python",
                               f"{STAGE}/bench/bench_rootless.py", "--child", "--runs", str(args.runs)],
                              cwd="/", capture_output=True, text=True, check=True)
        rootless = json.loads(proc.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(map(len, root))
    print(f"{'':{width}}  {'root':>9}  {'rootless':>9}  ratio")
    for key, value in root.items():
        print(f"{key:{width}}  {value:9.1f}  {rootless[key]:9.1f}  {rootless[key] / value:.2f}x")


if __name__ == "__main__":
    main()
