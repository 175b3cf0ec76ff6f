// The room page: one WebSocket to the room (connection.js), the part of the room's log held here
// (timeline.js), what the person did that the server has not stored yet (outbox.js), the conversation drawn
// from the log (conversation.js) and the composer. The wire protocol is docs/protocol.md.

import { RoomConnection } from "./connection.js";
import { Conversation } from "./conversation.js";
import { CHANGE_TYPES } from "./fold.js";
import { bodyLength, cleanBody } from "./format.js";
import { MessageList } from "./messages.js";
import { Moderation } from "./moderation.js";
import { Outbox } from "./outbox.js";
import { People } from "./people.js";
import { element } from "./render.js";
import { Timeline } from "./timeline.js";
import { Unread } from "./unread.js";

// The protocol's default history limit: every server accepts it, whatever its CHAT_HISTORY_MAX_LIMIT.
const HISTORY_PAGE = 50;
// Tell the room we are typing at most this often (the protocol asks for every 2-3 s at most).
const TYPING_EVERY_MS = 2_500;
// The character counter appears once this share of the limit is used.
const COUNTER_FROM = 0.9;
// After a rate_limited error, history requests that may have been refused are asked again this much later.
const RETRY_REQUESTS_MS = 1_500;
// Notices of refused changes shown at once; older ones give way.
const ALERTS_SHOWN = 3;
// How much of the message being answered the reply bar shows.
const REPLY_PREVIEW = 80;

const $ = (id) => document.getElementById(id);
const root = $("room");
const room = root.dataset.room;
const maxLength = Number(root.dataset.maxLength);
const pageYou = root.dataset.you;
const baseTitle = document.title;
const input = $("message-input");
const draftKey = `chatsite:draft:${room}:${pageYou}`;

const list = new MessageList({
  scroller: $("scroller"),
  list: $("messages"),
  outbox: $("outbox"),
  pill: $("new-messages"),
  edge: $("history-edge"),
  you: pageYou,
  rights: { moderator: root.dataset.moderator === "true", editSeconds: Number(root.dataset.editSeconds) || 0 },
  onNearTop: loadOlder,
});
const people = new People({ list: $("online"), count: $("online-count"), typingLine: $("typing"), you: pageYou });
const timeline = new Timeline({
  request: (before, limit) => connection.send({ type: "history", before, limit }),
  pageSize: HISTORY_PAGE,
});
const outbox = new Outbox({
  room,
  you: pageYou,
  maxLength,
  send: (frame) => connection.send(frame),
  onChange: () => {
    list.renderOutbox(outbox.messages, { connected: connection.ready });
    conversation.refresh();
    conversation.sendVersions();
  },
  onDropped: (change, reason, code) => conversation.dropped(change, reason, code),
  mayFlush: () => conversation.mayFlush && moderation.mayFlush,
});
const conversation = new Conversation({
  list,
  messages: $("messages"),
  reactions: (root.dataset.reactions ?? "").split(" ").filter(Boolean),
  maxLength,
  timeline,
  outbox,
  you: pageYou,
  send: (frame) => connection.send(frame),
  loadOlder,
  notify,
  onReply: startReply,
  report: (seq, reason) => moderation.report(seq, reason),
});
const unread = new Unread({
  room,
  list,
  divider: $("unread-divider"),
  jumpButton: $("jump-unread"),
  notifyButton: $("notify-me"),
  title: baseTitle,
  send: (frame) => connection.send(frame),
  isNewestShown: () => list.pinned && timeline.through >= timeline.top,
  loadOlder,
  canLoadOlder: () => timeline.hasOlder,
});
// Made here rather than in room.html: only this module fills them.
const moderationBanner = element("p", "moderation-status");
moderationBanner.id = "moderation-status";
moderationBanner.setAttribute("role", "status");
moderationBanner.hidden = true;
$("composer").before(moderationBanner);
const moderationTools = element("section", "moderation-tools");
moderationTools.id = "moderation-tools";
moderationTools.hidden = true;
document.querySelector(".people").append(moderationTools);
const moderation = new Moderation({
  banner: moderationBanner,
  tools: moderationTools,
  send: (frame) => connection.send(frame),
  notice: (text) => list.notice(text),
  notify,
  mayAsk: () => outbox.idle && conversation.mayFlush,
  onIdle: () => outbox.flush(),
});
// The last seq hello said: moderation entries up to it are already in hello's muted and slow_mode.
let helloSeq = 0;

const connection = new RoomConnection({
  url: socketUrl,
  onFrame: handleFrame,
  onStatus: showStatus,
  onLost: () => {
    timeline.lost();
    conversation.lost();
    outbox.disconnect();
    moderation.lost();
    updateEdge();
  },
});

let you = pageYou;
// The message the composer answers, {seq, author, body}, or null.
let replying = null;
let lastTypingSent = 0;
// A message to show once the first connection is in: /chat/<room>/#seq-N (a link from the Mentions page).
let revealOnOpen = /^#seq-(\d+)$/u.exec(location.hash)?.[1];

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const after = timeline.resumeAfter;
  const query = after === null ? "" : `?after=${after}`;
  return `${scheme}//${location.host}/ws/chat/${encodeURIComponent(room)}/${query}`;
}

function handleFrame(frame) {
  switch (frame.type) {
    case "hello":
      you = frame.you;
      list.setYou(you);
      conversation.you = you;
      people.reset(frame.online, you);
      timeline.hello(frame.last_seq);
      unread.hello(you, frame.last_read ?? 0);
      helloSeq = frame.last_seq;
      moderation.hello(frame);
      moderation.online(frame.online);
      if (revealOnOpen) unread.jumping = false; // the message linked to, not the first unread
      outbox.connect();
      // Answered after the backlog: its last_seq then shows anything committed that the backlog missed.
      connection.ping();
      updateEdge();
      break;
    case "message":
    case "edit":
    case "delete":
    case "reaction":
    case "moderation":
      logged([frame], timeline.add(frame) ? [frame] : [], { live: true });
      break;
    case "history":
      logged(frame.messages, timeline.history(frame), { live: false });
      updateEdge();
      list.checkTop();
      conversation.continueJump();
      break;
    case "ack":
      if (!moderation.acked(frame)) outbox.stored(frame.client_id, frame.seq);
      break;
    case "read":
      unread.moved(frame.seq);
      announceRead();
      break;
    case "versions":
      conversation.versionsAnswered(frame);
      break;
    case "pong":
      timeline.pong(frame.last_seq);
      list.checkTop();
      unread.maybeRead(timeline.through);
      unread.backlogIn();
      // The backlog is in: the linked message is there, or older pages are loaded until it is.
      if (revealOnOpen) conversation.jump(Number(revealOnOpen));
      revealOnOpen = undefined;
      break;
    case "join":
      people.joined(frame.user);
      moderation.online([...people.names]);
      list.notice(`${frame.user} joined`);
      break;
    case "leave":
      people.left(frame.user);
      moderation.online([...people.names]);
      list.notice(`${frame.user} left`);
      break;
    case "typing":
      people.typing(frame.user);
      break;
    case "online":
      // The whole list again: the server skipped join or leave frames while this socket was behind.
      people.reset(frame.online);
      moderation.online(frame.online);
      break;
    case "error":
      if (frame.code === "rate_limited") setTimeout(() => timeline.retry(), RETRY_REQUESTS_MS);
      if (!outbox.refused(frame) && !conversation.refused(frame) && !moderation.refused(frame)) {
        console.warn("chatsite: the server refused a frame", frame);
      }
      break;
  }
}

// Frames of the log (oldest first), of which `fresh` are new to this page. All are folded: one already held
// changes nothing, and a copy of a message may be newer than the one held.
function logged(frames, fresh, { live }) {
  conversation.receive(frames.filter((frame) => frame.type === "message" || CHANGE_TYPES.has(frame.type)));
  for (const frame of frames) if (frame.type === "message" && frame.client_id) outbox.stored(frame.client_id);
  const shown = [];
  for (const entry of fresh) {
    if (entry.type === "moderation") {
      if (entry.seq > helloSeq) moderation.entry(entry, { live });
      continue;
    }
    const target = entry.type === "message" ? entry.seq : entry.target;
    const view = conversation.states.get(target);
    if (view && list.has(target)) shown.push(view);
    if (live && view && entry.type === "message") unread.arrived(view);
    if (live && entry.type === "edit") unread.edited(entry, view);
    if (entry.type === "message" && entry.seq >= timeline.top) people.stoppedTyping(entry.author);
  }
  unread.shown(shown);
  unread.maybeRead(timeline.through);
}

// The lobby in another tab of this browser refreshes its badges at once.
const lobbyChannel = "BroadcastChannel" in window ? new BroadcastChannel("chatsite") : null;
function announceRead() {
  lobbyChannel?.postMessage({ type: "read", room });
}

// Says that something the person did did not happen, visibly and to screen readers (#alerts is role=alert).
function notify(text) {
  const alerts = $("alerts");
  const line = element("p", "alert-line");
  const dismiss = element("button", "link", "Dismiss");
  dismiss.type = "button";
  dismiss.setAttribute("aria-label", `Dismiss: ${text}`);
  dismiss.addEventListener("click", () => {
    line.remove();
    input.focus();
  });
  line.append(element("span", "", text), " ", dismiss);
  alerts.append(line);
  while (alerts.children.length > ALERTS_SHOWN) alerts.firstElementChild.remove();
}

function loadOlder() {
  if (timeline.loadOlder()) updateEdge();
}

function updateEdge() {
  if (timeline.loadingOlder) list.setEdge("loading");
  else if (timeline.hasOlder) list.setEdge("more");
  else list.setEdge(timeline.floor === null ? "none" : "start");
}
$("load-older").addEventListener("click", loadOlder);
$("scroller").addEventListener("scroll", () => unread.maybeRead(), { passive: true });

// Connection status. The live region (#status) changes only with the state; the countdown beside it is
// hidden from screen readers, which would otherwise read it out every second.
const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting",
  offline: "Offline",
};

function showStatus({ state, retryIn, detail }) {
  const status = $("status");
  const text = detail ?? STATUS_TEXT[state];
  if (status.textContent !== text) status.textContent = text;
  status.dataset.state = state;
  root.dataset.connection = state;
  // "Reconnecting in 4 s…", "Offline · retrying in 4 s", "Too many open tabs · retrying in 12 s".
  let countdown = "";
  if (state === "reconnecting" && detail === undefined) countdown = retryIn ? ` in ${retryIn} s…` : "…";
  else if (retryIn) countdown = ` · retrying in ${retryIn} s`;
  $("status-countdown").textContent = countdown;
  $("reconnect").hidden = retryIn === undefined;
  // Outbox entries read "Waiting for connection…" or "Sending…".
  list.renderOutbox(outbox.messages, { connected: state === "connected" });
}
$("reconnect").addEventListener("click", () => connection.wake());

// The composer. Enter sends, Shift+Enter is a new line; the draft is kept across reloads too.
function submit() {
  const body = cleanBody(input.value);
  if (!body || bodyLength(body) > maxLength) return;
  outbox.add(body, replying && { seq: replying.seq, author: replying.author });
  input.value = "";
  cancelReply();
  composerChanged();
  list.scrollToBottom();
}

// Reply on a message: the bar above the composer says to whom, until the reply is sent or cancelled.
function startReply(message) {
  replying = message;
  $("reply-to").textContent = `Replying to ${message.author}`;
  const preview = [...message.body.replace(/\s+/gu, " ")];
  const cut = preview.length > REPLY_PREVIEW;
  $("reply-preview").textContent = cut ? `${preview.slice(0, REPLY_PREVIEW).join("")}…` : preview.join("");
  $("reply-bar").hidden = false;
  input.focus();
}

function cancelReply() {
  replying = null;
  $("reply-bar").hidden = true;
}

$("reply-cancel").addEventListener("click", () => {
  cancelReply();
  input.focus();
});

function composerChanged() {
  const used = bodyLength(input.value);
  const over = used > maxLength;
  $("counter").textContent = used >= maxLength * COUNTER_FROM ? `${used} / ${maxLength}` : "";
  $("counter").classList.toggle("over", over);
  input.setAttribute("aria-invalid", String(over));
  $("send").disabled = over;
  const alert = over ? `Too long: at most ${maxLength} characters.` : "";
  if ($("composer-alert").textContent !== alert) $("composer-alert").textContent = alert;
  // Grow with the text, up to the CSS max-height.
  input.style.height = "auto";
  input.style.height = `${input.scrollHeight + input.offsetHeight - input.clientHeight}px`;
  try {
    if (input.value) localStorage.setItem(draftKey, input.value);
    else localStorage.removeItem(draftKey);
  } catch {
    // No storage: the draft just does not survive a reload.
  }
}

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  } else if (event.key === "Escape" && replying) {
    event.preventDefault();
    cancelReply();
  } else if (event.key === "ArrowUp" && !input.value && !event.shiftKey && !event.isComposing) {
    // As in most chat apps: Up in an empty composer edits your last message.
    if (conversation.editLast(input)) event.preventDefault();
  }
});

input.addEventListener("input", () => {
  composerChanged();
  const now = Date.now();
  if (cleanBody(input.value) && now - lastTypingSent > TYPING_EVERY_MS && connection.send({ type: "typing" })) {
    lastTypingSent = now;
  }
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});

// Edit or discard a refused message. Editing never overwrites a draft: the text goes above it.
$("outbox").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const body = outbox.take(button.closest("[data-client-id]").dataset.clientId);
  if (body === null) return;
  if (button.dataset.action === "edit") {
    input.value = cleanBody(input.value) ? `${body}\n\n${input.value}` : body;
    composerChanged();
  }
  input.focus();
});

try {
  input.value = localStorage.getItem(draftKey) ?? "";
} catch {
  input.value = "";
}
composerChanged();
list.renderOutbox(outbox.messages, { connected: false });
connection.start();
