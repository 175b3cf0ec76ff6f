// What a person does to a stored message, by mouse or keyboard: the action bar's buttons (parts.js draws them),
// the reaction picker, the inline editor and the earlier versions. What each does to the room is the caller's:
// this module only turns clicks and keys into onReply(seq), onReact(seq, emoji), onEdit(seq, body),
// onDelete(seq), onVersions(seq) and onJump(seq).

import { bodyLength, cleanBody, fullLabel, timeLabel } from "./format.js";
import { element } from "./render.js";

const seqOf = (node) => Number(node.closest(".message").dataset.seq);

export class MessageActions {
  // view(seq) is what the message shows now (its state with the reader's unsaved changes), or undefined.
  constructor({ list, reactions, maxLength, view, onReply, onReact, onEdit, onDelete, onVersions, onJump, onReport }) {
    this.list = list;
    this.maxLength = maxLength;
    this.view = view;
    this.on = {
      reply: onReply,
      react: onReact,
      edit: onEdit,
      delete: onDelete,
      versions: onVersions,
      jump: onJump,
      report: onReport,
    };
    this.picker = this.makePicker(reactions);
    this.closing = false;
    // seq -> {panel, editedAt}: the earlier versions asked for or shown, and as of which edit.
    this.versions = new Map();
    // An open editor -> where the focus goes when it closes, if not to its message.
    this.returnTo = new WeakMap();
    list.addEventListener("click", (event) => this.clicked(event));
    list.addEventListener("keydown", (event) => this.keyed(event));
    list.addEventListener("focusout", (event) => {
      if (this.picker.isConnected && !this.picker.contains(event.relatedTarget)) this.closePicker();
    });
    document.addEventListener("pointerdown", (event) => {
      if (this.picker.isConnected && !this.picker.parentElement.contains(event.target)) this.closePicker();
    });
  }

  clicked(event) {
    const button = event.target.closest("button[data-action]");
    if (!button || !this.list.contains(button)) return;
    const seq = seqOf(button);
    switch (button.dataset.action) {
      case "reply":
        this.on.reply(seq);
        break;
      case "react":
        if (this.picker.parentElement === button.closest(".bubble")) this.closePicker(button);
        else this.openPicker(button);
        break;
      case "pick":
        this.on.react(seq, button.dataset.emoji);
        this.closePicker(this.picker.parentElement.querySelector('[data-action="react"]'));
        break;
      case "toggle-reaction":
        this.on.react(seq, button.dataset.emoji);
        break;
      case "edit":
        this.startEdit(seq);
        break;
      case "save-edit":
        this.saveEdit(button.closest(".editor"));
        break;
      case "cancel-edit":
        this.closeEditor(button.closest(".message"));
        break;
      case "delete":
        // The native dialog: announced, keyboard-operable and modal for free.
        if (window.confirm("Delete this message? Everyone in the room will see “Message deleted” instead.")) {
          this.on.delete(seq);
        }
        break;
      case "versions":
        this.toggleVersions(seq);
        break;
      case "report": {
        // The native dialog again; what it asks is optional, and Cancel reports nothing.
        const reason = window.prompt("Report this message to the room's moderators. Why? (optional)", "");
        if (reason !== null) this.on.report(seq, reason.trim().slice(0, 500));
        break;
      }
      case "jump":
        this.on.jump(Number(button.dataset.target));
        break;
    }
  }

  keyed(event) {
    if (this.picker.contains(event.target)) this.pickerKey(event);
    else if (event.target.classList.contains("edit-input")) this.editorKey(event);
  }

  // The picker

  makePicker(reactions) {
    const picker = element("div", "picker");
    picker.setAttribute("role", "group");
    picker.setAttribute("aria-label", "Choose a reaction");
    for (const emoji of reactions) {
      const pick = element("button", "pick", emoji);
      pick.type = "button";
      pick.dataset.action = "pick";
      pick.dataset.emoji = emoji;
      pick.setAttribute("aria-label", `React with ${emoji}`);
      picker.append(pick);
    }
    return picker;
  }

  openPicker(button) {
    this.closePicker();
    const seq = seqOf(button);
    const mine = this.view(seq)?.mineReactions ?? new Set();
    for (const pick of this.picker.children) pick.setAttribute("aria-pressed", String(mine.has(pick.dataset.emoji)));
    button.closest(".bubble").append(this.picker);
    button.setAttribute("aria-expanded", "true");
    this.picker.firstElementChild?.focus({ preventScroll: true });
    this.picker.scrollIntoView({ block: "nearest" });
  }

  // Closes the picker; `returnTo`, if given, gets the focus (the React button it was opened from).
  closePicker(returnTo = null) {
    const bubble = this.picker.parentElement;
    // Removing the focused pick fires focusout, whose handler would close the picker again mid-removal.
    if (!bubble || this.closing) return;
    this.closing = true;
    bubble.querySelector('[data-action="react"]')?.setAttribute("aria-expanded", "false");
    returnTo?.focus();
    this.picker.remove();
    this.closing = false;
  }

  // Arrow keys move along the picks, Escape closes it.
  pickerKey(event) {
    const picks = [...this.picker.children];
    const index = picks.indexOf(event.target);
    const moves = { ArrowRight: index + 1, ArrowDown: index + 1, ArrowLeft: index - 1, ArrowUp: index - 1 };
    if (event.key === "Escape") {
      this.closePicker(this.picker.parentElement.querySelector('[data-action="react"]'));
    } else if (event.key in moves) {
      picks[(moves[event.key] + picks.length) % picks.length].focus();
    } else if (event.key === "Home" || event.key === "End") {
      picks.at(event.key === "Home" ? 0 : -1).focus();
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  }

  // The editor

  // Edits message `seq` in place: its body becomes a text box. Returns whether it could (it is shown). Saved or
  // cancelled, the focus goes to `returnTo` if given (the composer it was started from), or to the message.
  startEdit(seq, returnTo = null) {
    const item = this.list.querySelector(`.message[data-seq="${seq}"]`);
    const view = this.view(seq);
    if (!item || !view || view.deleted) return false;
    let editor = item.querySelector(".editor");
    if (!editor) {
      editor = element("form", "editor");
      const input = element("textarea", "edit-input");
      input.value = view.body;
      input.rows = Math.min(8, view.body.split("\n").length);
      input.setAttribute("aria-label", "Edit your message");
      const hint = element("p", "edit-hint", "Enter to save · Escape to cancel");
      hint.id = `edit-hint-${seq}`;
      input.setAttribute("aria-describedby", hint.id);
      const save = element("button", "", "Save");
      save.type = "button";
      save.dataset.action = "save-edit";
      const cancel = element("button", "link", "Cancel");
      cancel.type = "button";
      cancel.dataset.action = "cancel-edit";
      const row = element("div", "edit-row");
      row.append(hint, cancel, save);
      editor.append(input, row);
      editor.addEventListener("submit", (event) => event.preventDefault());
      this.returnTo.set(editor, returnTo);
      item.querySelector(".body").after(editor);
      item.classList.add("editing");
    }
    const input = editor.querySelector("textarea");
    input.focus({ preventScroll: true });
    input.setSelectionRange(input.value.length, input.value.length);
    editor.scrollIntoView({ block: "nearest" });
    return true;
  }

  editorKey(event) {
    const editor = event.target.closest(".editor");
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.saveEdit(editor);
    } else if (event.key === "Escape") {
      event.preventDefault();
      this.closeEditor(editor.closest(".message"));
    }
    // The list's arrow keys move between messages; inside the text box they move the caret.
    event.stopPropagation();
  }

  saveEdit(editor) {
    const item = editor.closest(".message");
    const seq = Number(item.dataset.seq);
    const input = editor.querySelector("textarea");
    const body = cleanBody(input.value);
    const invalid = !body || bodyLength(body) > this.maxLength;
    input.setAttribute("aria-invalid", String(invalid));
    if (invalid) {
      editor.querySelector(".edit-hint").textContent = body
        ? `Too long: at most ${this.maxLength} characters.`
        : "A message cannot be empty: delete it instead.";
      input.focus();
      return;
    }
    if (body !== this.view(seq)?.body) this.on.edit(seq, body);
    this.closeEditor(item);
  }

  closeEditor(item) {
    const editor = item?.querySelector(".editor");
    if (!editor) return;
    const focused = editor.contains(document.activeElement);
    editor.remove();
    item.classList.remove("editing");
    if (focused) (this.returnTo.get(editor) ?? item).focus();
  }

  // Earlier versions

  toggleVersions(seq) {
    const open = this.versions.get(seq);
    if (open) {
      this.closeVersions(seq);
      return;
    }
    const item = this.list.querySelector(`.message[data-seq="${seq}"]`);
    const panel = element("div", "versions");
    panel.id = `versions-${seq}`;
    panel.setAttribute("role", "region");
    panel.setAttribute("aria-label", "Earlier versions");
    panel.setAttribute("aria-busy", "true");
    panel.append(element("p", "versions-note", "Loading earlier versions…"));
    (item.querySelector(".editor") ?? item.querySelector(".body")).after(panel);
    this.versions.set(seq, { panel, editedAt: this.view(seq)?.edited_at });
    this.syncVersionsButton(item, seq);
    this.on.versions(seq);
  }

  // The answer to a versions request: the bodies the message had, oldest first; the last is the current one.
  showVersions(seq, versions) {
    const open = this.versions.get(seq);
    if (!open) return;
    const earlier = versions.slice(0, -1);
    const list = element("ol", "versions-list");
    for (const version of earlier) {
      const at = new Date(version.at);
      const time = element("time", "", timeLabel(at));
      time.dateTime = version.at;
      time.title = fullLabel(at);
      const entry = element("li");
      entry.append(time, " ", element("span", "version-body", version.body));
      list.append(entry);
    }
    const heading = element("p", "versions-note", earlier.length ? "Earlier versions" : "No earlier versions.");
    open.panel.replaceChildren(heading, ...(earlier.length ? [list] : []));
    open.panel.removeAttribute("aria-busy");
    open.panel.scrollIntoView({ block: "nearest" });
  }

  versionsFailed(seq, reason) {
    const open = this.versions.get(seq);
    if (!open) return;
    open.panel.replaceChildren(element("p", "versions-note", `Could not load the earlier versions: ${reason}`));
    open.panel.removeAttribute("aria-busy");
  }

  closeVersions(seq) {
    const open = this.versions.get(seq);
    if (!open) return;
    const item = open.panel.closest(".message");
    if (open.panel.contains(document.activeElement)) item.focus();
    open.panel.remove();
    this.versions.delete(seq);
    if (item) this.syncVersionsButton(item, seq);
  }

  syncVersionsButton(item, seq) {
    const button = item.querySelector(".edited");
    if (!button) return;
    button.setAttribute("aria-expanded", String(this.versions.has(seq)));
    button.setAttribute("aria-controls", `versions-${seq}`);
  }

  // The message was redrawn: a deleted one keeps no editor, picker or versions (its bodies are erased); an
  // edited one's open versions are out of date and are asked for again.
  refresh(seq, view) {
    const item = this.list.querySelector(`.message[data-seq="${seq}"]`);
    if (!item) return;
    if (view.deleted) {
      this.closeEditor(item);
      if (this.picker.parentElement === item.querySelector(".bubble")) {
        this.closePicker(this.picker.contains(document.activeElement) ? item : null);
      }
      this.closeVersions(seq);
    } else if (this.versions.has(seq) && this.versions.get(seq).editedAt !== view.edited_at) {
      this.closeVersions(seq);
      this.toggleVersions(seq);
    } else {
      this.syncVersionsButton(item, seq);
    }
  }
}
