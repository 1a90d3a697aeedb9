"""Copy speed: kernelext cp next to the floor (``tar c | tar x`` between host directories), in one run.

    sudo .venv/bin/python bench/bench_copy.py [--runs N] [--files N] [--mib N]

Copies into and out of a running busybox container one big file (100 MiB) and
a directory of small files (10,000, 100 B to 2 KiB, in 20 subdirectories).
Every case, the floor included, writes into a fresh directory and nothing is
deleted until the end: on these machines' ext4 (no journal) creating many
files right after deleting many is several times slower (docs/architecture.md §7). The
cases are interleaved round by round and the median is reported, so the floor
and kernelext see the same conditions. kernelext is timed through the Python
API (in process) and through the CLI (which adds the interpreter's start-up; its
fork server started and warmed first);
``podman cp`` too when podman is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench_lifecycle import start_forkserver, stop_forkserver

from kernelext import Runtime

SMALL_DIRS = 20
CTR = "bench-cp"
PODMAN_CTR = "kernelext-bench-cp"
CLEANUP_TRIES = 10


@dataclass
class Case:
    label: str
    floor: Callable[[int], list[str]]  # shell pipeline of round r
    overlay: Callable[[int], list[str]]  # the same through the container's overlay mount (tar on its merged dir)
    api: Callable[[int], None]
    cli: Callable[[int], list[str]]
    podman: Callable[[int], list[str]] | None = None
    times: dict[str, list[float]] = field(default_factory=dict)


def make_sources(src: Path, files: int, mib: int) -> None:
    small = src / "small"
    for i in range(files):
        d = small / f"d{i % SMALL_DIRS:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_bytes(os.urandom(100 + i % 2000))
    with open(src / "big.bin", "wb") as f:
        f.writelines(os.urandom(1 << 20) for _ in range(mib))


def timed(fn: Callable[[], object]) -> float:
    os.sync()  # start every case with no dirty pages left by the previous one
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--mib", type=int, default=100)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kernelext-bench-cp-", dir="/var/tmp"))
    rt = Runtime(work / "root", work / "run")
    cli = [sys.executable, "-m", "kernelext", "--root", str(rt.opts.root), "--runroot", str(rt.opts.runroot)]
    podman = shutil.which("podman")
    try:
        src, out = work / "src", work / "out"
        src.mkdir()
        out.mkdir()
        make_sources(src, args.files, args.mib)
        merged = rt.run("busybox", ["sleep", "100000"], name=CTR).layer.merged
        # Content to copy out, put in once beforehand.
        rt.copy(str(src / "small"), f"{CTR}:/srv/small")
        rt.copy(str(src / "big.bin"), f"{CTR}:/srv/big.bin")
        start_forkserver(work, [*cli, "ps"])
        if podman:
            run([podman, "run", "-d", "--name", PODMAN_CTR, "--network", "none", "busybox", "sleep", "100000"])
            run([podman, "cp", str(src / "small"), f"{PODMAN_CTR}:/srv/small"])
            run([podman, "cp", str(src / "big.bin"), f"{PODMAN_CTR}:/srv/big.bin"])

        def fresh(kind: str, r: int) -> Path:
            path = out / f"{kind}{r}"
            path.mkdir()
            return path

        def floor(name: str, tag: str) -> Callable[[int], list[str]]:
            return lambda r: ["sh", "-c", f"tar c -C {src} {name} | tar x -C {fresh(f'floor-{tag}-{name}', r)}"]

        def overlay_in(name: str) -> Callable[[int], list[str]]:
            def argv(r: int) -> list[str]:
                (merged / "tmp" / f"tar-{name}{r}").mkdir()
                return ["sh", "-c", f"tar c -C {src} {name} | tar x -C {merged}/tmp/tar-{name}{r}"]
            return argv

        def overlay_out(name: str) -> Callable[[int], list[str]]:
            return lambda r: ["sh", "-c", f"tar c -C {merged}/srv {name} | tar x -C {fresh('tar-out-' + name, r)}"]

        mib = f"{args.mib} MiB file"
        files = f"{args.files:,} files"
        cases = [
            Case(f"{mib}, in", floor("big.bin", "in"), overlay_in("big.bin"), lambda r: rt.copy(str(src / "big.bin"), f"{CTR}:/tmp/big-api{r}"),
                 lambda r: [*cli, "cp", str(src / "big.bin"), f"{CTR}:/tmp/big-cli{r}"],
                 (lambda r: [podman, "cp", str(src / "big.bin"), f"{PODMAN_CTR}:/tmp/big{r}"]) if podman else None),
            Case(f"{mib}, out", floor("big.bin", "out"), overlay_out("big.bin"), lambda r: rt.copy(f"{CTR}:/srv/big.bin", str(fresh("big-api", r))),
                 lambda r: [*cli, "cp", f"{CTR}:/srv/big.bin", str(fresh("big-cli", r))],
                 (lambda r: [podman, "cp", f"{PODMAN_CTR}:/srv/big.bin", str(fresh("big-podman", r))])
                 if podman else None),
            Case(f"{files}, in", floor("small", "in"), overlay_in("small"), lambda r: rt.copy(str(src / "small"), f"{CTR}:/tmp/small-api{r}"),
                 lambda r: [*cli, "cp", str(src / "small"), f"{CTR}:/tmp/small-cli{r}"],
                 (lambda r: [podman, "cp", str(src / "small"), f"{PODMAN_CTR}:/tmp/small{r}"]) if podman else None),
            Case(f"{files}, out", floor("small", "out"), overlay_out("small"), lambda r: rt.copy(f"{CTR}:/srv/small", str(fresh("small-api", r))),
                 lambda r: [*cli, "cp", f"{CTR}:/srv/small", str(fresh("small-cli", r))],
                 (lambda r: [podman, "cp", f"{PODMAN_CTR}:/srv/small", str(fresh("small-podman", r))])
                 if podman else None),
        ]
        for r in range(args.runs):
            for case in cases:
                steps: dict[str, Callable[[], object]] = {
                    "floor": lambda c=case, r=r: run(c.floor(r)),
                    "overlay": lambda c=case, r=r: run(c.overlay(r)),
                    "api": lambda c=case, r=r: c.api(r),
                    "cli": lambda c=case, r=r: run(c.cli(r)),
                }
                if case.podman is not None:
                    steps["podman"] = lambda c=case, r=r: run(c.podman(r))  # type: ignore[misc]
                for key, step in steps.items():
                    case.times.setdefault(key, []).append(timed(step))
        report(cases, args.runs)
    finally:
        stop_forkserver(work / "forkserver")
        for ctr in rt.list():
            ctr.remove(force=True)
        rt.close()
        if podman:
            subprocess.run([podman, "rm", "-f", PODMAN_CTR], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
        for _ in range(CLEANUP_TRIES):  # conmon may still be writing its exit file into the store
            shutil.rmtree(work, ignore_errors=True)
            if not work.exists():
                break
            time.sleep(1)


def report(cases: list[Case], runs: int) -> None:
    print(f"median of {runs} runs, seconds; ratio = time / floor (host dir to host dir) of the same shape;")
    print("tar-ovl: the same tar pipeline into / out of the container's mounted overlay (what the overlay costs)")
    header = (f"{'case':<22} {'floor':>7} {'tar-ovl':>7} {'ratio':>6} {'api':>7} {'ratio':>6} {'cli':>7} {'ratio':>6} "
              f"{'podman':>7} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for case in cases:
        med = {key: statistics.median(values) for key, values in case.times.items()}
        floor = med["floor"]
        podman = f"{med['podman']:>7.3f} {med['podman'] / floor:>6.2f}" if "podman" in med else f"{'n/a':>7} {'':>6}"
        print(f"{case.label:<22} {floor:>7.3f} {med['overlay']:>7.3f} {med['overlay'] / floor:>6.2f} "
              f"{med['api']:>7.3f} {med['api'] / floor:>6.2f} "
              f"{med['cli']:>7.3f} {med['cli'] / floor:>6.2f} {podman}")


if __name__ == "__main__":
    main()
