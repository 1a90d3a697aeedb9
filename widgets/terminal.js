import { button, element } from "./controls.js";

// A container's terminal: xterm.js (inlined before this module as XtermLib and
// FitLib, see kernelext/widgets/_assets.py umd()) connected to the kernel's
// TTY session. Keys and pastes go to the kernel as text; output arrives as
// binary buffers, each acknowledged once xterm has drawn it (the kernel sends
// no more than a few ahead: a flood never piles up in the page). The screen
// follows the widget's size (drag its lower edge); the size goes to the TTY.
// Colours come from the host's theme (widgets/theme.css), and xterm raises
// any text colour that would fall under 4.5:1 on the background.
const MIN_CONTRAST = 4.5;
const WRITE_SLICE = 16384;  // bytes per xterm write

// The theme's colours as rgb() (a host may name them, "white"), resolved by the browser on a probe element.
function readTheme(el) {
  const probe = document.createElement("span");
  el.appendChild(probe);
  const colour = (name, fallback) => {
    probe.style.color = `var(${name}, ${fallback})`;
    return getComputedStyle(probe).color;
  };
  const bg = colour("--kx-term-bg", "#ffffff");
  const fg = opaque(colour("--kx-term-fg", "#000000"), bg);
  const selection = colour("--kx-term-selection", "rgba(128, 128, 128, 0.4)");
  probe.remove();
  return { background: bg, foreground: fg, cursor: fg, cursorAccent: bg, selectionBackground: selection };
}

// A translucent text colour (Lab's is black at 87%) drawn over the background: xterm's contrast
// adjustment needs the colour the reader actually sees.
function opaque(colour, background) {
  const channels = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const [r, g, b, a = 1] = channels(colour);
  const [br, bg, bb] = channels(background);
  const mix = (top, bottom) => Math.round(top * a + bottom * (1 - a));
  return `rgb(${mix(r, br)}, ${mix(g, bg)}, ${mix(b, bb)})`;
}

function render({ model, el }) {
  el.classList.add("kx-root", "kx-term");
  // Keys typed here are the terminal's, not the notebook's shortcuts (Lumino honours this attribute).
  el.setAttribute("data-lm-suppress-shortcuts", "true");
  el.setAttribute("data-p-suppress-shortcuts", "true");
  const head = element("div", "kx-term-head");
  const title = element("span", "kx-term-title");
  const hint = element("span", "kx-term-hint");
  const detach = button("detach", "detach", "detach (the container keeps running)");
  detach.classList.add("kx-term-detach");
  head.append(title, hint, detach);
  const screen = element("div", "kx-term-screen");
  const footer = element("div", "kx-term-footer kx-muted");
  footer.setAttribute("aria-live", "polite");
  el.append(head, screen, footer);

  const term = new XtermLib.Terminal({
    scrollback: model.get("scrollback"), cursorBlink: true, fontSize: 13, minimumContrastRatio: MIN_CONTRAST,
  });
  // The host's colours and code font, once the element is in the page and styled (render may run before),
  // and again whenever the host's theme changes; only a real change is applied (xterm redraws on each).
  let applied = "";
  const applyStyle = () => {
    if (!el.isConnected) return;
    const theme = readTheme(el);
    const fontFamily = getComputedStyle(el).getPropertyValue("--kx-mono").trim() || "monospace";
    const key = JSON.stringify([theme, fontFamily]);
    if (key === applied) return;
    applied = key;
    term.options.theme = theme;
    term.options.fontFamily = fontFamily;
  };
  const fit = new FitLib.FitAddon();
  term.loadAddon(fit);
  term.open(screen);

  const live = () => model.get("status") === "running";
  const showMeta = () => {
    title.textContent = model.get("title");
    const keys = model.get("detach_keys");
    hint.textContent = live() && keys ? `${keys} detaches` : "";
    footer.textContent = model.get("footer");
    detach.disabled = !live();
    term.options.disableStdin = !live();
    el.dataset.status = model.get("status");
  };
  showMeta();
  model.on("change:status", showMeta);
  model.on("change:footer", showMeta);
  model.on("change:title", showMeta);
  // Every message of this view is numbered: the kernel may handle comm messages out of order when they
  // queue up (ipykernel 7 runs a comm message beside a busy one), and keystrokes must reach the TTY in order.
  const view = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  let sent = 0;
  const send = (msg) => model.send({ ...msg, view, n: sent++ });
  detach.addEventListener("click", () => send({ type: "detach" }));

  term.onData((data) => { if (live()) send({ type: "input", data }); });
  term.onBinary((data) => { if (live()) send({ type: "input", data }); });
  // Keystrokes stay in the terminal: nothing above it (the notebook) acts on them.
  screen.addEventListener("keydown", (e) => e.stopPropagation());

  let seq = -1;  // the kernel's redraw generation: data of an older one is stale
  model.on("msg:custom", (msg, buffers) => {
    if (msg.type === "reset") {
      seq = msg.seq;
      term.reset();
    } else if (msg.type === "data") {
      if (msg.seq < seq) return;
      seq = msg.seq;
      const b = buffers[0];
      const bytes = b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      // xterm parses one write at a time and yields between writes: slices keep a big message from
      // holding the page for its whole parse. The ack goes once the last slice is drawn.
      for (let at = 0; at < bytes.length; at += WRITE_SLICE) {
        const last = at + WRITE_SLICE >= bytes.length;
        term.write(bytes.subarray(at, at + WRITE_SLICE), last ? () => send({ type: "ack", seq: msg.seq }) : undefined);
      }
    }
  });

  let frame = 0;
  const refit = () => {
    frame = 0;
    if (!screen.isConnected || screen.clientWidth === 0) return;
    applyStyle();
    try { fit.fit(); } catch (e) { /* not laid out yet */ }
  };
  const observer = new ResizeObserver(() => { if (!frame) frame = requestAnimationFrame(refit); });
  observer.observe(screen);
  term.onResize(({ rows, cols }) => send({ type: "resize", rows, cols }));
  // The host's theme can change at any time (Lab's settings): read the colours again.
  const themeWatch = new MutationObserver(applyStyle);
  themeWatch.observe(document.body, { attributes: true });

  refit();
  // A new view: the kernel redraws it from its history (a page reload, a second tab).
  send({ type: "ready", rows: term.rows, cols: term.cols });
  if (live()) term.focus();
  el.kxTerminal = term;  // for tests and the benchmark: the rendered rows are term.buffer.active
  el.kxModel = model;
  return () => {
    observer.disconnect();
    themeWatch.disconnect();
    if (frame) cancelAnimationFrame(frame);
    term.dispose();
  };
}

export default { render };
