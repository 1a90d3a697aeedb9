"""An attached run of 200,000 lines from a notebook cell, in a real kernel.

    sudo .venv/bin/python bench/bench_magics.py [--lines N]

Reports: the cell's time next to the same container with its output sent to
/dev/null (the floor); messages and bytes the kernel sent to the browser and
their rate; how long the kernel takes to answer an execute request on a
subshell while the stream runs (max and median); the kernel's memory growth.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import start_new_kernel

PROBE_INTERVAL_S = 0.05


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def run_cell(kc: Any, code: str, timeout: float = 600) -> tuple[float, list[dict[str, Any]]]:
    """Execute ``code``; the wall time until idle and every iopub message of the cell."""
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    messages = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return time.perf_counter() - t0, messages
        if msg["msg_type"] in ("stream", "display_data", "update_display_data", "execute_result", "error",
                               "comm_open", "comm_msg"):
            messages.append(msg)


def probe_latency(kc: Any, subshell_id: str, stop: threading.Event, latencies: list[float]) -> None:
    """Send tiny execute requests on a subshell while the main shell streams."""
    replies: queue.Queue[dict[str, Any]] = queue.Queue()
    while not stop.is_set():
        msg = kc.session.msg("execute_request", {"code": "1", "silent": True, "store_history": False,
                                                 "user_expressions": {}, "allow_stdin": False})
        msg["header"]["subshell_id"] = subshell_id
        t0 = time.perf_counter()
        kc.shell_channel.send(msg)
        while True:
            reply = kc.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                break
            replies.put(reply)
        latencies.append(time.perf_counter() - t0)
        time.sleep(PROBE_INTERVAL_S)


def create_subshell(kc: Any) -> str:
    msg = kc.session.msg("create_subshell_request", {})
    kc.control_channel.send(msg)
    reply = kc.get_control_msg(timeout=30)
    return str(reply["content"]["subshell_id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kx-bench-magics-"))
    os.environ["KERNELEXT_ROOT"] = str(work / "root")
    os.environ["KERNELEXT_RUNROOT"] = str(work / "run")
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        kernel_pid = km.provisioner.process.pid
        run_cell(kc, "%load_ext kernelext")
        # Warm: the image, caches, and the overflow widget's first import (a one-time cost per kernel).
        run_cell(kc, "%container run --rm busybox seq 1 5000")
        floor_s, _ = run_cell(kc, f"%container run --rm busybox sh -c 'seq 1 {args.lines} > /dev/null'")
        subshell = create_subshell(kc)
        rss_before = rss_mb(kernel_pid)
        peak = [rss_before]
        stop = threading.Event()
        latencies: list[float] = []

        def sample_memory() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss_mb(kernel_pid))
                time.sleep(0.05)

        threads = [threading.Thread(target=probe_latency, args=(kc, subshell, stop, latencies)),
                   threading.Thread(target=sample_memory)]
        for t in threads:
            t.start()
        cell_s, messages = run_cell(kc, f"%container run --rm busybox seq 1 {args.lines}")
        stop.set()
        for t in threads:
            t.join()
        sent = sum(len(json.dumps(m["content"])) for m in messages)
        stored = [m for m in messages if m["msg_type"] in ("stream", "display_data", "execute_result", "error")]
        print(f"lines streamed:                       {args.lines}")
        print(f"floor (output to /dev/null in-container): {floor_s:7.2f} s")
        print(f"attached run from a cell:             {cell_s:7.2f} s  ({cell_s / floor_s:.2f}x the floor)")
        print(f"messages to the browser:              {len(messages)} ({len(messages) / cell_s:.1f}/s), "
              f"{sent / 1e6:.2f} MB; outputs kept in the notebook: {len(stored)}")
        if latencies:
            print(f"subshell execute latency during stream: median {statistics.median(latencies) * 1000:.1f} ms, "
                  f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} requests")
        print(f"kernel RSS: {rss_before:.1f} MB before, peak {peak[0]:.1f} MB (+{peak[0] - rss_before:.1f} MB)")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        os.system(f"rm -rf {work}")


if __name__ == "__main__":
    main()
