"""The widgets in a real browser: JupyterLab on loopback, Debian's chromium driven by Playwright.

A notebook shows a ContainerPanel for a running counter; the test watches the
output arrive and clicks through pause, unpause, checkpoint, restore and stop,
then reloads the page and sees the recent output again; once on the local store and once with
``ContainerMagics.connection`` naming a real podman service (tests/podmanservice.py), where it also moves
the counter to the local store.

A second notebook shows every widget: each is checked for WCAG AA contrast of
all its text in JupyterLab's Light, Dark and Dark High Contrast themes (and
later in Notebook 7) and photographed in Light and Dark (to
``$KERNELEXT_SCREENSHOTS``, default the test's temporary directory;
``KERNELEXT_SCREENSHOTS=docs/screenshots`` regenerates the README's); a stop and a start from the CLI, a restart from
another cell and a restore from the timeline each make the panel's output go
on with the new run; ``logs -f`` stops by its button, ``attach`` by the
kernel's interrupt; a single file downloads as itself.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import kernelext
from kernelext.magics.container_magics import LOCAL_WIDGETS

from conftest import Store
from labserver import CHROMIUM, CHROMIUM_FLAGS, jupyterlab, run_all_cells, write_notebook

COUNTER = "i=0; while true; do echo \"tick $i\"; i=$((i+1)); sleep 0.2; done"
TICK = re.compile(r"tick (\d+)")
#: How many counter lines the first output area shows (its text, so no layout and no dependence on its elements).
SHOWN_TICKS_JS = "(document.querySelector('.kx-live-lines').textContent.match(/tick \\d+/g) || []).length"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (scripts/setup.sh)")


@contextmanager
def _counter_lab(store: Store, tmp_path: Path, notebook: str, cells: list[str],
                 env: dict[str, str] | None = None, first: list[str] | None = None) -> Iterator[Any]:
    """JupyterLab on the store, with a notebook that starts the counter and shows ``cells`` (``first``: lines
    before the counter's, ``env``: more of the kernel's environment)."""
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    write_notebook(notebook_dir / notebook, [
        "%load_ext kernelext", *(first or []), f"%container run -d --name counter busybox sh -c '{COUNTER}'", *cells])
    env = {"KERNELEXT_ROOT": str(store.runtime.opts.root), "KERNELEXT_RUNROOT": str(store.runtime.opts.runroot),
           **(env or {})}
    with jupyterlab(notebook_dir, tmp_path, env) as server:
        yield server


#: The connection the remote run of the panel's test names (the podman service, in the kernel's store).
CONNECTION = "lab"


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from podmanservice import serve

    yield from serve(tmp_path_factory.mktemp("bpodman"))


@pytest.fixture(params=["local", CONNECTION])
def lab(request: pytest.FixtureRequest, store: Store, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The panel's notebook on the local store, or with ``ContainerMagics.connection`` naming a podman service
    (the same cells: the counter runs there, the panel and the dashboard show it)."""
    engine, env, first, service = request.param, {}, [], None
    if engine != "local":
        from podmanservice import PODMAN

        if os.geteuid() != 0 or not os.path.exists(PODMAN):
            pytest.skip("needs root and podman")
        service = request.getfixturevalue("podman")
        conf = tmp_path / "containers.conf"  # the kernel's connection store: the service only
        conf.write_text(f'[engine]\n[engine.service_destinations.{engine}]\nuri = "{service.url}"\n')
        env = {"CONTAINERS_CONF": str(conf), "PODMAN_CONNECTIONS_CONF": str(tmp_path / "podman-connections.json"),
               "PYTHONPATH": str(Path(kernelext.__file__).parents[1])}  # this checkout's kernelext in the kernel
        first = [f'%config ContainerMagics.connection = "{engine}"']
    cells = ["%container panel counter", "%container dashboard", "%container diagram counter"]
    try:
        with _counter_lab(store, tmp_path, "panel.ipynb", cells, env, first) as server:
            yield {"url": server.url, "token": server.token, "server": server, "engine": engine, "service": service,
                   "shots": Path(os.environ.get("KERNELEXT_SCREENSHOTS", tmp_path))}
    finally:
        if service is not None:
            service.podman("rm", "-fa", "-t", "0", check=False)


def _ticks(page: Any) -> list[int]:
    """The counter values the panel's output area shows (the first output area on the page)."""
    return [int(n) for n in TICK.findall(page.locator(".kx-live-lines").first.inner_text())]


def _status(lab: dict[str, Any], store: Store) -> str:
    """The counter's state as its engine says (podman's own client for the service)."""
    if lab["service"] is None:
        return store.runtime.get("counter").status.value
    return lab["service"].remote("inspect", "--format", "{{.State.Status}}", "counter").stdout.strip()


def test_panel_in_jupyterlab(lab: dict[str, Any], store: Store) -> None:
    """The same clicks and checks on both engines (docs/architecture.md §16). Where they differ, by design:
    the diagram cell reads the local store (on a connection it says so in one line), and only a panel on a
    connection has another engine to move to (the local store), which it does at the end."""
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
            expect(panel.locator(".kx-engine")).to_have_text(lab["engine"])
            # the dashboard lists the counter on its engine
            expect(page.locator(".kx-dashboard").first).to_contain_text("counter", timeout=30_000)
            if lab["service"] is None:
                expect(page.locator(".kx-diagram")).to_have_count(1, timeout=30_000)
            else:  # the diagram reads the local store: one line naming the connection
                refused = f"%container diagram: {LOCAL_WIDGETS['diagram']} (engine '{lab['engine']}')"
                expect(page.locator(".jp-OutputArea-output", has_text=refused)).to_have_count(1, timeout=30_000)
                expect(page.locator(".kx-diagram")).to_have_count(0)

            panel.locator("button[data-action=pause]").click()
            expect(badge).to_have_text("paused", timeout=2_000)
            assert _status(lab, store) == "paused"
            time.sleep(0.5)
            frozen = _ticks(page)
            time.sleep(1.0)
            assert _ticks(page) == frozen, "output kept coming while paused"

            panel.locator("button[data-action=unpause]").click()
            expect(badge).to_have_text("running", timeout=2_000)
            page.wait_for_function(f"document.querySelector('.kx-live-lines').innerText.includes('tick {frozen[-1] + 3}')",
                                   timeout=10_000)

            panel.locator("button[data-action=checkpoint]").click()
            expect(badge).to_have_text("exited", timeout=30_000)
            assert _status(lab, store) == "exited"
            before = _ticks(page)[-1]
            panel.locator("button[data-action=restore]").click()
            expect(badge).to_have_text("running", timeout=30_000)
            page.wait_for_function(f"document.querySelector('.kx-live-lines').innerText.includes('tick {before + 2}')",
                                   timeout=10_000)
            after = _ticks(page)
            assert after[after.index(before):][:3] == [before, before + 1, before + 2], "the counter restarted"

            panel.locator("button[data-action=stop]").click()
            expect(badge).to_have_text("exited", timeout=30_000)
            assert _status(lab, store) == "exited"
            last = _ticks(page)[-5:]

            page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_function("!window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=10_000)
            page.reload()
            badge = page.locator(".kx-panel .kx-badge").first
            expect(badge).to_have_text("exited", timeout=60_000)
            page.wait_for_function(f"{SHOWN_TICKS_JS} >= 3", timeout=30_000)
            assert _ticks(page)[-5:] == last, "a reload did not show the recent output again"

            panel = page.locator(".kx-panel").first
            if lab["service"] is None:  # nowhere to move to: no chooser
                expect(panel.locator("select.kx-move")).to_be_hidden()
                return
            # "move to…" local: started again, then the panel follows the container into the local store
            panel.locator("button[data-action=start]").click()
            expect(badge).to_have_text("running", timeout=30_000)
            panel.locator("select.kx-move").select_option("local")
            expect(panel.locator(".kx-engine")).to_have_text("local", timeout=60_000)
            expect(badge).to_have_text("running", timeout=30_000)
            assert lab["service"].remote("ps", "-a", "-q").stdout == ""
            assert store.runtime.get("counter").status.value == "running"
        except BaseException:
            page.screenshot(path=str(lab["shots"] / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()


WIDGET_CELLS = {  # the widget (its root element) each cell shows, in order
    "panel": "%container panel counter",
    "logs": "%container logs -f counter",
    "attach": "%container attach counter",
    "dashboard": "%container dashboard",
    "diagram": "%container diagram counter",
    "snapshot": "%container diagram --snapshot counter",
    "timeline": "%container timeline counter",
    "monitor": "%container monitor counter",
    "files": "%container files counter",
}
#: Which element of its output area each widget's screenshot is taken of.
SHOT_SELECTORS = {"panel": ".jp-OutputArea-output:has(.kx-panel)", "dashboard": ".kx-dashboard",
                  "diagram": ".kx-diagram", "timeline": ".kx-timeline", "monitor": ".kx-monitor",
                  "files": ".kx-files", "logs": ":nth-match(.kx-live, 2)"}  # the first is the panel's own


@pytest.fixture
def widgets_lab(store: Store, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with _counter_lab(store, tmp_path, "widgets.ipynb", list(WIDGET_CELLS.values())) as server:
        yield {"server": server, "shots": Path(os.environ.get("KERNELEXT_SCREENSHOTS", tmp_path))}


def _count(page: Any, selector: str, index: int, text: str) -> int:
    """How often ``text`` appears in the index-th element matching ``selector``."""
    return int(page.evaluate("([s, i, t]) => document.querySelectorAll(s)[i].textContent.split(t).length - 1",
                             [selector, index, text]))


def _panel_shows_new_run(page: Any, zeros_before: int) -> None:
    """The panel's output goes on with a new run: a new "tick 0", then more lines after it."""
    page.wait_for_function(
        "([n]) => { const t = document.querySelector('.kx-panel ~ * .kx-live-lines, .kx-live-lines').textContent;"
        " const runs = t.split('tick 0\\n'); return runs.length - 1 > n && /tick 2/.test(runs[runs.length - 1]); }",
        arg=[zeros_before], timeout=30_000)


@pytest.mark.skipif(os.geteuid() != 0, reason="checkpoint/restore needs root")
def test_widgets_follow_every_run_and_read_well_in_every_theme(widgets_lab: dict[str, Any], store: Store) -> None:
    from browser_checks import THEMES, contrast_failures, hide_notifications, set_theme
    from playwright.sync_api import expect, sync_playwright

    shots = widgets_lab["shots"]
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 2600}, accept_downloads=True)
        try:
            page.goto(widgets_lab["server"].notebook_url("widgets.ipynb"))
            run_all_cells(page)
            badge = page.locator(".kx-panel .kx-badge").first
            expect(badge).to_have_text("running", timeout=60_000)
            expect(page.locator(".kx-files tr[data-name=etc]")).to_have_count(1, timeout=30_000)
            page.wait_for_function(f"{SHOWN_TICKS_JS} >= 3", timeout=30_000)
            page.wait_for_function("document.querySelectorAll('.kx-monitor svg').length === 2", timeout=30_000)
            panel_out = page.locator(".kx-live").nth(0)
            logs, attached = page.locator(".kx-live").nth(1), page.locator(".kx-live").nth(2)
            expect(logs.locator(".kx-live-title")).to_have_text("counter logs")
            expect(attached.locator(".kx-live-halt")).to_have_text("detach")

            # Every widget in each theme: a screenshot (light and dark), and AA contrast of all its text.
            hide_notifications(page)
            for key, theme in THEMES.items():
                set_theme(page, theme)
                checked, failures = contrast_failures(page)
                assert checked > 100, f"{theme}: only {checked} text elements found"
                assert not failures, f"{theme}: text below {4.5}:1 contrast: {failures}"
                if key == "high-contrast":
                    continue
                for name, selector in SHOT_SELECTORS.items():
                    page.locator(selector).first.screenshot(path=str(shots / f"{name}-{key}.png"))
            set_theme(page, THEMES["light"])

            # (While it runs: logs -f and attach end with the run.) logs -f stopped by its button; attach stopped by the kernel's interrupt. The panel goes on.
            # Follow pauses when the reader scrolls up; the filter shows only matching lines.
            lines = logs.locator(".kx-live-lines")
            page.wait_for_function("(() => { const e = document.querySelectorAll('.kx-live-lines')[1];"
                                   " return e.scrollHeight > e.clientHeight + 60; })()", timeout=30_000)
            lines.hover()
            page.mouse.wheel(0, -300)
            expect(logs.locator(".kx-live-follow input")).not_to_be_checked(timeout=5_000)
            top = lines.evaluate("e => e.scrollTop")
            time.sleep(1.0)
            assert lines.evaluate("e => e.scrollTop") == top, "the view scrolled while the reader read above"
            logs.locator(".kx-live-filter").fill("tick 1")
            page.wait_for_timeout(300)
            assert all(line.startswith("tick 1") for line in lines.inner_text().split("\n") if line.strip())
            logs.locator(".kx-live-filter").fill("")
            logs.locator(".kx-live-halt").click()
            expect(logs.locator(".kx-live-footer")).to_have_text("[stopped following counter: it keeps running]",
                                                                 timeout=10_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:interrupt-kernel')")
            expect(attached.locator(".kx-live-footer")).to_have_text("[detached from counter: it keeps running]",
                                                                     timeout=10_000)
            frozen = (logs.locator(".kx-live-lines").inner_text(), attached.locator(".kx-live-lines").inner_text())
            shown = len(_ticks(page))
            time.sleep(1.5)
            assert (logs.locator(".kx-live-lines").inner_text(),
                    attached.locator(".kx-live-lines").inner_text()) == frozen, "a stopped area kept following"
            assert len(_ticks(page)) > shown, "the interrupt stopped the panel's own output"
            expect(logs.locator(".kx-live-halt")).to_be_disabled()

            # Keyboard: the panel's buttons are real buttons with names; Tab reaches them.
            pause = page.locator(".kx-panel button[data-action=pause]")
            expect(pause).to_have_accessible_name("pause")
            pause.focus()
            page.keyboard.press("Enter")
            expect(badge).to_have_text("paused", timeout=10_000)
            page.locator(".kx-panel button[data-action=unpause]").focus()
            page.keyboard.press(" ")
            expect(badge).to_have_text("running", timeout=10_000)

            # A stop from the CLI: the footer says 137 (not 0). A start from the CLI: the output goes on.
            assert store.cli("stop", "-t", "0", "counter").returncode == 0
            expect(panel_out.locator(".kx-live-footer")).to_have_text("[counter exited with code 137]",
                                                                      timeout=15_000)
            zeros = _count(page, ".kx-live-lines", 0, "tick 0\n")
            assert store.cli("start", "counter").returncode == 0
            _panel_shows_new_run(page, zeros)
            expect(panel_out.locator(".kx-live-footer")).to_have_text("", timeout=10_000)

            # A restart from another cell (the same kernel, another execution): the output goes on.
            zeros = _count(page, ".kx-live-lines", 0, "tick 0\n")
            page.evaluate("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                          ".requestExecute({code: '%container restart -t 0 counter'}).done")
            _panel_shows_new_run(page, zeros)

            # A checkpoint from the panel, a restore from the timeline: the counter goes on where it was.
            page.locator(".kx-panel button[data-action=checkpoint]").click()
            expect(badge).to_have_text("exited", timeout=30_000)
            expect(panel_out.locator(".kx-live-footer")).to_have_text("[counter checkpointed]", timeout=10_000)
            before = _ticks(page)[-1]
            restore = page.locator(".kx-timeline button[data-action=restore]")
            expect(restore).to_be_enabled(timeout=10_000)
            restore.click()
            expect(badge).to_have_text("running", timeout=30_000)
            page.wait_for_function(
                f"document.querySelector('.kx-live-lines').innerText.includes('tick {before + 3}')", timeout=15_000)
            expect(panel_out.locator(".kx-live-footer")).to_have_text("")
            expect(page.locator(".kx-timeline tbody tr")).to_have_count(1, timeout=10_000)  # one history entry

            # A branch from the timeline's entry: a new container counting on beside the original, named
            # under the entry once the timeline's poll sees it.
            timeline = page.locator(".kx-timeline")
            timeline.locator("input.kx-timeline-branch").fill("counter-fork")
            timeline.locator("tbody tr[data-entry='1'] button[data-action=branch]").click()
            expect(timeline.locator(".kx-timeline-message")).to_have_text("counter-fork branched from checkpoint 1",
                                                                           timeout=30_000)
            expect(timeline.locator(".kx-timeline-branch-note")).to_contain_text("branch: counter-fork",
                                                                                 timeout=10_000)
            fork = store.runtime.get("counter-fork")
            assert fork.status.value == "running" and fork.id != store.runtime.get("counter").id
            fork.remove(force=True)

            # A second entry after a file was written; two entries ticked (by keyboard): their diff below the tree.
            assert store.runtime.get("counter").exec_run(["touch", "/between-entries"]).exit_code == 0
            timeline.locator("button[data-action=checkpoint]").click()
            expect(timeline.locator("tbody tr")).to_have_count(2, timeout=30_000)
            timeline.locator("tbody tr[data-entry='1'] input.kx-timeline-select").check()
            expect(timeline.locator(".kx-timeline-detail")).to_contain_text("inside #1", timeout=20_000)
            timeline.locator("tbody tr[data-entry='2'] input.kx-timeline-select").focus()
            page.keyboard.press(" ")
            detail = timeline.locator(".kx-timeline-detail")
            expect(detail).to_contain_text("changes #1 \u2192 #2", timeout=20_000)
            expect(detail).to_contain_text("/between-entries")

            # The snapshot diagram kept the state it was drawn in; the live one follows.
            expect(page.locator(".kx-diagram").nth(1)).to_contain_text("snapshot: running when drawn")

            # FileBrowser: a single file downloads as itself.
            files = page.locator(".kx-files")
            files.locator("tr[data-name=etc] .kx-files-open").click()
            expect(files.locator("code.kx-files-path")).to_have_text("/etc", timeout=10_000)
            with page.expect_download(timeout=15_000) as download:
                files.locator("button[data-download=passwd]").click()
            assert download.value.suggested_filename == "passwd"
            content = Path(download.value.path()).read_text()
            assert content.startswith("root:"), content[:100]

            # The panel's remove asks first: cancel keeps the container, confirming removes it.
            page.locator(".kx-panel button[data-action=stop]").click()
            expect(badge).to_have_text("exited", timeout=30_000)
            page.locator(".kx-panel button[data-action=remove]").click()
            confirm = page.locator(".kx-panel-confirm")
            expect(confirm).to_contain_text("Remove counter and its files?")
            confirm.locator("button[data-confirm=cancel]").click()
            expect(confirm).to_be_hidden()
            time.sleep(0.5)
            assert store.runtime.exists("counter")
            page.locator(".kx-panel button[data-action=remove]").click()
            confirm.locator("button[data-confirm=remove]").click()
            expect(badge).to_have_text("removed", timeout=30_000)
            assert not store.runtime.exists("counter")

            # The same widgets in Notebook 7 (its own page, the same kernel) read as well.
            page.close()
            page = browser.new_page(viewport={"width": 1200, "height": 2600})
            page.goto(widgets_lab["server"].notebook7_url("widgets.ipynb"))
            run_all_cells(page)
            expect(page.locator(".kx-panel .kx-badge").first).to_have_text("running", timeout=60_000)
            expect(page.locator(".kx-files tr[data-name=etc]")).to_have_count(1, timeout=30_000)
            hide_notifications(page)
            checked, failures = contrast_failures(page)
            assert checked > 100 and not failures, f"Notebook 7: {checked} checked, {failures}"
        except BaseException:
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
