// CPU % and memory of a container over time: two small SVG line plots in the theme's colours.
const W = 320, H = 70;

function humanSize(bytes) {  // podman's units: kB, MB, GB (powers of 1000)
  for (const unit of ["B", "kB", "MB", "GB"]) {
    if (bytes < 1000 || unit === "GB") return unit === "B" ? `${Math.round(bytes)}B` : `${bytes.toPrecision(3)}${unit}`;
    bytes /= 1000;
  }
  return "";
}

function plot(values, label, format) {
  const max = Math.max(...values, 1e-9);
  const step = values.length > 1 ? W / (values.length - 1) : W;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(H - (v / max) * (H - 8)).toFixed(1)}`).join(" ");
  const last = values.length ? format(values[values.length - 1]) : "–";
  return `<div class="kx-monitor-plot"><div>${label}: <b>${last}</b> <span class="kx-muted">(max ${format(max)})</span></div>` +
    `<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${label} over time">` +
    `<polyline fill="none" stroke="var(--kx-brand)" stroke-width="1.5" points="${points}"/></svg></div>`;
}

function render({ model, el }) {
  el.classList.add("kx-root", "kx-monitor");
  const update = () => {
    const samples = model.get("samples");
    const name = document.createElement("span");
    name.textContent = model.get("name");  // a container name is text, never markup
    el.innerHTML = `<div class="kx-monitor-title">${name.innerHTML}</div>` +
      plot(samples.map((s) => s[1]), "CPU", (v) => `${v.toFixed(2)}%`) +
      plot(samples.map((s) => s[2]), "memory", humanSize);
  };
  model.on("change:samples", update);
  update();
  return () => model.off("change:samples", update);
}

export default { render };
