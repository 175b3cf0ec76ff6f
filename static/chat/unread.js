// What the person has read in this room, on every device: the read marker (docs/protocol.md, "Read markers"),
// the "New messages" divider and its jump control, the unread count in the tab's title, and a system
// notification when someone mentions them while the tab is hidden. No frames are parsed here: client.js hands
// over what it received.

// The page tells the server it has read up to here at most this often (the protocol asks for every 2 s).
const READ_EVERY_MS = 2_000;
// A tab showing this room writes a timestamp this often, so that the other tabs of it do not notify.
const LOOKING_EVERY_MS = 1_000;
const LOOKING_KEY = (room) => `chatsite:looking:${room}`;
const NOTIFIED_KEY = (room, seq) => `chatsite:notified:${room}:${seq}`;

export class Unread {
  constructor({ room, list, divider, jumpButton, notifyButton, title, send, isNewestShown, loadOlder, canLoadOlder }) {
    this.room = room;
    this.list = list;
    this.jumpButton = jumpButton;
    this.notifyButton = notifyButton;
    this.divider = divider;
    this.baseTitle = title;
    this.send = send;
    this.isNewestShown = isNewestShown;
    this.loadOlder = loadOlder;
    this.canLoadOlder = canLoadOlder;
    this.you = null;
    // The stored marker as this page knows it; null before the first hello.
    this.marker = null;
    // The marker when the page opened: the divider sits on the first message of someone else after it.
    this.openedAt = null;
    // Seqs of messages of others above the marker, for the title.
    this.unread = new Set();
    this.sentRead = 0;
    this.lastSentAt = 0;
    this.timer = null;
    this.jumping = false;
    // Whether the first connection's backlog is all in (its first pong came): only then is the view moved,
    // since until it is the list is too short to scroll and every frame moves the bottom.
    this.settled = false;
    this.dividerSeq = null;
    jumpButton.addEventListener("click", () => this.jump());
    notifyButton.addEventListener("click", () => this.askToNotify());
    this.showNotifyButton();
    document.addEventListener("visibilitychange", () => this.visibilityChanged());
    setInterval(() => this.markLooking(), LOOKING_EVERY_MS);
    this.markLooking();
    // The control shows while the divider is above the view, and goes once it is in view or below it.
    this.observer = new IntersectionObserver((entries) => {
      const bottom = this.list.scroller.getBoundingClientRect().bottom;
      for (const entry of entries) this.jumpButton.hidden = entry.isIntersecting || entry.boundingClientRect.top > bottom;
    });
  }

  // hello: who the person is and the stored marker. The first one fixes where the divider goes.
  hello(you, lastRead) {
    this.you = you;
    this.moved(lastRead);
    if (this.openedAt === null) {
      this.openedAt = lastRead;
      // Someone who never read the room opens at its newest messages, as before.
      this.jumping = lastRead > 0;
    }
  }

  // A read frame: this person's marker moved, on this device or another.
  moved(seq) {
    this.marker = Math.max(this.marker ?? 0, seq);
    this.sentRead = Math.max(this.sentRead, this.marker);
    for (const unread of [...this.unread]) if (unread <= this.marker) this.unread.delete(unread);
    this.showTitle();
  }

  // Messages drawn (views from conversation.js), new or redrawn.
  shown(messages) {
    for (const message of messages) {
      if (message.author === this.you || message.deleted) this.unread.delete(message.seq);
      else if (this.marker !== null && message.seq > this.marker) this.unread.add(message.seq);
    }
    this.placeDivider();
    this.showTitle();
    this.continueJump();
    this.maybeRead();
  }

  // A message new to the page, live: notify if it mentions the person.
  arrived(message) {
    if (message.author === this.you || message.deleted || !(message.mentions ?? []).includes(this.you)) return;
    if (this.marker !== null && message.seq <= this.marker) return;
    this.notify(message, message.seq);
  }

  // A live edit: notify if it mentions the person for the first time.
  edited(edit, view) {
    if (edit.by !== this.you && (edit.new_mentions ?? []).includes(this.you) && view) this.notify(view, edit.seq);
  }

  // The divider goes on the first message of someone else after the marker the page opened with, once the
  // messages from the marker on are loaded (until then the first one loaded may not be the first unread).
  placeDivider() {
    if (!this.openedAt) return;
    const order = this.list.order;
    const complete = order.length > 0 && (order[0] <= this.openedAt || !this.canLoadOlder());
    let first = null;
    if (complete) {
      for (const seq of order) {
        if (seq > this.openedAt && this.list.items.get(seq).dataset.author !== this.you) {
          first = seq;
          break;
        }
      }
    }
    if (first === this.dividerSeq) return;
    if (this.dividerSeq !== null) this.list.items.get(this.dividerSeq)?.classList.remove("first-unread");
    this.dividerSeq = first;
    if (first === null) {
      this.divider.hidden = true;
      // Unread messages older than the loaded ones: the control loads them.
      this.jumpButton.hidden = complete || order.length === 0;
      return;
    }
    const item = this.list.items.get(first);
    item.classList.add("first-unread");
    const day = item.querySelector(":scope > .day");
    if (day) day.after(this.divider);
    else item.prepend(this.divider);
    this.divider.hidden = false;
    this.observer.disconnect();
    this.observer.observe(this.divider);
  }

  inView(element) {
    const box = element.getBoundingClientRect();
    const view = this.list.scroller.getBoundingClientRect();
    return box.bottom > view.top && box.top < view.bottom;
  }

  // Opens (or the control scrolls) at the first unread, loading older pages until it is there.
  jump() {
    this.jumping = true;
    this.continueJump();
  }

  // The first pong: the backlog is in.
  backlogIn() {
    this.settled = true;
    this.continueJump();
  }

  continueJump() {
    if (!this.jumping || !this.settled || this.openedAt === null) return;
    const order = this.list.order;
    if (this.dividerSeq !== null) {
      this.jumping = false;
      this.list.pinned = false;
      // The scroller alone: scrollIntoView would scroll the page too, and hide the room's header.
      const scroller = this.list.scroller;
      scroller.scrollTop += this.divider.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
      this.jumpButton.hidden = true;
    } else if (order.length > 0 && (order[0] <= this.openedAt || !this.canLoadOlder())) {
      this.jumping = false; // all loaded from the marker on, and none of it is someone else's
    } else if (order.length > 0) {
      this.loadOlder();
    }
  }

  visibilityChanged() {
    this.markLooking();
    this.maybeRead();
    this.showTitle();
  }

  // Tells the server how far the person has read: only while the page is visible and shows the newest
  // messages, and at most every READ_EVERY_MS.
  maybeRead(top = this.top) {
    if (top !== undefined) this.top = top;
    if (document.visibilityState !== "visible" || !this.isNewestShown() || !this.top) return;
    if (this.top <= this.sentRead) return;
    const wait = this.lastSentAt + READ_EVERY_MS - Date.now();
    if (wait > 0) {
      this.timer ??= setTimeout(() => {
        this.timer = null;
        this.maybeRead();
      }, wait);
      return;
    }
    if (this.send({ type: "read", seq: this.top })) {
      this.sentRead = this.top;
      this.lastSentAt = Date.now();
    }
  }

  showTitle() {
    const count = this.unread.size;
    const title = count > 0 && document.visibilityState !== "visible" ? `(${count}) ${this.baseTitle}` : this.baseTitle;
    if (document.title !== title) document.title = title;
  }

  // Notifications

  showNotifyButton() {
    const supported = "Notification" in window;
    this.notifyButton.hidden = !supported || Notification.permission !== "default";
  }

  async askToNotify() {
    if (!("Notification" in window)) return;
    await Notification.requestPermission();
    this.showNotifyButton();
  }

  // One notification for all of the person's tabs: the first tab to take the lock writes that it notified.
  async notify(message, seq) {
    if (document.visibilityState === "visible" || !("Notification" in window)) return;
    if (Notification.permission !== "granted" || this.someoneLooking()) return;
    const key = NOTIFIED_KEY(this.room, seq);
    const show = () => {
      if (localStorage.getItem(key)) return;
      localStorage.setItem(key, String(Date.now()));
      const note = new Notification(`${message.author} in #${this.room}`, {
        body: message.body,
        tag: key, // a second tab's notification, if any got through, replaces the first
      });
      note.addEventListener("click", () => {
        window.focus();
        this.list.reveal(message.seq);
      });
    };
    try {
      if (navigator.locks) await navigator.locks.request(key, show);
      else show();
    } catch {
      // No storage (private mode): notify from this tab anyway.
      show();
    }
  }

  markLooking() {
    try {
      if (document.visibilityState === "visible") localStorage.setItem(LOOKING_KEY(this.room), String(Date.now()));
      else if (!this.wasHidden) localStorage.removeItem(LOOKING_KEY(this.room));
      this.wasHidden = document.visibilityState !== "visible";
    } catch {
      // No storage: tabs cannot tell each other, and each notifies on its own.
    }
  }

  someoneLooking() {
    try {
      const at = Number(localStorage.getItem(LOOKING_KEY(this.room)));
      return Date.now() - at < 2.5 * LOOKING_EVERY_MS;
    } catch {
      return false;
    }
  }
}
