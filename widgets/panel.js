import { button, engineBadge, moveChooser } from "./controls.js";

// The panel's header: state badge, identity, one button per action (enabled
// when the kernel says the state machine allows it), exit code, errors.
// Remove asks first: a second, explicit click confirms.
const ACTIONS = ["start", "stop", "kill", "pause", "unpause", "restart", "checkpoint", "restore", "remove"];

function render({ model, el }) {
  el.classList.add("kx-root", "kx-panel");
  const top = document.createElement("div");
  top.className = "kx-panel-top";
  const badge = document.createElement("span");
  badge.setAttribute("role", "status");
  const name = document.createElement("b");
  const meta = document.createElement("span");
  meta.className = "kx-panel-meta kx-muted";
  const engine = engineBadge(model.get("engine"));
  top.append(badge, name, engine, meta);
  const buttons = document.createElement("div");
  buttons.className = "kx-toolbar kx-panel-buttons";
  buttons.setAttribute("role", "toolbar");
  const byAction = {};
  for (const action of ACTIONS) {
    const b = button(action, action, `${action} the container`);
    b.dataset.action = action;
    if (action === "remove" || action === "kill") b.classList.add("kx-danger");
    b.addEventListener("click", () => (action === "remove" ? confirmRemove() : model.send({ type: "action", action })));
    byAction[action] = b;
    buttons.appendChild(b);
  }
  // A TTY container's own terminal, below the header (docs/architecture.md §14).
  const terminal = button("terminal", "terminal", "open a terminal on the container's TTY");
  terminal.dataset.action = "terminal";
  terminal.addEventListener("click", () => model.send({ type: "terminal" }));
  buttons.appendChild(terminal);
  // "move to…": checkpoint on this engine, restore on the chosen one; the panel follows it there.
  const mover = moveChooser(model.get("name"), (to) => model.send({ type: "move", to }));
  buttons.appendChild(mover);
  const confirm = document.createElement("div");
  confirm.className = "kx-toolbar kx-panel-confirm";
  confirm.hidden = true;
  const question = document.createElement("span");
  const yes = button("remove", "remove", "");
  yes.dataset.confirm = "remove";
  yes.classList.add("kx-danger");
  const no = button("cancel", "", "");
  no.dataset.confirm = "cancel";
  confirm.append(question, yes, no);
  const confirmRemove = () => {
    question.textContent = `Remove ${model.get("name")} and its files?`;
    confirm.hidden = false;
    no.focus();
  };
  yes.addEventListener("click", () => { confirm.hidden = true; model.send({ type: "action", action: "remove" }); });
  no.addEventListener("click", () => { confirm.hidden = true; byAction.remove.focus(); });
  const status = document.createElement("div");
  status.className = "kx-panel-status kx-muted";
  status.setAttribute("aria-live", "polite");
  const mounts = document.createElement("div");
  mounts.className = "kx-panel-mounts kx-muted";
  el.append(top, mounts, buttons, confirm, status);

  const update = () => {
    const state = model.get("status");
    badge.className = `kx-badge kx-${state}`;
    badge.textContent = state;
    badge.setAttribute("aria-label", `state: ${state}`);
    name.textContent = model.get("name");
    const limits = model.get("limits");
    meta.textContent = `${model.get("short_id")} · ${model.get("image")}${limits ? ` · ${limits}` : ""}`;
    const mounted = model.get("mounts") || [];
    mounts.textContent = mounted.length ? `mounts: ${mounted.join(", ")}` : "";
    mounts.hidden = !mounted.length;
    const allowed = new Set(model.get("allowed"));
    for (const [action, b] of Object.entries(byAction)) b.disabled = !allowed.has(action);
    if (!allowed.has("remove")) confirm.hidden = true;
    engine.textContent = model.get("engine");
    engine.setAttribute("aria-label", `engine: ${model.get("engine")}`);
    mover.setTargets(model.get("targets") || []);
    mover.disabled = state !== "running" || Boolean(model.get("busy"));
    terminal.hidden = !model.get("tty");
    terminal.disabled = state !== "running";
    const parts = [];
    if (model.get("busy")) parts.push(`${model.get("busy")}…`);
    if (model.get("exited")) {
      parts.push(`exit code ${model.get("exit_code")}${model.get("oom_killed") ? " (OOM killed)" : ""}`);
    }
    if (model.get("error")) parts.push(model.get("error"));
    if (model.get("message")) parts.push(model.get("message"));
    status.textContent = parts.join(" · ");
    const failed = Boolean(model.get("message") || model.get("error"));
    status.classList.toggle("kx-error-text", failed);
    status.classList.toggle("kx-muted", !failed);
  };
  const fields = ["tty", "status", "allowed", "busy", "exited", "exit_code", "error", "message", "name", "mounts",
                  "limits", "oom_killed", "engine", "targets"];
  for (const f of fields) model.on(`change:${f}`, update);
  update();
  return () => { for (const f of fields) model.off(`change:${f}`, update); };
}

export default { render };
