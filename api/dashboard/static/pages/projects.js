// The projects of the signed-in user's organization, each with its sessions and live sessions.

import { el, pageLink, formatDate } from "../dom.js";
import { call, frame, showError } from "../api.js";

const main = await frame("Projects");
try {
  const { data } = await call("/api/v1/projects");
  if (!data.length) main.append(el("p", { class: "muted" }, "No project yet (replayd project create NAME)."));
  const rows = data.map((p) =>
    el(
      "tr", {},
      el("td", {}, pageLink(["projects", p.projectKey], p.name)),
      el("td", {}, p.platform),
      el("td", { class: "mono" }, p.projectKey),
      el("td", {}, formatDate(p.firstRecordedSessionAt) || "nothing recorded yet"),
      el("td", {}, pageLink(["projects", p.projectKey, "live"], "live sessions")),
    ),
  );
  main.append(
    el(
      "table", { class: "grid", id: "projects" },
      el("thead", {}, el("tr", {}, ...["Project", "Platform", "Key", "First session", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows),
    ),
  );
} catch (error) {
  showError(main, error);
}
