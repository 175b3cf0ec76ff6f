// The scrolling message list: messages in seq order whatever order they arrive in, the outbox below them, the
// view kept where the person put it, and older pages loaded when they scroll to the top.
//
// For the keyboard, the list is one stop in the tab order, not one per button: only its current message (the
// last one, until the person moves) and that message's buttons can be tabbed to; the arrow keys move between
// messages, Home and End to the first and last loaded.

import { updateMessage } from "./parts.js";
import { messageItem, mentionPattern, noticeItem, outboxItem, regroup, updateOutboxItem } from "./render.js";

// Within this many pixels of the bottom counts as "at the bottom": new messages keep the view pinned there.
const NEAR_BOTTOM_PX = 48;
// Older messages are asked for this far before the top is reached, so they are usually there in time.
const NEAR_TOP_PX = 400;
// The controls inside a message that take part in its tab stops.
const CONTROLS = "button, a[href], textarea";

export class MessageList {
  // rights: {moderator, editSeconds}, what the page offers beyond a person's own messages (parts.js).
  constructor({ scroller, list, outbox, pill, edge, you, rights, onNearTop }) {
    this.scroller = scroller;
    this.list = list;
    this.outbox = outbox;
    this.pill = pill;
    this.edge = edge;
    this.onNearTop = onNearTop;
    this.rights = rights;
    this.setYou(you);
    // The seqs shown, ascending, and their items.
    this.order = [];
    this.items = new Map();
    this.outboxItems = new Map();
    this.pinned = true;
    this.unseen = 0;
    // The message in the tab order.
    this.current = null;
    list.addEventListener("focusin", (event) => {
      const item = event.target.closest(".message");
      if (item) this.setCurrent(item);
    });
    list.addEventListener("keydown", (event) => this.navigate(event));
    scroller.addEventListener("scroll", () => this.scrolled(), { passive: true });
    pill.addEventListener("click", () => this.scrollToBottom());
    // The scroller changes size with the window and with a phone's keyboard, the list when a message opens its
    // editor or earlier versions: stay at the bottom if there.
    const stay = new ResizeObserver(() => {
      if (this.pinned) this.toBottom();
    });
    stay.observe(scroller);
    stay.observe(list);
  }

  setYou(you) {
    this.context = { ...this.rights, you, mention: mentionPattern(you) };
  }

  has(seq) {
    return this.items.has(seq);
  }

  // Inserts new messages (oldest first) at their places by seq, each shown as its view (parts.js). Inserted
  // above the view, the view does not move; at the end, the view follows if it was at the bottom, or the
  // "new messages" pill counts them.
  insert(views) {
    if (views.length === 0) return;
    const anchor = this.pinned ? null : this.anchor();
    let appended = 0;
    for (const view of views) {
      const index = this.indexFor(view.seq);
      const next = index < this.order.length ? this.items.get(this.order[index]) : null;
      const item = messageItem(view, this.context);
      updateMessage(item, view, this.context);
      this.tabStops(item, false);
      this.list.insertBefore(item, next);
      this.order.splice(index, 0, view.seq);
      this.items.set(view.seq, item);
      regroup(item);
      if (next) regroup(next);
      else appended += 1;
    }
    // Until the person moves within the list, the newest message is where Tab enters it.
    if (!this.list.contains(document.activeElement)) this.setCurrent(this.items.get(this.order.at(-1)));
    if (this.pinned) {
      this.toBottom();
    } else {
      this.restore(anchor);
      this.unseen += appended;
      this.showPill();
    }
  }

  // Redraws a shown message as its new view. Its height may change: at the bottom, the view stays there; above,
  // the messages in view stay where they are.
  update(seq, view) {
    const item = this.items.get(seq);
    if (!item) return;
    const anchor = this.pinned ? null : this.anchor();
    updateMessage(item, view, this.context);
    this.tabStops(item, item === this.current);
    if (this.pinned) this.toBottom();
    else this.restore(anchor);
  }

  // Scrolls message `seq` into the middle of the view and gives it the focus (a quote was followed).
  reveal(seq) {
    const item = this.items.get(seq);
    if (!item) return false;
    this.pinned = false;
    item.scrollIntoView({ block: "center" });
    item.focus({ preventScroll: true });
    // Restarted, so that following the same quote twice flashes twice.
    item.classList.remove("flash");
    void item.offsetWidth;
    item.classList.add("flash");
    return true;
  }

  setCurrent(item) {
    if (!item || item === this.current) return;
    if (this.current) this.tabStops(this.current, false);
    this.current = item;
    this.tabStops(item, true);
  }

  // The controls of a message that is not the current one are out of the tab order (see the top).
  tabStops(item, on) {
    item.tabIndex = on ? 0 : -1;
    for (const control of item.querySelectorAll(CONTROLS)) control.tabIndex = on ? 0 : -1;
  }

  // Up and Down, Home and End, on a message itself (not on a button or text box in it).
  navigate(event) {
    const item = event.target;
    if (!item.classList?.contains("message") || event.altKey || event.ctrlKey || event.metaKey) return;
    const index = this.order.indexOf(Number(item.dataset.seq));
    const to = { ArrowUp: index - 1, ArrowDown: index + 1, Home: 0, End: this.order.length - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    const next = this.items.get(this.order[Math.max(0, Math.min(this.order.length - 1, to))]);
    next.focus({ preventScroll: true });
    next.scrollIntoView({ block: "nearest" });
    if (to < 0) this.onNearTop();
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
