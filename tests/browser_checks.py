"""What the browser tests measure inside the page: WCAG contrast of every text of the widgets, theme switching."""

from __future__ import annotations

from typing import Any

#: WCAG 2.1 AA for normal text.
AA_RATIO = 4.5
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark", "high-contrast": "JupyterLab Dark High Contrast"}

# Every element of a widget (.kx-root) that shows text of its own (a text node child, an input's value,
# an SVG <text>), visible and not disabled (WCAG exempts inactive controls): its colour against the
# background actually under it, found by compositing the ancestors' backgrounds (and, for SVG text, the
# shape it sits on). Returns the failures: [selector-ish, text, ratio, colour, background].
CONTRAST_JS = r"""
(minimum) => {
  const parse = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const lum = (c) => {
    const ch = c.slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255, 1];
    if (!layers.length || layers[layers.length - 1][3] < 1) bg = parse(getComputedStyle(document.body).backgroundColor) || bg;
    for (const layer of layers.reverse()) bg = over(layer, bg);
    return bg;
  };
  const svgBackground = (text) => {
    const box = text.getBBox();
    const cx = box.x + box.width / 2, cy = box.y + box.height / 2;
    let under = null;
    for (const shape of text.ownerSVGElement.querySelectorAll("rect")) {
      if (shape.compareDocumentPosition(text) & Node.DOCUMENT_POSITION_FOLLOWING) {
        const b = shape.getBBox();
        if (cx >= b.x && cx <= b.x + b.width && cy >= b.y && cy <= b.y + b.height) under = shape;
      }
    }
    const base = background(text.ownerSVGElement);
    if (!under) return base;
    const fill = parse(getComputedStyle(under).fill);
    return fill ? over(fill, base) : base;
  };
  const failures = [];
  let checked = 0;
  for (const root of document.querySelectorAll(".kx-root")) {
    for (const el of [root, ...root.querySelectorAll("*")]) {
      if (el.closest("[disabled], [hidden]") || !el.getClientRects().length) continue;
      const own = el.tagName === "INPUT" ? (el.type === "text" || el.type === "search" ? el.value : "")
        : [...el.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join("");
      if (!own.trim()) continue;
      const style = getComputedStyle(el);
      if (style.visibility === "hidden" || Number(style.opacity) === 0) continue;
      const isSvg = el instanceof SVGElement;
      const colour = parse(isSvg ? style.fill : style.color);
      if (!colour) continue;
      const bg = isSvg ? svgBackground(el) : background(el);
      const r = ratio(over(colour, bg), bg);
      checked++;
      if (r < minimum) failures.push([`${root.className} ${el.tagName.toLowerCase()}.${el.getAttribute("class") || ""}`,
        own.trim().slice(0, 40), Math.round(r * 100) / 100, isSvg ? style.fill : style.color,
        bg.map(Math.round).join(",")]);
    }
  }
  return { checked, failures };
}
"""


def set_theme(page: Any, theme: str) -> None:
    """Switch JupyterLab's theme (its own command) and wait until the page wears it."""
    page.evaluate(f"window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{theme}'}})")
    page.wait_for_function(f"document.body.dataset.jpThemeName === '{theme}'", timeout=30_000)
    page.wait_for_timeout(500)  # the theme's style sheet applied and laid out


def hide_notifications(page: Any) -> None:
    """JupyterLab's toasts (the news question) would cover parts of the screenshots."""
    page.add_style_tag(content=".Toastify { display: none !important; }")


def contrast_failures(page: Any) -> tuple[int, list[list[Any]]]:
    result = page.evaluate(CONTRAST_JS, AA_RATIO)
    return result["checked"], result["failures"]
