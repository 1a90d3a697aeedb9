"""Kill it anywhere, at length (issue #16): hundreds of commands killed at random moments, and the host
audited after each kill for anything ``ps -a`` does not account for or a state runc contradicts.

    sudo .venv/bin/python bench/kill_anywhere.py [--kills 500] [--seed 16]

The short form runs in CI (tests/test_crash.py). Each round runs one lifecycle
or image command (run, stop, start, restart, kill, rm, create, cp, commit, rmi,
and pull from a registry on loopback when skopeo and docker-registry are here)
against one store and sends it SIGKILL, SIGTERM, SIGHUP or SIGINT after a
random delay within that command's usual run time; then :func:`crashkit.audit`
lists leftovers (runc containers, conmons, cgroups, mounts, network namespaces,
directories, image directories, layers, blobs, staging entries) and untrue
states. At the end ``rm -fa`` must leave nothing at all. Prints the counts;
exits 1 if any audit found anything.
"""

from __future__ import annotations

import argparse
import collections
import random
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from kernelext import Runtime

import registry
from crashkit import audit, audit_empty, eventually, kill_round, push_crash_image, timed

SETTLE_S = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=500)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    signals: collections.Counter[str] = collections.Counter()
    failures = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kill-anywhere-") as base, ExitStack() as stack:
        pulled = None
        if registry.available():
            (Path(base) / "registry").mkdir()
            served = stack.enter_context(registry.serve(Path(base) / "registry"))
            pulled = push_crash_image(served.host, Path(base) / "layout")
        else:
            print("no skopeo or docker-registry: pulls left out", flush=True)
        commands = timed(pulled)
        rt = Runtime(Path(base) / "root", Path(base) / "run")
        store_args = ["--root", str(rt.opts.root), "--runroot", str(rt.opts.runroot)]
        try:
            for i in range(args.kills):
                argv, window = commands[i % len(commands)]
                signals[kill_round(store_args, rng, argv, window).name] += 1
                problems = eventually(lambda: audit(rt), SETTLE_S)
                if problems:
                    failures += 1
                    print(f"kill {i} ({' '.join(argv[:2])}): {problems}", flush=True)
                if (i + 1) % 50 == 0:
                    print(f"{i + 1} kills, {failures} with leftovers", flush=True)
        finally:
            subprocess.run([sys.executable, "-m", "kernelext", *store_args, "rm", "-fa"], capture_output=True)
            subprocess.run([sys.executable, "-m", "kernelext", *store_args, "rmi", "-fa"], capture_output=True)
            final = audit_empty(rt)
            rt.close()
    elapsed = time.monotonic() - started
    print(f"seed {args.seed}: {args.kills} kills ({', '.join(f'{n} {s}' for s, n in sorted(signals.items()))}) "
          f"in {elapsed:.0f} s; rounds with leftovers or untrue states: {failures}; after rm -fa: "
          f"{len(final)} leftovers{': ' + str(final) if final else ''}")
    return 1 if failures or final else 0


if __name__ == "__main__":
    sys.exit(main())
