// The lifecycle diagram: the kernel draws the SVG (the same picture a static
// notebook viewer shows); the view only places it, and says when it is a snapshot.
function render({ model, el }) {
  el.classList.add("kx-root", "kx-diagram");
  const picture = document.createElement("div");
  const note = document.createElement("div");
  note.className = "kx-muted kx-diagram-note";
  el.append(picture, note);
  const show = () => {
    picture.innerHTML = model.get("svg");
    note.textContent = model.get("frozen") ? `snapshot: ${model.get("status")} when drawn` : "";
  };
  model.on("change:svg", show);
  show();
  return () => model.off("change:svg", show);
}

export default { render };
