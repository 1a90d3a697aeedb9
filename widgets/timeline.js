import { button, textInput } from "./controls.js";

// A container's checkpoint history as a tree: each entry under the one it descends from (indented, with
// a connector), containers branched from it named beneath. The toolbar checkpoints now (optionally
// named); each row restores that entry in place, branches a new container from it (named in the
// branch box), exports it into the folder box, or deletes it.
const COLUMNS = ["ENTRY", "CREATED", "SIZE", "FROZEN", "PAGES WRITTEN", "PAGES SCANNED", ""];
const ROW_ACTIONS = [
  ["restore", "restore", "restore this checkpoint in place (files rolled back too)"],
  ["branch", "checkpoint", "start a new container from this checkpoint, named in the branch box"],
  ["export", "export", "write this checkpoint as an archive into the folder box"],
  ["delete", "remove", "delete this checkpoint and free its space"],
];

function render({ model, el }) {
  el.classList.add("kx-root", "kx-timeline");
  const toolbar = document.createElement("div");
  toolbar.className = "kx-toolbar";
  const entryName = textInput("name of the new checkpoint (optional)", "kx-timeline-name", "name (optional)");
  const checkpoint = button("checkpoint now", "checkpoint", "checkpoint now; the container keeps running");
  checkpoint.dataset.action = "checkpoint";
  checkpoint.addEventListener("click", () => model.send({ type: "checkpoint", name: entryName.value }));
  const branchName = textInput("name of the container a branch creates", "kx-timeline-branch", "branch name");
  const folderLabel = document.createElement("label");
  folderLabel.textContent = "export into ";
  const folder = textInput("folder the exported archive goes to", "kx-timeline-folder");
  folderLabel.appendChild(folder);
  toolbar.append(entryName, checkpoint, branchName, folderLabel);
  const table = document.createElement("table");
  table.className = "kx-table";
  const message = document.createElement("div");
  message.className = "kx-timeline-message";
  message.setAttribute("aria-live", "polite");
  el.append(toolbar, table, message);

  const send = (type, entry) => {
    const content = { type, entry };
    if (type === "branch") content.name = branchName.value;
    if (type === "export") content.folder = folder.value;
    model.send(content);
  };

  const update = () => {
    const allowed = new Set(model.get("allowed"));
    checkpoint.disabled = !allowed.has("checkpoint");
    if (document.activeElement !== folder) folder.value = model.get("export_dir");
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const h of COLUMNS) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = h;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const n of model.get("nodes")) {
      const row = body.insertRow();
      row.dataset.entry = n.number;
      const label = row.insertCell();
      label.className = "kx-timeline-entry";
      label.style.paddingLeft = `${8 + n.depth * 18}px`;
      const connector = document.createElement("span");
      connector.className = "kx-timeline-connector kx-muted";
      connector.textContent = n.depth ? "\u2514\u2500 " : "";
      const title = document.createElement("b");
      title.textContent = `#${n.number}`;
      label.append(connector, title);
      if (n.name) label.append(` ${n.name}`);
      const notes = [n.leave_running ? "kept running" : "", n.export ? `exported: ${n.export}` : ""].filter(Boolean);
      if (notes.length) {
        const small = document.createElement("span");
        small.className = "kx-muted";
        small.textContent = ` (${notes.join(", ")})`;
        label.appendChild(small);
      }
      for (const b of n.branches) {
        const branch = document.createElement("div");
        branch.className = "kx-timeline-branch-note kx-muted";
        branch.textContent = `\u2514\u2500 branch: ${b}`;
        label.appendChild(branch);
      }
      const frozen = n.frozen_ms == null ? "" : `${n.frozen_ms} ms`;
      [n.time, n.human_size, frozen, n.pages_written ?? "", n.pages_scanned ?? ""].forEach((v, i) => {
        const td = row.insertCell();
        td.textContent = v;
        if (i >= 1) td.className = "kx-num";
      });
      const actions = row.insertCell();
      actions.className = "kx-timeline-actions";
      for (const [type, iconName, title] of ROW_ACTIONS) {
        const b = button("", iconName, `${title} (#${n.number})`);
        b.dataset.action = type;
        if (type === "delete") b.classList.add("kx-danger");
        b.disabled = !allowed.has(type);
        b.addEventListener("click", () => send(type, n.number));
        actions.appendChild(b);
      }
    }
    const text = model.get("message");
    message.textContent = text;
    message.className = `kx-timeline-message ${text.includes("failed") ? "kx-error-text" : "kx-muted"}`;
  };
  for (const f of ["nodes", "allowed", "message", "export_dir"]) model.on(`change:${f}`, update);
  update();
}

export default { render };
