"""The terminal widget in a real browser: keystroke-to-echo latency, and a 50 MB ``cat`` through it.

    sudo .venv/bin/python bench/bench_terminal.py [--keys N] [--mb M]

Latency: a shell from ``%container exec -it``; each key is given to xterm.js
as typed input (``term.input``) and timed in the page until xterm has parsed
the shell's echo (``onWriteParsed``). The floor is the widget's own comm round
trip with no TTY in it (``ping``/``pong``), measured alternately with the keys
on the same page; both medians and their ratio are reported, and an empty
execute request's round trip (JupyterLab's own path to the kernel) beside them.

Flood: ``cat`` of an M MB file in the container through the same terminal.
While it runs, the page's longest gap between animation frames (a frozen page
has long ones) and the kernel's answer time to an execute request (sent from
the page every 200 ms) are recorded; then the kernel's CPU time for the flood
and the messages and bytes the widget sent (and dropped: output the page could
not have shown) are asked from the kernel.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from kernelext import Runtime

from labserver import jupyterlab, notebook_page, write_notebook

#: The notebook's kernel connection in the page (the snippets below call ``window.kxKernel()``).
KERNEL_JS = "window.kxKernel = () => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"

# In the page: N keys, each timed from input to the echo parsed, alternating with N comm pings.
LATENCY_JS = """async ([n]) => {
  const el = document.querySelector('.kx-term');
  const term = el.kxTerminal;
  const keys = [], pings = [];
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise((resolve) => {
      const d = term.onWriteParsed(() => { d.dispose(); resolve(); });
      term.input(letters[i % 26], true);
    });
    keys.push(performance.now() - t0);
    if (i % 20 === 19) {  // keep the line short: Ctrl-U erases it
      await new Promise((resolve) => { const d = term.onWriteParsed(() => { d.dispose(); resolve(); });
                                        term.input('\\x15', true); });
    }
    pings.push(await window.kxPing());
  }
  return { keys, pings };
}"""

# The comm round trip: a ping to the widget's model, the pong back (anywidget's model for this view).
PING_SETUP_JS = """() => {
  const el = document.querySelector('.kx-term');
  window.kxPing = () => new Promise((resolve) => {
    const t0 = performance.now();
    el.kxModel.send({ type: 'ping', t: t0 });
    const handler = (msg) => { if (msg.type === 'pong' && msg.t === t0) { el.kxModel.off('msg:custom', handler);
                                                                            resolve(performance.now() - t0); } };
    el.kxModel.on('msg:custom', handler);
  });
}"""

# An empty execute request's round trip from the page: JupyterLab's own path to the kernel and back.
EXECUTE_JS = """async () => { const out = [];
  for (let i = 0; i < 30; i++) { const t0 = performance.now();
    await window.kxKernel().requestExecute({ code: '', silent: true }).done; out.push(performance.now() - t0); }
  return out; }"""

# While the flood runs: the longest gap between frames and the kernel's execute answer times.
WATCH_JS = """() => {
  window.kxWatch = { gaps: [], answers: [], running: true };
  let last = performance.now();
  const frame = (t) => { window.kxWatch.gaps.push(t - last); last = t; if (window.kxWatch.running) requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  const probe = async () => {
    while (window.kxWatch.running) {
      const t0 = performance.now();
      await window.kxKernel().requestExecute({ code: '1', silent: true }).done;
      window.kxWatch.answers.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  probe();
}"""

NUMBERS = ("import json, resource; u = resource.getrusage(resource.RUSAGE_SELF); "
           "print(json.dumps({'cpu': u.ru_utime + u.ru_stime, 'messages': term.sent_messages, "
           "'bytes': term.sent_bytes, 'dropped': term.dropped_bytes}))")


def kernel_json(page: Any, code: str) -> dict[str, float]:
    """Run ``code`` in the notebook's kernel from the page; the JSON it prints."""
    text = page.evaluate("""async ([code]) => {
      let out = '';
      const future = window.kxKernel().requestExecute({ code });
      future.onIOPub = (msg) => { if (msg.header.msg_type === 'stream') out += msg.content.text; };
      await future.done;
      return out;
    }""", [code])
    return dict(json.loads(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--mb", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kx-bench-terminal-"))
    rt = Runtime(work / "root", work / "run")
    notebooks = work / "notebooks"
    notebooks.mkdir()
    size = args.mb * 1_000_000
    write_notebook(notebooks / "terminal.ipynb", [
        "%load_ext kernelext",
        "%container run -d --name shell busybox sleep 100000",
        f"%container exec shell sh -c 'yes kernelext terminal flood line | head -c {size} > /tmp/big'",
        "term = %container exec -it shell sh\nterm"])
    env = {"KERNELEXT_ROOT": str(rt.opts.root), "KERNELEXT_RUNROOT": str(rt.opts.runroot)}
    try:
        with jupyterlab(notebooks, work, env) as lab, \
                notebook_page(lab, "terminal.ipynb", height=1000,
                              failure_shot=Path(tempfile.gettempdir()) / "bench_terminal-failure.png") as page:
            page.wait_for_function("document.querySelector('.kx-term .xterm-rows')?.innerText.includes('/ #')",
                                   timeout=120_000)
            page.evaluate(KERNEL_JS)
            page.evaluate(PING_SETUP_JS)
            timed = page.evaluate(LATENCY_JS, [args.keys])
            execs = sorted(page.evaluate(EXECUTE_JS))
            keys, pings = sorted(timed["keys"]), sorted(timed["pings"])
            page.evaluate("document.querySelector('.kx-term').kxTerminal.input('\\x15', true)")

            before = kernel_json(page, NUMBERS)
            page.evaluate(WATCH_JS)
            started = time.perf_counter()
            page.evaluate("document.querySelector('.kx-term').kxTerminal.input('cat /tmp/big; echo cat-$((40+2))\\r',"
                          " true)")
            page.wait_for_function("document.querySelector('.kx-term .xterm-rows').innerText.includes('cat-42')",
                                   timeout=1_800_000, polling=500)
            elapsed = time.perf_counter() - started
            watch = page.evaluate("(() => { window.kxWatch.running = false; return window.kxWatch; })()")
            after = kernel_json(page, NUMBERS)
        gaps, answers = sorted(watch["gaps"]), sorted(watch["answers"])
        print(f"keystroke to echo parsed:   median {statistics.median(keys):.1f} ms, "
              f"p90 {keys[int(len(keys) * 0.9)]:.1f} ms ({len(keys)} keys)")
        print(f"floor (comm round trip):    median {statistics.median(pings):.1f} ms; "
              f"ratio {statistics.median(keys) / statistics.median(pings):.2f}")
        print(f"empty execute request:      median {statistics.median(execs):.1f} ms (Lab's own round trip)")
        print(f"cat of {args.mb} MB:              {elapsed:.1f} s "
              f"({args.mb / elapsed:.1f} MB/s through the container's TTY)")
        print(f"kernel CPU during the cat:  {after['cpu'] - before['cpu']:.1f} s")
        print(f"messages to the browser:    {after['messages'] - before['messages']:.0f}, "
              f"{(after['bytes'] - before['bytes']) / 1e6:.1f} MB sent, "
              f"{(after['dropped'] - before['dropped']) / 1e6:.1f} MB dropped (more than the page could show)")
        print(f"page frames:                longest gap {gaps[-1]:.0f} ms, median {statistics.median(gaps):.0f} ms")
        print(f"kernel answers meanwhile:   longest {answers[-1]:.0f} ms, median {statistics.median(answers):.0f} ms "
              f"({len(answers)} requests)")
    finally:
        remove_all(rt, work)


def remove_all(rt: Runtime, work: Path) -> None:
    """The benchmark's containers go, its store closes, and its directory goes."""
    for ctr in rt.list():
        ctr.remove(force=True)
    rt.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
