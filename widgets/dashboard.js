// Every container as a table row; clicking a row asks the kernel to open its panel.
const COLUMNS = ["status", "name", "image", "uptime", "cpu", "memory"];

function render({ model, el }) {
  el.classList.add("kx-dashboard");
  const table = document.createElement("table");
  table.className = "kx-dashboard-table";
  const head = table.createTHead().insertRow();
  for (const c of COLUMNS) head.insertCell().textContent = c === "status" ? "" : c.toUpperCase();
  const body = table.createTBody();
  el.appendChild(table);
  const update = () => {
    body.replaceChildren();
    for (const row of model.get("rows")) {
      const tr = body.insertRow();
      tr.title = `open the panel of ${row.name}`;
      tr.addEventListener("click", () => model.send({ type: "open", name: row.name }));
      for (const c of COLUMNS) {
        const td = tr.insertCell();
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
