"""The remote engine next to its floor, ``podman --remote``, on the same podman service; the local engine too.

Starts a private podman service (tests/podmanservice.py: its own store, socket, containers.conf), then
times the same command lines through ``kernelext --url unix://...`` and ``podman --url unix://...``:
``run --rm busybox true``, ``exec CTR true``, ``cp`` of a 100 MiB file into a container and back out,
a ``container checkpoint --export`` + ``container restore --import`` of a running container (with the
``run -d`` before and the ``rm`` after), and each of them alone for a container holding 100 MiB of memory (the
archive streamed down and up). Both tools alternate in each run; each row shows the median times and
the median of the runs' ratios kernelext/podman with their min–max (the issue's bar: 1.2). The same rows
locally: kernelext on its own store next to podman on the service's store (no service between). Over SSH with
``--ssh`` (an sshd of its own on loopback). ``ps`` is the row of a command that does little: start-up costs. With
``--no-forkserver`` every kernelext command is a fresh interpreter (``KERNELEXT_FORKSERVER=0``: what a session's
first command, or one with ``--preserve-fds``, pays). Run as root:

    .venv/bin/python bench/bench_remote.py [--runs N] [--ssh] [--no-forkserver]
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

REPOSITORY = Path(__file__).resolve().parent.parent
# this checkout's kernelext, here and in the commands timed (not whichever one the interpreter has installed)
sys.path[:0] = [str(REPOSITORY), str(REPOSITORY / "tests")]

from podmanservice import PODMAN, PodmanService, sshd, start

from conftest import processes

KERNELEXT = str(REPOSITORY / "bin" / "kernelext")
MIB = 1 << 20
COPY_SIZE = 100 * MIB
#: A container whose memory holds 100 MiB of random data (tail -c keeps the last N bytes of a pipe, then blocks
#: writing to a reader that never reads), and the wait until it does (tail's resident size, in KiB).
HOLD_100_MIB = f"head -c {COPY_SIZE} /dev/urandom | tail -c {COPY_SIZE} | sleep 100000"
HELD_100_MIB = (f"while [ $(awk '/VmRSS/{{print $2}}' /proc/$(pidof tail)/status) -lt {COPY_SIZE // 1024} ]; "
                "do sleep 0.1; done")


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return time.perf_counter() - started


def measure(name: str, runs: int, tools: dict[str, list[str]], argv: Callable[[str], list[list[str]]],
            env: dict[str, str], floor: str, setup: Callable[[str], list[list[str]]] = lambda _t: []) -> None:
    """Seconds of the command lines ``argv(tool)`` (run in order) per tool, alternating tools: medians, and the
    runs' ratios kernelext/podman (median, min–max). ``setup(tool)``'s lines run before each, untimed."""
    times: dict[str, list[float]] = {tool: [] for tool in tools}
    for _ in range(runs):
        for tool, prefix in tools.items():
            for line in setup(tool):
                _timed(prefix + line, env)
            times[tool].append(sum(_timed(prefix + line, env) for line in argv(tool)))
    ratios = [ours / theirs for ours, theirs in zip(times["kernelext"], times["podman"])]
    print(f"{name:<30} kernelext {statistics.median(times['kernelext']) * 1000:7.1f} ms   "
          f"{floor} {statistics.median(times['podman']) * 1000:7.1f} ms   "
          f"ratio {statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})", flush=True)


def operations(label: str, runs: int, tools: dict[str, list[str]], env: dict[str, str], base: Path,
               payload: Path, floor: str, stores: list[list[str]]) -> None:
    """The benchmark's rows for one way of reaching containers (``tools`` run each command line; ``stores``:
    one tool per store, which makes the container to exec in and copy to)."""
    print(f"-- {label} ({runs} runs)", flush=True)
    for prefix in stores:
        subprocess.run(prefix + ["run", "-d", "--name", "bench", "busybox", "sleep", "100000"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    try:
        measure("ps", runs, tools, lambda _t: [["ps"]], env, floor)
        measure("run --rm busybox true", runs, tools, lambda _t: [["run", "--rm", "busybox", "true"]], env, floor)
        measure("exec bench true", runs, tools, lambda _t: [["exec", "bench", "true"]], env, floor)
        measure("cp 100 MiB in", runs, tools, lambda _t: [["cp", str(payload), "bench:/tmp/payload.bin"]], env,
                floor)
        measure("cp 100 MiB out", runs, tools,
                lambda t: [["cp", "bench:/tmp/payload.bin", str(base / f"out-{t}.bin")]], env, floor)
        measure("checkpoint --export+restore", runs, tools, lambda t: [
            ["run", "-d", "--name", "counter", "busybox", "sh", "-c", "while true; do sleep 1; done"],
            ["container", "checkpoint", "--export", str(base / f"ck-{t}.tar"), "counter"],
            ["rm", "-f", "counter"],
            ["container", "restore", "--import", str(base / f"ck-{t}.tar")],
            ["rm", "-f", "-t", "0", "counter"]], env, floor)
        # the archive's size is the memory's: a container holding 100 MiB, its export downloaded and uploaded
        measure("checkpoint 100 MiB --export", runs, tools,
                lambda t: [["container", "checkpoint", "--export", str(base / f"big-{t}.tar"), "big"]], env, floor,
                setup=lambda _t: [["rm", "-f", "-i", "-t", "0", "big"],
                                  ["run", "-d", "--name", "big", "busybox", "sh", "-c", HOLD_100_MIB],
                                  ["exec", "big", "sh", "-c", HELD_100_MIB]])
        measure("restore 100 MiB --import", runs, tools,
                lambda t: [["container", "restore", "--import", str(base / f"big-{t}.tar")]], env, floor,
                setup=lambda _t: [["rm", "-f", "-i", "-t", "0", "big"]])
        for prefix in tools.values():
            subprocess.run(prefix + ["rm", "-f", "-t", "0", "big"], env=env, stdout=subprocess.DEVNULL)
    finally:
        for prefix in stores:
            subprocess.run(prefix + ["rm", "-f", "-t", "0", "bench"], env=env, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ssh", action="store_true", help="through an SSH tunnel too")
    parser.add_argument("--no-local", action="store_true", help="only the remote engine")
    parser.add_argument("--no-forkserver", action="store_true", help="each kernelext command a fresh interpreter")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        base = Path(tmp)
        store = base / "kernelext"  # the local engine's store (busybox built in), the service's image source
        service: PodmanService = start(base / "podman", store)
        server = None
        try:
            # kernelext as a user runs it: through its fork server (a private one, stopped at the end)
            servers = base / "forkserver"
            servers.mkdir(mode=0o700)
            env = {**service.env, "KERNELEXT_FORKSERVER_DIR": str(servers),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))}
            env.pop("KERNELEXT_FORKSERVER", None)
            if options.no_forkserver:
                env["KERNELEXT_FORKSERVER"] = "0"
            payload = base / "payload.bin"
            payload.write_bytes(os.urandom(COPY_SIZE))
            kernelext = [sys.executable, KERNELEXT]
            if not options.no_local:
                local = {"kernelext": [*kernelext, "--root", str(store / "root"), "--runroot", str(store / "run")],
                         "podman": service.local_argv}
                operations("locally: kernelext's core, podman without a service", options.runs, local, env, base,
                           payload, "podman", list(local.values()))
            urls = {"over the socket": (service.url, [])}
            if options.ssh:
                server = sshd(base / "sshd")
                env["KERNELEXT_SSH_CONFIG"] = str(server.client_config)
                urls["over SSH"] = (f"ssh://root@127.0.0.1:{server.port}{service.socket}",
                                    ["--identity", str(server.identity)])
            for label, (url, extra) in urls.items():
                remote = {"kernelext": [*kernelext, "--url", url, *extra], "podman": [PODMAN, "--url", url, *extra]}
                operations(f"{label}: the remote engine, podman --remote", options.runs, remote, env, base, payload,
                           "podman --remote", [remote["podman"]])
        finally:
            if server is not None:
                server.stop()
            service.stop()
            for pid in processes(lambda argv: any(str(base).encode() in arg for arg in argv)):
                os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
