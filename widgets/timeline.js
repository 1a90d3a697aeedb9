// A container's checkpoints and restores, newest last, with restore/export buttons.
function render({ model, el }) {
  el.classList.add("kx-timeline");
  const buttons = document.createElement("div");
  buttons.className = "kx-panel-buttons";
  const byAction = {};
  for (const action of ["restore", "export"]) {
    const b = document.createElement("button");
    b.textContent = action === "export" ? "export a checkpoint (keeps running)" : "restore latest checkpoint";
    b.addEventListener("click", () => model.send({ type: action }));
    byAction[action] = b;
    buttons.appendChild(b);
  }
  const table = document.createElement("table");
  table.className = "kx-dashboard-table";
  const message = document.createElement("div");
  message.className = "kx-panel-status kx-panel-error";
  el.append(buttons, table, message);
  const update = () => {
    const allowed = new Set(model.get("allowed"));
    for (const [action, b] of Object.entries(byAction)) b.disabled = !allowed.has(action);
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const h of ["TIME", "EVENT", "ARCHIVE", "SIZE", "CRIU TIME", "PAGES WRITTEN"]) head.insertCell().textContent = h;
    const body = table.createTBody();
    for (const e of model.get("entries")) {
      const row = body.insertRow();
      const kind = e.kind + (e.leave_running ? " (kept running)" : "");
      const size = e.size == null ? "" : `${(e.size / 1e6).toFixed(1)} MB`;
      const ms = e.duration_ms == null ? "" : `${e.duration_ms} ms`;
      for (const v of [e.time, kind, e.archive, size, ms, e.pages]) row.insertCell().textContent = v;
    }
    message.textContent = model.get("message");
  };
  for (const f of ["entries", "allowed", "message"]) model.on(`change:${f}`, update);
  update();
}

export default { render };
