// What the person typed that the server has not stored yet. Each message gets a client_id when Enter is pressed
// and is kept in localStorage (per room and per person) until its ack arrives, so it survives a dropped
// connection, a server restart and a reload; it is sent again on every connect. Resending is safe: the server
// stores a client_id once and answers a repeat with the original ack.
//
// Messages go one at a time, the next after the previous one's ack. An error frame does not say which frame it
// answers; with a single message in flight, an error about a message can only be about that one. (An error
// that was really about another frame, say a typing frame that hit the rate limit, at worst makes the message
// go again, which is harmless, or marks it failed until its ack arrives and clears it.)

import { bodyLength } from "./format.js";

const STORAGE_PREFIX = "chatsite:outbox:";
// Errors that say "not now": nothing was stored, the same message goes again after a pause.
const RETRYABLE = new Set(["rate_limited", "unavailable"]);
const RETRY_FIRST_MS = 1_000;
const RETRY_CAP_MS = 30_000;
const CLIENT_ID = /^[A-Za-z0-9_-]{1,64}$/u;

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

export class Outbox {
  constructor({ room, you, maxLength, send, onChange }) {
    this.store = new Store(`${STORAGE_PREFIX}${room}:${you}`);
    this.maxLength = maxLength;
    // send(frame) sends on the open connection and says whether it could.
    this.send = send;
    this.onChange = onChange;
    this.connected = false;
    this.inFlight = null;
    this.retryTimer = null;
    this.retryDelay = RETRY_FIRST_MS;
    // Insertion order is send order: entries are loaded oldest first and added at the end.
    this.entries = new Map();
    const stored = Object.entries(this.store.read())
      .filter(([id, entry]) => CLIENT_ID.test(id) && typeof entry?.body === "string")
      .map(([id, entry]) => ({
        clientId: id,
        body: entry.body,
        created: Number(entry.created) || 0,
        state: entry.state === "failed" ? "failed" : "pending",
        reason: String(entry.reason ?? ""),
      }))
      .sort((a, b) => a.created - b.created);
    for (const entry of stored) this.entries.set(entry.clientId, entry);
  }

  // The person pressed Enter: keep the message, then send it when its turn comes.
  add(body) {
    const entry = { clientId: newClientId(), body, created: Date.now(), state: "pending", reason: "" };
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

  // Its ack, or the message itself coming back with its client_id: either way it is stored. Returns whether
  // the client_id was ours.
  stored(clientId) {
    if (!this.entries.has(clientId)) return false;
    this.entries.delete(clientId);
    this.store.update((data) => delete data[clientId]);
    if (this.inFlight === clientId) {
      this.inFlight = null;
      this.retryDelay = RETRY_FIRST_MS;
    }
    this.onChange();
    this.flush();
    return true;
  }

  // An error frame. Returns whether it was taken as the answer to the message in flight.
  refused({ code, detail }) {
    const entry = this.entries.get(this.inFlight);
    if (!entry) return false;
    this.inFlight = null;
    if (RETRYABLE.has(code)) {
      entry.state = "pending";
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.flush();
      }, this.retryDelay);
      this.retryDelay = Math.min(RETRY_CAP_MS, this.retryDelay * 2);
      this.onChange();
    } else {
      this.fail(entry, detail || code);
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
    if (!this.connected || this.inFlight !== null || this.retryTimer !== null) return;
    for (const entry of this.entries.values()) {
      if (entry.state !== "pending") continue;
      // Checked again here: the limit may have been lowered since the message was typed.
      if (bodyLength(entry.body) > this.maxLength) {
        this.fail(entry, `The message is longer than ${this.maxLength} characters.`);
        continue;
      }
      if (!this.send({ type: "message", body: entry.body, client_id: entry.clientId })) return;
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

  save(entry) {
    const { body, created, reason } = entry;
    const state = entry.state === "failed" ? "failed" : "pending";
    this.store.update((data) => {
      data[entry.clientId] = { body, created, state, reason };
    });
  }
}
