"""The notebooks' stored outputs are nbval's expectations on every host (issue #22): a cell that shows a behaviour
prints what holds everywhere (or one ``[skipped: why]`` line), so the only cells whose output nbval may leave
uncompared (tag ``nbval-ignore-output``) are those whose whole purpose is to report this host: each notebook's
host report, right after its set-up cell, and lab 2's pre-copy figures.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
IGNORE_TAG = "nbval-ignore-output"
#: The cells allowed to carry IGNORE_TAG: they print only this host's facts.
HOST_REPORTS = ("host_report(can)", "print(on_this_host)")


def _code_cells(notebook: Path) -> list[nbformat.NotebookNode]:
    return [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]


def test_each_notebook_reports_its_host_in_its_own_uncompared_cell() -> None:
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert len(notebooks) >= 6
    for notebook in notebooks:
        setup, report = _code_cells(notebook)[:2]
        assert "can = host_check(rt)" in setup.source and not setup.outputs, f"{notebook.name}: set-up prints"
        assert report.source.startswith("host_report(can)"), f"{notebook.name}: no host report after the set-up"
        assert IGNORE_TAG in report.metadata.get("tags", []), f"{notebook.name}: host report compared by nbval"


def test_no_other_cell_is_left_uncompared() -> None:
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in _code_cells(notebook):
            ignored = IGNORE_TAG in cell.metadata.get("tags", []) or "NBVAL_IGNORE_OUTPUT" in cell.source
            reports = cell.source.startswith(HOST_REPORTS[0]) or cell.source.rstrip().endswith(HOST_REPORTS[1])
            assert reports or not ignored, f"{notebook.name}: output not compared: {cell.source[:120]!r}"
