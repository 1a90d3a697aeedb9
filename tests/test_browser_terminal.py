"""The terminal widget in a real browser: JupyterLab on loopback, Debian's chromium driven by Playwright.

Keys are typed into xterm.js as a user types them, and what the test reads is
the rows xterm rendered in the page (``.xterm-rows``): a shell from ``exec
-it`` computes ``42``, ``stty size`` says the widget's size and follows a
resize, ``top`` draws and quits with ``q``, Ctrl-C interrupts ``sleep``, a
reload redraws the screen, ``exit 3`` shows the exit code and stops input. A
TTY container is detached from with ctrl-p ctrl-q and re-attached from a
new cell. Its text
keeps AA contrast in Lab's Light and Dark themes; screenshots go to
``$KERNELEXT_SCREENSHOTS`` (``docs/screenshots`` regenerates the README's).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Store
from labserver import CHROMIUM, jupyterlab, notebook_page, write_notebook

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (scripts/setup.sh)")

CELLS = ["%load_ext kernelext", "%container run -d --name shell busybox sleep 1000",
         "%container run -d -it --name tty busybox sh", "%container exec -it shell sh", "%container attach tty"]


def rows_js(index: int) -> str:
    """The text of the index-th terminal's rendered rows."""
    return f"(document.querySelectorAll('.kx-term .xterm-rows')[{index}]?.innerText ?? '')"


def wait_rows(page: Any, index: int, needle: str, timeout: float = 15_000) -> None:
    page.wait_for_function(f"([n]) => {rows_js(index)}.includes(n)", arg=[needle], timeout=timeout)


def size(page: Any, index: int) -> tuple[int, int]:
    rows, cols = page.evaluate(f"(() => {{ const t = document.querySelectorAll('.kx-term')[{index}].kxTerminal;"
                               " return [t.rows, t.cols]; })()")
    return int(rows), int(cols)


def typed(page: Any, index: int, text: str) -> None:
    page.locator(".kx-term .xterm").nth(index).click()
    page.keyboard.type(text)


@pytest.fixture
def term_lab(store: Store, tmp_path: Path) -> Iterator[dict[str, Any]]:
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    write_notebook(notebook_dir / "terminal.ipynb", CELLS)
    env = {"KERNELEXT_ROOT": str(store.runtime.opts.root), "KERNELEXT_RUNROOT": str(store.runtime.opts.runroot)}
    with jupyterlab(notebook_dir, tmp_path, env) as server:
        yield {"server": server, "shots": Path(os.environ.get("KERNELEXT_SCREENSHOTS", tmp_path))}


def test_terminal_in_jupyterlab(term_lab: dict[str, Any], store: Store) -> None:
    from browser_checks import THEMES, contrast_failures, hide_notifications, set_theme
    from playwright.sync_api import expect

    shots = term_lab["shots"]
    shots.mkdir(parents=True, exist_ok=True)
    with notebook_page(term_lab["server"], "terminal.ipynb", height=1600,
                       failure_shot=shots / "terminal-failure.png") as page:
        expect(page.locator(".kx-term")).to_have_count(2, timeout=60_000)
        wait_rows(page, 0, "/ #", timeout=30_000)
        hide_notifications(page)
        owners = page.evaluate("[...document.querySelectorAll('.kx-term .xterm')].map(e => e.className"
                               ".match(/xterm-dom-renderer-owner-\\d+/)[0])")
        assert len(set(owners)) == 2, f"two terminals share one style sheet: {owners}"

        typed(page, 0, "echo $((6*7))\n")
        wait_rows(page, 0, "\n42")
        rows, cols = size(page, 0)
        typed(page, 0, "stty size\n")
        wait_rows(page, 0, f"{rows} {cols}")
        page.locator(".kx-term-screen").nth(0).evaluate("e => { e.style.height = '520px'; }")
        page.wait_for_function("(() => document.querySelectorAll('.kx-term')[0].kxTerminal.rows > "
                               f"{rows})()", timeout=10_000)
        bigger, cols = size(page, 0)
        typed(page, 0, "clear; stty size\n")
        wait_rows(page, 0, f"{bigger} {cols}")

        typed(page, 0, "top\n")  # full-screen: it draws its header, then q quits back to the prompt
        wait_rows(page, 0, "Load average")
        page.keyboard.press("q")
        typed(page, 0, "clear; echo top-$((1+1))\n")  # only the shell, not top, computes it
        wait_rows(page, 0, "top-2")
        assert "Load average" not in page.evaluate(rows_js(0))

        typed(page, 0, "clear; sleep 100\n")
        time.sleep(0.5)
        page.keyboard.press("Control+c")  # 0x03 to the TTY: its line discipline sends sleep SIGINT
        typed(page, 0, "echo slept $?\n")
        wait_rows(page, 0, "slept 130", timeout=10_000)

        # Colours: ls's and six ANSI ones, plain and bold. In Dark too, every text of the widget, the terminal's rows
        # included, keeps 4.5:1 (xterm lifts a colour that would not); screenshots in both.
        typed(page, 0, 'clear; ls --color=always /; for c in 31 32 33 34 35 36; do printf "\\033[${c}m'
                       'colour-$c \\033[1mbold-$c\\033[0m "; done; echo\n')
        wait_rows(page, 0, "bold-36")
        for key in ("light", "dark"):
            set_theme(page, THEMES[key])
            checked, failures = contrast_failures(page)
            assert not failures, f"{key}: text below 4.5:1 contrast: {failures}"
            assert checked > 10
            page.locator(".kx-term").nth(0).screenshot(path=str(shots / f"terminal-{key}.png"))
        set_theme(page, THEMES["light"])

        # A TTY container: detach with ctrl-p ctrl-q (it keeps running), re-attach from a new cell.
        typed(page, 1, "echo attached-$((3*3))\n")
        wait_rows(page, 1, "attached-9")
        page.keyboard.press("Control+p")
        page.keyboard.press("Control+q")
        expect(page.locator(".kx-term-footer").nth(1)).to_have_text(
            "[detached from tty: it keeps running; %container attach tty re-attaches]", timeout=10_000)
        assert store.runtime.get("tty").status.value == "running"
        # Re-attach from a new cell, as the footer says: the screen so far (from the log), then live again.
        page.evaluate("""async () => {
          const app = window.jupyterapp;
          app.shell.currentWidget.content.activeCellIndex = 4;
          await app.commands.execute('notebook:insert-cell-below');
          app.shell.currentWidget.content.activeCell.model.sharedModel.setSource('%container attach tty');
          await app.commands.execute('notebook:run-cell');
        }""")
        expect(page.locator(".kx-term")).to_have_count(3, timeout=30_000)
        wait_rows(page, 2, "attached-9")
        typed(page, 2, "echo again-$((5+5))\n")
        wait_rows(page, 2, "again-10")

        # A reload: each view asks the kernel for its screen again.
        page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function("!window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=10_000)
        page.reload()
        expect(page.locator(".kx-term")).to_have_count(3, timeout=60_000)
        wait_rows(page, 0, "bold-36", timeout=30_000)
        wait_rows(page, 2, "again-10", timeout=30_000)  # the screen as it was

        typed(page, 0, "exit 3\n")
        expect(page.locator(".kx-term-footer").nth(0)).to_have_text("[exec sh in shell exited with code 3]",
                                                                     timeout=15_000)
        wait_rows(page, 0, "exited with code 3")
        page.wait_for_function("(() => document.querySelectorAll('.kx-term')[0].kxTerminal.options.disableStdin)()",
                               timeout=5_000)
        expect(page.locator(".kx-term-detach").nth(0)).to_be_disabled()
        status = page.evaluate("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                               ".requestExecute({code: 'assert _exit_code == 3'}).done.then(r => r.content.status)")
        assert status == "ok", "_exit_code is not the exit code"
