// The panel's header: state badge, identity, one button per action (enabled
// when the kernel says the state machine allows it), exit code, errors.
const ACTIONS = ["start", "stop", "kill", "pause", "unpause", "restart", "checkpoint", "restore", "remove"];

function render({ model, el }) {
  el.classList.add("kx-panel");
  const top = document.createElement("div");
  top.className = "kx-panel-top";
  const badge = document.createElement("span");
  const name = document.createElement("b");
  const meta = document.createElement("span");
  meta.className = "kx-panel-meta";
  top.append(badge, name, meta);
  const buttons = document.createElement("div");
  buttons.className = "kx-panel-buttons";
  const byAction = {};
  for (const action of ACTIONS) {
    const b = document.createElement("button");
    b.textContent = action;
    b.dataset.action = action;
    b.addEventListener("click", () => model.send({ type: "action", action }));
    byAction[action] = b;
    buttons.appendChild(b);
  }
  const status = document.createElement("div");
  status.className = "kx-panel-status";
  const mounts = document.createElement("div");
  mounts.className = "kx-panel-mounts";
  el.append(top, mounts, buttons, status);

  const update = () => {
    const state = model.get("status");
    badge.className = `kx-badge kx-${state}`;
    badge.textContent = state;
    name.textContent = model.get("name");
    const limits = model.get("limits");
    meta.textContent = `${model.get("short_id")} · ${model.get("image")}${limits ? ` · ${limits}` : ""}`;
    const mounted = model.get("mounts") || [];
    mounts.textContent = mounted.length ? `mounts: ${mounted.join(", ")}` : "";
    mounts.hidden = !mounted.length;
    const allowed = new Set(model.get("allowed"));
    for (const [action, b] of Object.entries(byAction)) b.disabled = !allowed.has(action);
    const parts = [];
    if (model.get("busy")) parts.push(`${model.get("busy")}…`);
    if (model.get("exited")) {
      parts.push(`exit code ${model.get("exit_code")}${model.get("oom_killed") ? " (OOM killed)" : ""}`);
    }
    if (model.get("error")) parts.push(model.get("error"));
    if (model.get("message")) parts.push(model.get("message"));
    status.textContent = parts.join(" · ");
    status.classList.toggle("kx-panel-error", Boolean(model.get("message") || model.get("error")));
  };
  const fields = ["status", "allowed", "busy", "exited", "exit_code", "error", "message", "name", "mounts",
                  "limits", "oom_killed"];
  for (const f of fields) model.on(`change:${f}`, update);
  update();
  return () => { for (const f of fields) model.off(`change:${f}`, update); };
}

export default { render };
