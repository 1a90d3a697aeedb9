"""``logs --tail 3`` and ``--since`` of a 1 GB log: kernelext next to the floor (reading the file's last
megabyte) and a full forward read (what reading from the start would cost).

Writes a k8s-file log of ``--size`` MB (default 1024) in a temporary directory, then times
``read_log(tail=3)``, ``read_log(since=<the last second>)`` and the CLI's ``logs --tail 3`` on a container
whose log is that file. Run as root:

    .venv/bin/python bench/bench_logs.py [--size MB] [--runs N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kernelext import Runtime
from kernelext.core.logs import read_log

RECORD_PAYLOAD = b"x" * 200
MB = 1 << 20


def _stamp(when: float) -> bytes:
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e9):09d}Z").encode()


def write_log(path: Path, size: int) -> float:
    """Records one millisecond apart, ending now; returns the time of the first one."""
    per_record = len(_stamp(0)) + len(b" stdout F ") + 8 + len(RECORD_PAYLOAD) + 1
    count = size // per_record
    start = time.time() - count / 1000
    with path.open("wb") as f:
        for base in range(0, count, 8192):
            f.write(b"".join(_stamp(start + n / 1000) + b" stdout F %07d " % n + RECORD_PAYLOAD + b"\n"
                             for n in range(base, min(base + 8192, count))))
    return start


def best(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def floor(path: Path) -> None:
    with path.open("rb") as f:
        f.seek(-MB, 2)
        f.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="log size in MB (default 1024)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kernelext-bench-logs-") as tmp:
        base = Path(tmp)
        log = base / "big.log"
        began = time.perf_counter()
        write_log(log, args.size * MB)
        print(f"wrote {log.stat().st_size / MB:.0f} MB in {time.perf_counter() - began:.1f} s")
        last_second = time.time() - 1
        rows = [
            ("floor: read the last MB", best(lambda: floor(log), args.runs)),
            ("read_log(tail=3)", best(lambda: read_log(log, tail=3), args.runs)),
            ("read_log(since=last second)", best(lambda: read_log(log, since=last_second), args.runs)),
        ]
        with Runtime(base / "root", base / "run") as rt:
            ctr = rt.run("busybox", ["true"], name="bench-logs")
            ctr.wait(timeout=30)
            ctr.log_path.unlink()
            ctr.log_path.symlink_to(log)  # the container's log is the big file
            cli = [sys.executable, "-m", "kernelext", "--root", str(base / "root"), "--runroot", str(base / "run"),
                   "logs", "--tail", "3", "bench-logs"]
            rows.append(("CLI logs --tail 3 (process start included)",
                         best(lambda: subprocess.run(cli, check=True, capture_output=True), args.runs)))
            ctr.remove(force=True)
        rows.append(("full forward read (what --tail avoids)", best(lambda: read_log(log), 1)))
        low = rows[0][1]
        for name, seconds in rows:
            print(f"{name:45s} {seconds * 1000:9.1f} ms  {seconds / low:8.1f} x floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
