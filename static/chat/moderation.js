// Moderation on the room page: the room's moderation entries as notices, what they mean for the person
// (muted, slow mode), for owners, moderators and staff a form that sends `moderate` frames, and for everyone the
// `report` frames of the messages' Report action.
//
// What the person may do is the server's to decide on every frame (chat.access); the page only says what the
// server told it: hello's `muted`, `muted_until` and `slow_mode`, then each moderation entry of the log.

import { element } from "./render.js";
import { timeLabel } from "./format.js";

// The actions the form offers: [value, label, action, seconds].
const CHOICES = [
  ["mute-600", "Mute for 10 minutes", "mute", 600],
  ["mute-3600", "Mute for an hour", "mute", 3600],
  ["mute", "Mute until unmuted", "mute", null],
  ["unmute", "Unmute", "unmute", null],
  ["kick", "Kick", "kick", null],
  ["ban-86400", "Ban for a day", "ban", 86400],
  ["ban", "Ban until unbanned", "ban", null],
  ["unban", "Unban", "unban", null],
];
const SLOW_MODES = [
  [0, "Off"],
  [10, "10 s"],
  [30, "30 s"],
  [60, "1 min"],
  [300, "5 min"],
];
const PAST = { kick: "kicked", ban: "banned", unban: "unbanned", mute: "muted", unmute: "unmuted" };

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds % 86400 === 0) return ` for ${seconds / 86400} d`;
  if (seconds % 3600 === 0) return ` for ${seconds / 3600} h`;
  if (seconds % 60 === 0) return ` for ${seconds / 60} min`;
  return ` for ${seconds} s`;
}

// "mod muted ada for 10 min", "mod turned slow mode on: one message every 30 s".
export function moderationText({ action, user, by, seconds }) {
  if (action === "slow_mode") {
    return seconds ? `${by} turned slow mode on: one message every ${seconds} s` : `${by} turned slow mode off`;
  }
  return `${by} ${PAST[action] ?? action} ${user}${action === "mute" || action === "ban" ? duration(seconds) : ""}`;
}

export class Moderation {
  // send(frame) -> whether it went; notice(text) shows a line in the conversation; notify(text) an alert;
  // mayAsk() says whether nothing else awaits an answer that an error could be (the outbox, versions).
  constructor({ banner, tools, send, notice, notify, mayAsk, onIdle }) {
    this.banner = banner;
    this.tools = tools;
    this.send = send;
    this.notice = notice;
    this.notify = notify;
    this.mayAsk = mayAsk;
    this.onIdle = onIdle;
    this.you = null;
    this.muted = false;
    this.mutedUntil = null;
    this.slowMode = 0;
    this.moderate = false;
    this.asked = null; // the client_id of the moderate frame awaiting its answer
    this.counter = 0;
    this.expiry = null;
  }

  get mayFlush() {
    return this.asked === null;
  }

  hello(frame) {
    this.you = frame.you;
    this.muted = Boolean(frame.muted);
    this.mutedUntil = frame.muted_until ? new Date(frame.muted_until) : null;
    this.slowMode = frame.slow_mode ?? 0;
    this.moderate = Boolean(frame.moderate);
    this.render();
  }

  // A moderation entry of the log; `live` when it just happened (a notice), not when read from history.
  entry(frame, { live }) {
    if (frame.action === "slow_mode") this.slowMode = frame.seconds ?? 0;
    else if (frame.user === this.you && !this.moderate) {
      if (frame.action === "mute") {
        this.muted = true;
        this.mutedUntil = frame.seconds ? new Date(Date.parse(frame.at) + frame.seconds * 1000) : null;
      } else if (frame.action === "unmute") {
        this.muted = false;
      }
    }
    if (live) this.notice(moderationText(frame));
    this.render();
  }

  // What the person's page says about them here: muted, or slow mode.
  render() {
    if (this.muted && this.mutedUntil && this.mutedUntil <= new Date()) this.muted = false;
    clearTimeout(this.expiry);
    let text = "";
    if (this.muted) {
      text = this.mutedUntil
        ? `You are muted in this room until ${timeLabel(this.mutedUntil)}: you can read, but not post.`
        : "You are muted in this room: you can read, but not post.";
      // The mute ends by itself: the page says so when it does.
      if (this.mutedUntil) this.expiry = setTimeout(() => this.render(), this.mutedUntil - new Date() + 500);
    } else if (this.slowMode && !this.moderate) {
      text = `Slow mode: one message every ${this.slowMode} s.`;
    }
    this.banner.textContent = text;
    this.banner.hidden = text === "";
    this.banner.dataset.state = this.muted ? "muted" : this.slowMode ? "slow" : "";
    this.renderTools();
  }

  renderTools() {
    this.tools.hidden = !this.moderate;
    if (!this.moderate || this.tools.childElementCount) {
      const slow = this.tools.querySelector("#slow-mode");
      if (slow) slow.value = String(SLOW_MODES.some(([s]) => s === this.slowMode) ? this.slowMode : 0);
      return;
    }
    const heading = element("h2", "", "Moderate");
    heading.id = "moderate-heading";
    const form = element("form", "moderate-form");
    form.id = "moderate-form";
    form.setAttribute("aria-labelledby", "moderate-heading");
    const userLabel = element("label", "", "Person");
    const user = element("input");
    user.id = "moderate-user";
    user.required = true;
    user.autocomplete = "off";
    user.setAttribute("list", "online-names");
    userLabel.htmlFor = user.id;
    const actionLabel = element("label", "", "Action");
    const action = element("select");
    action.id = "moderate-action";
    actionLabel.htmlFor = action.id;
    for (const [value, label] of CHOICES) action.append(new Option(label, value));
    const apply = element("button", "", "Apply");
    apply.type = "submit";
    apply.id = "moderate-apply";
    form.append(userLabel, user, actionLabel, action, apply);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const [, , act, seconds] = CHOICES.find(([value]) => value === action.value);
      if (this.ask({ type: "moderate", action: act, user: user.value.trim(), seconds })) user.value = "";
    });
    const slowLabel = element("label", "", "Slow mode");
    const slow = element("select");
    slow.id = "slow-mode";
    slowLabel.htmlFor = slow.id;
    for (const [seconds, label] of SLOW_MODES) slow.append(new Option(label, String(seconds)));
    slow.value = String(this.slowMode);
    slow.addEventListener("change", () => this.ask({ type: "moderate", action: "slow_mode", seconds: Number(slow.value) }));
    const names = element("datalist");
    names.id = "online-names";
    this.tools.append(heading, form, slowLabel, slow, names);
  }

  // The online list, as suggestions for the person box.
  online(names) {
    const list = this.tools.querySelector("#online-names");
    if (!list) return;
    list.replaceChildren(...names.filter((name) => name !== this.you).map((name) => new Option(name)));
  }

  // Any reader: a message reported to the room's moderators (stored for them, never shown to the room).
  report(seq, reason) {
    this.ask({ type: "report", target: seq, reason });
  }

  ask(frame) {
    if (this.asked !== null || !this.mayAsk()) {
      this.notify("Wait a moment: the room is still answering an earlier request.");
      return false;
    }
    this.counter += 1;
    const clientId = `mod-${Date.now().toString(36)}-${this.counter}`;
    if (!this.send({ ...frame, client_id: clientId })) {
      this.notify("Not connected: try again once the room is back.");
      return false;
    }
    this.asked = clientId;
    this.askedType = frame.type;
    return true;
  }

  // An ack; returns whether it answered this module's request.
  acked({ client_id: clientId }) {
    if (clientId === null || clientId !== this.asked) return false;
    if (this.askedType === "report") this.notice("You reported the message to the room's moderators.");
    this.done();
    return true;
  }

  // An error nothing else took: the answer to the moderate frame, if one awaits.
  refused({ detail }) {
    if (this.asked === null) return false;
    this.notify(detail);
    this.done();
    return true;
  }

  done() {
    this.asked = null;
    this.onIdle();
  }

  lost() {
    this.asked = null;
  }
}
