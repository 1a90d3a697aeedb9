import { themedTable } from "./controls.js";

// Every container as a table row; a row (click, or Enter/Space when focused) asks the kernel to open its panel.
const COLUMNS = ["status", "name", "image", "uptime", "cpu", "memory"];
const HEADINGS = { status: "STATE", uptime: "STATUS", cpu: "CPU %", memory: "MEM USAGE" };
const NUMERIC = new Set(["cpu", "memory"]);

function render({ model, el }) {
  el.classList.add("kx-root", "kx-dashboard");
  const { node: table, body } = themedTable("containers", COLUMNS, HEADINGS, NUMERIC);
  el.appendChild(table);
  const update = () => {
    body.replaceChildren();
    for (const row of model.get("rows")) {
      const tr = body.insertRow();
      tr.className = "kx-clickable";
      tr.tabIndex = 0;
      tr.title = `open the panel of ${row.name}`;
      tr.setAttribute("aria-label", `${row.name}, ${row.status}: open its panel`);
      const open = () => model.send({ type: "open", name: row.name });
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
      for (const c of COLUMNS) {
        const td = tr.insertCell();
        if (NUMERIC.has(c)) td.className = "kx-num";
        if (c === "status") {
          const badge = document.createElement("span");
          badge.className = `kx-badge kx-${row.status}`;
          badge.textContent = row.status;
          td.appendChild(badge);
        } else td.textContent = row[c];
      }
    }
  };
  model.on("change:rows", update);
  update();
  return () => model.off("change:rows", update);
}

export default { render };
