import { button, textInput } from "./controls.js";

// A container's checkpoint history as a tree: each entry under the one it descends from (indented, with
// a connector), containers branched from it named beneath. The toolbar checkpoints now (optionally
// named); each row restores that entry in place, branches a new container from it (named in the
// branch box), exports it into the folder box, or deletes it. Ticking one entry shows below the tree what
// it holds, ticking two what changed between them (the kernel computes the model in "detail").
const COLUMNS = ["", "ENTRY", "CREATED", "SIZE", "FROZEN", "PAGES WRITTEN", "PAGES SCANNED", ""];
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
  const detail = document.createElement("section");
  detail.className = "kx-timeline-detail";
  detail.setAttribute("aria-live", "polite");
  detail.setAttribute("aria-label", "selected checkpoints");
  el.append(toolbar, table, message, detail);
  // The ticked entries, oldest tick first: a third tick drops the first.
  let chosen = [];
  const choose = (number, on) => {
    chosen = chosen.filter((n) => n !== number);
    if (on) chosen.push(number);
    if (chosen.length > 2) chosen = chosen.slice(-2);
    model.send({ type: "select", entries: chosen });
    update();
  };

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
    const nodes = model.get("nodes");
    const kept = chosen.filter((c) => nodes.some((n) => n.number === c));
    if (kept.length !== chosen.length) {  // a ticked entry was deleted: show what the others hold
      chosen = kept;
      model.send({ type: "select", entries: chosen });
    }
    for (const n of nodes) {
      const row = body.insertRow();
      row.dataset.entry = n.number;
      const pick = document.createElement("input");
      pick.type = "checkbox";
      pick.className = "kx-timeline-select";
      pick.checked = chosen.includes(n.number);
      pick.title = "select: one entry shows what it holds, two what changed between them";
      pick.setAttribute("aria-label", `select checkpoint #${n.number}`);
      pick.addEventListener("change", () => choose(n.number, pick.checked));
      row.insertCell().appendChild(pick);
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
    renderDetail(detail, model.get("detail"));
  };
  for (const f of ["nodes", "allowed", "message", "export_dir", "detail"]) model.on(`change:${f}`, update);
  update();
}

// Small builders for the detail area: a heading line, a list of monospaced items.
function heading(text, level = "h4") {
  const h = document.createElement(level);
  h.className = "kx-timeline-heading";
  h.textContent = text;
  return h;
}

function list(items, mono = true) {
  const ul = document.createElement("ul");
  ul.className = "kx-timeline-list";
  for (const item of items) {
    const li = document.createElement("li");
    if (mono) li.classList.add("kx-mono");
    li.textContent = item;
    ul.appendChild(li);
  }
  return ul;
}

function memoryTable(rows, columns) {
  const t = document.createElement("table");
  t.className = "kx-table kx-timeline-memory";
  const head = t.createTHead().insertRow();
  for (const [label] of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = label;
    head.appendChild(th);
  }
  const body = t.createTBody();
  for (const r of rows) {
    const row = body.insertRow();
    columns.forEach(([, key], i) => {
      const td = row.insertCell();
      td.textContent = r[key];
      if (i) td.className = "kx-num";
    });
  }
  return t;
}

// What the kernel sent for the selection: "inspect" (one entry), "diff" (two), "loading", "error", or {}.
function renderDetail(el, d) {
  el.replaceChildren();
  if (!d || !d.kind) {
    el.hidden = true;
    return;
  }
  el.hidden = false;
  const which = (d.entries || []).map((n) => `#${n}`).join(" \u2192 ");
  if (d.kind === "loading") {
    el.append(heading(`reading ${which}\u2026`, "div"));
    return;
  }
  if (d.kind === "error") {
    const e = heading(`${which}: ${d.error}`, "div");
    e.classList.add("kx-error-text");
    el.append(e);
    return;
  }
  el.append(heading(`${d.kind === "diff" ? "changes" : "inside"} ${which}`, "h3"));
  const sub = document.createElement("div");
  sub.className = "kx-muted kx-mono";
  sub.textContent = d.title;
  el.append(sub);
  if (d.kind === "inspect") {
    el.append(heading("processes"));
    for (const p of d.processes) {
      const box = document.createElement("details");
      box.className = "kx-timeline-process";
      box.style.marginLeft = `${p.depth * 16}px`;
      box.open = p.depth < 2;
      const summary = document.createElement("summary");
      const pid = document.createElement("b");
      pid.textContent = `${p.pid} `;
      const cmd = document.createElement("code");
      cmd.className = "kx-mono";
      cmd.textContent = p.command;
      summary.append(pid, cmd);
      if (p.state !== "Alive") summary.append(` (${p.state})`);
      box.append(summary);
      if (p.files.length) box.append(heading("open files", "div"), list(p.files));
      if (p.memory.length) box.append(memoryTable(p.memory, [["memory", "kind"], ["dumped", "dumped"], ["mapped", "mapped"]]));
      el.append(box);
    }
    el.append(heading("memory by kind"), memoryTable(d.memory, [["kind", "kind"], ["dumped", "dumped"], ["mapped", "mapped"]]));
    if (d.files.length) el.append(heading(`files written (${d.files.length})`), list(d.files));
    if (d.deleted.length) el.append(heading(`files deleted (${d.deleted.length})`), list(d.deleted));
    return;
  }
  if (d.empty) {
    el.append(heading("no changes", "div"));
    return;
  }
  for (const f of d.files) el.append(heading(`files ${f.change}`), list(f.paths));
  if (d.started.length) el.append(heading("processes started"), list(d.started.map((p) => `${p.pid} ${p.command}`)));
  if (d.ended.length) el.append(heading("processes ended"), list(d.ended.map((p) => `${p.pid} ${p.command}`)));
  for (const c of d.changed) {
    el.append(heading(`process ${c.pid} ${c.comm}`));
    el.append(list([
      ...c.memory.map((m) => `memory ${m.kind}: ${m.delta}`),
      ...c.opened.map((f) => `opened ${f}`),
      ...c.closed.map((f) => `closed ${f}`),
    ]));
  }
}

export default { render };
