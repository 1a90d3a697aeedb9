"""The widgets in a real browser: JupyterLab on loopback, Debian's chromium driven by Playwright.

A notebook shows a ContainerPanel for a running counter; the test watches the
output arrive and clicks through pause, unpause, checkpoint, restore and stop,
then reloads the page and sees the recent output again. Screenshots of the
panel, the dashboard and the lifecycle diagram go to ``$KERNELEXT_SCREENSHOTS``
(default: the test's temporary directory).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Store
from labserver import CHROMIUM, CHROMIUM_FLAGS, jupyterlab, run_all_cells, write_notebook

COUNTER = "i=0; while true; do echo \"tick $i\"; i=$((i+1)); sleep 0.2; done"
TICK = re.compile(r"tick (\d+)")
#: How many counter lines the first output area shows (its text, so no layout and no dependence on its elements).
SHOWN_TICKS_JS = "(document.querySelector('.kx-live-lines').textContent.match(/tick \\d+/g) || []).length"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (scripts/setup.sh)")


@pytest.fixture
def lab(store: Store, tmp_path: Path) -> Iterator[dict[str, Any]]:
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    write_notebook(notebook_dir / "panel.ipynb", [
        "%load_ext kernelext",
        f"%container run -d --name counter busybox sh -c '{COUNTER}'",
        "%container panel counter",
        "%container dashboard",
        "%container diagram counter"])
    env = {"KERNELEXT_ROOT": str(store.runtime.opts.root), "KERNELEXT_RUNROOT": str(store.runtime.opts.runroot)}
    with jupyterlab(notebook_dir, tmp_path, env) as server:
        yield {"url": server.url, "token": server.token, "server": server,
               "shots": Path(os.environ.get("KERNELEXT_SCREENSHOTS", tmp_path))}


def _ticks(page: Any) -> list[int]:
    """The counter values the panel's output area shows (the first output area on the page)."""
    return [int(n) for n in TICK.findall(page.locator(".kx-live-lines").first.inner_text())]


def test_panel_in_jupyterlab(lab: dict[str, Any], store: Store) -> None:
    from playwright.sync_api import expect, sync_playwright

    lab["shots"].mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        try:
            page.goto(lab["server"].notebook_url("panel.ipynb"))
            run_all_cells(page)

            badge = page.locator(".kx-panel .kx-badge").first
            expect(badge).to_have_text("running", timeout=60_000)
            page.wait_for_function(f"{SHOWN_TICKS_JS} >= 3", timeout=30_000)
            panel = page.locator(".kx-panel").first

            panel.locator("button[data-action=pause]").click()
            expect(badge).to_have_text("paused", timeout=2_000)
            time.sleep(0.5)
            frozen = _ticks(page)
            time.sleep(1.0)
            assert _ticks(page) == frozen, "output kept coming while paused"

            panel.locator("button[data-action=unpause]").click()
            expect(badge).to_have_text("running", timeout=2_000)
            page.wait_for_function(f"document.querySelector('.kx-live-lines').innerText.includes('tick {frozen[-1] + 3}')",
                                   timeout=10_000)
            page.locator(".jp-OutputArea-output:has(.kx-panel)").first.screenshot(path=str(lab["shots"] / "panel.png"))
            page.locator(".kx-dashboard").first.screenshot(path=str(lab["shots"] / "dashboard.png"))
            page.locator(".kx-diagram").first.screenshot(path=str(lab["shots"] / "diagram.png"))

            panel.locator("button[data-action=checkpoint]").click()
            expect(badge).to_have_text("exited", timeout=30_000)
            before = _ticks(page)[-1]
            panel.locator("button[data-action=restore]").click()
            expect(badge).to_have_text("running", timeout=30_000)
            page.wait_for_function(f"document.querySelector('.kx-live-lines').innerText.includes('tick {before + 2}')",
                                   timeout=10_000)
            after = _ticks(page)
            assert after[after.index(before):][:3] == [before, before + 1, before + 2], "the counter restarted"

            panel.locator("button[data-action=stop]").click()
            expect(badge).to_have_text("exited", timeout=30_000)
            last = _ticks(page)[-5:]


            page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_function("!window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=10_000)
            page.reload()
            expect(page.locator(".kx-panel .kx-badge").first).to_have_text("exited", timeout=60_000)
            page.wait_for_function(f"{SHOWN_TICKS_JS} >= 3", timeout=30_000)
            assert _ticks(page)[-5:] == last, "a reload did not show the recent output again"
        except BaseException:
            page.screenshot(path=str(lab["shots"] / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
