// The lifecycle diagram: the kernel draws the SVG (the same picture a static
// notebook viewer shows); the view only places it.
function render({ model, el }) {
  el.classList.add("kx-diagram");
  const show = () => { el.innerHTML = model.get("svg"); };
  model.on("change:svg", show);
  show();
  return () => model.off("change:svg", show);
}

export default { render };
