// ANSI SGR (colours, bold, underline) to DOM spans; other escape sequences are dropped.
const PALETTE = ["#000", "#c91b00", "#00c200", "#c7c400", "#0225c7", "#c930c7", "#00c5c7", "#c7c7c7",
  "#686868", "#ff6e67", "#5ffa68", "#fffc67", "#6871ff", "#ff77ff", "#60fdff", "#fff"];
const SGR = /\x1b\[([0-9;]*)m/g;
const OTHER_ESCAPES = /\x1b\[[0-9;?]*[A-Za-ln-z]/g;

function cube(n) {
  if (n < 16) return PALETTE[n];
  if (n >= 232) { const v = 8 + (n - 232) * 10; return `rgb(${v},${v},${v})`; }
  const i = n - 16, s = [0, 95, 135, 175, 215, 255];
  return `rgb(${s[Math.floor(i / 36)]},${s[Math.floor(i / 6) % 6]},${s[i % 6]})`;
}

export function newStyle() { return { fg: null, bg: null, bold: false, underline: false }; }

function apply(style, codes) {
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(style, newStyle());
    else if (c === 1) style.bold = true;
    else if (c === 22) style.bold = false;
    else if (c === 4) style.underline = true;
    else if (c === 24) style.underline = false;
    else if (c >= 30 && c <= 37) style.fg = PALETTE[c - 30];
    else if (c >= 90 && c <= 97) style.fg = PALETTE[c - 82];
    else if (c === 39) style.fg = null;
    else if (c >= 40 && c <= 47) style.bg = PALETTE[c - 40];
    else if (c >= 100 && c <= 107) style.bg = PALETTE[c - 92];
    else if (c === 49) style.bg = null;
    else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
      style[c === 38 ? "fg" : "bg"] = cube(codes[i + 2] ?? 0); i += 2;
    } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
      style[c === 38 ? "fg" : "bg"] = `rgb(${codes[i + 2]},${codes[i + 3]},${codes[i + 4]})`; i += 4;
    }
  }
}

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" };
const escapeHtml = (text) => text.replace(/[&<>"]/g, (c) => ESCAPES[c]);

// `text` as HTML (escaped, with spans for the SGR styles); `style` carries over
// from line to line, as in a terminal. Building strings, not DOM nodes, keeps
// a fast stream cheap to draw.
export function ansiToHtml(text, style) {
  text = text.replace(OTHER_ESCAPES, "");
  let html = "";
  let last = 0;
  const emit = (chunk) => {
    if (!chunk) return;
    if (!style.fg && !style.bg && !style.bold && !style.underline) {
      html += escapeHtml(chunk);
      return;
    }
    const css = [style.fg && `color:${style.fg}`, style.bg && `background:${style.bg}`,
      style.bold && "font-weight:bold", style.underline && "text-decoration:underline"].filter(Boolean).join(";");
    html += `<span style="${css}">${escapeHtml(chunk)}</span>`;
  };
  for (const m of text.matchAll(SGR)) {
    emit(text.slice(last, m.index));
    apply(style, m[1] === "" ? [0] : m[1].split(";").map(Number));
    last = m.index + m[0].length;
  }
  emit(text.slice(last));
  return html;
}
