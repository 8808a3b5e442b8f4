// The dashboard's calls: the public API v1 and /auth, with the session cookie (same origin) and,
// on every state-changing call, the session's CSRF token from GET /auth/me.

import { el, replace } from "./dom.js";

let csrfToken = null;

/** An answer that was not 2xx: its status and the server's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function messageOf(response) {
  try {
    const body = await response.json();
    if (Array.isArray(body.errors)) return body.errors.join("; ");
    if (typeof body.error === "string") return body.error;
  } catch (_) { /* not JSON */ }
  return `HTTP ${response.status}`;
}

/** Call path; resolves to the parsed JSON (null for a 204), rejects with an ApiError. */
export async function call(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !path.startsWith("/auth/login")) {
    location.assign("/login");
    throw new ApiError(401, "not signed in");
  }
  if (!response.ok) throw new ApiError(response.status, await messageOf(response));
  return response.status === 204 ? null : response.json();
}

/** The signed-in user (and its CSRF token, kept for later calls). */
export async function whoAmI() {
  const { data } = await call("/auth/me");
  csrfToken = data.csrfToken;
  return data;
}

/** The v1 path of a project ("/api/v1/<key>" + rest). */
export function v1(projectKey, rest = "") {
  return `/api/v1/${encodeURIComponent(projectKey)}${rest}`;
}

/** The page frame: a bar with the navigation and the user, then main. Returns main. */
export async function frame(title, nav = []) {
  const me = await whoAmI();
  const logout = el("button", { type: "button", class: "link", id: "logout" }, "Sign out");
  logout.addEventListener("click", async () => {
    await call("/auth/logout", { method: "POST" });
    location.assign("/login");
  });
  const bar = el(
    "header",
    { class: "bar" },
    el("a", { href: "/", class: "brand" }, "replayd"),
    el("nav", {}, ...nav),
    el("span", { class: "who", id: "who" }, me.email),
    logout,
  );
  const main = document.getElementById("main");
  document.body.insertBefore(bar, main);
  replace(main, el("h1", {}, title));
  document.title = `${title} · replayd`;
  return main;
}

/** Show an error message in node (as text). */
export function showError(node, error) {
  node.append(el("p", { class: "error", role: "alert" }, String(error.message || error)));
}
