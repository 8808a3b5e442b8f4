// A session's page: its metadata, the replay player (web) or its screenshots (mobile), the event
// timeline (a click seeks the player) and the devtools panels (console, network, errors), all
// following the player's clock. Everything recorded is shown as text (../dom.js).
//
// The player is i13-replay's ES module (/static/player/player.js): mountPlayer(container,
// {replayUrl}) -> Player; window.replayd exposes seek/state/frame for automation.

import { el, replace, formatDate, formatDuration, formatOffset } from "../dom.js";
import { ApiError, call, frame, showError, v1 } from "../api.js";
import { joined, projectKeyOfPath, projectNav } from "./common.js";

const TIMELINE_TYPES = new Set([
  "LOCATION", "CLICK", "INPUT", "CUSTOM", "ERROR", "REQUEST", "ISSUE", "TAP", "SWIPE", "VIEW", "CRASH",
]);
const ERROR_TYPES = new Set(["ERROR", "CRASH"]);
const MOBILE_PLATFORMS = new Set(["ios", "android"]);
const PAYLOAD_CHARS = 200;

const projectKey = projectKeyOfPath();
const sessionId = decodeURIComponent(location.pathname.split("/")[4] || "");
const main = await frame(`Session ${sessionId}`, projectNav(projectKey));
const base = v1(projectKey, `/sessions/${encodeURIComponent(sessionId)}`);

const meta = el("dl", { class: "meta", id: "session-meta" });
const stage = el("section", { class: "stage", id: "player" });
const timeline = el("ol", { class: "timeline", id: "timeline" });
const panels = {
  console: el("ol", { class: "panel", id: "panel-console" }),
  network: el("ol", { class: "panel", id: "panel-network" }),
  errors: el("ol", { class: "panel", id: "panel-errors" }),
};
const tabs = el("div", { class: "tabs", role: "tablist" });
const panelBox = el("section", { class: "devtools" }, tabs, ...Object.values(panels));
for (const [name, panel] of Object.entries(panels)) {
  const tab = el("button", { type: "button", role: "tab", id: `tab-${name}` }, name[0].toUpperCase() + name.slice(1));
  tab.addEventListener("click", () => showPanel(name));
  tabs.append(tab);
  panel.hidden = true;
}
main.append(
  meta,
  el("div", { class: "session-layout" }, stage, el("aside", {}, el("h2", {}, "Events"), timeline)),
  panelBox,
);
showPanel("console");

function showPanel(name) {
  for (const [other, panel] of Object.entries(panels)) {
    panel.hidden = other !== name;
    document.getElementById(`tab-${other}`).setAttribute("aria-selected", String(other === name));
  }
}

// -- what was recorded -------------------------------------------------------------------------

let session;
try {
  session = (await call(base)).data;
} catch (error) {
  showError(main, error);
  throw error;
}
let origin = session.startTs; // epoch ms of time 0: the player's startedAt once it is known

const facts = [
  ["User", session.userId], ["Anonymous id", session.userAnonymousId],
  ["Started", formatDate(session.startTs)],
  ["Duration", session.live ? "live" : formatDuration(session.duration)],
  ["Browser", joined(session.userBrowser, session.userBrowserVersion)],
  ["OS", joined(session.userOs, session.userOsVersion)],
  ["Country", joined(session.userCountry, session.userCity)],
  ["Device", joined(session.userDevice, session.userDeviceType)],
  ["Pages", session.pagesCount], ["Events", session.eventsCount], ["Errors", session.errorsCount],
  ["Platform", session.platform], ["Last page title", session.pageTitle],
];
for (const [name, value] of facts) {
  if (value === undefined || value === null || value === "") continue;
  meta.append(el("dt", {}, name), el("dd", { dataset: { fact: name } }, value));
}
for (const [key, value] of Object.entries(session.metadata || {})) {
  meta.append(el("dt", {}, key), el("dd", {}, value));
}

function payloadText(payload) {
  if (payload === undefined || payload === null) return "";
  const text = typeof payload === "string" ? payload : JSON.stringify(payload);
  return text.length > PAYLOAD_CHARS ? text.slice(0, PAYLOAD_CHARS) + "…" : text;
}

/** What a timeline entry says about an event (text only). */
function describe(e) {
  switch (e.type) {
    case "LOCATION": return e.url || e.value || e.path;
    case "CLICK": return e.label || e.selector;
    case "INPUT": return joined(e.label, e.value);
    case "CUSTOM": return joined(e.name, payloadText(e.payload));
    case "ERROR": return joined(e.name, e.message);
    case "REQUEST": return joined(e.method, e.url, e.status, typeof e.duration === "number" ? `${e.duration} ms` : "");
    case "ISSUE": return joined(e.issueType, e.contextString);
    case "TAP": case "SWIPE": return joined(e.label, e.direction);
    case "VIEW": return joined(e.screenName, e.viewName);
    case "CRASH": return joined(e.name, e.reason);
    default: return "";
  }
}

/** Lists that follow the clock: items sorted by time (ms since time 0), one marked current. */
const followers = [];

function follower(list, entries, render) {
  const items = entries.map((entry) => ({ entry, node: render(entry) }));
  replace(list, ...items.map((i) => i.node));
  const f = { list, items, current: null };
  followers.push(f);
  return f;
}

function offsetOf(entry) {
  return typeof entry.time === "number" ? entry.time : entry.timestamp - origin;
}

function setTime(ms) {
  for (const f of followers) {
    let current = null;
    for (const item of f.items) {
      const past = offsetOf(item.entry) <= ms;
      item.node.classList.toggle("past", past);
      if (past) current = item;
    }
    if (current !== f.current) {
      f.current?.node.classList.remove("current");
      current?.node.classList.add("current");
      if (current && !f.list.hidden) current.node.scrollIntoView({ block: "nearest" });
      f.current = current;
    }
  }
}

/** Write every list's time offsets (again once the player says where time 0 is). */
function renderClocks() {
  for (const f of followers) {
    for (const item of f.items) {
      const clock = item.node.querySelector(".at");
      if (clock) clock.textContent = formatOffset(offsetOf(item.entry));
    }
  }
}

let seek = async (ms) => setTime(ms);

function timelineItem(e) {
  const button = el(
    "button", { type: "button", class: "event", dataset: { type: e.type } },
    el("span", { class: "at" }, formatOffset(e.timestamp - origin)),
    el("span", { class: "kind" }, e.type),
    el("span", { class: "what" }, describe(e)),
  );
  button.addEventListener("click", () => seek(e.timestamp - origin));
  return el("li", {}, button);
}

function panelItem(cells, level) {
  return el("li", { class: level ? `level-${level}` : undefined }, el("span", { class: "at" }), ...cells);
}

async function loadPanel(panel, path, render) {
  try {
    const { data } = await call(base + path);
    if (!data.length) panel.append(el("li", { class: "muted" }, "nothing recorded"));
    return data.map((entry) => ({ entry, render }));
  } catch (error) {
    const text = error instanceof ApiError && error.status === 404 ? "not available on this server" : error.message;
    panel.append(el("li", { class: "muted" }, text));
    return [];
  }
}

const [events, consoleRows, networkRows] = await Promise.all([
  call(base + "/events").then((r) => r.data, (error) => { showError(timeline, error); return []; }),
  loadPanel(panels.console, "/console", (m) => panelItem([el("span", { class: "kind" }, m.level), el("span", { class: "what" }, m.value)], m.level)),
  loadPanel(panels.network, "/network", (r) =>
    panelItem(
      [
        el("span", { class: "kind" }, r.method), el("span", { class: "what" }, r.url),
        el("span", { class: "status" }, r.status), el("span", { class: "num" }, typeof r.duration === "number" ? `${r.duration} ms` : ""),
        el("span", { class: "muted" }, r.type),
      ],
      r.status >= 400 ? "error" : "",
    )),
]);

const shown = events.filter((e) => TIMELINE_TYPES.has(e.type));
if (!shown.length) timeline.append(el("li", { class: "muted" }, "no events"));
follower(timeline, shown, timelineItem);
if (consoleRows.length) follower(panels.console, consoleRows.map((r) => r.entry), consoleRows[0].render);
if (networkRows.length) follower(panels.network, networkRows.map((r) => r.entry), networkRows[0].render);
const errors = events.filter((e) => ERROR_TYPES.has(e.type));
if (errors.length) {
  follower(panels.errors, errors, (e) =>
    panelItem([el("span", { class: "kind" }, e.name || e.type), el("span", { class: "what" }, e.message ?? e.reason ?? "")], "error"));
} else {
  panels.errors.append(el("li", { class: "muted" }, "no errors"));
}

// -- the player, or the screenshots of a mobile session ----------------------------------------

if (MOBILE_PLATFORMS.has(session.platform)) {
  await mountScreens();
} else {
  await mountReplay();
}
renderClocks();
setTime(0);

async function mountReplay() {
  let player;
  try {
    const { mountPlayer } = await import("/static/player/player.js");
    player = mountPlayer(stage, { replayUrl: base + "/replay" });
  } catch (error) {
    replace(stage, el("p", { class: "muted", id: "player-missing" }, `The replay player is not available (${error.message}).`));
    return;
  }
  window.replayd = { seek: (ms) => player.seek(ms), state: () => player.state(), frame: () => player.frame() };
  seek = (ms) => player.seek(ms);
  player.onTimeUpdate(setTime);
  player.ready.then(() => {
    const { startedAt } = player.state();
    if (typeof startedAt === "number") origin = startedAt;
    renderClocks();
    setTime(player.state().time);
  }, (error) => showError(stage, error));
}

async function mountScreens() {
  let images = [];
  try {
    images = (await call(base + "/images")).data;
  } catch (error) {
    showError(stage, error);
    return;
  }
  if (!images.length) {
    stage.append(el("p", { class: "muted" }, "no screenshots"));
    return;
  }
  const last = images[images.length - 1].captureTime - origin;
  // A range input snaps to its step: the end rounded up, so that the last screenshot is reached.
  const end = Math.ceil(Math.max(session.duration || 0, last) / 100) * 100;
  const picture = el("img", { class: "screen", id: "screen", alt: "screenshot" });
  const slider = el("input", { type: "range", min: 0, max: end, step: 100, value: 0, id: "screen-time" });
  const clock = el("span", { class: "at" });
  stage.append(picture, el("div", { class: "scrub" }, slider, clock));
  const show = (ms) => {
    let shownImage = images[0];
    for (const image of images) if (image.captureTime - origin <= ms) shownImage = image;
    const src = `${base}/images/${encodeURIComponent(shownImage.hash)}`;
    if (picture.getAttribute("src") !== src) picture.setAttribute("src", src);
    slider.value = String(ms);
    clock.textContent = formatOffset(ms);
    setTime(ms);
  };
  slider.addEventListener("input", () => show(Number(slider.value)));
  seek = async (ms) => show(ms);
  show(0);
}
