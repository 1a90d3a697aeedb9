import { engineBadge, moveChooser, themedTable } from "./controls.js";

// Every container as a table row; a row (click, or Enter/Space when focused) asks the kernel to open its panel.
// Several engines: one section each, under its engine's badge; a running container's row can move to another.
const COLUMNS = ["status", "name", "image", "uptime", "cpu", "memory"];
const HEADINGS = { status: "STATE", uptime: "STATUS", cpu: "CPU %", memory: "MEM USAGE" };
const NUMERIC = new Set(["cpu", "memory"]);

function section(model, engine, engines, rows) {
  const several = engines.length > 1;
  const columns = several ? [...COLUMNS, "move"] : COLUMNS;
  const { node: table, body } = themedTable(several ? `containers on ${engine}` : "containers", columns,
                                            { ...HEADINGS, move: "" }, NUMERIC);
  table.dataset.engine = engine;
  for (const row of rows) {
    const tr = body.insertRow();
    tr.className = "kx-clickable";
    tr.tabIndex = 0;
    tr.dataset.engine = engine;
    tr.title = `open the panel of ${row.name}`;
    tr.setAttribute("aria-label", `${row.name} on ${engine}, ${row.status}: open its panel`);
    const open = () => model.send({ type: "open", name: row.name, engine });
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (e) => {
      if (e.target === tr && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); open(); }
    });
    for (const c of columns) {
      const td = tr.insertCell();
      if (NUMERIC.has(c)) td.className = "kx-num";
      if (c === "status") {
        const badge = document.createElement("span");
        badge.className = `kx-badge kx-${row.status}`;
        badge.textContent = row.status;
        td.appendChild(badge);
      } else if (c === "move") {
        if (row.status !== "running") continue;
        const mover = moveChooser(row.name, (to) => model.send({ type: "move", name: row.name, engine, to }));
        mover.setTargets(engines.filter((e) => e !== engine));
        mover.addEventListener("click", (e) => e.stopPropagation());
        mover.addEventListener("keydown", (e) => e.stopPropagation());
        td.appendChild(mover);
      } else td.textContent = row[c];
    }
  }
  if (!several) return [table];
  const heading = document.createElement("div");
  heading.className = "kx-dashboard-engine";
  heading.append(engineBadge(engine));
  return [heading, table];
}

function render({ model, el }) {
  el.classList.add("kx-root", "kx-dashboard");
  const content = document.createElement("div");
  const message = document.createElement("div");
  message.className = "kx-error-text";
  message.setAttribute("aria-live", "polite");
  el.append(content, message);
  const update = () => {
    // A chooser in use is not rebuilt under the reader's hand (the table refreshes every second).
    const active = document.activeElement;
    if (active && active.matches("select.kx-move") && content.contains(active)) {
      active.addEventListener("blur", update, { once: true });
      return;
    }
    const engines = model.get("engines") || ["local"];
    const rows = model.get("rows");
    content.replaceChildren(...engines.flatMap(
      (engine) => section(model, engine, engines, rows.filter((r) => (r.engine || "local") === engine))));
    message.textContent = model.get("message") || "";
  };
  for (const f of ["rows", "engines", "message"]) model.on(`change:${f}`, update);
  update();
  return () => { for (const f of ["rows", "engines", "message"]) model.off(`change:${f}`, update); };
}

export default { render };
