// The room page client: one WebSocket to the room, resumed by seq so that nothing is lost or shown twice.
//
// Message data is only ever rendered through text nodes (never innerHTML). The server is the source of truth:
// every message has a gapless per-room seq; the client remembers the last contiguous seq it has shown, resumes
// with ?after=<seq> on reconnect, drops duplicates by seq, and fills any gap it notices with history requests.

const PING_INTERVAL_MS = 25_000;
const PONG_TIMEOUT_MS = 10_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
const TYPING_SEND_EVERY_MS = 2_500;
const TYPING_SHOW_MS = 5_000;
const HISTORY_PAGE = 100;

// Close codes after which reconnecting cannot help (see docs/protocol.md).
const FINAL_CLOSE_CODES = new Map([
  [4401, "Log in to chat in this room."],
  [4404, "This room does not exist."],
]);

const root = document.getElementById("room");
const roomName = root.dataset.room;
const you = root.dataset.you;
const maxLength = Number(root.dataset.maxLength);

const list = document.getElementById("messages");
const onlineList = document.getElementById("online");
const statusLine = document.getElementById("status");
const typingLine = document.getElementById("typing");
const form = document.getElementById("composer");
const input = document.getElementById("message-input");
const counter = document.getElementById("counter");

// seq -> <li>, for every message shown; lastSeq is the highest seq below which nothing is missing.
const shown = new Map();
let lastSeq = 0;
// The `before` of each history request in flight, so one gap is asked for once.
const gapRequests = new Set();
// client_id -> {body, element}: sent but not yet acknowledged; resent (idempotently) after a reconnect.
const pending = new Map();

let socket = null;
let attempt = 0;
let reconnectTimer = null;
let pingTimer = null;
let pongDeadline = null;
let lastTypingSent = 0;
const typingUsers = new Map();

// Length is counted in Unicode code points, the same way the server counts it.
const codePoints = (text) => [...text].length;

function setStatus(state, text) {
  statusLine.dataset.state = state;
  statusLine.textContent = text;
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const after = lastSeq > 0 ? `?after=${lastSeq}` : "";
  return `${scheme}//${location.host}/ws/chat/${encodeURIComponent(roomName)}/${after}`;
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  setStatus("connecting", attempt ? "Reconnecting…" : "Connecting…");
  const ws = new WebSocket(socketUrl());
  socket = ws;
  // Every handler checks that its socket is still the current one, so a late event of an old socket is ignored.
  ws.addEventListener("open", () => {
    if (ws !== socket) return;
    attempt = 0;
    startPinging();
  });
  ws.addEventListener("message", (event) => {
    if (ws !== socket) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    handleFrame(frame);
  });
  ws.addEventListener("close", (event) => {
    if (ws !== socket) return;
    socket = null;
    stopPinging();
    gapRequests.clear();
    const final = FINAL_CLOSE_CODES.get(event.code);
    if (final) {
      setStatus("closed", final);
      return;
    }
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  if (reconnectTimer !== null) return;
  if (!navigator.onLine) {
    setStatus("offline", "Offline: waiting for the network…");
    return;
  }
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  attempt += 1;
  let remaining = Math.ceil(delay / 1000);
  setStatus("reconnecting", `Reconnecting in ${remaining} s…`);
  const countdown = setInterval(() => {
    remaining -= 1;
    if (remaining > 0 && reconnectTimer !== null) setStatus("reconnecting", `Reconnecting in ${remaining} s…`);
  }, 1000);
  reconnectTimer = setTimeout(() => {
    clearInterval(countdown);
    reconnectTimer = null;
    connect();
  }, delay);
}

function reconnectNow() {
  if (socket !== null) return;
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  connect();
}

function startPinging() {
  stopPinging();
  pingTimer = setInterval(() => {
    send({ type: "ping" });
    if (pongDeadline === null) {
      // A connection the browser still thinks is open but that answers nothing is dead: drop it and resume.
      pongDeadline = setTimeout(() => socket?.close(), PONG_TIMEOUT_MS);
    }
  }, PING_INTERVAL_MS);
}

function stopPinging() {
  clearInterval(pingTimer);
  clearTimeout(pongDeadline);
  pingTimer = null;
  pongDeadline = null;
}

function send(frame) {
  if (socket?.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(frame));
  return true;
}

function handleFrame(frame) {
  switch (frame.type) {
    case "hello":
      setStatus("connected", "Connected");
      renderOnline(frame.online);
      if (frame.last_seq > lastSeq && lastSeq > 0) fillGap(frame.last_seq + 1);
      for (const [clientId, item] of pending) send({ type: "message", body: item.body, client_id: clientId });
      break;
    case "message":
      showMessage(frame);
      break;
    case "ack":
      acknowledge(frame.client_id);
      break;
    case "history":
      gapRequests.delete(frame.before);
      for (const message of frame.messages) showMessage(message);
      break;
    case "pong":
      clearTimeout(pongDeadline);
      pongDeadline = null;
      if (frame.last_seq > lastSeq) fillGap(frame.last_seq + 1);
      break;
    case "join":
      addOnline(frame.user);
      notice(`${frame.user} joined`);
      break;
    case "leave":
      removeOnline(frame.user);
      notice(`${frame.user} left`);
      break;
    case "typing":
      showTyping(frame.user);
      break;
    case "error":
      failPending(frame);
      break;
  }
}

// Messages are kept in seq order in the list, whatever order they arrive in.
function showMessage(message) {
  if (shown.has(message.seq)) return;
  const item = document.createElement("li");
  item.className = "message";
  item.dataset.seq = String(message.seq);
  if (message.author === you) item.classList.add("mine");
  const meta = document.createElement("div");
  meta.className = "meta";
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = message.author;
  const time = document.createElement("time");
  time.dateTime = message.sent_at;
  time.textContent = new Date(message.sent_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  meta.append(author, " ", time);
  const body = document.createElement("p");
  body.className = "body";
  body.textContent = message.body;
  item.append(meta, body);

  const stick = isAtBottom();
  const next = [...shown.keys()].filter((seq) => seq > message.seq).sort((a, b) => a - b)[0];
  if (next === undefined) {
    list.insertBefore(item, firstPendingItem());
  } else {
    list.insertBefore(item, shown.get(next));
  }
  shown.set(message.seq, item);
  if (message.client_id) acknowledge(message.client_id);
  advanceLastSeq();
  if (stick) list.scrollTop = list.scrollHeight;
}

function advanceLastSeq() {
  const before = lastSeq;
  while (shown.has(lastSeq + 1)) lastSeq += 1;
  // A message shown above a hole means something was missed: ask for what lies between.
  const highest = Math.max(0, ...shown.keys());
  if (highest > lastSeq && lastSeq >= before) fillGap(highest);
}

function fillGap(beforeSeq) {
  // The history answer holds the newest `limit` messages before beforeSeq; repeated answers close any gap.
  const missing = beforeSeq - lastSeq - 1;
  if (missing <= 0 || gapRequests.has(beforeSeq)) return;
  if (send({ type: "history", before: beforeSeq, limit: Math.min(HISTORY_PAGE, missing) })) gapRequests.add(beforeSeq);
}

function firstPendingItem() {
  return list.querySelector("li.pending");
}

function isAtBottom() {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}

function notice(text) {
  const item = document.createElement("li");
  item.className = "notice";
  item.textContent = text;
  const stick = isAtBottom();
  list.insertBefore(item, firstPendingItem());
  if (stick) list.scrollTop = list.scrollHeight;
}

function renderOnline(names) {
  onlineList.replaceChildren();
  for (const name of names) addOnline(name);
}

function addOnline(name) {
  if ([...onlineList.children].some((item) => item.textContent === name)) return;
  const item = document.createElement("li");
  item.textContent = name;
  if (name === you) item.classList.add("you");
  onlineList.append(item);
}

function removeOnline(name) {
  for (const item of [...onlineList.children]) if (item.textContent === name) item.remove();
}

function showTyping(user) {
  clearTimeout(typingUsers.get(user));
  typingUsers.set(
    user,
    setTimeout(() => {
      typingUsers.delete(user);
      renderTyping();
    }, TYPING_SHOW_MS),
  );
  renderTyping();
}

function renderTyping() {
  const names = [...typingUsers.keys()];
  typingLine.textContent =
    names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
}

function newClientId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

function submit() {
  const body = input.value.trim();
  if (!body) return;
  if (codePoints(body) > maxLength) {
    updateCounter();
    return;
  }
  const clientId = newClientId();
  const item = document.createElement("li");
  item.className = "message mine pending";
  const meta = document.createElement("div");
  meta.className = "meta";
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = you;
  const state = document.createElement("span");
  state.className = "state";
  state.textContent = "sending…";
  meta.append(author, " ", state);
  const text = document.createElement("p");
  text.className = "body";
  text.textContent = body;
  item.append(meta, text);
  list.append(item);
  list.scrollTop = list.scrollHeight;
  pending.set(clientId, { body, element: item });
  send({ type: "message", body, client_id: clientId });
  input.value = "";
  updateCounter();
}

function acknowledge(clientId) {
  const item = pending.get(clientId);
  if (!item) return;
  pending.delete(clientId);
  item.element.remove();
}

function failPending(frame) {
  // Errors answer the frame just sent; a refused message stays visible with the reason instead of vanishing.
  const last = [...pending.entries()].at(-1);
  if (!last || !["empty", "too_long", "bad_text", "rate_limited", "bad_frame", "unavailable"].includes(frame.code)) return;
  const [clientId, item] = last;
  if (frame.code === "rate_limited" || frame.code === "unavailable") {
    setTimeout(() => send({ type: "message", body: item.body, client_id: clientId }), 2000);
    return;
  }
  pending.delete(clientId);
  item.element.classList.replace("pending", "failed");
  item.element.querySelector(".state").textContent = `not sent: ${frame.detail}`;
}

function updateCounter() {
  const used = codePoints(input.value);
  counter.textContent = used > maxLength * 0.9 ? `${used} / ${maxLength}` : "";
  counter.classList.toggle("over", used > maxLength);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  }
});

input.addEventListener("input", () => {
  updateCounter();
  const now = Date.now();
  if (input.value && now - lastTypingSent > TYPING_SEND_EVERY_MS) {
    lastTypingSent = now;
    send({ type: "typing" });
  }
});

window.addEventListener("online", reconnectNow);
window.addEventListener("offline", () => socket?.close());
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") reconnectNow();
});

connect();
