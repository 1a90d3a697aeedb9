// CPU % and memory of a container over time: two small SVG line plots.
const W = 320, H = 70;

function plot(values, label, format) {
  const max = Math.max(...values, 1e-9);
  const step = values.length > 1 ? W / (values.length - 1) : W;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(H - (v / max) * (H - 8)).toFixed(1)}`).join(" ");
  const last = values.length ? format(values[values.length - 1]) : "–";
  return `<div class="kx-monitor-plot"><div>${label}: <b>${last}</b> (max ${format(max)})</div>` +
    `<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}"><polyline fill="none" stroke="#0969da" ` +
    `stroke-width="1.5" points="${points}"/></svg></div>`;
}

function render({ model, el }) {
  el.classList.add("kx-monitor");
  const update = () => {
    const samples = model.get("samples");
    el.innerHTML = `<div class="kx-monitor-title">${model.get("name")}</div>` +
      plot(samples.map((s) => s[1]), "CPU", (v) => `${v.toFixed(1)}%`) +
      plot(samples.map((s) => s[2]), "memory", (v) => `${(v / 1048576).toFixed(1)} MiB`);
  };
  model.on("change:samples", update);
  update();
  return () => model.off("change:samples", update);
}

export default { render };
