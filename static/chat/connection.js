// One WebSocket to a room, kept alive. It reconnects after any loss with capped exponential backoff and jitter
// (so a restarted server is not hit by every client at the same instant), at once when the network comes back
// or the tab is shown again, and it notices a connection that died without the browser knowing (a laptop
// that slept, a NAT that forgot it) by pinging and expecting the pong.
//
// Every handler checks that its socket is still the current one: a late event of a socket already given up on
// is ignored, and each new socket gets its handlers when it is created.

const PING_EVERY_MS = 25_000;
const PONG_WITHIN_MS = 10_000;
// A handshake that neither completes nor fails (a black-holed network) is given up on after this.
const HELLO_WITHIN_MS = 15_000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_CAP_MS = 30_000;

// Close codes after which reconnecting cannot help (docs/protocol.md, "Close codes").
const FINAL_CLOSE_CODES = new Map([
  [4401, "Log in to chat in this room."],
  [4403, "You do not have access to this room (any more)."],
  [4404, "This room does not exist."],
]);
// 4429: this person or address holds too many sockets (tabs) already. Retrying soon would only be refused
// again, so the backoff starts this many steps up (8-16 s) and keeps growing from there.
const TOO_MANY_SOCKETS = 4429;
const TOO_MANY_SOCKETS_ATTEMPT = 5;
// 1012: the server is restarting (a deploy drains its sockets). Every page it served got this at once, so each
// waits its own random 0.5-5 s before coming back, and the new process is not met by all of them together.
const SERVICE_RESTART = 1012;
const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 5_000;

export class RoomConnection {
  // url() is asked before every attempt, so that a reconnect resumes from the latest seq.
  // onStatus({state, retryIn, detail}): state is connecting, connected, reconnecting, offline or closed.
  constructor({ url, onFrame, onStatus, onLost }) {
    this.url = url;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.onLost = onLost;
    this.socket = null;
    this.ready = false;
    // Why the server closed for good (a final close code), or null.
    this.closedFor = null;
    // True while the page sits in the back/forward cache.
    this.suspended = false;
    this.attempt = 0;
    this.timers = { retry: null, countdown: null, hello: null, ping: null, pong: null };
  }

  start() {
    addEventListener("online", () => this.wake());
    addEventListener("offline", () => this.drop());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.wake();
    });
    // A page kept in the back/forward cache must not hold a socket; it reconnects when shown again.
    addEventListener("pagehide", (event) => {
      if (event.persisted) this.suspend();
    });
    addEventListener("pageshow", (event) => {
      if (event.persisted) this.wake();
    });
    this.connect();
  }

  // Sends a frame if the connection is open and greeted; returns whether it did.
  send(frame) {
    if (!this.ready) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  // There is reason to doubt the connection: check an open one now, retry a lost one now.
  wake() {
    if (this.closedFor !== null) return;
    this.suspended = false;
    if (this.socket === null) this.connect();
    else if (this.ready) this.ping();
  }

  // Sends a ping; no pong within PONG_WITHIN_MS means the connection is dead.
  ping() {
    if (!this.send({ type: "ping" })) return;
    this.timers.pong ??= setTimeout(() => this.drop(), PONG_WITHIN_MS);
  }

  connect() {
    this.clear("retry", "countdown");
    const ws = new WebSocket(this.url());
    this.socket = ws;
    this.ready = false;
    this.status(this.attempt === 0 ? "connecting" : "reconnecting");
    this.timers.hello = setTimeout(() => this.drop(), HELLO_WITHIN_MS);
    ws.addEventListener("message", (event) => {
      if (ws === this.socket) this.receive(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (ws === this.socket) this.lose(event.code);
    });
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === "hello") {
      // Backoff starts over only once the server has really let us in, not merely accepted the handshake.
      this.ready = true;
      this.attempt = 0;
      this.clear("hello");
      this.timers.ping = setInterval(() => this.ping(), PING_EVERY_MS);
      this.status("connected");
    } else if (frame.type === "pong") {
      this.clear("pong");
    }
    this.onFrame(frame);
  }

  // Gives up on the current socket now, without waiting for the browser to notice, and reconnects.
  drop() {
    const ws = this.socket;
    if (ws === null) return;
    this.lose(null);
    ws.close();
  }

  suspend() {
    this.suspended = true;
    this.clear("retry", "countdown");
    this.drop();
  }

  lose(code) {
    this.socket = null;
    this.ready = false;
    this.clear("hello", "ping", "pong");
    this.onLost();
    const final = FINAL_CLOSE_CODES.get(code);
    if (final !== undefined) {
      this.closedFor = final;
      this.status("closed", { detail: final });
      return;
    }
    if (this.suspended) return;
    if (code === SERVICE_RESTART) {
      // Not a failure: the backoff does not grow.
      this.scheduleRetry("Server restarting", RESTART_MIN_MS + Math.random() * (RESTART_MAX_MS - RESTART_MIN_MS));
      return;
    }
    if (code === TOO_MANY_SOCKETS) this.attempt = Math.max(this.attempt, TOO_MANY_SOCKETS_ATTEMPT);
    this.scheduleRetry(code === TOO_MANY_SOCKETS ? "Too many open tabs" : undefined);
  }

  // reason, if given, replaces "Reconnecting" in the status; delay, if given, replaces the backoff's.
  scheduleRetry(reason, delay = undefined) {
    if (delay === undefined) {
      const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
      delay = ceiling / 2 + (Math.random() * ceiling) / 2;
      this.attempt += 1;
    }
    const due = Date.now() + delay;
    // Offline, attempts go on (navigator.onLine can be wrong); they fail fast, and "online" cuts the wait.
    const tick = () => {
      const retryIn = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      this.status(navigator.onLine ? "reconnecting" : "offline", { retryIn, detail: reason });
    };
    tick();
    this.timers.countdown = setInterval(tick, 1000);
    this.timers.retry = setTimeout(() => this.connect(), delay);
  }

  status(state, extra = {}) {
    this.onStatus({ state, ...extra });
  }

  clear(...names) {
    for (const name of names) {
      clearTimeout(this.timers[name]);
      clearInterval(this.timers[name]);
      this.timers[name] = null;
    }
  }
}
