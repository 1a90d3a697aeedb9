"""200,000 lines into a ContainerPanel's LiveOutput, in a real kernel, shown in a real browser.

    sudo .venv/bin/python bench/bench_widgets.py [--lines N]

Reports: messages and bytes the kernel sent to the browser for the stream,
the kernel's CPU time, how long a click on Pause takes to show (from the
mouse press to the badge reading "paused", timed in the page) during the
stream, and how long the browser takes to show the final state once the
container has finished.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client import BlockingKernelClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from kernelext import ContainerStatus, Runtime

from labserver import CHROMIUM, CHROMIUM_FLAGS, jupyterlab, run_all_cells, write_notebook

MEASURE = ("import json, resource; u = resource.getrusage(resource.RUSAGE_SELF); "
           "print(json.dumps({'messages': panel.output.messages_sent, 'bytes': panel.output.bytes_sent, "
           "'cpu': u.ru_utime + u.ru_stime - cpu0}))")


# In the page, on one clock: when the mouse button went down (the event's own time, so a busy page's delay
# in handling it counts) and when the badge first read "paused". Playwright's click() call also waits for
# its actionability checks, and its expect() polls at widening intervals (up to 500 ms apart), so neither
# bounds what a user sees.
WATCH_PAUSE_JS = """() => {
  window.kxPause = {};
  const badge = document.querySelector('.kx-panel .kx-badge');
  document.addEventListener('pointerdown', (e) => { window.kxPause.pressed = e.timeStamp; }, {capture: true, once: true});
  new MutationObserver((_, observer) => {
    if (badge.textContent === 'paused') { window.kxPause.shown = performance.now(); observer.disconnect(); }
  }).observe(badge, {childList: true, characterData: true, subtree: true});
}"""


def kernel_numbers(runtime_dir: Path) -> dict[str, float]:
    """Ask the notebook's kernel (through its connection file) what the LiveOutput sent."""
    connection = max(runtime_dir.glob("kernel-*.json"), key=lambda p: p.stat().st_mtime)
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    try:
        found: dict[str, float] = {}

        def output(msg: dict[str, object]) -> None:
            content = msg["content"]
            if msg["msg_type"] == "stream" and isinstance(content, dict):
                found.update(json.loads(str(content["text"])))
        client.execute_interactive(MEASURE, timeout=30, output_hook=output)
        return found
    finally:
        client.stop_channels()


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kx-bench-widgets-"))
    rt = Runtime(work / "root", work / "run")
    script = f"i=0; while [ $i -lt {args.lines} ]; do echo line $i; i=$((i+1)); done; sleep 1"
    notebooks = work / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "stream.ipynb", [
        "%load_ext kernelext",
        "import resource; u = resource.getrusage(resource.RUSAGE_SELF); cpu0 = u.ru_utime + u.ru_stime",
        f"%container create --name flood busybox sh -c '{script}'",
        "panel = %container panel flood\npanel",
        "panel.run_action('start');"])
    env = {"KERNELEXT_ROOT": str(rt.opts.root), "KERNELEXT_RUNROOT": str(rt.opts.runroot)}
    try:
        with jupyterlab(notebooks, work, env) as lab, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(lab.notebook_url("stream.ipynb"))
            run_all_cells(page)
            badge = page.locator(".kx-panel .kx-badge").first
            expect(badge).to_have_text("running", timeout=60_000)
            page.wait_for_function("(document.querySelector('.kx-live-lines').textContent.match(/line \\d+/g) || [])"
                                   ".length >= 500", timeout=60_000)
            page.evaluate(WATCH_PAUSE_JS)
            clicked = time.perf_counter()
            page.locator(".kx-panel button[data-action=pause]").first.click()
            page.wait_for_function("window.kxPause.shown !== undefined", polling="raf", timeout=5_000)
            call_ms = (time.perf_counter() - clicked) * 1000
            expect(badge).to_have_text("paused")
            pause_ms = page.evaluate("window.kxPause.shown - window.kxPause.pressed")
            page.locator(".kx-panel button[data-action=unpause]").first.click()
            expect(badge).to_have_text("running", timeout=5_000)
            ctr = rt.get("flood")
            while ctr.reload().status is ContainerStatus.RUNNING:
                time.sleep(0.02)
            finished = time.perf_counter()
            page.wait_for_function(f"document.querySelector('.kx-live-lines').innerText.includes('line {args.lines - 1}')"
                                   " && document.querySelector('.kx-live-footer').innerText.includes('exited')",
                                   timeout=120_000)
            render_ms = (time.perf_counter() - finished) * 1000
            numbers = kernel_numbers(work / "jupyter-runtime")
            browser.close()
        print(f"lines streamed:                  {args.lines}")
        print(f"messages to the browser:         {numbers['messages']:.0f} (output area), "
              f"{numbers['bytes'] / 1e6:.2f} MB of line text")
        print(f"kernel CPU time:                 {numbers['cpu']:.2f} s")
        print(f"click on Pause to badge paused:  {pause_ms:.0f} ms (during the stream: press to badge, in the page)")
        print(f"  from Playwright's click() call: {call_ms:.0f} ms (with its actionability checks)")
        print(f"container end to final render:  {render_ms:.0f} ms")
    finally:
        for ctr in rt.list():
            ctr.remove(force=True)
        rt.close()


if __name__ == "__main__":
    main()
