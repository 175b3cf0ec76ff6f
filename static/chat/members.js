// The room page's members panel (private rooms, and public ones for their moderators): who the members are and
// their roles; for those allowed, adding someone by username, making a member a moderator (or back), removing
// someone (a kick), invite links with a copy button, revoking them, and the room's reports. Leaving, for members.
//
// It only shows what the API says (GET /api/rooms/{room}/members/, docs/api.md): which roles the person may give
// and whom they may remove are the server's to decide (chat.access), and it decides again on every request.
// Every write sends the page's CSRF token as X-CSRFToken. Names become text nodes only (render.js).

import { fullLabel } from "./format.js";
import { element } from "./render.js";

// While the panel is open it asks again this often: others change the members too.
const REFRESH_MS = 10_000;
const ROLE_LABELS = { owner: "owner", moderator: "moderator", member: "member" };

const $ = (id) => document.getElementById(id);
const panel = $("members-panel");
const toggle = $("members-toggle");
const you = panel.dataset.you;
const csrf = panel.querySelector("[name=csrfmiddlewaretoken]").value;
const list = $("member-list");
const status = $("members-status");
const addForm = $("member-add-form");
const addName = $("member-add-name");
const addRole = $("member-add-role");
const invites = $("invite-section");
const inviteResult = $("invite-result");
const inviteUrl = $("invite-url");
const reports = $("reports-section");
const leave = $("member-leave");

let timer = null;
let shown = null; // the last answer, to redraw the role choices only when they change

async function call(method, url, body) {
  const headers = { Accept: "application/json", "X-CSRFToken": csrf };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail ?? `The server answered ${response.status}.`);
  return data;
}

function say(text, state = "ok") {
  status.textContent = text;
  status.dataset.state = state;
}

async function refresh() {
  clearTimeout(timer);
  if (panel.hidden) return;
  try {
    render(await call("GET", panel.dataset.src));
  } catch (error) {
    say(error.message, "error");
  } finally {
    if (!panel.hidden) timer = setTimeout(refresh, REFRESH_MS);
  }
}

function render(data) {
  $("members-count").textContent = String(data.members.length);
  list.replaceChildren(...data.members.map((member) => row(member, data)));
  if (shown === null || shown.roles.join() !== data.roles.join()) {
    addRole.replaceChildren(...data.roles.map((role) => new Option(ROLE_LABELS[role] ?? role, role)));
  }
  addForm.hidden = data.roles.length === 0;
  invites.hidden = !data.manage || data.kind !== "private";
  reports.hidden = data.reports === null;
  if (data.reports !== null) renderReports(data.reports);
  leave.hidden = !data.role;
  shown = data;
}

function row(member, data) {
  const item = element("li", "member-row");
  item.dataset.username = member.username;
  item.dataset.role = member.role;
  const name = element("span", "member-name", member.username);
  const role = element("span", `member-role role-${member.role}`, ROLE_LABELS[member.role] ?? member.role);
  item.append(name, " ", role);
  if (member.username === you) item.append(" ", element("span", "you-label", "(you)"));
  const actions = element("span", "member-actions");
  if (member.removable && member.role === "member" && data.roles.includes("moderator")) {
    actions.append(button("member-promote", "Make moderator", `Make ${member.username} a moderator`));
  }
  if (member.removable && member.role === "moderator" && data.roles.includes("member")) {
    actions.append(button("member-demote", "Make member", `Make ${member.username} a member again`));
  }
  if (member.removable) actions.append(button("member-remove", "Remove", `Remove ${member.username} from the room`));
  if (actions.childElementCount) item.append(actions);
  return item;
}

function button(className, text, label) {
  const node = element("button", `link ${className}`, text);
  node.type = "button";
  node.setAttribute("aria-label", label);
  return node;
}

function renderReports(found) {
  $("reports-count").textContent = found.length ? String(found.length) : "";
  $("no-reports").hidden = found.length > 0;
  $("report-list").replaceChildren(
    ...found.map((report) => {
      const item = element("li", "report-row");
      const link = element("a", "report-link", `Message #${report.target}`);
      link.href = `#seq-${report.target}`;
      const when = element("time", "report-time", fullLabel(new Date(report.created)));
      when.dateTime = report.created;
      item.append(link, " ", element("span", "report-by", `reported by ${report.by}`), " ", when);
      if (report.reason) item.append(element("p", "report-reason", report.reason));
      return item;
    }),
  );
}

const memberUrl = (username) => `${panel.dataset.src}${encodeURIComponent(username)}/`;

async function act(work, done) {
  try {
    await work();
    say(done);
  } catch (error) {
    say(error.message, "error");
  }
  refresh();
}

list.addEventListener("click", (event) => {
  const target = event.target.closest("button");
  if (!target) return;
  const username = target.closest(".member-row").dataset.username;
  if (target.classList.contains("member-promote")) {
    act(() => call("POST", panel.dataset.src, { username, role: "moderator" }), `${username} is now a moderator.`);
  } else if (target.classList.contains("member-demote")) {
    act(() => call("POST", panel.dataset.src, { username, role: "member" }), `${username} is now a member.`);
  } else if (target.classList.contains("member-remove")) {
    act(() => call("DELETE", memberUrl(username)), `${username} was removed.`);
  }
});

addForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const username = addName.value.trim();
  if (!username) return;
  const role = addRole.value;
  act(async () => {
    await call("POST", panel.dataset.src, { username, role });
    addName.value = "";
  }, `${username} was added as ${role}.`);
});

$("invite-create").addEventListener("click", () =>
  act(async () => {
    const invite = await call("POST", panel.dataset.invites);
    inviteUrl.value = new URL(invite.url, location.origin).href;
    $("invite-expires").textContent = `Valid until ${fullLabel(new Date(invite.expires_at))}.`;
    inviteResult.hidden = false;
    inviteUrl.focus();
    inviteUrl.select();
  }, "A new invite link is ready to share."),
);

$("invite-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(inviteUrl.value);
    say("Invite link copied.");
  } catch {
    // No clipboard (an insecure origin, or refused): the link is selected for the person to copy.
    inviteUrl.select();
    say("Press Ctrl+C (⌘C) to copy the selected link.");
  }
});

$("invite-revoke").addEventListener("click", () =>
  act(async () => {
    await call("DELETE", panel.dataset.invites);
    inviteResult.hidden = true;
    inviteUrl.value = "";
  }, "Every invite link of this room is revoked."),
);

leave.addEventListener("click", async () => {
  try {
    await call("DELETE", memberUrl(you));
    location.assign(panel.dataset.lobby);
  } catch (error) {
    say(error.message, "error");
  }
});

function show(open) {
  panel.hidden = !open;
  toggle.setAttribute("aria-expanded", String(open));
  if (open) refresh();
  else clearTimeout(timer);
}

toggle.addEventListener("click", () => {
  show(panel.hidden);
  if (!panel.hidden) $("members-heading").focus();
});
$("members-close").addEventListener("click", () => {
  show(false);
  toggle.focus();
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refresh();
});
