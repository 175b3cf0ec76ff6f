// The conversation as this page shows it: the log's frames folded into message states (fold.js), the person's
// changes that are not stored yet drawn on top of them (outbox.js), the list that shows them (messages.js),
// and what the person does to a message (actions.js) turned into outbox entries and requests.
//
// A `versions` request is answered by a versions frame or by an error that does not say what it answers, as
// are the outbox's entries (see outbox.js). So the two take turns: a versions request goes only while the
// outbox has nothing in flight, and the outbox waits (mayFlush) while a versions request awaits its answer.

import { MessageActions } from "./actions.js";
import { applyChange, MessageStates } from "./fold.js";
import { allowed } from "./parts.js";

const RETRYABLE = new Set(["rate_limited", "unavailable"]);
const RETRY_VERSIONS_MS = 1_500;

// Why a change was refused, in words, by error code; otherwise the server's detail is shown.
const WHY = {
  forbidden: "that message is not yours to change.",
  gone: "that message was deleted.",
  not_found: "that message is no longer in the room.",
  too_late: "it is too late to edit that message.",
  bad_reaction: "that reaction is not offered here.",
};
const WHAT = {
  edit: "Your edit was not saved",
  delete: "The message was not deleted",
  react: "Your reaction was not saved",
};

export class Conversation {
  // report(seq, reason): the reader reports a message to the room's moderators.
  constructor({ list, messages, reactions, maxLength, timeline, outbox, you, send, loadOlder, notify, onReply, report }) {
    this.list = list;
    this.timeline = timeline;
    this.outbox = outbox;
    this.you = you;
    this.send = send;
    this.loadOlder = loadOlder;
    this.notify = notify;
    this.states = new MessageStates();
    this.actions = new MessageActions({
      list: messages,
      reactions,
      maxLength,
      view: (seq) => this.view(seq),
      onReply: (seq) => {
        const view = this.view(seq);
        if (view && !view.deleted) onReply({ seq, author: view.author, body: view.body });
      },
      onReact: (seq, emoji) => this.react(seq, emoji),
      onEdit: (seq, body) => outbox.change({ kind: "edit", target: seq, body }),
      onDelete: (seq) => outbox.change({ kind: "delete", target: seq }),
      onVersions: (seq) => this.askVersions(seq),
      onJump: (seq) => this.jump(seq),
      onReport: (seq, reason) => report(seq, reason),
    });
    // The messages drawn with unsaved changes on top, last time: when a change goes, they are drawn again.
    this.overlaid = new Set();
    // Versions requests waiting for their turn, and the one awaiting its answer.
    this.versionsWanted = [];
    this.versionsAsked = null;
    // The seq of a message being scrolled to (a quote was followed) while older pages load, or null.
    this.jumpTarget = null;
  }

  // Frames of the log, of any kind, in the order they came, once the timeline has counted them.
  receive(frames) {
    this.refresh(this.states.receive(frames, this.timeline.through));
  }

  // Draws the messages in `changed` and those whose unsaved changes came or went. New messages are inserted.
  refresh(changed = []) {
    // An acknowledged change stops being drawn on top once the state holds its entry (or one as new), or when
    // it wrote none; and when its message is not shown anyway.
    this.outbox.settle(
      (change) => change.seq === null || (this.states.get(change.target)?.state_seq ?? Infinity) >= change.seq,
    );
    const overlaid = new Set(this.outbox.changes.map((change) => change.target));
    const seqs = new Set([...changed, ...this.overlaid, ...overlaid]);
    this.overlaid = overlaid;
    const fresh = [];
    for (const seq of [...seqs].sort((a, b) => a - b)) {
      const view = this.view(seq);
      if (!view) continue;
      if (this.list.has(seq)) {
        this.list.update(seq, view);
        this.actions.refresh(seq, view);
      } else {
        fresh.push(view);
      }
    }
    this.list.insert(fresh);
  }

  // What message `seq` shows: its state with the person's changes not stored yet applied, the quote of a reply,
  // which parts are pending and which reactions are the reader's.
  view(seq) {
    let view = this.states.get(seq);
    if (!view) return undefined;
    const pending = { edit: false, delete: false, reactions: new Set() };
    for (const change of this.outbox.changesFor(seq)) {
      // Deleted meanwhile (by a moderator, say): what the person meant to change is gone with it.
      if (view.deleted) break;
      view = applyChange(view, this.asEntry(change));
      if (change.kind === "react") pending.reactions.add(change.emoji);
      else pending[change.kind] = true;
    }
    const mineReactions = new Set(Object.keys(view.reactions).filter((e) => view.reactions[e].includes(this.you)));
    return { ...view, quote: this.states.quote(seq), pending, mineReactions };
  }

  asEntry(change) {
    if (change.kind === "react") return { type: "reaction", emoji: change.emoji, on: change.on, user: this.you };
    if (change.kind === "edit") {
      return { type: "edit", body: change.body, edited_at: new Date(change.created).toISOString() };
    }
    return { type: "delete" };
  }

  // A chip or a pick: adds the reaction, or takes back the reader's own.
  react(seq, emoji) {
    const view = this.view(seq);
    if (!view || view.deleted) return;
    this.outbox.change({ kind: "react", target: seq, emoji, on: !view.mineReactions.has(emoji) });
  }

  // Up in an empty composer: edits the reader's last message that may still be edited. Returns whether it did.
  // The focus goes back to `returnTo` when the edit is saved or cancelled.
  editLast(returnTo) {
    for (let index = this.list.order.length - 1; index >= 0; index -= 1) {
      const seq = this.list.order[index];
      const view = this.view(seq);
      if (view && allowed(view, this.list.context).edit) return this.actions.startEdit(seq, returnTo);
    }
    return false;
  }

  // A change the server refused, dropped from the outbox: said where everyone sees it, and announced.
  dropped(change, reason, code) {
    this.notify(`${WHAT[change.kind]}: ${WHY[code] ?? reason}`);
    this.refresh();
  }

  // Earlier versions

  askVersions(seq) {
    if (!this.versionsWanted.includes(seq) && this.versionsAsked !== seq) this.versionsWanted.push(seq);
    this.sendVersions();
  }

  // Sends the next versions request, if it is its turn (see the top).
  sendVersions() {
    if (this.versionsAsked !== null || !this.outbox.idle || this.versionsWanted.length === 0) return;
    const seq = this.versionsWanted[0];
    if (!this.send({ type: "versions", target: seq })) return;
    this.versionsWanted.shift();
    this.versionsAsked = seq;
  }

  get mayFlush() {
    return this.versionsAsked === null;
  }

  versionsAnswered({ target, versions }) {
    this.actions.showVersions(target, versions);
    this.versionsDone();
  }

  // An error the outbox did not take: the answer to the versions request, if one awaits. Returns whether it was.
  refused({ code, detail }) {
    const seq = this.versionsAsked;
    if (seq === null) return false;
    if (RETRYABLE.has(code)) {
      this.versionsWanted.unshift(seq);
      this.versionsAsked = null;
      setTimeout(() => this.sendVersions(), RETRY_VERSIONS_MS);
      this.outbox.flush();
    } else {
      this.actions.versionsFailed(seq, WHY[code] ?? detail);
      this.versionsDone();
    }
    return true;
  }

  versionsDone() {
    this.versionsAsked = null;
    this.outbox.flush();
    this.sendVersions();
  }

  // The connection is gone: a request awaiting its answer goes again on the next one.
  lost() {
    if (this.versionsAsked !== null) this.versionsWanted.unshift(this.versionsAsked);
    this.versionsAsked = null;
  }

  // Following a quote

  // Scrolls to message `seq`, loading older pages first for as long as it is below them.
  jump(seq) {
    this.jumpTarget = seq;
    this.continueJump();
  }

  // Called after each history answer too.
  continueJump() {
    const seq = this.jumpTarget;
    if (seq === null) return;
    if (this.list.reveal(seq)) {
      this.jumpTarget = null;
    } else if (!this.timeline.hasOlder || this.timeline.floor <= seq) {
      // Everything down to it is loaded and it is not there: removed from the log.
      this.jumpTarget = null;
      this.notify("That message is no longer in the room's history.");
    } else {
      this.loadOlder();
    }
  }
}
