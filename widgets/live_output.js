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
  let lines = [];  // the shown lines as HTML, newest last, at most max_lines
  const append = (chunks) => {
    const max = model.get("max_lines");
    if (chunks.length > max) chunks = chunks.slice(chunks.length - max);  // the rest would not stay
    for (const [stream, text] of chunks) {
      const cls = stream === "stderr" ? "kx-stderr" : "kx-stdout";
      lines.push(`<div class="${cls}">${ansiToHtml(text, styles[stream] ?? styles.stdout) || "&#8203;"}</div>`);
    }
    if (lines.length > max) lines = lines.slice(lines.length - max);
    pre.innerHTML = lines.join("");  // one parse of the whole buffer beats thousands of node operations
    if (follow) pre.scrollTop = pre.scrollHeight;
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
  return () => model.off("msg:custom", onMessage);
}

export default { render };
