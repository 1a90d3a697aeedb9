import { button, themedTable } from "./controls.js";

// The store's images as a table (as `images` lists them, with the containers that use each); a refresh button.
const COLUMNS = ["repository", "tag", "id", "size", "created", "containers"];
const HEADINGS = { id: "IMAGE ID" };
const NUMERIC = new Set(["size"]);

function render({ model, el }) {
  el.classList.add("kx-root", "kx-dashboard");
  const toolbar = document.createElement("div");
  toolbar.className = "kx-toolbar";
  const refresh = button("refresh", "refresh", "list the images again");
  refresh.addEventListener("click", () => model.send({ type: "refresh" }));
  toolbar.appendChild(refresh);
  const { node: table, body } = themedTable("images", COLUMNS, HEADINGS, NUMERIC);
  el.append(toolbar, table);
  const update = () => {
    body.replaceChildren();
    for (const row of model.get("rows")) {
      const tr = body.insertRow();
      for (const c of COLUMNS) {
        const td = tr.insertCell();
        td.textContent = row[c];
        if (NUMERIC.has(c)) td.className = "kx-num";
      }
    }
  };
  model.on("change:rows", update);
  update();
  return () => model.off("change:rows", update);
}

export default { render };
