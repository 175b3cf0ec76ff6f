// What the person did that the server has not stored yet: messages, and edits, deletes and reactions of
// messages (changes). Each gets a client_id when it is made and is kept in localStorage (per room and per
// person) until its ack arrives, so it survives a dropped connection, a server restart and a reload; it is sent
// again on every connect. Resending is safe: the server stores a client_id once and answers a repeat with the
// original ack.
//
// Entries go one at a time, in the order they were made, the next after the previous one's ack. An error frame
// does not say which frame it answers; with a single entry in flight, an error about one can only be about that
// one. (An error that was really about another frame, say a typing frame that hit the rate limit, at worst makes
// the entry go again, which is harmless, or marks it failed until its ack arrives and clears it.)
//
// A refused message stays, marked failed, for the person to edit or discard. A refused change is dropped and
// reported through onDropped: the message it was about was deleted, or is not theirs to change, and there is
// nothing to edit. A change that was acknowledged is kept a little longer, as `settling`, until the entry it
// wrote is folded into the page's state (see settle): until then the page shows it as it would be.

import { bodyLength } from "./format.js";

const STORAGE_PREFIX = "chatsite:outbox:";
// Errors that say "not now": nothing was stored, the same message goes again after a pause.
const RETRYABLE = new Set(["rate_limited", "unavailable"]);
const RETRY_FIRST_MS = 1_000;
const RETRY_CAP_MS = 30_000;
const CLIENT_ID = /^[A-Za-z0-9_-]{1,64}$/u;
// The kinds of entry and the frame each goes out as (docs/protocol.md, "Client to server").
const FRAMES = {
  message: (e) => ({ type: "message", body: e.body, client_id: e.clientId, reply_to: e.replyTo ?? undefined }),
  edit: (e) => ({ type: "edit", target: e.target, body: e.body, client_id: e.clientId }),
  delete: (e) => ({ type: "delete", target: e.target, client_id: e.clientId }),
  react: (e) => ({ type: "react", target: e.target, emoji: e.emoji, on: e.on, client_id: e.clientId }),
};
const isSeq = (value) => Number.isSafeInteger(value) && value > 0;

// crypto.randomUUID exists only in secure contexts (https, localhost); getRandomValues everywhere.
function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// localStorage can be missing, full or forbidden (some private modes): the outbox then lives in memory only.
// Every change reads, edits and writes back one entry, so two tabs of one room never erase each other's.
class Store {
  constructor(key) {
    this.key = key;
  }

  read() {
    try {
      const data = JSON.parse(localStorage.getItem(this.key) ?? "{}");
      return data !== null && typeof data === "object" && !Array.isArray(data) ? data : {};
    } catch {
      return {};
    }
  }

  update(change) {
    try {
      const data = this.read();
      change(data);
      if (Object.keys(data).length) localStorage.setItem(this.key, JSON.stringify(data));
      else localStorage.removeItem(this.key);
    } catch (error) {
      console.warn("chatsite: the outbox could not be saved", error);
    }
  }
}

// An entry as read back from storage, or null if it is not one this page could have written.
function revive(clientId, stored) {
  if (!CLIENT_ID.test(clientId) || stored === null || typeof stored !== "object") return null;
  const kind = stored.kind ?? "message";
  if (!Object.hasOwn(FRAMES, kind)) return null;
  const entry = {
    clientId,
    kind,
    body: stored.body,
    created: Number(stored.created) || 0,
    state: stored.state === "failed" ? "failed" : "pending",
    reason: String(stored.reason ?? ""),
  };
  if (kind === "message") {
    if (typeof entry.body !== "string") return null;
    if (isSeq(stored.replyTo)) entry.replyTo = stored.replyTo;
    if (isSeq(stored.replyTo)) entry.replyAuthor = String(stored.replyAuthor ?? "");
    return entry;
  }
  if (!isSeq(stored.target)) return null;
  entry.target = stored.target;
  if (kind === "edit" && typeof entry.body !== "string") return null;
  if (kind === "react") {
    if (typeof stored.emoji !== "string") return null;
    Object.assign(entry, { emoji: stored.emoji, on: stored.on !== false });
  }
  return entry;
}

export class Outbox {
  constructor({ room, you, maxLength, send, onChange, onDropped = () => {}, mayFlush = () => true }) {
    this.store = new Store(`${STORAGE_PREFIX}${room}:${you}`);
    this.maxLength = maxLength;
    // send(frame) sends on the open connection and says whether it could.
    this.send = send;
    this.onChange = onChange;
    // onDropped(change, reason): a change the server refused, now gone from the outbox.
    this.onDropped = onDropped;
    // mayFlush() false holds the next entry back while another request awaits an answer that an error could be.
    this.mayFlush = mayFlush;
    this.connected = false;
    this.inFlight = null;
    this.retryTimer = null;
    this.retryDelay = RETRY_FIRST_MS;
    // Insertion order is send order: entries are loaded oldest first and added at the end.
    this.entries = new Map();
    // Changes acknowledged with the seq of their entry, which the page has not folded yet: clientId -> change.
    this.settling = new Map();
    const stored = Object.entries(this.store.read())
      .map(([id, entry]) => revive(id, entry))
      .filter((entry) => entry !== null)
      .sort((a, b) => a.created - b.created);
    for (const entry of stored) this.entries.set(entry.clientId, entry);
  }

  // The messages, for the outbox list: changes are shown on the messages they change.
  get messages() {
    return new Map([...this.entries].filter(([, entry]) => entry.kind === "message"));
  }

  // True while nothing awaits its answer.
  get idle() {
    return this.inFlight === null;
  }

  // The person pressed Enter: keep the message, then send it when its turn comes. `reply`, if given, is the
  // message it answers, {seq, author}.
  add(body, reply = null) {
    const entry = this.fresh({ kind: "message", body });
    if (reply) Object.assign(entry, { replyTo: reply.seq, replyAuthor: reply.author });
    return this.enqueue(entry);
  }

  // An edit ({kind: "edit", target, body}), delete ({kind: "delete", target}) or reaction
  // ({kind: "react", target, emoji, on}) of a stored message.
  change(change) {
    return this.enqueue(this.fresh({ body: "", ...change }));
  }

  // The changes not folded into the page's state yet, acknowledged or not, in the order they were made.
  get changes() {
    return [...this.settling.values(), ...this.entries.values()].filter((entry) => entry.kind !== "message");
  }

  changesFor(seq) {
    return this.changes.filter((change) => change.target === seq);
  }

  // Forgets the acknowledged changes that folded(change) says the page's state now includes.
  settle(folded) {
    for (const [clientId, change] of this.settling) if (folded(change)) this.settling.delete(clientId);
  }

  fresh(fields) {
    return { clientId: newClientId(), created: Date.now(), state: "pending", reason: "", ...fields };
  }

  enqueue(entry) {
    this.entries.set(entry.clientId, entry);
    this.save(entry);
    this.onChange();
    this.flush();
    return entry;
  }

  // The connection said hello: send (again) everything not stored yet.
  connect() {
    this.connected = true;
    this.inFlight = null;
    this.flush();
  }

  // The connection is gone; whatever was in flight may or may not be stored, and goes again on the next one.
  disconnect() {
    this.connected = false;
    this.inFlight = null;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    for (const entry of this.entries.values()) if (entry.state === "sending") entry.state = "pending";
    this.onChange();
  }

  // Its ack (with the seq of the entry it wrote), or the message itself coming back with its client_id: either
  // way it is stored. Returns whether the client_id was ours.
  stored(clientId, seq = null) {
    const entry = this.entries.get(clientId);
    if (!entry) return false;
    this.entries.delete(clientId);
    if (entry.kind !== "message") this.settling.set(clientId, { ...entry, seq });
    this.store.update((data) => delete data[clientId]);
    if (this.inFlight === clientId) {
      this.inFlight = null;
      this.retryDelay = RETRY_FIRST_MS;
    }
    this.onChange();
    this.flush();
    return true;
  }

  // An error frame. Returns whether it was taken as the answer to the entry in flight.
  refused({ code, detail, retry_after: retryAfter }) {
    const entry = this.entries.get(this.inFlight);
    if (!entry) return false;
    this.inFlight = null;
    if (code === "slow_mode" && entry.kind === "message") {
      // Not lost, only early: it goes by itself once the room's slow mode lets it.
      entry.state = "pending";
      this.retryTimer = setTimeout(
        () => {
          this.retryTimer = null;
          this.flush();
        },
        (Number(retryAfter) || 1) * 1000,
      );
      this.onChange();
    } else if (RETRYABLE.has(code)) {
      entry.state = "pending";
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.flush();
      }, this.retryDelay);
      this.retryDelay = Math.min(RETRY_CAP_MS, this.retryDelay * 2);
      this.onChange();
    } else if (entry.kind === "message") {
      this.fail(entry, detail || code);
      this.flush();
    } else {
      this.drop(entry, detail || code, code);
      this.flush();
    }
    return true;
  }

  // Takes a failed message out of the outbox (to edit it, or to discard it); returns its body.
  take(clientId) {
    const entry = this.entries.get(clientId);
    if (!entry || entry.state !== "failed") return null;
    this.entries.delete(clientId);
    this.store.update((data) => delete data[clientId]);
    this.onChange();
    return entry.body;
  }

  flush() {
    if (!this.connected || this.inFlight !== null || this.retryTimer !== null || !this.mayFlush()) return;
    for (const entry of this.entries.values()) {
      if (entry.state !== "pending") continue;
      // Checked again here: the limit may have been lowered since the message was typed.
      if ((entry.kind === "message" || entry.kind === "edit") && bodyLength(entry.body) > this.maxLength) {
        const reason = `The message is longer than ${this.maxLength} characters.`;
        if (entry.kind === "message") this.fail(entry, reason);
        else this.drop(entry, reason, "too_long");
        continue;
      }
      if (!this.send(FRAMES[entry.kind](entry))) return;
      entry.state = "sending";
      this.inFlight = entry.clientId;
      this.onChange();
      return;
    }
  }

  fail(entry, reason) {
    entry.state = "failed";
    entry.reason = reason;
    this.save(entry);
    this.onChange();
  }

  drop(entry, reason, code) {
    this.entries.delete(entry.clientId);
    this.store.update((data) => delete data[entry.clientId]);
    this.onChange();
    this.onDropped(entry, reason, code);
  }

  save(entry) {
    const { clientId, ...fields } = entry;
    const state = entry.state === "failed" ? "failed" : "pending";
    this.store.update((data) => {
      data[clientId] = { ...fields, state };
    });
  }
}
