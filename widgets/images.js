// The store's images as a table (as `images` lists them, with the containers that use each); a refresh button.
const COLUMNS = ["repository", "tag", "id", "size", "created", "containers"];
const HEADINGS = { id: "IMAGE ID" };

function render({ model, el }) {
  el.classList.add("kx-dashboard");
  const button = document.createElement("button");
  button.textContent = "Refresh";
  button.addEventListener("click", () => model.send({ type: "refresh" }));
  const table = document.createElement("table");
  table.className = "kx-dashboard-table";
  const head = table.createTHead().insertRow();
  for (const c of COLUMNS) head.insertCell().textContent = HEADINGS[c] || c.toUpperCase();
  const body = table.createTBody();
  el.append(button, table);
  const update = () => {
    body.replaceChildren();
    for (const row of model.get("rows")) {
      const tr = body.insertRow();
      for (const c of COLUMNS) tr.insertCell().textContent = row[c];
    }
  };
  model.on("change:rows", update);
  update();
  return () => model.off("change:rows", update);
}

export default { render };
