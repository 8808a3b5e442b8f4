// DOM helpers of the dashboard. Every recorded string reaches the page through text nodes or
// textContent (never innerHTML, never an attribute that a browser interprets as code or URL
// without our check): a recorded "<img onerror=...>" shows as those characters and runs nothing.

/** An element: el("td", {class: "x", href: "/p"}, "text", child). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** Append children: nodes as they are, anything else as text (null and undefined skipped). */
export function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace every child of node. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** A link to one of our own pages (paths we build, segments URL-encoded). */
export function pageLink(segments, text) {
  return el("a", { href: "/" + segments.map(encodeURIComponent).join("/") }, text);
}

/** A date (epoch ms) in the viewer's local time, or "" when unknown. */
export function formatDate(ms) {
  if (typeof ms !== "number") return "";
  return new Date(ms).toLocaleString();
}

/** A duration in ms as "1h 02m 03s" / "2m 03s" / "3.4s". */
export function formatDuration(ms) {
  if (typeof ms !== "number" || ms < 0) return "";
  if (ms < 10_000) return (ms / 1000).toFixed(1) + "s";
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}h ${two(m)}m ${two(r)}s` : `${m}m ${two(r)}s`;
}

/** A time offset in ms as "m:ss.t" (the timeline's and the panels' clock). */
export function formatOffset(ms) {
  const sign = ms < 0 ? "-" : "";
  const t = Math.abs(ms);
  const m = Math.floor(t / 60_000), s = Math.floor((t % 60_000) / 1000), d = Math.floor((t % 1000) / 100);
  return `${sign}${m}:${String(s).padStart(2, "0")}.${d}`;
}
