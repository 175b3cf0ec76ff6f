// The scrolling message list: messages in seq order whatever order they arrive in, the outbox below them, the
// view kept where the person put it, and older pages loaded when they scroll to the top.

import { messageItem, mentionPattern, noticeItem, outboxItem, regroup, updateOutboxItem } from "./render.js";

// Within this many pixels of the bottom counts as "at the bottom": new messages keep the view pinned there.
const NEAR_BOTTOM_PX = 48;
// Older messages are asked for this far before the top is reached, so they are usually there in time.
const NEAR_TOP_PX = 400;

export class MessageList {
  constructor({ scroller, list, outbox, pill, edge, you, onNearTop }) {
    this.scroller = scroller;
    this.list = list;
    this.outbox = outbox;
    this.pill = pill;
    this.edge = edge;
    this.onNearTop = onNearTop;
    this.setYou(you);
    // The seqs shown, ascending, and their items.
    this.order = [];
    this.items = new Map();
    this.outboxItems = new Map();
    this.pinned = true;
    this.unseen = 0;
    scroller.addEventListener("scroll", () => this.scrolled(), { passive: true });
    pill.addEventListener("click", () => this.scrollToBottom());
    // The scroller changes size with the window and with a phone's keyboard: stay at the bottom if there.
    new ResizeObserver(() => {
      if (this.pinned) this.toBottom();
    }).observe(scroller);
  }

  setYou(you) {
    this.context = { you, mention: mentionPattern(you) };
  }

  // Inserts new messages (oldest first) at their places by seq. Inserted above the view, the view does not
  // move; at the end, the view follows if it was at the bottom, or the "new messages" pill counts them.
  insert(messages) {
    if (messages.length === 0) return;
    const anchor = this.pinned ? null : this.anchor();
    let appended = 0;
    for (const message of messages) {
      const index = this.indexFor(message.seq);
      const next = index < this.order.length ? this.items.get(this.order[index]) : null;
      const item = messageItem(message, this.context);
      this.list.insertBefore(item, next);
      this.order.splice(index, 0, message.seq);
      this.items.set(message.seq, item);
      regroup(item);
      if (next) regroup(next);
      else appended += 1;
    }
    if (this.pinned) {
      this.toBottom();
    } else {
      this.restore(anchor);
      this.unseen += appended;
      this.showPill();
    }
  }

  notice(text) {
    this.list.append(noticeItem(text));
    regroup(this.list.lastElementChild);
    if (this.pinned) this.toBottom();
  }

  // Shows the outbox's entries, updating items in place so that a focused Edit button keeps its focus.
  renderOutbox(entries, { connected }) {
    const you = this.context.you;
    for (const [clientId, item] of this.outboxItems) {
      if (!entries.has(clientId)) {
        item.remove();
        this.outboxItems.delete(clientId);
      }
    }
    for (const entry of entries.values()) {
      const item = this.outboxItems.get(entry.clientId);
      if (item) {
        updateOutboxItem(item, entry, { connected });
      } else {
        const created = outboxItem(entry, { you, connected });
        this.outbox.append(created);
        this.outboxItems.set(entry.clientId, created);
      }
    }
    if (this.pinned) this.toBottom();
  }

  // "more": older messages exist; "loading": a page is coming; "start": this is the room's first message.
  setEdge(state) {
    this.edge.dataset.state = state;
    for (const part of this.edge.children) part.hidden = part.dataset.when !== state;
  }

  scrollToBottom() {
    this.pinned = true;
    this.toBottom();
    this.hidePill();
  }

  // Asks for older messages while the top is near. Called once the messages of a connection or a page are in:
  // a view they do not fill cannot be scrolled up, so it is filled from here.
  checkTop() {
    if (this.scroller.scrollTop < NEAR_TOP_PX) this.onNearTop();
  }

  scrolled() {
    const { scrollTop, scrollHeight, clientHeight } = this.scroller;
    this.pinned = scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM_PX;
    if (this.pinned) this.hidePill();
    // Only the person scrolling up asks from here: a pinned view scrolls by itself while a backlog streams
    // in, and is near the top before the backlog is all there.
    else this.checkTop();
  }

  toBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  // The first message at least partly in view, and where it is: inserting above it must not move it.
  // Items are stacked in seq order, so a binary search finds it in a long history too.
  anchor() {
    const top = this.scroller.getBoundingClientRect().top;
    let low = 0;
    let high = this.order.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.items.get(this.order[middle]).getBoundingClientRect().bottom > top) high = middle;
      else low = middle + 1;
    }
    const item = this.items.get(this.order[low]);
    return item ? { item, offset: item.getBoundingClientRect().top } : null;
  }

  restore(anchor) {
    if (anchor) this.scroller.scrollTop += anchor.item.getBoundingClientRect().top - anchor.offset;
  }

  showPill() {
    if (this.unseen === 0) return;
    this.pill.textContent = this.unseen === 1 ? "1 new message ↓" : `${this.unseen} new messages ↓`;
    this.pill.hidden = false;
  }

  hidePill() {
    this.unseen = 0;
    this.pill.hidden = true;
  }

  // Where a seq goes in `order` (binary search: most arrive at the end, history pages at the start).
  indexFor(seq) {
    let low = 0;
    let high = this.order.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.order[middle] < seq) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
