// Every container as a table row; a row (click, or Enter/Space when focused) asks the kernel to open its panel.
const COLUMNS = ["status", "name", "image", "uptime", "cpu", "memory"];
const NUMERIC = new Set(["cpu", "memory"]);

function render({ model, el }) {
  el.classList.add("kx-root", "kx-dashboard");
  const table = document.createElement("table");
  table.className = "kx-table kx-dashboard-table";
  const caption = document.createElement("caption");
  caption.className = "kx-sr-only";
  caption.textContent = "containers";
  table.appendChild(caption);
  const head = table.createTHead().insertRow();
  for (const c of COLUMNS) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = { status: "STATE", uptime: "STATUS", cpu: "CPU %", memory: "MEM USAGE" }[c] ?? c.toUpperCase();
    if (NUMERIC.has(c)) th.className = "kx-num";
    head.appendChild(th);
  }
  const body = table.createTBody();
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
