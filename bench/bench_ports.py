"""Published ports: throughput and latency through the forwarder next to the floor, in one run.

    sudo .venv/bin/python bench/bench_ports.py [--runs N] [--requests N]

One server, a tiny static C program built here (``SERVER_C``: no fork, no
file I/O, so where it runs costs nothing extra), answers HTTP/1.0 GETs:
``/big`` with 100 MiB from memory, anything else with a small page. It runs
- floor: as a host process on 127.0.0.1, fetched straight over loopback;
- direct: inside a container, fetched from inside the container's network
  namespace (no forwarder: what the container itself costs);
- published: in the same container, fetched through ``-p 127.0.0.1::8000``
  (the forwarder on the host port, connecting inside the container's namespace).

Measures a 100 MiB download (median of ``--runs``) and ``--requests`` small
requests, one connection each (median and total), and prints the ratios to
the floor (the issue's target: at most 1.5x). The floor and the published port
are measured by the same client in turns, a download or a batch of requests
each, so that whatever else the machine does at a time weighs on both alike;
direct runs alone, from a client process in the container's namespace.

The forwarder raises the GSO limit of the container's loopback (BIG TCP), so
direct, and the container's leg of published, carry bigger segments than the
host's loopback, which the floor and published's host leg use as they are.
And the forwarder's connections use reno, while the floor's uses the host's
default (printed): where that paces (BBR), the floor pays for it and the
forwarder does not.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kernelext import Runtime

MIB = 1 << 20
BIG_MIB = 100
SERVER_PORT = 8000
RECV_BYTES = 4 * MIB
#: Small requests in a row to one side before the other side's turn.
BATCH = 50
#: The host's default, which the floor's connection uses; the forwarder's use reno, which never paces.
HOST_CC = Path("/proc/sys/net/ipv4/tcp_congestion_control")
SERVER_C = r"""
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static char zeros[1 << 20];
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 128)) return 1;
    for (;;) {
        int c = accept(s, NULL, NULL);
        char req[1024];
        long n = read(c, req, sizeof req - 1);
        if (n <= 0) { close(c); continue; }
        req[n] = 0;
        if (strstr(req, "GET /big ")) {
            const char *h = "HTTP/1.0 200 OK\r\nContent-Length: 104857600\r\n\r\n";
            write(c, h, strlen(h));
            for (long left = 100L << 20; left > 0;) {
                long w = write(c, zeros, left < (long)sizeof zeros ? left : (long)sizeof zeros);
                if (w <= 0) break;
                left -= w;
            }
        } else {
            const char *r = "HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\nsmall page\n";
            write(c, r, strlen(r));
        }
        close(c);
    }
}
"""
#: Run inside the container's namespace by nsenter: the same measurement, printed as JSON.
CLIENT = "import sys; sys.path.insert(0, sys.argv[1]); import bench_ports as b; b.client_main()"


def get(port: int, path: str) -> int:
    """One HTTP/1.0 GET on a new connection; the bytes received."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        buf = bytearray(RECV_BYTES)
        total = 0
        while n := sock.recv_into(buf):
            total += n
    return total


def wait_serving(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(port, "/index.html") > 0:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing serves on 127.0.0.1:{port}")


def timed(fn: Callable[..., object], *args: object) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def measure(ports: dict[str, int], runs: int, requests: int) -> dict[str, dict[str, float]]:
    """The figures of each named port, measured in turns (the first port first on even turns)."""
    names = list(ports)
    for port in ports.values():
        wait_serving(port)
        get(port, "/big")  # warm up the connection paths
    transfers: dict[str, list[float]] = {name: [] for name in names}
    small: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(runs):
        for name in names if turn % 2 == 0 else names[::-1]:
            transfers[name].append(timed(get, ports[name], "/big"))
    for turn in range(-(-requests // BATCH)):
        batch = min(BATCH, requests - turn * BATCH)
        for name in names if turn % 2 == 0 else names[::-1]:
            small[name] += [timed(get, ports[name], "/index.html") for _ in range(batch)]
    return {name: {"100 MiB: MiB/s": BIG_MIB / statistics.median(transfers[name]),
                   "small request: median ms": statistics.median(small[name]) * 1000,
                   f"{requests} small requests: s": sum(small[name])}
            for name in names}


def client_main() -> None:
    port, runs, requests = map(int, sys.argv[2:5])
    print(json.dumps(measure({"direct": port}, runs, requests)["direct"]))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build_server(work: Path) -> Path:
    source, binary = work / "server.c", work / "server"
    source.write_text(SERVER_C)
    subprocess.run(["cc", "-static", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="100 MiB downloads per side (median)")
    parser.add_argument("--requests", type=int, default=1000, help="small requests per side")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kx-bench-ports-"))
    rt = Runtime(work / "root", work / "run")
    host_server: subprocess.Popen[bytes] | None = None
    try:
        server = build_server(work)
        floor_port = free_port()
        host_server = subprocess.Popen([str(server), str(floor_port)])
        ctr = rt.create("busybox", ["/server", str(SERVER_PORT)], publish=[f"127.0.0.1::{SERVER_PORT}"])
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(server, arcname="server")
        archive.seek(0)
        ctr.put_archive("/", archive)
        ctr.start()
        results = measure({"floor": floor_port, "published": ctr.ports[0].host_port}, args.runs, args.requests)
        inside = subprocess.run(["nsenter", f"--target={ctr.state.pid}", "--net", sys.executable, "-c", CLIENT,
                                 str(Path(__file__).parent), str(SERVER_PORT), str(args.runs), str(args.requests)],
                                check=True, capture_output=True, text=True)
        results["direct"] = json.loads(inside.stdout)
        width = max(map(len, results["floor"]))
        print(f"\n{'measurement'.ljust(width)}  {'floor':>9}  {'direct':>9}  {'published':>9}  published/floor")
        for key, floor_value in results["floor"].items():
            direct, published = results["direct"][key], results["published"][key]
            # Throughput: higher is better, so the slowdown is floor/published.
            ratio = floor_value / published if "MiB/s" in key else published / floor_value
            print(f"{key.ljust(width)}  {floor_value:9.2f}  {direct:9.2f}  {published:9.2f}  {ratio:.2f}x")
        print(f"(one forwarder process, PID {ctr.state.forwarder_pid}; {os.cpu_count()} CPUs; the floor's TCP "
              f"congestion control: {HOST_CC.read_text().strip()}, the forwarder's: reno)")
    finally:
        if host_server is not None:
            host_server.kill()
            host_server.wait()
        for ctr in rt.list():
            ctr.remove(force=True)
        rt.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
