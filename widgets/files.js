import { button, icon, textInput } from "./controls.js";

// A container's files: navigate folders, refresh, download (a file as itself,
// a folder as a tar), upload into the current folder, new folder, delete
// (asked first); transfers go in chunks with progress.
const CHUNK = 1 << 20;

function render({ model, el }) {
  el.classList.add("kx-root", "kx-files");
  const bar = document.createElement("div");
  bar.className = "kx-toolbar kx-files-bar";
  const up = button("up", "up", "parent folder");
  up.addEventListener("click", () => model.send({ type: "open", path: ".." }));
  const refresh = button("refresh", "refresh", "list the folder again");
  refresh.addEventListener("click", () => model.send({ type: "refresh" }));
  const path = document.createElement("code");
  path.className = "kx-files-path";
  const newName = textInput("new folder name", "kx-files-new", "new folder name");
  const mkdir = button("new folder", "newfolder", "");
  const makeDir = () => { if (newName.value) model.send({ type: "mkdir", name: newName.value }); newName.value = ""; };
  mkdir.addEventListener("click", makeDir);
  newName.addEventListener("keydown", (e) => { if (e.key === "Enter") makeDir(); });
  const upload = document.createElement("input");
  upload.type = "file";
  upload.multiple = true;
  upload.className = "kx-sr-only";
  const uploadButton = button("upload", "upload", "upload files into this folder");
  uploadButton.addEventListener("click", () => upload.click());
  bar.append(up, refresh, path, newName, mkdir, uploadButton, upload);
  const progress = document.createElement("progress");
  progress.max = 1;
  progress.setAttribute("aria-label", "transfer progress");
  const table = document.createElement("table");
  table.className = "kx-table";
  const message = document.createElement("div");
  message.className = "kx-error-text";
  message.setAttribute("aria-live", "polite");
  el.append(bar, progress, table, message);

  let incoming = null;
  model.on("msg:custom", (msg, buffers) => {
    if (msg.type === "download-start") incoming = { name: msg.name, mime: msg.mime, parts: [] };
    else if (msg.type === "download-chunk" && incoming) incoming.parts.push(...buffers.map((b) => b.buffer ?? b));
    else if (msg.type === "download-end" && incoming) {
      const url = URL.createObjectURL(new Blob(incoming.parts, { type: incoming.mime || "application/octet-stream" }));
      const a = document.createElement("a");
      a.href = url; a.download = incoming.name; a.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
      incoming = null;
    }
  });
  upload.addEventListener("change", async () => {
    for (const file of upload.files) {
      for (let offset = 0; offset < file.size || offset === 0; offset += CHUNK) {
        const part = await file.slice(offset, offset + CHUNK).arrayBuffer();
        const last = offset + CHUNK >= file.size;
        model.send({ type: "upload", name: file.name, total: file.size, last }, undefined, [part]);
        if (last) break;
      }
    }
    upload.value = "";
  });
  let confirming = null;  // the entry whose delete waits for a second click
  const update = () => {
    path.textContent = model.get("cwd");
    progress.value = model.get("progress");
    message.textContent = model.get("message");
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const h of ["", "NAME", "SIZE", "MODE", ""]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = h;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const e of model.get("entries")) {
      const row = body.insertRow();
      row.dataset.name = e.name;
      row.insertCell().appendChild(icon(e.dir ? "folder" : e.link ? "link" : "file"));
      const name = row.insertCell();
      if (e.dir) {
        const open = document.createElement("button");
        open.type = "button";
        open.className = "kx-files-open";
        open.textContent = e.link ? `${e.name} → ${e.link}` : e.name;
        open.setAttribute("aria-label", `open folder ${e.name}`);
        open.addEventListener("click", () => model.send({ type: "open", path: e.name }));
        name.appendChild(open);
      } else name.textContent = e.link ? `${e.name} → ${e.link}` : e.name;
      const size = row.insertCell();
      size.className = "kx-num";
      size.textContent = e.human_size;
      row.insertCell().textContent = e.mode;
      const actions = row.insertCell();
      const dl = button("", "download", `download ${e.name}${e.dir ? " (a tar)" : ""}`);
      dl.dataset.download = e.name;
      dl.addEventListener("click", () => model.send({ type: "download", name: e.name }));
      const del = button(confirming === e.name ? "delete?" : "", "remove", `delete ${e.name}`);
      del.dataset.delete = e.name;
      del.classList.add("kx-danger");
      del.addEventListener("click", () => {
        if (confirming === e.name) { confirming = null; model.send({ type: "delete", name: e.name }); }
        else { confirming = e.name; update(); table.querySelector(`button[data-delete="${CSS.escape(e.name)}"]`)?.focus(); }
      });
      actions.append(dl, del);
    }
  };
  for (const f of ["cwd", "entries", "progress", "message"]) model.on(`change:${f}`, update);
  update();
}

export default { render };
