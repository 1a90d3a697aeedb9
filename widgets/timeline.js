import { button, textInput } from "./controls.js";

// A container's checkpoints and restores, newest last, with restore/export
// buttons; export writes into the folder in the box beside it.
function render({ model, el }) {
  el.classList.add("kx-root", "kx-timeline");
  const buttons = document.createElement("div");
  buttons.className = "kx-toolbar";
  const restore = button("restore latest checkpoint", "restore", "");
  restore.dataset.action = "restore";
  const exportButton = button("export a checkpoint (keeps running)", "export", "");
  exportButton.dataset.action = "export";
  const folderLabel = document.createElement("label");
  folderLabel.textContent = "into ";
  const folder = textInput("folder the exported archive goes to", "kx-timeline-folder");
  folderLabel.appendChild(folder);
  const byAction = { restore, export: exportButton };
  restore.addEventListener("click", () => model.send({ type: "restore" }));
  exportButton.addEventListener("click", () => model.send({ type: "export", folder: folder.value }));
  buttons.append(restore, exportButton, folderLabel);
  const table = document.createElement("table");
  table.className = "kx-table";
  const message = document.createElement("div");
  message.className = "kx-timeline-message";
  message.setAttribute("aria-live", "polite");
  el.append(buttons, table, message);
  const update = () => {
    const allowed = new Set(model.get("allowed"));
    for (const [action, b] of Object.entries(byAction)) b.disabled = !allowed.has(action);
    if (document.activeElement !== folder) folder.value = model.get("export_dir");
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const h of ["TIME", "EVENT", "ARCHIVE", "SIZE", "CRIU TIME", "PAGES WRITTEN"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = h;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const e of model.get("entries")) {
      const row = body.insertRow();
      const kind = e.kind + (e.leave_running ? " (kept running)" : "");
      const ms = e.duration_ms == null ? "" : `${e.duration_ms} ms`;
      const values = [e.time, kind, e.archive, e.human_size, ms, e.pages];
      values.forEach((v, i) => {
        const td = row.insertCell();
        td.textContent = v;
        if (i >= 3) td.className = "kx-num";
      });
    }
    const text = model.get("message");
    message.textContent = text;
    message.className = `kx-timeline-message ${text.includes("failed") ? "kx-error-text" : "kx-muted"}`;
  };
  for (const f of ["entries", "allowed", "message", "export_dir"]) model.on(`change:${f}`, update);
  update();
}

export default { render };
