import { ansiToHtml, newStyle } from "./ansi.js";
import { button } from "./controls.js";

// A bounded, auto-scrolling view of a container's output. New lines arrive as
// append-only custom messages; a (re)opened view asks the kernel to replay
// the buffered lines, so a page reload shows the recent output again.
// Its toolbar: a filter box, "follow" (auto-scroll; paused while the reader
// scrolls up, resumed at the bottom or by the box), stop following / detach
// (the kernel's interrupt does the same), and the full log's download.
const USER_SCROLL_MS = 600;  // a scroll this soon after the reader's input is the reader's

function render({ model, el }) {
  el.classList.add("kx-root", "kx-live");
  const head = document.createElement("div");
  head.className = "kx-live-head";
  const title = document.createElement("span");
  title.className = "kx-live-title";
  const filter = document.createElement("input");
  filter.type = "search";
  filter.placeholder = "filter";
  filter.className = "kx-live-filter";
  filter.setAttribute("aria-label", "show only lines containing");
  const followBox = document.createElement("label");
  followBox.className = "kx-live-follow";
  const followInput = document.createElement("input");
  followInput.type = "checkbox";
  followInput.checked = true;
  followBox.append(followInput, document.createTextNode("follow"));
  const halt = button("stop following", "halt", "stop following (the container keeps running)");
  halt.classList.add("kx-live-halt");
  const download = button("full log", "download", "download the full log");
  download.classList.add("kx-live-download");
  head.append(title, filter, followBox, halt, download);
  const marker = document.createElement("div");
  marker.className = "kx-live-marker kx-muted";
  const pre = document.createElement("pre");
  pre.className = "kx-live-lines";
  pre.tabIndex = 0;  // scrollable by keyboard
  pre.setAttribute("role", "log");
  const footer = document.createElement("div");
  footer.className = "kx-live-footer kx-muted";
  footer.setAttribute("aria-live", "polite");
  el.append(head, marker, pre, footer);

  const styles = { stdout: newStyle(), stderr: newStyle() };
  let follow = true;  // auto-scroll until the reader scrolls up
  const setFollow = (on) => { follow = on; followInput.checked = on; if (on) pre.scrollTop = pre.scrollHeight; };
  // Only the reader's own scrolling pauses following (a relayout, such as a theme change, never does);
  // scrolling back to the bottom resumes it.
  let lastInput = 0;
  for (const kind of ["wheel", "keydown", "mousedown", "touchstart"]) {
    pre.addEventListener(kind, () => { lastInput = Date.now(); }, { passive: true });
  }
  pre.addEventListener("scroll", () => {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    if (atBottom && !follow) setFollow(true);
    else if (!atBottom && follow && Date.now() - lastInput < USER_SCROLL_MS) setFollow(false);
  });
  followInput.addEventListener("change", () => setFollow(followInput.checked));

  let dropped = 0;  // lines that fell out of the kernel's buffer, sent with each append
  const showMeta = () => {
    title.textContent = model.get("title");
    marker.textContent = dropped ? `${dropped} earlier lines not shown` : "";
    footer.textContent = model.get("footer");
    const live = model.get("live");
    halt.disabled = !live;
    const attach = model.get("mode") === "attach";
    halt.querySelector("span").textContent = attach ? "detach" : "stop following";
    halt.title = attach ? "detach (the container keeps running)" : "stop following (the container keeps running)";
  };
  let lines = [];  // the shown lines as [stream, HTML, text], newest last, at most max_lines
  let frame = 0;  // the requested draw, if any
  // Consecutive lines of one stream share one element: laying out a flood's
  // 1000 lines as a few text blocks costs a quarter of a thousand elements.
  const draw = () => {
    frame = 0;
    const needle = filter.value.toLowerCase();
    const shown = needle ? lines.filter((l) => l[2].toLowerCase().includes(needle)) : lines;
    const runs = [];
    for (let i = 0; i < shown.length;) {
      const stream = shown[i][0];
      const html = [];
      for (; i < shown.length && shown[i][0] === stream; i++) html.push(shown[i][1]);
      runs.push(`<div class="${stream === "stderr" ? "kx-stderr" : "kx-stdout"}">${html.join("\n")}</div>`);
    }
    pre.innerHTML = runs.join("");  // one parse of the whole buffer beats many node operations
    if (follow) pre.scrollTop = pre.scrollHeight;
  };
  const redraw = () => { if (!frame) frame = requestAnimationFrame(draw); };
  filter.addEventListener("input", redraw);
  // Appends arriving within one frame are drawn once, in the frame, so a
  // click or a state update waits for at most one (cheap) draw.
  const append = (chunks) => {
    const max = model.get("max_lines");
    if (chunks.length > max) chunks = chunks.slice(chunks.length - max);  // the rest would not stay
    for (const [stream, text] of chunks) {
      lines.push([stream, ansiToHtml(text, styles[stream] ?? styles.stdout) || "&#8203;", text]);
    }
    if (lines.length > max) lines = lines.slice(lines.length - max);
    redraw();
  };
  const onMessage = (msg) => {
    if (msg.type === "append" || msg.type === "replay") {
      if (msg.type === "replay") lines = [];
      append(msg.chunks);
      if (msg.dropped !== dropped) { dropped = msg.dropped; showMeta(); }
    } else if (msg.type === "download") {
      const url = URL.createObjectURL(new Blob([msg.text], { type: "text/plain" }));
      const a = document.createElement("a");
      a.href = url; a.download = msg.name; a.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    }
  };
  download.addEventListener("click", () => model.send({ type: "download" }));
  halt.addEventListener("click", () => model.send({ type: "halt" }));
  model.on("msg:custom", onMessage);
  const metaFields = ["footer", "live", "mode", "title"];
  for (const f of metaFields) model.on(`change:${f}`, showMeta);
  showMeta();
  model.send({ type: "replay" });
  return () => {
    model.off("msg:custom", onMessage);
    for (const f of metaFields) model.off(`change:${f}`, showMeta);
    cancelAnimationFrame(frame);
  };
}

export default { render };
