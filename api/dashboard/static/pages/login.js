// The login page: POST /auth/login {email, password}; on success, the projects (or ?next=).

import { el, replace } from "../dom.js";
import { call } from "../api.js";

const main = document.getElementById("main");
const email = el("input", { type: "email", name: "email", id: "email", required: true, autocomplete: "username" });
const password = el("input", {
  type: "password", name: "password", id: "password", required: true, autocomplete: "current-password",
});
const message = el("p", { class: "error", role: "alert", id: "login-error" });
const form = el(
  "form",
  { class: "login", id: "login-form" },
  el("label", { for: "email" }, "Email"), email,
  el("label", { for: "password" }, "Password"), password,
  el("button", { type: "submit" }, "Sign in"),
  message,
);
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  message.textContent = "";
  try {
    await call("/auth/login", { method: "POST", body: { email: email.value, password: password.value } });
  } catch (error) {
    message.textContent = error.status === 401 ? "Wrong email or password." : error.message;
    return;
  }
  // Only a path of ours: never a full URL someone put into the link.
  const next = new URLSearchParams(location.search).get("next");
  location.assign(next && next.startsWith("/") && !next.startsWith("//") ? next : "/");
});
replace(main, el("h1", {}, "Sign in to replayd"), form);
email.focus();
