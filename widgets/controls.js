// The widgets' controls: an icon set of small inline SVGs drawn on a 16x16 grid (no emoji:
// a browser without an emoji font shows boxes), coloured by the text colour.
const PATHS = {
  start: "M4 2.5v11l9-5.5z",
  unpause: "M4 2.5v11l9-5.5z",
  stop: "M3.5 3.5h9v9h-9z",
  kill: "M4.2 2.8 8 6.6l3.8-3.8 1.4 1.4L9.4 8l3.8 3.8-1.4 1.4L8 9.4l-3.8 3.8-1.4-1.4L6.6 8 2.8 4.2z",
  pause: "M4 3h3v10H4zM9 3h3v10H9z",
  restart: "M8 2.5a5.5 5.5 0 1 0 5.3 7h-1.6A4 4 0 1 1 8 4a4 4 0 0 1 2.8 1.2L8.5 7.5H14v-5.5l-2.1 2.1A5.5 5.5 0 0 0 8 2.5z",
  checkpoint: "M3 2h8l2 2v10H3zM5 3.5v3h5v-3zM5 9h6v3.5H5z",
  restore: "M8 2.5a5.5 5.5 0 1 1-5.3 7h1.6A4 4 0 1 0 8 4a4 4 0 0 0-2.8 1.2L7.5 7.5H2v-5.5l2.1 2.1A5.5 5.5 0 0 1 8 2.5z",
  remove: "M5.5 2h5l.5 1.5H14V5H2V3.5h3zM3.5 6h9l-.8 8H4.3zM6 7.5v5h1.2v-5zm2.8 0v5H10v-5z",
  folder: "M1.5 3h5l1.5 1.5h6.5V13h-13z",
  file: "M3 1.5h6.5L13 5v9.5H3zM9 2.5V5.5h3",
  link: "M6.5 9.5 9.5 6.5M7 4.5l1.5-1.5a2.8 2.8 0 0 1 4 4L11 8.5M9 11.5 7.5 13a2.8 2.8 0 0 1-4-4L5 7.5",
  download: "M7 2h2v6.5l2.3-2.3 1.4 1.4L8 12.3 3.3 7.6l1.4-1.4L7 8.5zM2.5 13h11v1.5h-11z",
  upload: "M7 12.5h2V6l2.3 2.3 1.4-1.4L8 2.2 3.3 6.9l1.4 1.4L7 6zM2.5 13.5h11V15h-11z",
  refresh: "M8 2.5a5.5 5.5 0 1 0 5.3 7h-1.6A4 4 0 1 1 8 4a4 4 0 0 1 2.8 1.2L8.5 7.5H14v-5.5l-2.1 2.1A5.5 5.5 0 0 0 8 2.5z",
  newfolder: "M1.5 3h5l1.5 1.5h6.5V13h-13zM7.3 6.5v1.8H5.5v1.4h1.8v1.8h1.4V9.7h1.8V8.3H8.7V6.5z",
  up: "M8 3 3 8h3.5v5h3V8H13z",
  export: "M7 10h2V4.5l2.3 2.3 1.4-1.4L8 .7 3.3 5.4l1.4 1.4L7 4.5zM2.5 9v5.5h11V9H12v4H4V9z",
  halt: "M3.5 3.5h9v9h-9z",
  detach: "M6 2.5H2.5v11H6V12H4V4h2zM10 4.5 13.5 8 10 11.5l-1-1L10.8 8.7H5.5V7.3h5.3L9 5.5z",
  terminal: "M1 2h14v3H1zM1 5h1v9H1zM14 5h1v9h-1zM2 13h12v1H2zM3.6 6.6l.8-.8L7.6 9l-3.2 3.2-.8-.8L6 9zM8 11h4v1.2H8z",
  search: "M6.5 2a4.5 4.5 0 0 1 3.7 7.1l3.6 3.6-1.1 1.1-3.6-3.6A4.5 4.5 0 1 1 6.5 2zm0 1.5a3 3 0 1 0 0 6 3 3 0 0 0 0-6z",
  follow: "M7 2h2v8.5l2.3-2.3 1.4 1.4L8 14.3 3.3 9.6l1.4-1.4L7 10.5z",
};
const STROKED = new Set(["link", "file"]);
const NS = "http://www.w3.org/2000/svg";

export function icon(name) {
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("class", "kx-icon");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(NS, "path");
  path.setAttribute("d", PATHS[name] ?? PATHS.file);
  if (STROKED.has(name)) {
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "1.4");
  }
  svg.appendChild(path);
  return svg;
}

// A button like Lab's own: icon and label, an accessible name, Enter/Space work (a real <button>).
export function button(label, iconName, title) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "kx-btn";
  if (iconName) b.appendChild(icon(iconName));
  const text = document.createElement("span");
  text.textContent = label;
  b.appendChild(text);
  if (title) b.title = title;
  if (!label) b.setAttribute("aria-label", title);
  return b;
}

// A themed text box with an accessible name.
export function textInput(name, className, placeholder = "") {
  const input = document.createElement("input");
  input.type = "text";
  input.className = className;
  input.placeholder = placeholder;
  input.setAttribute("aria-label", name);
  return input;
}

// An element with its class, as the widgets build their parts.
export function element(tag, className) {
  const node = document.createElement(tag);
  node.className = className;
  return node;
}

// A themed table with a screen-reader caption and a header row (a column's heading is its name in
// capitals unless `headings` names it); returns the table and its body, which the caller fills.
export function themedTable(caption, columns, headings, numeric) {
  const node = element("table", "kx-table kx-dashboard-table");
  const title = element("caption", "kx-sr-only");
  title.textContent = caption;
  node.appendChild(title);
  const head = node.createTHead().insertRow();
  for (const c of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = headings[c] ?? c.toUpperCase();
    if (numeric.has(c)) th.className = "kx-num";
    head.appendChild(th);
  }
  return { node, body: node.createTBody() };
}

// Which engine a container lives on: "local" or the connection (docs/architecture.md §16).
export function engineBadge(engine) {
  const badge = element("span", "kx-engine");
  badge.textContent = engine;
  badge.title = engine === "local" ? "on this machine's store" : `on the podman service of connection ${engine}`;
  badge.setAttribute("aria-label", `engine: ${engine}`);
  return badge;
}

// "move to…": a chooser of the other engines; picking one calls onMove(engine) and resets the chooser.
export function moveChooser(name, onMove) {
  const select = element("select", "kx-move");
  select.setAttribute("aria-label", `move ${name} to another engine`);
  select.title = "checkpoint here, restore on the chosen engine";
  select.addEventListener("change", () => {
    const to = select.value;
    select.value = "";
    if (to) onMove(to);
  });
  select.setTargets = (targets) => {
    if (select.dataset.targets === targets.join("\n")) return; // an open chooser is left alone
    select.dataset.targets = targets.join("\n");
    const first = new Option("move to…", "");
    select.replaceChildren(first, ...targets.map((t) => new Option(t, t)));
    select.hidden = !targets.length;
  };
  return select;
}
