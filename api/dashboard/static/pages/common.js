// What the project pages share: the project key of the path, the navigation, the sessions table.

import { el, pageLink, formatDate, formatDuration } from "../dom.js";

/** The project key of /projects/<key>/... */
export function projectKeyOfPath() {
  return decodeURIComponent(location.pathname.split("/")[2] || "");
}

/** The navigation of a project's pages. */
export function projectNav(projectKey) {
  return [
    pageLink(["projects", projectKey], "Sessions"),
    pageLink(["projects", projectKey, "live"], "Live"),
  ];
}

/** "Chrome 120 · Linux" from the parts that are known. */
export function joined(...parts) {
  return parts.filter((p) => p !== undefined && p !== null && p !== "").join(" · ");
}

/** One row of a sessions table (a session object of API.md 2.5, or a live session). */
export function sessionRow(projectKey, s) {
  const id = String(s.sessionId ?? s.sessionID ?? "");
  return el(
    "tr", { dataset: { sessionId: id } },
    el("td", {}, pageLink(["projects", projectKey, "sessions", id], formatDate(s.startTs ?? s.timestamp) || id)),
    el("td", { class: "user" }, s.userId ?? s.userID ?? ""),
    el("td", {}, s.userCountry ?? ""),
    el("td", {}, joined(s.userBrowser, s.userOs)),
    el("td", {}, joined(s.userDevice, s.userDeviceType)),
    el("td", {}, s.live ? "live" : formatDuration(s.duration)),
    el("td", { class: "num" }, s.pagesCount ?? ""),
    el("td", { class: "num" }, s.errorsCount ?? ""),
  );
}

export const SESSION_HEADERS = ["Started", "User", "Country", "Browser · OS", "Device", "Duration", "Pages", "Errors"];

/** An empty sessions table; returns [table, tbody]. */
export function sessionsTable(id, headers = SESSION_HEADERS) {
  const body = el("tbody");
  const table = el(
    "table", { class: "grid", id },
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    body,
  );
  return [table, body];
}
