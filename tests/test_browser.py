"""The widgets in a real browser: JupyterLab on loopback, Debian's chromium driven by Playwright.

A notebook shows a ContainerPanel for a running counter; the test watches the
output arrive and clicks through pause, unpause, checkpoint, restore and stop,
then reloads the page and sees the recent output again. Screenshots of the
panel, the dashboard and the lifecycle diagram go to ``$KERNELEXT_SCREENSHOTS``
(default: the test's temporary directory).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from conftest import Store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COUNTER = "i=0; while true; do echo \"tick $i\"; i=$((i+1)); sleep 0.2; done"
TICK = re.compile(r"tick (\d+)")

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (scripts/setup.sh)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lab(store: Store, tmp_path: Path) -> Iterator[dict[str, Any]]:
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    cells = ["%load_ext kernelext",
             f"%container run -d --name counter busybox sh -c '{COUNTER}'",
             "%container panel counter",
             "%container dashboard",
             "%container diagram counter"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebook_dir / "panel.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # kernels run "python"
               KERNELEXT_ROOT=str(store.runtime.opts.root),
               KERNELEXT_RUNROOT=str(store.runtime.opts.runroot), JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"))
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={notebook_dir}", "--LabApp.news_url=",
         "--LabApp.expose_app_in_browser=True",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as reply:
                json.load(reply)
                break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"jupyter lab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
            time.sleep(0.3)
    try:
        yield {"url": url, "token": token, "shots": Path(os.environ.get("KERNELEXT_SCREENSHOTS", tmp_path))}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


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
            page.goto(f"{lab['url']}/lab/tree/panel.ipynb?token={lab['token']}")
            page.wait_for_function(
                "window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel?.connectionStatus"
                " === 'connected' && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                " === 'idle'", timeout=60_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

            badge = page.locator(".kx-panel .kx-badge").first
            expect(badge).to_have_text("running", timeout=60_000)
            page.wait_for_function("document.querySelectorAll('.kx-live-lines div').length >= 3", timeout=30_000)
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
            page.wait_for_function("document.querySelectorAll('.kx-live-lines div').length >= 3", timeout=30_000)
            assert _ticks(page)[-5:] == last, "a reload did not show the recent output again"
        except BaseException:
            page.screenshot(path=str(lab["shots"] / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
