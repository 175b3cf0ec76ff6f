// Keeps the lobby's room lists fresh without a reload: asks the room list API every few seconds while the tab
// is visible, at once when it is shown again, and when a room page of this browser says the person read a room.
// Rows are updated in place, so keyboard focus on a room link survives a refresh. The server-rendered lists are
// what shows without JavaScript. The server orders rooms with unread mentions first. Direct rooms go to their own
// list (signed-in people only), named after the other person.

import { agoLabel, fullLabel } from "./format.js";
import { element } from "./render.js";

const box = document.getElementById("rooms");
const everyMs = Number(box.dataset.refreshSeconds) * 1000;
const sections = {
  rooms: { list: document.getElementById("room-list"), empty: document.getElementById("no-rooms") },
  direct: { list: document.getElementById("dm-list"), empty: document.getElementById("no-dms") },
};

let timer = null;
let busy = false;

async function refresh() {
  // A hidden tab stops asking; showing it again starts over.
  if (busy || document.visibilityState !== "visible") return;
  busy = true;
  clearTimeout(timer);
  try {
    const response = await fetch(box.dataset.src, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (response.ok) render((await response.json()).rooms);
  } catch {
    // Offline or the server is down: keep what is shown, the next round tries again.
  } finally {
    busy = false;
    timer = setTimeout(refresh, everyMs);
  }
}

function render(rooms) {
  renderList(sections.rooms, rooms.filter((room) => room.kind !== "direct"));
  // Guests' pages have no direct list: they have no direct rooms either.
  if (sections.direct.list) renderList(sections.direct, rooms.filter((room) => room.kind === "direct"));
}

function renderList({ list, empty }, rooms) {
  const old = new Map([...list.children].map((row) => [row.dataset.room, row]));
  const rows = rooms.map((room) => {
    const row = old.get(room.name) ?? newRow(room.name);
    old.delete(room.name);
    fill(row, room);
    return row;
  });
  for (const gone of old.values()) gone.remove();
  // Moving a focused link would drop its focus: while focus is in the list, new rows go at the end and the
  // order catches up once focus leaves.
  if (list.contains(document.activeElement)) list.append(...rows.filter((row) => !row.isConnected));
  else list.replaceChildren(...rows);
  list.hidden = rooms.length === 0;
  empty.hidden = rooms.length > 0;
}

function newRow(name) {
  const row = element("li", "room-row");
  row.dataset.room = name;
  const meta = element("span", "room-meta");
  const mentions = element("span", "badge mentions");
  const unread = element("span", "badge unread");
  meta.append(mentions, " ", unread, " ", element("span", "room-online"), " ", element("span", "room-activity"));
  const title = element("span", "room-title");
  const tag = element("span", "room-kind-tag", "private");
  title.append(element("a", "room-link", `#${name}`), " ", tag);
  row.append(title, " ", meta);
  return row;
}

function fill(row, room) {
  row.dataset.kind = room.kind;
  const link = row.querySelector(".room-link");
  link.href = room.url;
  link.textContent = room.kind === "direct" && room.with ? `@${room.with}` : `#${room.name}`;
  row.querySelector(".room-kind-tag").hidden = room.kind !== "private";
  badge(row.querySelector(".badge.mentions"), room.mentions, `@${room.mentions}`, "mention", "mentions");
  badge(row.querySelector(".badge.unread"), room.unread, String(room.unread), "unread message", "unread messages");
  const online = row.querySelector(".room-online");
  online.dataset.online = String(room.online);
  online.textContent = `${room.online} online`;
  const old = row.querySelector(".room-activity");
  let activity;
  if (room.last_activity) {
    const at = new Date(room.last_activity);
    activity = element("time", "room-activity", `active ${agoLabel(at)}`);
    activity.dateTime = room.last_activity;
    activity.title = fullLabel(at);
  } else {
    activity = element("span", "room-activity", "no messages yet");
  }
  old.replaceWith(activity);
}

function badge(span, count, text, one, many) {
  span.hidden = !count;
  span.textContent = count ? text : "";
  span.title = count === 1 ? `1 ${one}` : `${count} ${many}`;
  span.setAttribute("aria-label", span.title);
}

if ("BroadcastChannel" in window) new BroadcastChannel("chatsite").addEventListener("message", refresh);
document.addEventListener("visibilitychange", refresh);
addEventListener("online", refresh);
refresh();
