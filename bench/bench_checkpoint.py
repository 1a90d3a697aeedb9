"""Checkpoint and restore times: kernelext next to the floor (raw runc + CRIU) and podman if installed.

Two kinds of container: the busybox counter (a shell loop printing every
0.1 s) and one holding 200 MB in a shell variable. The floor is ``runc
checkpoint`` / ``runc restore`` of the same rootfs and spec, with the same
CRIU, stdio on anonymous pipes as under conmon. Run as root:

    .venv/bin/python bench/bench_checkpoint.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from kernelext import Runtime
from kernelext.config import find_criu

COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"
MEMORY_MB = 200
#: The shell keeps a 200 MB string in its heap, then prints like the counter.
HOLDER = f"x=$(head -c {MEMORY_MB * 1024 * 1024} /dev/zero | tr '\\0' a); echo ready; {COUNTER}"
READY_TIMEOUT_S = 60.0
SETTLE_S = 0.3  # let the process run a little between operations


@dataclass(frozen=True)
class Case:
    name: str
    script: str
    runs: int


@dataclass
class Row:
    case: str
    operation: str
    kernelext: float
    floor: float
    podman: float | None

    @property
    def ratio(self) -> float:
        return self.kernelext / self.floor


def _ready(data: bytes, script: str) -> bool:
    return (b"ready" in data) if "ready" in script else data.count(b"\n") >= 2


def _wait_ready(output: Callable[[], bytes], case: Case, who: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not _ready(output(), case.script):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{who} {case.name}: the container printed nothing")
        time.sleep(0.05)


class _Drain(threading.Thread):
    """Reads a container's stdout pipe so it never blocks, keeping what came."""

    def __init__(self, pipe: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.data = bytearray()

    def run(self) -> None:
        while chunk := self.pipe.read1(65536):
            self.data += chunk


class Subject(Protocol):
    def checkpoint(self) -> float: ...
    def restore(self) -> float: ...
    def close(self) -> None: ...


class KernelextSubject:
    """A kernelext container: ``Container.checkpoint()`` / ``restore()`` (conmon, locks, store and all)."""

    def __init__(self, rt: Runtime, case: Case) -> None:
        self.ctr = rt.run("busybox", ["sh", "-c", case.script])
        _wait_ready(lambda: b"".join(line.data for line in self.ctr.logs()), case, "kernelext")

    def checkpoint(self) -> float:
        t0 = time.perf_counter()
        self.ctr.checkpoint()
        return time.perf_counter() - t0

    def restore(self) -> float:
        t0 = time.perf_counter()
        self.ctr.restore()
        return time.perf_counter() - t0

    def close(self) -> None:
        self.ctr.remove(force=True)


class FloorSubject:
    """The same rootfs and spec run by plain runc with stdio on pipes: ``runc checkpoint`` / ``runc restore``."""

    def __init__(self, rt: Runtime, work: Path, case: Case, criu: str) -> None:
        self.source = rt.create("busybox", ["sh", "-c", case.script])
        rootfs = self.source.mount()
        self.source._write_spec(rootfs)
        spec = json.loads((self.source.bundle / "config.json").read_text())
        spec["linux"]["cgroupsPath"] = f"/kernelext-bench/{self.source.id}"
        for namespace in spec["linux"]["namespaces"]:
            namespace.pop("path", None)  # plain runc makes the network namespace kernelext prepares itself
        self.bundle = work / f"floor-{self.source.short_id}"
        self.bundle.mkdir()
        (self.bundle / "config.json").write_text(json.dumps(spec))
        self.images = self.bundle / "checkpoint"
        self.runc = ["runc", "--root", str(work / "runc-root"), "--criu", criu]
        self.ctr_id = self.bundle.name
        self.drain = self._detached([*self.runc, "run", "-d", "--bundle", str(self.bundle), self.ctr_id])
        _wait_ready(lambda: bytes(self.drain.data), case, "floor")

    def _detached(self, argv: list[str]) -> _Drain:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        drain = _Drain(proc.stdout)
        drain.start()
        if proc.wait() != 0:
            raise RuntimeError(f"{' '.join(argv[:6])}: {proc.stderr.read().decode()}")
        proc.stderr.close()
        return drain

    def checkpoint(self) -> float:
        t0 = time.perf_counter()
        subprocess.run([*self.runc, "checkpoint", "--image-path", str(self.images), "--work-path", str(self.bundle),
                        self.ctr_id], check=True, stdin=subprocess.DEVNULL, capture_output=True)
        return time.perf_counter() - t0

    def restore(self) -> float:
        t0 = time.perf_counter()
        self.drain = self._detached([*self.runc, "restore", "-d", "--bundle", str(self.bundle), "--image-path",
                                     str(self.images), "--work-path", str(self.bundle), self.ctr_id])
        elapsed = time.perf_counter() - t0
        # Consumed, as kernelext's are: images left behind would be written back to disk during the
        # other side's next measurement and slow it down.
        shutil.rmtree(self.images)
        return elapsed

    def close(self) -> None:
        subprocess.run([*self.runc, "delete", "--force", self.ctr_id], capture_output=True)
        self.source.unmount(force=True)
        self.source.remove(force=True)


def _wait_for_processes_using(path: Path, timeout: float = 10.0) -> None:
    """conmon's exit commands still run for a moment after removal; they would re-create the store's dirs."""
    needle = str(path).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                busy = busy or needle in Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
        if not busy:
            return
        time.sleep(0.1)


def measure(subjects: dict[str, Subject], runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """Interleaved cycles, so that both sides see the same machine load."""
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in subjects}
    for _ in range(runs):
        for name, subject in subjects.items():
            time.sleep(SETTLE_S)
            times[name][0].append(subject.checkpoint())
            time.sleep(SETTLE_S)
            times[name][1].append(subject.restore())
    return times


def bench_podman(case: Case) -> tuple[float, float] | None:
    podman = shutil.which("podman")
    if podman is None:
        return None
    name = f"kernelext-bench-{os.getpid()}"
    subprocess.run([podman, "run", "-d", "--name", name, "busybox", "sh", "-c", case.script], check=True,
                   capture_output=True)
    try:
        time.sleep(2.0 if "ready" in case.script else 0.5)
        checkpoints, restores = [], []
        for _ in range(case.runs):
            t0 = time.perf_counter()
            subprocess.run([podman, "container", "checkpoint", name], check=True, capture_output=True)
            checkpoints.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run([podman, "container", "restore", name], check=True, capture_output=True)
            restores.append(time.perf_counter() - t0)
        return statistics.median(checkpoints), statistics.median(restores)
    finally:
        subprocess.run([podman, "rm", "-f", name], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="checkpoint/restore cycles per case (median reported)")
    args = parser.parse_args()
    criu = find_criu()
    if criu is None:
        raise SystemExit("no criu: run scripts/setup.sh")
    cases = [Case("counter", COUNTER, args.runs), Case(f"{MEMORY_MB} MB", HOLDER, args.runs)]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="kernelext-bench-") as tmp:
        work = Path(tmp)
        with Runtime(work / "root", work / "run") as rt:
            for case in cases:
                subjects: dict[str, Subject] = {}
                try:
                    subjects["kernelext"] = KernelextSubject(rt, case)
                    subjects["floor"] = FloorSubject(rt, work, case, criu)
                    times = measure(subjects, case.runs)
                finally:
                    for subject in subjects.values():
                        subject.close()
                podman = bench_podman(case)
                for index, operation in enumerate(("checkpoint", "restore")):
                    rows.append(Row(case.name, operation, statistics.median(times["kernelext"][index]),
                                    statistics.median(times["floor"][index]), podman[index] if podman else None))
        _wait_for_processes_using(work)
    print(f"CRIU: {criu}; medians of {args.runs} interleaved cycles")
    print(f"{'container':<10} {'operation':<11} {'kernelext':>10} {'runc floor':>11} {'ratio':>6} {'podman':>8}")
    for row in rows:
        podman = f"{row.podman:.3f} s" if row.podman is not None else "absent"
        print(f"{row.case:<10} {row.operation:<11} {row.kernelext:>8.3f} s {row.floor:>9.3f} s {row.ratio:>6.2f} "
              f"{podman:>8}")


if __name__ == "__main__":
    main()
