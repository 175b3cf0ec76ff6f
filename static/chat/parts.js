// The parts of a message item that its log entries change: the body (or the "Message deleted" tombstone), the
// "(edited)" mark, the quote of a reply, the reaction chips and the action buttons. Each part is redrawn only
// when what it shows changed, and in place, so that a button someone is on keeps their focus while reactions
// come and go. Text only ever becomes text nodes (see render.js).

import { fullLabel, timeLabel } from "./format.js";
import { appendBody, element } from "./render.js";

// The view each item last showed.
const shown = new WeakMap();

// What the reader may do to a message. The page only knows names; the server decides for real on each frame.
export function allowed(view, { you, moderator, editSeconds }) {
  const mine = view.author === you;
  const live = !view.deleted;
  const recent = editSeconds === 0 || Date.now() - Date.parse(view.sent_at) < editSeconds * 1000;
  return {
    reply: live,
    react: live,
    edit: live && mine && recent,
    delete: live && (mine || moderator),
    report: live && !mine && view.author !== "system",
  };
}

// Brings an item up to `view`: a message's state with the reader's unsaved changes applied, `quote` (what a
// reply shows of its target) and `pending` ({edit, delete, reactions: Set of emoji} not stored yet).
export function updateMessage(item, view, context) {
  const before = shown.get(item);
  shown.set(item, view);
  const box = item.querySelector(".bubble");
  item.classList.toggle("deleted", view.deleted);
  item.classList.toggle("saving", view.pending.edit || view.pending.delete);
  if (!before || before.body !== view.body || before.deleted !== view.deleted) showBody(item, view, context);
  if (!before || before.edited_at !== view.edited_at || before.deleted !== view.deleted) showEdited(item, view);
  showPending(item, view);
  if (view.reply_to != null && JSON.stringify(before?.quote) !== JSON.stringify(view.quote)) showQuote(box, view);
  showReactions(box, view, context);
  showActions(box, view, context);
}

function showBody(item, view, { you, mention }) {
  const body = item.querySelector(".body");
  body.replaceChildren();
  body.classList.toggle("tombstone", view.deleted);
  if (view.deleted) {
    body.textContent = "Message deleted";
    item.classList.remove("mention");
    return;
  }
  const mentioned = appendBody(body, view.body, view.author === you ? null : mention);
  item.classList.toggle("mention", mentioned);
}

function showEdited(item, view) {
  const meta = item.querySelector(".meta");
  let mark = meta.querySelector(".edited");
  if (!view.edited_at || view.deleted) {
    mark?.remove();
    return;
  }
  if (!mark) {
    mark = element("button", "edited link");
    mark.type = "button";
    mark.dataset.action = "versions";
    mark.setAttribute("aria-expanded", "false");
    meta.append(mark);
  }
  const at = new Date(view.edited_at);
  mark.textContent = `(edited ${timeLabel(at)})`;
  mark.title = `Edited ${fullLabel(at)}`;
  mark.setAttribute("aria-label", `Edited at ${timeLabel(at)}: show the earlier versions`);
}

const PENDING_TEXT = { delete: "Deleting…", edit: "Saving…" };

function showPending(item, view) {
  const meta = item.querySelector(".meta");
  let note = meta.querySelector(".pending-note");
  const text = view.pending.delete ? PENDING_TEXT.delete : view.pending.edit ? PENDING_TEXT.edit : "";
  if (!text) {
    note?.remove();
    return;
  }
  if (!note) {
    note = element("span", "pending-note");
    meta.append(note);
  }
  if (note.textContent !== text) note.textContent = text;
}

// One line: "↪ ada: the start of what she wrote", or "↪ deleted message". A button: it scrolls to the target.
function showQuote(box, view) {
  let quote = box.querySelector(".quote");
  if (!quote) {
    quote = element("button", "quote");
    quote.type = "button";
    quote.dataset.action = "jump";
    box.querySelector(".body").before(quote);
  }
  quote.dataset.target = String(view.reply_to);
  const gone = !view.quote || view.quote.deleted;
  quote.classList.toggle("gone", gone);
  const author = view.quote?.author ?? "";
  const parts = [element("span", "quote-mark", "↪")];
  parts[0].setAttribute("aria-hidden", "true");
  if (gone) {
    parts.push(element("span", "quote-text", "deleted message"));
    quote.setAttribute("aria-label", "In reply to a deleted message: go to it");
  } else {
    parts.push(element("span", "quote-author", author), element("span", "quote-text", view.quote.body));
    quote.setAttribute("aria-label", `In reply to ${author}: ${view.quote.body}. Go to the message`);
  }
  quote.replaceChildren(...parts);
}

function chipLabel(emoji, names) {
  return `${emoji} ${names.length}, from ${names.join(", ")}`;
}

// A chip per emoji with its count; the reader's own pressed. Chips are kept and updated by emoji.
function showReactions(box, view, { you }) {
  const emojis = Object.keys(view.reactions).filter((emoji) => view.reactions[emoji].length);
  let row = box.querySelector(".reactions");
  if (emojis.length === 0) {
    if (row) handOffFocus(row, box);
    row?.remove();
    return;
  }
  if (!row) {
    row = element("div", "reactions");
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", "Reactions");
    const bar = box.querySelector(".message-actions");
    if (bar) bar.before(row);
    else box.append(row);
  }
  const chips = new Map([...row.children].map((chip) => [chip.dataset.emoji, chip]));
  emojis.forEach((emoji, index) => {
    const names = view.reactions[emoji];
    let chip = chips.get(emoji);
    chips.delete(emoji);
    if (!chip) {
      chip = element("button", "chip");
      chip.type = "button";
      chip.dataset.action = "toggle-reaction";
      chip.dataset.emoji = emoji;
      const face = element("span", "emoji", emoji);
      face.setAttribute("aria-hidden", "true");
      chip.append(face, element("span", "count"));
    }
    // Moved only when out of place: moving a focused button would take the focus away.
    if (row.children[index] !== chip) row.insertBefore(chip, row.children[index] ?? null);
    chip.querySelector(".count").textContent = String(names.length);
    chip.setAttribute("aria-pressed", String(names.includes(you)));
    chip.setAttribute("aria-label", chipLabel(emoji, names));
    chip.title = names.join(", ");
    chip.classList.toggle("pending", view.pending.reactions.has(emoji));
  });
  for (const chip of chips.values()) {
    handOffFocus(chip, box);
    chip.remove();
  }
}

// Each action's button text and its label, which says whose message it acts on.
const whose = (view, you) => (view.author === you ? "your message" : `${view.author}'s message`);
const ACTIONS = [
  ["reply", "Reply", (view) => `Reply to ${view.author}`],
  ["react", "React", (view, you) => `React to ${whose(view, you)}`],
  ["edit", "Edit", () => "Edit your message"],
  ["delete", "Delete", (view, you) => `Delete ${whose(view, you)}`],
  ["report", "Report", (view) => `Report ${view.author}'s message to the room's moderators`],
];

// The action bar, rebuilt only when what the reader may do changes (the message was deleted, say).
function showActions(box, view, context) {
  const may = allowed(view, context);
  const key = ACTIONS.filter(([action]) => may[action])
    .map(([action]) => action)
    .join(" ");
  let bar = box.querySelector(".message-actions");
  if (bar?.dataset.allowed === key) return;
  const focused = bar?.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  if (bar) handOffFocus(bar, box);
  bar?.remove();
  if (!key) return;
  bar = element("div", "message-actions");
  bar.dataset.allowed = key;
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", "Message actions");
  for (const [action, text, label] of ACTIONS) {
    if (!may[action]) continue;
    const button = element("button", `action action-${action}`, text);
    button.type = "button";
    button.dataset.action = action;
    button.setAttribute("aria-label", label(view, context.you));
    if (action === "react") {
      button.setAttribute("aria-haspopup", "true");
      button.setAttribute("aria-expanded", "false");
    }
    bar.append(button);
  }
  box.append(bar);
  if (focused) bar.querySelector(`[data-action="${focused}"]`)?.focus();
}

// A part about to go holds the focus: give it to the message itself rather than to nowhere (the page's body).
function handOffFocus(part, box) {
  if (part.contains(document.activeElement)) box.closest(".message").focus();
}
