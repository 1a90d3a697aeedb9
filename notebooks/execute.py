"""Re-execute notebooks in place and store their outputs (the references nbval compares against).

    .venv/bin/python notebooks/execute.py                 # all of them
    .venv/bin/python notebooks/execute.py 00-tour.ipynb   # some

Run it as root with .venv/bin first on PATH, after a change that alters what a notebook shows; review
the diff of the outputs before committing it. Each notebook runs in a fresh store (as under pytest), so
the stored outputs are those of a clean run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


def execute(path: Path) -> float:
    from nbhelpers import remove_leftovers

    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}},
                       store_widget_state=True).execute()
    finally:
        left = remove_leftovers(os.environ["KERNELEXT_NOTEBOOK_STORE"], path.stem)
        if left:
            print(f"{path.name} left containers behind (removed): {', '.join(left)}")
    nbformat.write(nb, path)
    return time.monotonic() - started


def main(names: list[str]) -> None:
    os.environ.setdefault("IPYKERNEL_CELL_NAME", "<IPY-INPUT>")
    with tempfile.TemporaryDirectory(prefix="kernelext-notebooks-") as base:
        os.environ["KERNELEXT_NOTEBOOK_STORE"] = base
        paths = [HERE / n for n in names] if names else sorted(HERE.glob("*.ipynb"))
        for path in paths:
            print(f"{path.name}: {execute(path):.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
