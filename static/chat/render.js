// DOM for messages. Message data only ever becomes text nodes and attribute values set through the DOM, never
// markup: no innerHTML anywhere, so a body like <img src=x onerror=…> is shown, not run.

import { dayKey, dayLabel, fullLabel, timeLabel } from "./format.js";

// Consecutive messages of one author closer than this share one header.
const GROUP_GAP_MS = 5 * 60_000;

// A URL candidate: http(s):// up to whitespace. Trailing punctuation is trimmed afterwards (see trimUrl).
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"]+/giu;
const TRAILING_PUNCTUATION = /[.,;:!?'"*_)\]}>]$/u;

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const count = (text, char) => text.split(char).length - 1;

// "see https://example.com/a)." links https://example.com/a: a sentence's closing punctuation is not part of
// the URL, but a ")" that closes a "(" inside it is (as in Wikipedia links).
function trimUrl(url) {
  while (TRAILING_PUNCTUATION.test(url)) {
    if (url.endsWith(")") && count(url, "(") >= count(url, ")")) break;
    url = url.slice(0, -1);
  }
  return url;
}

// The href for a URL the person wrote, or null. Only http and https become links, whatever the pattern let
// through; the URL parser also rejects anything malformed.
function safeHref(text) {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

// A pattern matching a mention of `name` as a whole word, with or without "@", but not inside an e-mail
// address. A guest's nickname is shown as "ada (guest)", but people write "@ada".
export function mentionPattern(name) {
  const base = name.replace(/ \(guest\)$/u, "");
  if (!base) return null;
  const escaped = base.replace(/[.*+?^${}()|[\]\\]/gu, "\\$&");
  return new RegExp(`(?<![\\p{L}\\p{N}_.@-])@?${escaped}(?![\\p{L}\\p{N}_@-])`, "giu");
}

// Appends text to parent, each mention of the reader wrapped in <mark>; returns whether there was one.
function appendText(parent, text, mention) {
  if (!text) return false;
  let index = 0;
  let found = false;
  if (mention) {
    for (const match of text.matchAll(mention)) {
      parent.append(text.slice(index, match.index), element("mark", "mention-name", match[0]));
      index = match.index + match[0].length;
      found = true;
    }
  }
  parent.append(text.slice(index));
  return found;
}

// Appends a message body to parent: text nodes, http(s) URLs as links that open in a new tab without giving it
// a handle on this page or a Referer. Returns whether the body mentions the reader.
export function appendBody(parent, body, mention = null) {
  let index = 0;
  let mentioned = false;
  for (const match of body.matchAll(URL_PATTERN)) {
    const url = trimUrl(match[0]);
    const href = safeHref(url);
    if (href === null) continue;
    mentioned = appendText(parent, body.slice(index, match.index), mention) || mentioned;
    const link = element("a", "link", url);
    link.href = href;
    link.rel = "noopener noreferrer";
    link.target = "_blank";
    parent.append(link);
    index = match.index + url.length;
  }
  return appendText(parent, body.slice(index), mention) || mentioned;
}

// A round badge with the author's initial, in a colour that is always the same for one name.
function avatar(author) {
  let hue = 0;
  for (const char of author) hue = (hue * 31 + char.codePointAt(0)) % 360;
  const badge = element("span", "avatar", [...author][0]?.toUpperCase() ?? "?");
  badge.style.setProperty("--hue", String(hue));
  badge.setAttribute("aria-hidden", "true");
  return badge;
}

// The parts of a message: the avatar, and the box with a meta line (author and what the caller adds) above
// the body.
function bubble(item, author) {
  const box = element("div", "bubble");
  const meta = element("div", "meta");
  meta.append(element("span", "author", author));
  box.append(meta);
  item.append(avatar(author), box);
  return { box, meta };
}

// The frame of one stored message of the log, the parts that never change: the author, the time it was sent
// and, for the reader's own ("mine"), the sent mark. `you` is the reader's name. What entries change (body,
// quote, reactions, actions) is filled in by parts.js.
export function messageItem(message, { you }) {
  const sent = new Date(message.sent_at);
  const mine = message.author === you;
  const item = element("li", mine ? "message mine" : "message");
  item.dataset.seq = String(message.seq);
  item.dataset.author = message.author;
  item.dataset.day = dayKey(sent);
  item.dataset.time = String(sent.getTime());
  // Focusable from script (arrow keys, a quote's jump), in the tab order only as the list's current message.
  item.tabIndex = -1;
  const { box, meta } = bubble(item, message.author);
  const time = element("time", "time", timeLabel(sent));
  time.dateTime = message.sent_at;
  time.title = fullLabel(sent);
  meta.append(" ", time);
  if (mine) {
    const state = element("span", "state sent", "✓");
    state.title = "Sent";
    state.append(element("span", "visually-hidden", " sent"));
    meta.append(" ", state);
  }
  box.append(element("p", "body"));
  return item;
}

// A quiet line such as "alice joined".
export function noticeItem(text, at = new Date()) {
  const item = element("li", "notice");
  item.dataset.day = dayKey(at);
  item.dataset.time = String(at.getTime());
  item.append(element("span", "", text), " · ", element("time", "", timeLabel(at)));
  return item;
}

const OUTBOX_STATE = {
  waiting: "Waiting for connection…",
  pending: "Sending…",
  sending: "Sending…",
};

// One message of the outbox: not stored yet ("pending"/"sending"), or refused ("failed") with the reason and
// the two ways out, edit or discard. `connected` tells "Sending…" from "Waiting for connection…".
export function outboxItem(entry, { you, connected }) {
  const item = element("li", "message mine");
  item.dataset.clientId = entry.clientId;
  const { box, meta } = bubble(item, you);
  meta.append(" ", element("span", "state"));
  if (entry.replyTo) box.append(element("p", "quote", `↪ Replying to ${entry.replyAuthor}`));
  const body = element("p", "body");
  appendBody(body, entry.body);
  box.append(body);
  updateOutboxItem(item, entry, { connected });
  return item;
}

export function updateOutboxItem(item, entry, { connected }) {
  const failed = entry.state === "failed";
  item.classList.toggle("pending", !failed);
  item.classList.toggle("failed", failed);
  const state = item.querySelector(".state");
  // A refusal is announced, so the role comes before the text; and text is only written when it changes,
  // as this runs again on every tick of the connection status.
  if (failed) state.setAttribute("role", "alert");
  const text = failed
    ? `Not sent: ${entry.reason}`
    : OUTBOX_STATE[connected || entry.state === "sending" ? entry.state : "waiting"];
  if (state.textContent !== text) state.textContent = text;
  let actions = item.querySelector(".actions");
  if (failed && !actions) {
    actions = element("div", "actions");
    for (const [action, label] of [
      ["edit", "Edit"],
      ["discard", "Discard"],
    ]) {
      const button = element("button", "link", label);
      button.type = "button";
      button.dataset.action = action;
      button.setAttribute("aria-label", `${label} the unsent message`);
      actions.append(button);
    }
    item.querySelector(".bubble").append(actions);
  }
}

// Sets how an item of the list (a message or a notice) joins the one above it: a day divider when their days
// differ, and "continued" (no repeated author and time) when the one above is the same author's message a few
// minutes earlier. Called for an inserted item and for the item after it, whose neighbour changed.
export function regroup(item) {
  const previous = item.previousElementSibling;
  const newDay = !previous || previous.dataset.day !== item.dataset.day;
  let divider = item.querySelector(":scope > .day");
  if (newDay && !divider) {
    divider = element("div", "day");
    divider.setAttribute("role", "separator");
    divider.append(element("span", "", dayLabel(new Date(Number(item.dataset.time)))));
    item.prepend(divider);
  } else if (!newDay && divider) {
    divider.remove();
  }
  if (!item.classList.contains("message")) return;
  const continued =
    !newDay &&
    previous.classList.contains("message") &&
    previous.dataset.author === item.dataset.author &&
    Number(item.dataset.time) - Number(previous.dataset.time) < GROUP_GAP_MS;
  item.classList.toggle("continued", Boolean(continued));
}
