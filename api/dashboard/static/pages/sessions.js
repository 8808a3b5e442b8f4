// A project's recorded sessions, newest first, paged, through the session search of the public
// API: POST /api/v1/<key>/sessions/search (API.md 3.1) answering {data: {total, sessions}}.

import { el, replace } from "../dom.js";
import { call, frame, showError, v1 } from "../api.js";
import { projectKeyOfPath, projectNav, sessionRow, sessionsTable } from "./common.js";

const PAGE_SIZE = 50;
const DAY_MS = 86_400_000;
const projectKey = projectKeyOfPath();
const main = await frame("Sessions", projectNav(projectKey));

const field = (label, input) => el("label", {}, el("span", {}, label), input);
const from = el("input", { type: "date", id: "filter-from" });
const to = el("input", { type: "date", id: "filter-to" });
const userId = el("input", { type: "text", id: "filter-user", placeholder: "exact user id" });
const country = el("input", { type: "text", id: "filter-country", placeholder: "ISO code, e.g. FR", maxlength: 2 });
const browser = el("input", { type: "text", id: "filter-browser", placeholder: "e.g. Chrome" });
const hasError = el("input", { type: "checkbox", id: "filter-error" });
const form = el(
  "form", { class: "filters", id: "filters" },
  field("From", from), field("To", to), field("User id", userId), field("Country", country),
  field("Browser", browser), el("label", { class: "check" }, hasError, "has errors"),
  el("button", { type: "submit" }, "Search"),
);
const summary = el("p", { class: "muted", id: "sessions-total" });
const [table, body] = sessionsTable("sessions");
const previous = el("button", { type: "button", id: "page-previous" }, "Newer");
const next = el("button", { type: "button", id: "page-next" }, "Older");
const status = el("div", { id: "sessions-status" });
main.append(form, summary, table, el("div", { class: "pager" }, previous, next), status);

let page = 1;

/** The search body of the filters (API.md 3.1 and 3.2). */
function searchBody() {
  const now = Date.now();
  const start = from.value ? new Date(from.value + "T00:00").getTime() : now - 30 * DAY_MS;
  const end = to.value ? new Date(to.value + "T00:00").getTime() + DAY_MS : now + DAY_MS;
  const filters = [];
  const is = (type, value) => filters.push({ type, operator: "is", value: [value] });
  if (userId.value.trim()) is("userId", userId.value.trim());
  if (country.value.trim()) is("userCountry", country.value.trim().toUpperCase());
  if (browser.value.trim()) is("userBrowser", browser.value.trim());
  if (hasError.checked) filters.push({ type: "error", isEvent: true, operator: "isAny", value: [] });
  return {
    startTimestamp: start, endTimestamp: end, filters, eventsOrder: "then",
    sort: "startTs", order: "desc", page, limit: PAGE_SIZE,
  };
}

async function load() {
  replace(status);
  previous.disabled = next.disabled = true;
  try {
    const { data } = await call(v1(projectKey, "/sessions/search"), { method: "POST", body: searchBody() });
    replace(body, ...data.sessions.map((s) => sessionRow(projectKey, s)));
    const first = data.total ? (page - 1) * PAGE_SIZE + 1 : 0;
    summary.textContent = `${first}–${first + data.sessions.length - (first ? 1 : 0)} of ${data.total} sessions`;
    previous.disabled = page === 1;
    next.disabled = page * PAGE_SIZE >= data.total;
  } catch (error) {
    replace(body);
    summary.textContent = "";
    showError(status, error);
  }
}

form.addEventListener("submit", (event) => { event.preventDefault(); page = 1; load(); });
previous.addEventListener("click", () => { page -= 1; load(); });
next.addEventListener("click", () => { page += 1; load(); });
load();
