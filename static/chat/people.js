// Who is in the room and who is typing. The server counts people, not tabs: one name is one person.

import { element } from "./render.js";

// A typing frame comes at most every 2-3 s while someone types; a name is shown this long after the last one.
const TYPING_SHOWN_MS = 5_000;

export class People {
  constructor({ list, count, typingLine, you }) {
    this.list = list;
    this.count = count;
    this.typingLine = typingLine;
    this.you = you;
    this.names = new Set();
    this.typists = new Map();
  }

  // The full list, from a hello or an online frame.
  reset(names, you = this.you) {
    this.you = you;
    this.names = new Set(names);
    this.render();
  }

  joined(name) {
    this.names.add(name);
    this.render();
  }

  left(name) {
    this.names.delete(name);
    this.stoppedTyping(name);
    this.render();
  }

  typing(name) {
    clearTimeout(this.typists.get(name));
    this.typists.set(
      name,
      setTimeout(() => this.stoppedTyping(name), TYPING_SHOWN_MS),
    );
    this.renderTyping();
  }

  // Their message arrived, they left, or they went quiet.
  stoppedTyping(name) {
    if (!this.typists.has(name)) return;
    clearTimeout(this.typists.get(name));
    this.typists.delete(name);
    this.renderTyping();
  }

  render() {
    // You first, then everyone else alphabetically.
    const names = [...this.names].sort((a, b) => (a === this.you ? -1 : b === this.you ? 1 : a.localeCompare(b)));
    this.list.replaceChildren(
      ...names.map((name) => {
        const item = element("li", name === this.you ? "person you" : "person");
        item.append(element("span", "presence-dot"), element("span", "name", name));
        if (name === this.you) item.append(element("span", "you-label", " (you)"));
        return item;
      }),
    );
    this.count.textContent = String(names.length);
  }

  renderTyping() {
    const names = [...this.typists.keys()];
    this.typingLine.textContent =
      names.length === 0
        ? ""
        : names.length === 1
          ? `${names[0]} is typing…`
          : names.length === 2
            ? `${names[0]} and ${names[1]} are typing…`
            : "Several people are typing…";
  }
}
