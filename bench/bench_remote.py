"""The remote engine next to its floor, ``podman --remote``, on the same podman service.

Starts a private podman service (tests/podmanservice.py: its own store, socket, containers.conf), then
times the same command lines through ``kernelext --url unix://...`` and ``podman --url unix://...``:
``run --rm busybox true``, ``exec CTR true``, ``cp`` of a 100 MiB file into a container and back out,
and a checkpoint ``--export`` + ``restore --import`` of a running container. Each is the median of
``--runs`` runs, both tools alternating; the ratio kernelext/podman is printed (the issue's bar: 1.2).
Over SSH with ``--ssh`` (an sshd of its own on loopback). Run as root:

    .venv/bin/python bench/bench_remote.py [--runs N] [--ssh]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from podmanservice import PODMAN, PodmanService, sshd, start

from conftest import processes

KERNELEXT = str(Path(__file__).resolve().parent.parent / "bin" / "kernelext")
MIB = 1 << 20
COPY_SIZE = 100 * MIB


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return time.perf_counter() - started


def measure(name: str, runs: int, tools: dict[str, list[str]], argv: Callable[[str], list[list[str]]],
            env: dict[str, str]) -> None:
    """Median seconds of the command lines ``argv(tool)`` (run in order) per tool, alternating tools."""
    times: dict[str, list[float]] = {tool: [] for tool in tools}
    for _ in range(runs):
        for tool, prefix in tools.items():
            times[tool].append(sum(_timed(prefix + line, env) for line in argv(tool)))
    medians = {tool: statistics.median(values) for tool, values in times.items()}
    line = f"{name:<28} kernelext {medians['kernelext'] * 1000:8.1f} ms"
    if "podman" in medians:
        line += (f"   podman --remote {medians['podman'] * 1000:8.1f} ms   "
                 f"ratio {medians['kernelext'] / medians['podman']:.2f}")
    else:
        line += "   (podman 4.3's remote client has no checkpoint --export: no floor)"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ssh", action="store_true", help="through an SSH tunnel too")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        base = Path(tmp)
        service: PodmanService = start(base / "podman", base / "kernelext")
        try:
            # kernelext as a user runs it: through its fork server (a private one, stopped at the end)
            servers = base / "forkserver"
            servers.mkdir(mode=0o700)
            env = {**service.env, "KERNELEXT_FORKSERVER_DIR": str(servers)}
            env.pop("KERNELEXT_FORKSERVER", None)
            urls = {"socket": (service.url, [])}
            server = None
            if options.ssh:
                server = sshd(base / "sshd")
                env["KERNELEXT_SSH_CONFIG"] = str(server.client_config)
                urls["ssh"] = (f"ssh://root@127.0.0.1:{server.port}{service.socket}",
                               ["--identity", str(server.identity)])
            payload = base / "payload.bin"
            payload.write_bytes(os.urandom(COPY_SIZE))
            for label, (url, extra) in urls.items():
                tools = {"kernelext": [sys.executable, KERNELEXT, "--url", url, *extra],
                         "podman": [PODMAN, "--url", url, *extra]}
                subprocess.run(tools["podman"] + ["run", "-d", "--name", "bench", "busybox", "sleep", "100000"],
                               check=True, env=env, stdout=subprocess.DEVNULL)
                print(f"-- over the {label}")
                measure("run --rm busybox true", options.runs, tools,
                        lambda _t: [["run", "--rm", "busybox", "true"]], env)
                measure("exec bench true", options.runs, tools, lambda _t: [["exec", "bench", "true"]], env)
                measure("cp 100 MiB in", options.runs, tools,
                        lambda _t: [["cp", str(payload), "bench:/tmp/payload.bin"]], env)
                measure("cp 100 MiB out", options.runs, tools,
                        lambda t: [["cp", "bench:/tmp/payload.bin", str(base / f"out-{t}.bin")]], env)
                measure("checkpoint --export+restore", options.runs, {"kernelext": tools["kernelext"]}, lambda _t: [
                    ["run", "-d", "--name", "counter", "busybox", "sh", "-c", "while true; do sleep 1; done"],
                    ["checkpoint", "--export", str(base / "ck.tar"), "counter"], ["rm", "-f", "counter"],
                    ["restore", "--import", str(base / "ck.tar")], ["rm", "-f", "-t", "0", "counter"]], env)
                subprocess.run(tools["podman"] + ["rm", "-f", "-t", "0", "bench"], env=env, stdout=subprocess.DEVNULL)
            if server is not None:
                server.stop()
        finally:
            service.stop()
            for pid in processes(lambda argv: any(str(base).encode() in arg for arg in argv)):
                os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
