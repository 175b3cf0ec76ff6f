// The messages this page holds, each with its state, kept by the one folding rule of docs/protocol.md
// ("Folding entries"): a message frame is its message's state as of its state_seq; an edit, delete or reaction
// changes its target only if the entry is newer than that state, and is skipped while the target is not held
// (the target then comes with its current state). Folding an entry twice, or after a newer state, changes
// nothing, so duplicates, reordering across processes and resumes all end at the database's state. No DOM here.
//
// Changes are folded in seq order, as the rule requires: one that arrives above a hole in the page's run waits
// until the hole is filled. Folded early, reaction 4 would set its target's state_seq to 4, and reaction 3,
// fetched into the hole afterwards, would then look already applied and be lost. A message frame needs no such
// wait: it is a whole state, and its state_seq says which changes it already holds.

export const CHANGE_TYPES = new Set(["edit", "delete", "reaction"]);

// Changes folded while their target was not held, kept at most this many: enough for a long session.
const SKIPPED_MAX = 5_000;

// How much of a message a reply's quote shows, as the server cuts it (code points, chat.selectors.QUOTE_LENGTH).
const QUOTE_LENGTH = 140;

const cut = (body) => [...body].slice(0, QUOTE_LENGTH).join("");

// A copy of a message's state with one change applied: an entry of the log, or the person's own change that
// the server has not stored yet (shown meanwhile). The seq check is the caller's.
export function applyChange(state, change) {
  const next = { ...state, reactions: { ...state.reactions } };
  if (change.type === "edit") {
    next.body = change.body;
    next.edited_at = change.edited_at;
    // The person's own edit not stored yet has no mentions: the server resolves them.
    if (change.mentions) next.mentions = change.mentions;
  } else if (change.type === "delete") {
    next.deleted = true;
    next.body = "";
    next.reactions = {};
    next.mentions = [];
  } else if (change.type === "reaction") {
    // Names, not people: two guests may share a display name, so an "off" takes back one of them only.
    const people = [...(next.reactions[change.emoji] ?? [])];
    if (change.on) people.push(change.user);
    else if (people.includes(change.user)) people.splice(people.indexOf(change.user), 1);
    if (people.length) next.reactions[change.emoji] = people;
    else delete next.reactions[change.emoji];
  }
  return next;
}

export class MessageStates {
  constructor() {
    // seq -> the message's state: the fields of its message frame, folded forward.
    this.states = new Map();
    // The seq of a message -> the seqs of the held replies that quote it.
    this.replies = new Map();
    // The seq of a message -> what its quotes show, {seq, body, deleted}, from the newest news of it seen:
    // an edit or delete entry, or the message's own frame (as of its state_seq). Kept for messages not held too.
    this.news = new Map();
    // Changes above the page's contiguous run, by seq, waiting for the entries below them.
    this.waiting = new Map();
    // Changes folded while their target was not held, by target, oldest first. A history page read before such
    // a change was committed can bring its target with an older state afterwards (the live change overtook the
    // page on the socket); the change is applied to it then, or that page's state would stay stale for good.
    this.skipped = new Map();
    this.skippedCount = 0;
  }

  // Folds frames of the log, of any kind, given that the page holds every seq up to `through` (timeline.js).
  // Returns the seqs of held messages whose state or quote changed.
  receive(frames, through) {
    const changed = new Set();
    for (const frame of frames) {
      if (CHANGE_TYPES.has(frame.type)) this.waiting.set(frame.seq, frame);
      else for (const seq of this.fold(frame)) changed.add(seq);
    }
    const due = [...this.waiting.keys()].filter((seq) => seq <= through).sort((a, b) => a - b);
    for (const seq of due) {
      for (const changedSeq of this.fold(this.waiting.get(seq))) changed.add(changedSeq);
      this.waiting.delete(seq);
    }
    return changed;
  }

  has(seq) {
    return this.states.has(seq);
  }

  get(seq) {
    return this.states.get(seq);
  }

  // Folds one frame of the log, of any kind, now (see receive for when a change may be).
  fold(frame) {
    if (frame.type === "message") return this.message(frame);
    if (CHANGE_TYPES.has(frame.type)) return this.change(frame);
    return [];
  }

  message(frame) {
    const held = this.states.get(frame.seq);
    // A copy older than what is held (a late broadcast after a history page) would undo entries already folded.
    if (held && held.state_seq > frame.state_seq) return [];
    const { type, room, ...state } = frame;
    let folded = { ...state, reactions: { ...frame.reactions } };
    for (const change of this.skipped.get(frame.seq) ?? []) {
      if (change.seq > folded.state_seq) folded = { ...applyChange(folded, change), state_seq: change.seq };
    }
    this.states.set(frame.seq, folded);
    if (frame.reply_to != null) {
      if (!this.replies.has(frame.reply_to)) this.replies.set(frame.reply_to, new Set());
      this.replies.get(frame.reply_to).add(frame.seq);
    }
    return [frame.seq, ...this.learn(frame.seq, frame.state_seq, frame)];
  }

  change(entry) {
    const changed = entry.type === "reaction" ? [] : this.learn(entry.target, entry.seq, entry);
    const target = this.states.get(entry.target);
    if (target && entry.seq > target.state_seq) {
      this.states.set(entry.target, { ...applyChange(target, entry), state_seq: entry.seq });
      changed.push(entry.target);
    } else if (!target) {
      this.skip(entry);
    }
    return changed;
  }

  skip(entry) {
    const kept = this.skipped.get(entry.target) ?? [];
    if (kept.some((change) => change.seq === entry.seq)) return;
    kept.push(entry);
    this.skipped.set(entry.target, kept);
    this.skippedCount += 1;
    if (this.skippedCount > SKIPPED_MAX) {
      // Forget the oldest target's: the older a change, the less likely a page from before it is still coming.
      const [oldest, changes] = this.skipped.entries().next().value;
      this.skipped.delete(oldest);
      this.skippedCount -= changes.length;
    }
  }

  // What a held reply shows of the message it answers: {author, body, deleted}, or null if the server had
  // nothing to quote. Newer news of the target than the reply itself wins over the quote in the reply's frame.
  quote(seq) {
    const reply = this.states.get(seq);
    if (!reply || reply.reply_to == null) return null;
    const quoted = reply.quote ?? null;
    const news = this.news.get(reply.reply_to);
    if (!news || news.seq <= reply.seq) return quoted;
    const author = quoted?.author ?? this.states.get(reply.reply_to)?.author ?? "";
    return { author, body: news.deleted ? "" : cut(news.body), deleted: news.deleted };
  }

  // News of message `target` as of `seq`; returns the held replies whose quote it changes.
  learn(target, seq, { body, deleted, type }) {
    const known = this.news.get(target);
    if (known && known.seq >= seq) return [];
    // An edit read after its message was deleted has lost its body: it is news of the delete.
    const gone = Boolean(deleted) || type === "delete" || (type === "edit" && !body);
    this.news.set(target, { seq, body: gone ? "" : body, deleted: gone });
    return [...(this.replies.get(target) ?? [])];
  }
}
