import { ansiToHtml, newStyle } from "./ansi.js";

// A bounded, auto-scrolling view of a container's output. New lines arrive as
// append-only custom messages; a (re)opened view asks the kernel to replay
// the buffered lines, so a page reload shows the recent output again.
function render({ model, el }) {
  el.classList.add("kx-live");
  const head = document.createElement("div");
  head.className = "kx-live-head";
  const title = document.createElement("span");
  const download = document.createElement("button");
  download.textContent = "download full log";
  download.className = "kx-live-download";
  head.append(title, download);
  const marker = document.createElement("div");
  marker.className = "kx-live-marker";
  const pre = document.createElement("pre");
  pre.className = "kx-live-lines";
  const footer = document.createElement("div");
  footer.className = "kx-live-footer";
  el.append(head, marker, pre, footer);

  const styles = { stdout: newStyle(), stderr: newStyle() };
  let follow = true;  // auto-scroll until the reader scrolls up
  pre.addEventListener("scroll", () => {
    follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  });

  let dropped = 0;  // lines that fell out of the kernel's buffer, sent with each append
  const showMeta = () => {
    title.textContent = model.get("title");
    marker.textContent = dropped ? `${dropped} earlier lines not shown` : "";
    footer.textContent = model.get("footer");
  };
  let lines = [];  // the shown lines as [stream, HTML], newest last, at most max_lines
  let frame = 0;  // the requested draw, if any
  // Consecutive lines of one stream share one element: laying out a flood's
  // 1000 lines as a few text blocks costs a quarter of a thousand elements.
  const draw = () => {
    frame = 0;
    const runs = [];
    for (let i = 0; i < lines.length;) {
      const stream = lines[i][0];
      const html = [];
      for (; i < lines.length && lines[i][0] === stream; i++) html.push(lines[i][1]);
      runs.push(`<div class="${stream === "stderr" ? "kx-stderr" : "kx-stdout"}">${html.join("\n")}</div>`);
    }
    pre.innerHTML = runs.join("");  // one parse of the whole buffer beats many node operations
    if (follow) pre.scrollTop = pre.scrollHeight;
  };
  // Appends arriving within one frame are drawn once, in the frame, so a
  // click or a state update waits for at most one (cheap) draw.
  const append = (chunks) => {
    const max = model.get("max_lines");
    if (chunks.length > max) chunks = chunks.slice(chunks.length - max);  // the rest would not stay
    for (const [stream, text] of chunks) {
      lines.push([stream, ansiToHtml(text, styles[stream] ?? styles.stdout) || "&#8203;"]);
    }
    if (lines.length > max) lines = lines.slice(lines.length - max);
    if (!frame) frame = requestAnimationFrame(draw);
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
  model.on("msg:custom", onMessage);
  model.on("change:footer", showMeta);
  showMeta();
  model.send({ type: "replay" });
  return () => { model.off("msg:custom", onMessage); cancelAnimationFrame(frame); };
}

export default { render };
