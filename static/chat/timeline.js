// Which part of the room's log this page holds, and which history requests would complete it. No DOM here.
//
// The server numbers a room's entries 1, 2, 3… without gaps, messages and the edits, deletes and reactions of
// them alike (docs/protocol.md). Every kind counts here: a reaction held is as much a part of the run as a
// message, whether or not its target is loaded (fold.js decides what it changes). The page holds one contiguous
// run of entries, from `floor` up to `through`, and maybe some above `through` that came before the ones below
// them (a gap: the channel layer dropped or reordered a broadcast). So:
// - an entry already held is a duplicate and is dropped;
// - a resume asks for everything after `through`;
// - a hole above `through`, or a pong.last_seq beyond what is held, is asked for with `history`;
// - scrolling back asks for the page below `floor`.
// A seq the server proves missing (an admin deleted the row) counts as held, so it cannot block `through`.

export class Timeline {
  constructor({ request, pageSize }) {
    // request(before, limit) sends a history frame and says whether it could.
    this.request = request;
    this.pageSize = pageSize;
    this.held = new Set();
    this.absent = new Set();
    // null until the first message (or an empty room's hello) says where the run starts; 1 is the beginning.
    this.floor = null;
    this.through = 0;
    // The highest seq known to exist: the highest held, or a pong's last_seq.
    this.top = 0;
    // The `before` of each history request awaiting its answer, and why: "gap" or "older".
    this.requests = new Map();
  }

  // The `after` for a reconnect, or null to join afresh (the newest page) when nothing is held yet.
  get resumeAfter() {
    return this.floor === null ? null : this.through;
  }

  get hasOlder() {
    return this.floor !== null && this.floor > 1;
  }

  get loadingOlder() {
    return [...this.requests.values()].includes("older");
  }

  // The hello of a connection. An empty room's run starts at 1; otherwise the backlog that follows says where.
  // hello.last_seq is not taken as the top: the backlog right behind it runs up to it anyway, and asking for
  // history meanwhile would fetch it twice. (The client pings after hello; the pong checks the tail.)
  hello(lastSeq) {
    if (this.floor === null && lastSeq === 0) this.floor = 1;
  }

  // A frame of the log, of any kind (backlog or live). Returns whether it is new; a new one may reveal a gap,
  // which is asked for.
  add(entry) {
    const fresh = this.hold(entry);
    if (fresh) this.settle();
    return fresh;
  }

  // pong.last_seq: an entry committed at the tail whose broadcast never came is fetched now.
  pong(lastSeq) {
    this.top = Math.max(this.top, lastSeq);
    this.settle();
  }

  // A history answer. Returns its entries that are new, oldest first.
  history({ before, messages, has_more: hasMore }) {
    const reason = this.requests.get(before);
    this.requests.delete(before);
    const fresh = messages.filter((message) => this.hold(message));
    // The answer is the newest entries before `before`, so every seq from its oldest one (from 1 if there is
    // nothing older) up to `before` is now known: held, or proven missing.
    const low = hasMore && messages.length > 0 ? messages[0].seq : 1;
    if (reason === "older") {
      this.floor = Math.min(this.floor ?? before, low);
    } else {
      for (let seq = Math.max(low, this.through + 1); seq < before; seq += 1) {
        if (!this.held.has(seq)) this.absent.add(seq);
      }
    }
    this.settle();
    return fresh;
  }

  // Asks for the page of entries just below the oldest held one; false when there is none or one is coming.
  loadOlder() {
    if (!this.hasOlder || this.loadingOlder) return false;
    const before = this.floor;
    if (!this.request(before, this.pageSize)) return false;
    this.requests.set(before, "older");
    return true;
  }

  // The connection is gone: no answer will come to what was asked on it.
  lost() {
    this.requests.clear();
  }

  // A request may have been refused (rate_limited): forget them all and ask again for what is still missing.
  retry() {
    this.requests.clear();
    this.settle();
  }

  hold(entry) {
    const seq = entry.seq;
    if (this.held.has(seq)) return false;
    if (this.floor === null) {
      this.floor = seq;
      this.through = seq - 1;
    }
    this.held.add(seq);
    this.top = Math.max(this.top, seq);
    while (this.held.has(this.floor - 1)) this.floor -= 1;
    return true;
  }

  settle() {
    while (this.held.has(this.through + 1) || this.absent.has(this.through + 1)) this.through += 1;
    if (this.floor === null || this.top <= this.through) return;
    if ([...this.requests.values()].includes("gap")) return;
    // One hole at a time, lowest first: ask for what lies between `through` and the lowest seq held above it
    // (or the top). Each answer moves `through` up, and the next hole is asked for then.
    let edge = this.top + 1;
    for (const seq of this.held) if (seq > this.through && seq < edge) edge = seq;
    const limit = Math.min(this.pageSize, edge - this.through - 1);
    if (this.request(edge, limit)) this.requests.set(edge, "gap");
  }
}
