"""nbval for the notebooks: their own stores, the sanitize file, and no leftovers.

``.venv/bin/python -m pytest`` runs these notebooks with the tests (pyproject's ``testpaths`` and
``addopts``); ``pytest --nbval notebooks/`` runs them alone. Either way:

* the kernels get ``KERNELEXT_NOTEBOOK_STORE``, a fresh directory for this run, under which each
  notebook keeps its own store (``nbhelpers.notebook_store``): a clean store, isolated from yours;
* ``sanitize.cfg`` next to this file is used unless another is given, and the kernel is this
  environment's (``--nbval-current-env``) unless a kernel name is given;
* after a notebook's last cell, whatever its cells left in its store is removed (so a cell that
  failed halfway leaves nothing behind), then the run's directory is removed at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ENV_BASE = "KERNELEXT_NOTEBOOK_STORE"
_created: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    opt = config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
        return
    if not opt.nbval_sanitize_with:
        opt.nbval_sanitize_with = str(HERE / "sanitize.cfg")
    if not opt.nbval_kernel_name:
        opt.nbval_current_env = True
    if not os.environ.get(ENV_BASE):
        base = tempfile.mkdtemp(prefix="kernelext-notebooks-")
        os.environ[ENV_BASE] = base
        _created.append(base)
    # Stable names for code in tracebacks and warnings (nbclient's tests do the same).
    os.environ.setdefault("IPYKERNEL_CELL_NAME", "<IPY-INPUT>")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every notebook drives real containers: an integration test (``-m "not integration"`` skips them)."""
    for item in items:
        if str(item.path).endswith(".ipynb"):
            item.add_marker(pytest.mark.integration)


def pytest_collectstart(collector: pytest.Collector) -> None:
    # Rich HTML cards and tables carry IDs and uptimes; their text/plain twins (compared) are the stable form.
    if hasattr(collector, "skip_compare") and str(collector.path).endswith(".ipynb"):
        collector.skip_compare = (*collector.skip_compare, "text/html")


def _remove_leftovers(notebook: Path) -> None:
    import sys

    sys.path.insert(0, str(HERE))
    from nbhelpers import remove_leftovers

    try:
        removed = remove_leftovers(os.environ[ENV_BASE], notebook.stem)
    except Exception as exc:  # noqa: BLE001 - reported, never hidden
        print(f"\nnotebooks/conftest.py: clean-up of {notebook.name} failed: {exc}")
        return
    if removed:
        print(f"\nnotebooks/conftest.py: removed what {notebook.name} left: {', '.join(removed)}")


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    path = Path(str(item.path))
    if path.suffix != ".ipynb" or not os.environ.get(ENV_BASE):
        return
    if nextitem is None or Path(str(nextitem.path)) != path:
        _remove_leftovers(path)


def pytest_unconfigure(config: pytest.Config) -> None:
    for base in _created:
        mounted = [line.split()[4] for line in open("/proc/self/mountinfo") if base in line.split()[4]]
        if mounted:
            print(f"\nnotebooks/conftest.py: mounts left under {base}: {mounted}")
            continue
        shutil.rmtree(base, ignore_errors=True)
