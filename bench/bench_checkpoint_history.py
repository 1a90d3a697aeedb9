"""What the checkpoint history costs (issue #19; docs/architecture.md §4, "Checkpoint history").

1. Checkpoint + restore of the same container through the history (a named entry, then ``restore
   --from`` it in place: the file system rolled back too) against the floor: the same core calls with
   the history's step left out (the images stay in the bundle and the restore takes them from there, as
   before the history existed). Runs alternate, medians compared; target: ratio <= 1.1.
2. Listing a container's 100 real entries in-process (``Container.checkpoints()`` and the widget's
   tree); target: < 50 ms.

Run as root:  .venv/bin/python bench/bench_checkpoint_history.py [--runs N] [--entries N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernelext import Container, Runtime
from kernelext.core import checkpoint as cr
from kernelext.domain import checkpoints as domain

COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"
MEMORY_MB = 100
HOLDER = f"x=$(head -c {MEMORY_MB * 1024 * 1024} /dev/zero | tr '\\0' a); echo ready; {COUNTER}"
SETTLE_S = 0.3
RATIO_TARGET = 1.1
LIST_TARGET_MS = 50.0


def _wait_ready(ctr: Container, script: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = [line.data.strip() for line in ctr.logs()]
        if (b"ready" in lines) if "ready" in script else len(lines) >= 2:
            return
        time.sleep(0.05)
    raise TimeoutError("the container did not get ready")


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _plain_cycle(ctr: Container) -> float:
    """The floor: checkpoint and restore with the history's step left out."""
    original = cr._record_entry
    cr._record_entry = lambda *_a, **_k: None  # type: ignore[assignment]  # the floor records nothing
    try:
        return _timed(ctr.checkpoint) + _timed(ctr.restore)
    finally:
        cr._record_entry = original


def _history_cycle(ctr: Container, index: int) -> float:
    elapsed = _timed(lambda: ctr.checkpoint(name=f"run{index}"))
    return elapsed + _timed(lambda: ctr.restore(from_=f"run{index}"))


def cycles(rt: Runtime, name: str, script: str, runs: int) -> tuple[float, float]:
    ctr = rt.run("busybox", ["sh", "-c", script], name=name)
    try:
        _wait_ready(ctr, script)
        plain, kept = [], []
        for index in range(runs):
            time.sleep(SETTLE_S)
            plain.append(_plain_cycle(ctr))
            time.sleep(SETTLE_S)
            kept.append(_history_cycle(ctr, index))
            for entry in ctr.checkpoints():  # keep the disk bounded: the entry is measured, not kept
                ctr.remove_checkpoint(entry.number)
        return statistics.median(plain), statistics.median(kept)
    finally:
        ctr.remove(force=True)


def listing(rt: Runtime, entries: int) -> tuple[float, float]:
    ctr = rt.run("busybox", ["sh", "-c", COUNTER], name="lister")
    try:
        _wait_ready(ctr, COUNTER)
        for _ in range(entries):
            ctr.checkpoint(leave_running=True)
        assert len(ctr.checkpoints()) == entries
        ls = [_timed(ctr.checkpoints) for _ in range(20)]
        tree = [_timed(lambda: domain.tree(rt, "lister")) for _ in range(20)]
        return statistics.median(ls) * 1000, statistics.median(tree) * 1000
    finally:
        ctr.remove(force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--entries", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kernelext-bench-history-") as tmp:
        rt = Runtime(Path(tmp) / "root", Path(tmp) / "run")
        try:
            print(f"{'case':10} {'plain s':>9} {'history s':>10} {'ratio':>6}  (checkpoint + restore, median of "
                  f"{args.runs})")
            for name, script in (("counter", COUNTER), (f"{MEMORY_MB}MB", HOLDER)):
                plain, kept = cycles(rt, name, script, args.runs)
                verdict = "ok" if kept / plain <= RATIO_TARGET else f"over {RATIO_TARGET}"
                print(f"{name:10} {plain:9.3f} {kept:10.3f} {kept / plain:6.2f}  {verdict}")
            ls_ms, tree_ms = listing(rt, args.entries)
            print(f"listing {args.entries} entries: checkpoints() {ls_ms:.1f} ms, tree {tree_ms:.1f} ms "
                  f"(target < {LIST_TARGET_MS:.0f} ms: {'ok' if ls_ms < LIST_TARGET_MS else 'over'})")
        finally:
            _discard(rt)


def _discard(rt: Runtime) -> None:
    """Whatever a failed run left, then the store's database."""
    for leftover in rt.list():
        leftover.remove(force=True)
    rt.close()


if __name__ == "__main__":
    main()
