"""JupyterLab on loopback and Debian's chromium through Playwright, for the browser test and benchmark."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from loopback import free_port, stop

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 60
KERNEL_READY_JS = ("window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel?.connectionStatus"
                   " === 'connected' && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                   " === 'idle'")


@dataclass(frozen=True)
class Lab:
    url: str
    token: str

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}"

    def notebook7_url(self, name: str) -> str:
        """The same notebook in Notebook 7 (served by the same server)."""
        return f"{self.url}/notebooks/{name}?token={self.token}"


def write_notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@contextmanager
def jupyterlab(notebook_dir: Path, work: Path, env: dict[str, str]) -> Iterator[Lab]:
    """A JupyterLab server on 127.0.0.1 whose kernels run this venv's Python with ``env`` added."""
    port, token = free_port(), secrets.token_hex(16)
    full_env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # kernels run "python"
                    JUPYTER_CONFIG_DIR=str(work / "jupyter-config"), JUPYTER_RUNTIME_DIR=str(work / "jupyter-runtime"),
                    **env)
    log = work / "lab.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={notebook_dir}", "--LabApp.news_url=",
         "--LabApp.expose_app_in_browser=True", "--JupyterNotebookApp.expose_app_in_browser=True", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=full_env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as reply:
                json.load(reply)
                break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"jupyter lab did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.3)
    try:
        yield Lab(url, token)
    finally:
        stop(server, 20)


def run_all_cells(page: Any) -> None:
    """Wait for the notebook's kernel, then run every cell."""
    page.wait_for_function(KERNEL_READY_JS, timeout=START_TIMEOUT_S * 1000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")


@contextmanager
def notebook_page(lab: Lab, name: str, *, height: int, failure_shot: Path) -> Iterator[Any]:
    """Chromium on the notebook with every cell run; the whole page is photographed to ``failure_shot``
    if the block fails."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": height})
        try:
            page.goto(lab.notebook_url(name))
            run_all_cells(page)
            yield page
        except BaseException:
            page.screenshot(path=str(failure_shot), full_page=True)
            raise
        finally:
            browser.close()
