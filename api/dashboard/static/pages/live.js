// A project's live sessions (Assist: GET /api/v1/<key>/assist/sessions), refreshed every few
// seconds; a session that has recorded something opens on its session page.

import { el, replace } from "../dom.js";
import { call, frame, showError, v1 } from "../api.js";
import { projectKeyOfPath, projectNav, sessionRow, sessionsTable } from "./common.js";

const REFRESH_MS = 5000;
const projectKey = projectKeyOfPath();
const main = await frame("Live sessions", projectNav(projectKey));
const summary = el("p", { class: "muted", id: "live-total" });
const [table, body] = sessionsTable("live-sessions", [
  "Started", "User", "Country", "Browser · OS", "Device", "Page", "Active",
]);
const status = el("div", { id: "live-status" });
main.append(summary, table, status);

function liveRow(s) {
  const row = sessionRow(projectKey, { ...s, live: true });
  // The live object has a page title and an "active" flag (API.md 4) instead of counts.
  row.replaceChild(el("td", { class: "title" }, s.pageTitle ?? ""), row.children[5]);
  row.replaceChild(el("td", {}, s.active ? "yes" : "no"), row.children[6]);
  row.removeChild(row.children[7]);
  return row;
}

async function refresh() {
  try {
    const { data } = await call(v1(projectKey, "/assist/sessions"));
    replace(body, ...data.sessions.map(liveRow));
    summary.textContent = `${data.total} live session${data.total === 1 ? "" : "s"}, updated ${new Date().toLocaleTimeString()}`;
    replace(status);
  } catch (error) {
    replace(status);
    showError(status, error);
  }
  setTimeout(refresh, REFRESH_MS);
}
refresh();
