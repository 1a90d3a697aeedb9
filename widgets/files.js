// A container's files: navigate folders, download a file or folder (a tar),
// upload files into the current folder; transfers go in chunks with progress.
const CHUNK = 1 << 20;

function render({ model, el }) {
  el.classList.add("kx-files");
  const bar = document.createElement("div");
  bar.className = "kx-files-bar";
  const path = document.createElement("code");
  const up = document.createElement("button");
  up.textContent = "..";
  up.title = "parent folder";
  up.addEventListener("click", () => model.send({ type: "open", path: ".." }));
  const upload = document.createElement("input");
  upload.type = "file";
  upload.multiple = true;
  bar.append(up, path, upload);
  const progress = document.createElement("progress");
  progress.max = 1;
  const table = document.createElement("table");
  table.className = "kx-dashboard-table";
  const message = document.createElement("div");
  message.className = "kx-panel-status kx-panel-error";
  el.append(bar, progress, table, message);

  let incoming = null;
  model.on("msg:custom", (msg, buffers) => {
    if (msg.type === "download-start") incoming = { name: msg.name, parts: [] };
    else if (msg.type === "download-chunk" && incoming) incoming.parts.push(...buffers.map((b) => b.buffer ?? b));
    else if (msg.type === "download-end" && incoming) {
      const url = URL.createObjectURL(new Blob(incoming.parts, { type: "application/x-tar" }));
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
  const update = () => {
    path.textContent = model.get("cwd");
    progress.value = model.get("progress");
    message.textContent = model.get("message");
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const h of ["", "NAME", "SIZE", "MODE", ""]) head.insertCell().textContent = h;
    const body = table.createTBody();
    for (const e of model.get("entries")) {
      const row = body.insertRow();
      row.insertCell().textContent = e.dir ? "📁" : e.link ? "🔗" : "📄";
      const name = row.insertCell();
      name.textContent = e.link ? `${e.name} → ${e.link}` : e.name;
      if (e.dir) {
        name.style.cursor = "pointer";
        name.addEventListener("click", () => model.send({ type: "open", path: e.name }));
      }
      row.insertCell().textContent = e.dir ? "" : String(e.size);
      row.insertCell().textContent = e.mode;
      const dl = document.createElement("button");
      dl.textContent = "download";
      dl.addEventListener("click", () => model.send({ type: "download", name: e.name }));
      row.insertCell().appendChild(dl);
    }
  };
  for (const f of ["cwd", "entries", "progress", "message"]) model.on(`change:${f}`, update);
  update();
}

export default { render };
