"""An attached run of 200,000 lines from a notebook cell, in a real kernel.

    sudo .venv/bin/python bench/bench_magics.py [--lines N] [--repeat R]

Reports: the cell's time next to the same container with its output sent to
/dev/null (the floor), as medians of ``--repeat`` alternating runs (one run
of each varies by a third on a shared two-core machine), and the median of
the ratios of neighbouring runs (which share the machine's load of the
moment); the messages and
bytes the kernel sent to the browser; how long the kernel takes to answer an
execute request on a subshell while the stream runs (max and median; the
floor runs under the same probes); the kernel's memory growth.

The message rate is the most messages sent in any one second (counted by the
kernel's send times): a cell that ends sooner has its whole count there. The
count over a short cell's duration is no rate: a 0.25 s cell that shows its
first lines, a live area (its two comm_opens and its display) and the exit
line already makes 24 "a second". A second stream of the same size spread
over a few seconds shows the rate while a live area keeps updating.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from jupyter_client.manager import start_new_kernel
from jupyter_client.session import new_id

PROBE_INTERVAL_S = 0.05
OUTPUT_MESSAGES = ("stream", "display_data", "update_display_data", "execute_result", "error", "comm_open",
                   "comm_msg")
STORED_MESSAGES = ("stream", "display_data", "execute_result", "error")
#: The sustained stream: the same number of lines, in this many bursts a pause apart.
SUSTAINED_BURSTS = 40
SUSTAINED_PAUSE_S = 0.05


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def run_cell(kc: Any, code: str, timeout: float = 600) -> tuple[float, list[dict[str, Any]]]:
    """Execute ``code``; the wall time until idle and every iopub message of the cell."""
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    messages: list[dict[str, Any]] = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return time.perf_counter() - t0, messages
        if msg["msg_type"] in OUTPUT_MESSAGES:
            messages.append(msg)


def sent_at(msg: dict[str, Any]) -> float:
    date = msg["header"]["date"]
    return (date if isinstance(date, datetime) else datetime.fromisoformat(date)).timestamp()


def peak_per_second(messages: list[dict[str, Any]]) -> int:
    """The most messages sent within any one-second window."""
    times = sorted(sent_at(m) for m in messages)
    return max((bisect.bisect_right(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def probe_latency(kc: Any, subshell_id: str, stop: threading.Event, latencies: list[float]) -> None:
    """Send tiny execute requests on a subshell while the main shell streams.

    ``kc`` is a client of its own: ZMQ sockets are not thread-safe, and a send on the cells' shell socket from
    this thread garbles messages now and then (the kernel drops them as "Invalid Signature" and a cell hangs).
    """
    while not stop.is_set():
        msg = kc.session.msg("execute_request", {"code": "1", "silent": True, "store_history": False,
                                                 "user_expressions": {}, "allow_stdin": False})
        msg["header"]["subshell_id"] = subshell_id
        t0 = time.perf_counter()
        kc.shell_channel.send(msg)
        while kc.get_shell_msg(timeout=30)["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
            pass
        latencies.append(time.perf_counter() - t0)
        time.sleep(PROBE_INTERVAL_S)


def create_subshell(kc: Any) -> str:
    msg = kc.session.msg("create_subshell_request", {})
    kc.control_channel.send(msg)
    reply = kc.get_control_msg(timeout=30)
    return str(reply["content"]["subshell_id"])


def describe(messages: list[dict[str, Any]]) -> str:
    kinds: dict[str, int] = {}
    for m in messages:
        kinds[m["msg_type"]] = kinds.get(m["msg_type"], 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in kinds.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kx-bench-magics-"))
    os.environ["KERNELEXT_ROOT"] = str(work / "root")
    os.environ["KERNELEXT_RUNROOT"] = str(work / "run")
    km, kc = start_new_kernel(kernel_name="python3")
    probe_kc = None
    try:
        kernel_pid = km.provisioner.process.pid  # type: ignore[union-attr]  # a LocalProvisioner
        run_cell(kc, "%load_ext kernelext")
        # Warm: the image, caches, and the overflow widget's first import (a one-time cost per kernel).
        run_cell(kc, "%container run --rm busybox seq 1 5000")
        probe_kc = km.client()
        probe_kc.session.session = new_id()  # a clone of the first client's session would reuse its message ids
        probe_kc.start_channels()
        probe_kc.wait_for_ready(timeout=60)
        subshell = create_subshell(probe_kc)
        rss_before = rss_mb(kernel_pid)
        peak = [rss_before]
        latencies: list[float] = []

        def observed(code: str, probes: list[float]) -> tuple[float, list[dict[str, Any]]]:
            """Run a cell while probing the kernel's latency and sampling its memory (the floor too: same load)."""
            stop = threading.Event()

            def sample_memory() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], rss_mb(kernel_pid))
                    time.sleep(0.05)
            threads = [threading.Thread(target=probe_latency, args=(probe_kc, subshell, stop, probes)),
                       threading.Thread(target=sample_memory)]
            for t in threads:
                t.start()
            try:
                return run_cell(kc, code)
            finally:
                stop.set()
                for t in threads:
                    t.join()

        floors: list[float] = []
        cells: list[tuple[float, list[dict[str, Any]]]] = []
        for _ in range(args.repeat):
            floors.append(observed(f"%container run --rm busybox sh -c 'seq 1 {args.lines} > /dev/null'", [])[0])
            cells.append(observed(f"%container run --rm busybox seq 1 {args.lines}", latencies))
        per_burst = args.lines // SUSTAINED_BURSTS
        sustained_s, sustained = run_cell(
            kc, f"%container run --rm busybox sh -c 'for i in $(seq {SUSTAINED_BURSTS}); do "
                f"seq 1 {per_burst}; sleep {SUSTAINED_PAUSE_S}; done'")

        floor_s = statistics.median(floors)
        cell_s = statistics.median(t for t, _ in cells)
        messages = cells[len(cells) // 2][1]  # one run's messages, as an example
        sent = statistics.median(sum(len(json.dumps(m["content"])) for m in ms) for _, ms in cells)
        stored = [m for m in messages if m["msg_type"] in STORED_MESSAGES]
        updates = sum(m["msg_type"] == "comm_msg" for m in sustained)
        print(f"lines streamed:                       {args.lines}, {args.repeat} runs of each (medians)")
        print(f"floor (output to /dev/null in-container): {floor_s:7.2f} s  (runs: "
              f"{' '.join(f'{t:.2f}' for t in floors)})")
        paired = statistics.median(t / floor for (t, _), floor in zip(cells, floors))
        print(f"attached run from a cell:             {cell_s:7.2f} s  ({cell_s / floor_s:.2f}x the floor, "
              f"{paired:.2f}x run by run; runs: {' '.join(f'{t:.2f}' for t, _ in cells)})")
        print(f"messages to the browser:              {len(messages)} ({describe(messages)}), "
              f"{sent / 1e6:.2f} MB; outputs kept in the notebook: {len(stored)}")
        print(f"  most in any one second:             {max(peak_per_second(ms) for _, ms in cells)}"
              f" (count / cell time: {len(messages) / cell_s:.1f})")
        print(f"  same lines over {sustained_s:.1f} s:             {peak_per_second(sustained)} in the busiest "
              f"second, {len(sustained)} in all, {updates} live updates")
        if latencies:
            print(f"subshell execute latency during stream: median {statistics.median(latencies) * 1000:.1f} ms, "
                  f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} requests")
        print(f"kernel RSS: {rss_before:.1f} MB before, peak {peak[0]:.1f} MB (+{peak[0] - rss_before:.1f} MB)")
    finally:
        kc.stop_channels()
        if probe_kc is not None:
            probe_kc.stop_channels()
        km.shutdown_kernel(now=True)
        os.system(f"rm -rf {work}")


if __name__ == "__main__":
    main()
