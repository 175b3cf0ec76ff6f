"""Edits, deletes, reactions and replies on the room page, in real headless Chromium against a live daphne server.

The folding rule (docs/protocol.md, "Folding entries") is checked on its own first, in static/chat/fold.js and
outbox.js; then end to end: what one person does, another sees live, a page opened later sees the same, changes
made offline go out once on reconnect, and a reply's quote leads to its target however far back it is.

Skipped with a reason where Chromium is missing, unless CHAT_REQUIRE_BROWSER=1 (see test_browser.py).
"""

import json
from typing import Any
from unittest import mock

from django.contrib.auth import get_user_model
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from chat import services
from chat.models import Kind, Message, Room

from .test_browser import RECONNECT_SECONDS, WAIT_SECONDS, BrowserTestCase, fill_room, needs_chromium
from .test_browser_room import MARKUP

PASSWORD = "moderator-only-in-tests-7q"
# The second of the default reactions, with its emoji presentation selector.
HEART = "\u2764\ufe0f"

# A MessageStates and frames to fold into it: message(seq, fields) and the three kinds of change.
STATES = """
const states = new MessageStates();
const message = (seq, fields = {}) => ({
  type: "message", seq, author: "ada", body: `m${seq}`, sent_at: "2026-11-28T07:35:51Z", client_id: null,
  reply_to: null, edited_at: null, deleted: false, reactions: {}, state_seq: seq, ...fields,
});
const edit = (seq, target, body) => ({ type: "edit", seq, target, body, by: "ada", edited_at: `t${seq}` });
const del = (seq, target) => ({ type: "delete", seq, target, by: "ada", deleted_at: `t${seq}` });
const react = (seq, target, user, on = true, emoji = "👍") => ({ type: "reaction", seq, target, emoji, user, on });
const state = (seq) => {
  const { body, deleted, reactions, state_seq, edited_at } = states.get(seq);
  return { body, deleted, reactions, state_seq, edited_at };
};
"""

# An Outbox for room "r", person "ada", whose frames are recorded in `sent` and refusals in `dropped`.
OUTBOX = """
const sent = [];
const dropped = [];
const outbox = new Outbox({
  room: "r", you: "ada", maxLength: 20, send: (frame) => sent.push(JSON.parse(JSON.stringify(frame))) > 0,
  onChange: () => {},
  onDropped: (change, reason, code) => dropped.push([change.kind, change.target, code]),
});
"""

# Each shown message as the page draws it: body, whether marked edited or deleted, the quote line, and the
# reaction chips as {emoji: [count, pressed, who (the title)]}.
SHOWN = """
return [...document.querySelectorAll('#messages .message')].map((item) => ({
  seq: +item.dataset.seq,
  body: item.querySelector('.body').textContent,
  edited: item.querySelector('.edited') !== null,
  deleted: item.classList.contains('deleted'),
  quote: item.querySelector('.quote')?.textContent ?? null,
  reactions: Object.fromEntries([...item.querySelectorAll('.chip')].map((chip) => [
    chip.dataset.emoji,
    [+chip.querySelector('.count').textContent, chip.getAttribute('aria-pressed') === 'true', chip.title],
  ])),
}));
"""


@needs_chromium
class FoldingInChromiumTests(BrowserTestCase):
    """fold.js and outbox.js on their own: the rule that makes every page converge on the log."""

    def test_a_change_applies_only_to_a_state_older_than_it_and_then_dates_the_state(self) -> None:
        result = self.run_module(
            "fold.js",
            STATES
            + """
            states.fold(message(1, { state_seq: 5, body: "as of 5" }));
            const stale = states.fold(edit(4, 1, "older than the state"));
            const fresh = states.fold(edit(6, 1, "newer"));
            return { stale, fresh, state: state(1) };
            """,
        )
        self.assertEqual(result["stale"], [])
        self.assertEqual(result["fresh"], [1])
        self.assertEqual(
            result["state"], {"body": "newer", "deleted": False, "reactions": {}, "state_seq": 6, "edited_at": "t6"}
        )

    def test_a_change_of_a_message_not_loaded_is_skipped_and_the_message_comes_with_it(self) -> None:
        result = self.run_module(
            "fold.js",
            STATES
            + """
            const skipped = states.fold(react(3, 1, "bob"));
            states.fold(message(1, { state_seq: 3, reactions: { "👍": ["bob"] } }));
            return { skipped, state: state(1) };
            """,
        )
        self.assertEqual(result["skipped"], [])
        self.assertEqual(result["state"]["reactions"], {"👍": ["bob"]})

    def test_a_page_read_before_a_change_it_overtook_gets_that_change_applied(self) -> None:
        result = self.run_module(
            "fold.js",
            STATES
            + """
            states.fold(react(3, 1, "bob"));  // live, while the history page holding 1 was on its way
            states.fold(message(1, { state_seq: 1 }));  // that page: read before seq 3 was committed
            return state(1);
            """,
        )
        self.assertEqual((result["reactions"], result["state_seq"]), ({"👍": ["bob"]}, 3))

    def test_an_older_copy_of_a_message_does_not_undo_the_changes_folded_since(self) -> None:
        result = self.run_module(
            "fold.js",
            STATES
            + """
            states.fold(message(1));
            states.fold(react(2, 1, "bob"));
            states.fold(message(1));  // its live broadcast, late
            return state(1);
            """,
        )
        self.assertEqual(result["reactions"], {"👍": ["bob"]})
        self.assertEqual(result["state_seq"], 2)

    def test_a_delete_empties_the_body_and_the_reactions_and_a_reaction_off_drops_an_emoji_nobody_is_on(self) -> None:
        result = self.run_module(
            "fold.js",
            STATES
            + """
            states.fold(message(1));
            states.fold(message(2));
            states.receive([react(3, 1, "bob"), react(4, 1, "cy", true, "🎉"), react(5, 1, "bob", false)], 5);
            states.receive([react(6, 2, "bob"), del(7, 2)], 7);
            return [state(1), state(2)];
            """,
        )
        self.assertEqual(result[0]["reactions"], {"🎉": ["cy"]})
        self.assertEqual(result[1], {"body": "", "deleted": True, "reactions": {}, "state_seq": 7, "edited_at": None})

    def test_changes_above_a_hole_wait_for_it_so_that_an_older_one_is_not_lost(self) -> None:
        # Reaction 4 arrives before reaction 3 (two server processes): folded at once, 4 would date the state
        # past 3, and 3 would then be skipped as already applied.
        result = self.run_module(
            "fold.js",
            STATES
            + """
            states.receive([message(1), message(2)], 2);
            const early = [...states.receive([react(4, 1, "cy")], 2)];
            const filled = [...states.receive([react(3, 1, "bob")], 4)];
            return { early, filled, state: state(1) };
            """,
        )
        self.assertEqual(result["early"], [])
        self.assertEqual(result["filled"], [1])
        self.assertEqual(result["state"]["reactions"], {"👍": ["bob", "cy"]})
        self.assertEqual(result["state"]["state_seq"], 4)

    def test_every_order_of_arrival_with_duplicates_ends_at_the_state_of_the_log(self) -> None:
        # The entries of one room, delivered in every order of the live part (each twice), with the timeline's
        # contiguous run growing as a real page's would: the same state every time.
        result = self.run_module(
            "fold.js",
            """
            const log = [
              { type: "message", seq: 1, author: "ada", body: "hi", sent_at: "x", reply_to: null, edited_at: null,
                deleted: false, reactions: {}, state_seq: 1 },
              { type: "reaction", seq: 2, target: 1, emoji: "👍", user: "bob", on: true },
              { type: "edit", seq: 3, target: 1, body: "hi all", edited_at: "t3" },
              { type: "reaction", seq: 4, target: 1, emoji: "👍", user: "cy", on: true },
              { type: "reaction", seq: 5, target: 1, emoji: "👍", user: "bob", on: false },
              { type: "edit", seq: 6, target: 1, body: "hello all", edited_at: "t6" },
            ];
            const without = (items, i) => [...items.slice(0, i), ...items.slice(i + 1)];
            const orders = (items) =>
              items.length <= 1 ? [items] : items.flatMap((x, i) => orders(without(items, i)).map((o) => [x, ...o]));
            const outcomes = new Set();
            for (const order of orders(log.slice(1))) {
              const states = new MessageStates();
              const held = new Set();
              const through = () => { let n = 0; while (held.has(n + 1)) n += 1; return n; };
              for (const frame of [log[0], ...order, ...order]) {
                held.add(frame.seq);
                states.receive([frame], through());
              }
              const { body, reactions, state_seq } = states.get(1);
              outcomes.add(JSON.stringify({ body, reactions, state_seq }));
            }
            return [...outcomes];
            """,
        )
        self.assertEqual(
            [json.loads(outcome) for outcome in result],
            [{"body": "hello all", "reactions": {"👍": ["cy"]}, "state_seq": 6}],
        )

    def test_a_quote_follows_the_edits_and_the_delete_of_a_target_that_is_not_loaded(self) -> None:
        result = self.run_module(
            "fold.js",
            STATES
            + """
            const quote = { author: "ada", body: "the original", deleted: false };
            states.fold(message(10, { reply_to: 2, quote }));
            const asSent = states.quote(10);
            const edited = states.fold(edit(11, 2, "the second version"));
            const afterEdit = states.quote(10);
            states.fold(edit(8, 2, "older than the reply: already in its quote"));
            const afterOld = states.quote(10);
            states.fold(del(12, 2));
            return { asSent, edited, afterEdit, afterOld, afterDelete: states.quote(10), loaded: states.has(2) };
            """,
        )
        self.assertEqual(result["asSent"], {"author": "ada", "body": "the original", "deleted": False})
        self.assertEqual(result["edited"], [10])
        self.assertEqual(result["afterEdit"], {"author": "ada", "body": "the second version", "deleted": False})
        self.assertEqual(result["afterOld"], result["afterEdit"])
        self.assertEqual(result["afterDelete"], {"author": "ada", "body": "", "deleted": True})
        self.assertFalse(result["loaded"])

    def test_the_outbox_sends_changes_in_order_with_their_client_ids_after_the_messages_before_them(self) -> None:
        result = self.run_module(
            "outbox.js",
            OUTBOX
            + """
            outbox.add("hello");
            outbox.change({ kind: "react", target: 3, emoji: "👍", on: true });
            outbox.change({ kind: "edit", target: 3, body: "fixed" });
            outbox.change({ kind: "delete", target: 4 });
            outbox.connect();
            for (let i = 0; i < 4; i += 1) outbox.stored(sent.at(-1).client_id, 10 + i);
            return { sent, settling: [...outbox.settling.values()].map((c) => [c.kind, c.seq]) };
            """,
        )
        frames = [{key: value for key, value in frame.items() if key != "client_id"} for frame in result["sent"]]
        self.assertEqual(
            frames,
            [
                {"type": "message", "body": "hello"},
                {"type": "react", "target": 3, "emoji": "👍", "on": True},
                {"type": "edit", "target": 3, "body": "fixed"},
                {"type": "delete", "target": 4},
            ],
        )
        self.assertEqual(len({frame["client_id"] for frame in result["sent"]}), 4)
        self.assertEqual(result["settling"], [["react", 11], ["edit", 12], ["delete", 13]])

    def test_the_outbox_drops_a_refused_change_and_says_so_but_retries_a_rate_limited_one(self) -> None:
        result = self.run_module(
            "outbox.js",
            OUTBOX
            + """
            outbox.connect();
            outbox.change({ kind: "edit", target: 3, body: "mine now" });
            outbox.change({ kind: "react", target: 4, emoji: "👍", on: true });
            outbox.refused({ code: "forbidden", detail: "Only its author can edit a message." });
            outbox.refused({ code: "rate_limited", detail: "Slow down." });
            await new Promise((resolve) => setTimeout(resolve, 1100));
            const stored = localStorage.getItem("chatsite:outbox:r:ada");
            localStorage.clear();
            return { sent: sent.map((frame) => frame.type), dropped, left: outbox.changes.length, stored };
            """,
        )
        self.assertEqual(result["sent"], ["edit", "react", "react"])
        self.assertEqual(result["dropped"], [["edit", 3, "forbidden"]])
        self.assertEqual(result["left"], 1)
        self.assertEqual([entry["kind"] for entry in json.loads(result["stored"]).values()], ["react"])


@needs_chromium
class EntriesInChromiumTests(BrowserTestCase):
    """What one person does to messages, the others see: live, after a reload, after being offline."""

    def tearDown(self) -> None:
        # Before the browsers are reset, which drops their console: a script error fails the test that caused it.
        errors = [
            entry["message"]
            for browser in self.browsers
            for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE" and entry["source"] == "javascript"
        ]
        super().tearDown()
        self.assertEqual(errors, [], "the page threw")

    # Reading the page

    def shown(self, browser: webdriver.Chrome) -> list[dict[str, Any]]:
        return self.script(browser, SHOWN)

    def shown_by_body(self, browser: webdriver.Chrome) -> dict[str, dict[str, Any]]:
        return {entry["body"]: entry for entry in self.shown(browser)}

    def seq_of(self, browser: webdriver.Chrome, body: str) -> int:
        self.wait_for_message(browser, body)
        return self.shown_by_body(browser)[body]["seq"]

    def item(self, browser: webdriver.Chrome, seq: int) -> WebElement:
        return browser.find_element(By.CSS_SELECTOR, f'#messages .message[data-seq="{seq}"]')

    def wait_for_shown(
        self, browser: webdriver.Chrome, seq: int, what: str, timeout: float = WAIT_SECONDS, **expected: Any
    ) -> None:
        def matches() -> bool:
            entry = next((e for e in self.shown(browser) if e["seq"] == seq), None)
            return entry is not None and all(entry[key] == value for key, value in expected.items())

        self.wait_until(browser, matches, f"message {seq}: {what} ({expected})", timeout)

    # Doing things, as a person does: point at the message, then use its action bar

    def act(self, browser: webdriver.Chrome, seq: int, action: str) -> None:
        item = self.item(browser, seq)
        ActionChains(browser).move_to_element(item).perform()
        button = item.find_element(By.CSS_SELECTOR, f'.message-actions [data-action="{action}"]')
        WebDriverWait(browser, WAIT_SECONDS).until(lambda _: button.is_displayed())
        button.click()

    def react(self, browser: webdriver.Chrome, seq: int, emoji: str) -> None:
        self.act(browser, seq, "react")
        self.item(browser, seq).find_element(By.CSS_SELECTOR, f'.picker [data-emoji="{emoji}"]').click()

    def edit(self, browser: webdriver.Chrome, seq: int, body: str) -> None:
        self.act(browser, seq, "edit")
        box = self.item(browser, seq).find_element(By.CSS_SELECTOR, ".edit-input")
        box.clear()
        box.send_keys(body, Keys.ENTER)

    def delete(self, browser: webdriver.Chrome, seq: int) -> None:
        self.act(browser, seq, "delete")
        WebDriverWait(browser, WAIT_SECONDS).until(expected_conditions.alert_is_present())
        browser.switch_to.alert.accept()

    def reply(self, browser: webdriver.Chrome, seq: int, body: str) -> None:
        self.act(browser, seq, "reply")
        self.wait_until(
            browser, lambda: self.text_of(browser, "reply-to").startswith("Replying to "), "the reply bar shown"
        )
        self.send(browser, body)

    def focused(self, browser: webdriver.Chrome) -> dict[str, Any]:
        return self.script(
            browser,
            "const e = document.activeElement;"
            "return { id: e.id, label: e.getAttribute('aria-label'), seq: e.closest('.message')?.dataset.seq,"
            " classes: e.className };",
        )

    # The tests

    def test_what_one_person_does_to_messages_the_other_sees_live_and_a_page_opened_later_the_same(self) -> None:
        alice = self.open_room("entries")
        bob = self.open_room("entries")
        carol = self.open_room("entries")
        carol.get("about:blank")  # closed during all that follows
        alice_name, bob_name = self.name_in(alice), self.name_in(bob)
        self.send(alice, "helo everyone")
        self.send(bob, "hi alice")
        self.send(alice, "this one will go")
        mine = self.seq_of(alice, "helo everyone")
        bobs = self.seq_of(alice, "hi alice")
        doomed = self.seq_of(alice, "this one will go")

        self.edit(alice, mine, "hello everyone")
        self.wait_for_shown(bob, mine, "the edit", body="hello everyone", edited=True)

        self.react(alice, bobs, "🎉")
        self.wait_for_shown(bob, bobs, "alice's reaction", reactions={"🎉": [1, False, alice_name]})
        self.react(bob, bobs, "🎉")
        self.wait_for_shown(alice, bobs, "both reactions", reactions={"🎉": [2, True, f"{alice_name}, {bob_name}"]})

        self.reply(alice, bobs, "glad you're here")
        reply = self.seq_of(bob, "glad you're here")
        self.wait_for_shown(bob, reply, "the quote", quote=f"↪{bob_name}hi alice")
        self.assertFalse(alice.find_element(By.ID, "reply-bar").is_displayed())  # gone once the reply is sent

        self.delete(alice, doomed)
        self.wait_for_shown(bob, doomed, "the tombstone", body="Message deleted", deleted=True, reactions={})
        self.assertEqual(self.item(bob, doomed).find_elements(By.CSS_SELECTOR, ".message-actions"), [])

        # The earlier versions, on request.
        self.item(bob, mine).find_element(By.CSS_SELECTOR, ".edited").click()
        self.wait_until(
            bob,
            lambda: "helo everyone" in self.text_of_css(bob, f'[data-seq="{mine}"] .versions-list'),
            "the earlier version shown",
        )

        # The page closed during all of it opens with the same state, down to who reacted with what.
        self.open_room("entries", carol)
        # Only whose chip is pressed differs: carol reacted to nothing.
        expected = [self.unpressed(entry) for entry in self.shown(bob)]
        self.wait_until(
            carol,
            lambda: [self.unpressed(entry) for entry in self.shown(carol)] == expected,
            "the third page shows what the second does",
        )
        self.assertEqual(
            self.shown_by_body(carol)["hi alice"]["reactions"], {"🎉": [2, False, f"{alice_name}, {bob_name}"]}
        )
        kinds = list(Message.objects.order_by("seq").values_list("kind", flat=True))
        self.assertEqual(
            kinds,
            [Kind.MESSAGE] * 3 + [Kind.EDIT, Kind.REACTION, Kind.REACTION, Kind.MESSAGE, Kind.DELETE],
        )

    def text_of_css(self, browser: webdriver.Chrome, selector: str) -> str:
        return self.script(browser, "return document.querySelector(arguments[0])?.textContent ?? ''", selector)

    @staticmethod
    def unpressed(entry: dict[str, Any]) -> dict[str, Any]:
        reactions = {emoji: [count, who] for emoji, (count, _, who) in entry["reactions"].items()}
        return {**entry, "reactions": reactions}

    def test_markup_in_a_quote_and_in_earlier_versions_is_shown_as_text(self) -> None:
        alice = self.open_room("entries-markup")
        bob = self.open_room("entries-markup")
        self.send(alice, MARKUP)
        seq = self.seq_of(alice, MARKUP)
        self.edit(alice, seq, f"{MARKUP} (again)")
        self.reply(bob, seq, "what was that?")
        self.wait_for_shown(alice, seq, "the edit", body=f"{MARKUP} (again)")
        self.item(bob, seq).find_element(By.CSS_SELECTOR, ".edited").click()
        self.wait_until(bob, lambda: self.text_of_css(bob, ".version-body") == MARKUP, "the earlier version")

        reply = self.seq_of(bob, "what was that?")
        self.wait_for_shown(bob, reply, "the quote, edited", quote=f"↪{self.name_in(alice)}{MARKUP} (again)")
        self.assertEqual(bob.find_elements(By.CSS_SELECTOR, "#messages img, #messages script"), [])
        self.assertEqual(bob.title, "#entries-markup · chatsite")

    def test_a_moderator_may_delete_anyone_s_message_and_others_may_not(self) -> None:
        get_user_model().objects.create_user("mod", password=PASSWORD, is_staff=True)
        Room.objects.create(name="moderated")  # the page offers moderation in a room that exists
        bob = self.open_room("moderated")
        self.send(bob, "spam spam spam")
        moderator = self.open_browser()
        moderator.get(f"{self.live_server_url}/accounts/login/")
        moderator.find_element(By.NAME, "username").send_keys("mod")
        moderator.find_element(By.NAME, "password").send_keys(PASSWORD, Keys.ENTER)
        self.wait_until(moderator, lambda: "Signed in as" in moderator.page_source, "logged in")
        self.open_room("moderated", moderator)
        carol = self.open_room("moderated")
        spam = self.seq_of(moderator, "spam spam spam")

        bar = "return [...arguments[0].querySelectorAll('.message-actions button')].map((b) => b.dataset.action)"
        self.assertEqual(self.script(carol, bar, self.item(carol, spam)), ["reply", "react", "report"])
        actions = ["reply", "react", "delete", "report"]
        self.assertEqual(self.script(moderator, bar, self.item(moderator, spam)), actions)
        delete = self.item(moderator, spam).find_element(By.CSS_SELECTOR, '[data-action="delete"]')
        self.assertEqual(delete.get_attribute("aria-label"), f"Delete {self.name_in(bob)}'s message")
        self.delete(moderator, spam)

        for browser in (bob, carol):
            self.wait_for_shown(browser, spam, "the moderator's delete", body="Message deleted", deleted=True)
        self.assertEqual(Message.objects.get(kind=Kind.DELETE).author, "mod")

    def test_a_reaction_and_an_edit_made_offline_go_out_once_on_reconnect(self) -> None:
        alice = self.open_room("offline-changes")
        bob = self.open_room("offline-changes")
        alice_name = self.name_in(alice)
        self.send(alice, "typo hre")
        self.send(bob, "nice weather")
        mine = self.seq_of(alice, "typo hre")
        bobs = self.seq_of(alice, "nice weather")

        self.set_offline(alice, True)
        self.wait_for_status(alice, "Offline")
        self.react(alice, bobs, "👍")
        self.edit(alice, mine, "typo here")
        # Shown at once, marked as not saved yet; nothing reached the server.
        self.wait_for_shown(alice, mine, "the edit, pending", body="typo here")
        self.assertIn("Saving…", self.item(alice, mine).text)
        self.assertEqual(
            self.item(alice, bobs).find_element(By.CSS_SELECTOR, ".chip").get_attribute("class"), "chip pending"
        )
        self.assertEqual(Message.objects.exclude(kind=Kind.MESSAGE).count(), 0)
        # Meanwhile someone else reacts too: alice's page learns it when it resumes.
        self.react(bob, mine, "😮")

        self.set_offline(alice, False)
        self.wait_for_shown(
            bob, bobs, "alice's reaction", timeout=RECONNECT_SECONDS, reactions={"👍": [1, False, alice_name]}
        )
        self.wait_for_shown(bob, mine, "alice's edit", body="typo here", edited=True)
        self.wait_for_shown(
            alice, mine, "bob's reaction after the resume", reactions={"😮": [1, False, self.name_in(bob)]}
        )
        self.wait_until(alice, lambda: "Saving…" not in self.item(alice, mine).text, "the edit saved")
        self.wait_until(
            alice,
            lambda: self.item(alice, bobs).find_element(By.CSS_SELECTOR, ".chip").get_attribute("class") == "chip",
            "the reaction saved",
        )
        changes = Message.objects.filter(kind__in=[Kind.EDIT, Kind.REACTION], author=alice_name)
        self.assertEqual(sorted(changes.values_list("kind", flat=True)), [Kind.EDIT, Kind.REACTION])
        self.assertTrue(all(changes.values_list("client_id", flat=True)))
        self.assertIsNone(self.stored_outbox(alice, "offline-changes"))

    def test_a_change_the_server_refuses_is_dropped_with_a_notice_that_is_announced(self) -> None:
        alice = self.open_room("refused-changes")
        bob = self.open_room("refused-changes")
        self.send(bob, "bob's own words")
        self.send(alice, "soon gone")
        bobs = self.seq_of(alice, "bob's own words")
        gone = self.seq_of(alice, "soon gone")
        self.delete(alice, gone)
        self.wait_for_shown(alice, gone, "the tombstone", deleted=True)

        # As a page could have left them: typed offline, before the message went or by a forged hand.
        self.set_outbox(
            alice,
            "refused-changes",
            {
                "c-1": {"kind": "react", "target": gone, "emoji": "👍", "on": True, "body": "", "created": 1},
                "c-2": {"kind": "edit", "target": bobs, "body": "not mine to change", "created": 2},
            },
        )
        alice.refresh()
        self.wait_for_status(alice, "Connected")
        alerts = "return [...document.querySelectorAll('#alerts .alert-line span')].map(e => e.textContent)"
        self.wait_until(alice, lambda: len(self.script(alice, alerts)) == 2, "two notices")
        self.assertEqual(
            self.script(alice, alerts),
            [
                "Your reaction was not saved: that message was deleted.",
                "Your edit was not saved: that message is not yours to change.",
            ],
        )
        self.assertEqual(alice.find_element(By.ID, "alerts").get_attribute("role"), "alert")
        self.assertIsNone(self.stored_outbox(alice, "refused-changes"))
        self.assertEqual(Message.objects.get(seq=bobs).body, "bob's own words")
        self.assertFalse(Message.objects.filter(kind=Kind.REACTION).exists())

    def test_a_quote_scrolls_to_its_target_loading_as_many_older_pages_as_it_takes(self) -> None:
        room = fill_room("far-back", 160)
        with mock.patch("chat.services.broadcast", new=mock.AsyncMock(return_value=True)):
            services.entry_create(
                services.draft(room=room, author="system", user=None, body="about that first one", reply_to=3)
            )
        alice = self.open_room("far-back")
        self.wait_until(alice, lambda: len(self.seqs(alice)) == 50, "the backlog shown")
        self.assertNotIn(3, self.seqs(alice))
        reply = self.shown_by_body(alice)["about that first one"]
        self.assertEqual(reply["quote"], "↪systemold message 3")

        self.item(alice, reply["seq"]).find_element(By.CSS_SELECTOR, ".quote").click()

        self.wait_until(alice, lambda: self.focused(alice)["seq"] == "3", "the target loaded and focused")
        in_view = (
            "const s = document.getElementById('scroller').getBoundingClientRect();"
            "const t = document.querySelector('[data-seq=\"3\"]').getBoundingClientRect();"
            "return t.top >= s.top && t.bottom <= s.bottom;"
        )
        self.wait_until(alice, lambda: self.script(alice, in_view), "the target in view")
        seqs = self.seqs(alice)
        self.assertEqual(seqs, list(range(seqs[0], 162)))  # every page down to it, none skipped
        self.assertLessEqual(seqs[0], 3)
        self.assertIn("flash", self.item(alice, 3).get_attribute("class"))

    def test_every_action_is_reachable_and_labelled_from_the_keyboard(self) -> None:
        alice = self.open_room("keyboard")
        bob = self.open_room("keyboard")
        alice_name = self.name_in(alice)
        self.send(bob, "from bob")
        self.send(alice, "from alce")
        mine = self.seq_of(alice, "from alce")
        box = alice.find_element(By.ID, "message-input")

        # Up in the empty composer edits the last message of yours; Escape gives up, Enter saves.
        box.send_keys(Keys.ARROW_UP)
        self.assertEqual(self.focused(alice)["classes"], "edit-input")
        alice.switch_to.active_element.send_keys(Keys.ESCAPE)
        self.assertEqual(self.focused(alice)["id"], "message-input")
        box.send_keys(Keys.ARROW_UP)
        editor = alice.switch_to.active_element
        editor.send_keys(Keys.BACKSPACE * 4, "alice", Keys.ENTER)
        self.assertEqual(self.focused(alice)["id"], "message-input")
        self.wait_for_shown(bob, mine, "the edit", body="from alice", edited=True)
        self.wait_until(alice, lambda: "Saving…" not in self.item(alice, mine).text, "the edit saved")

        # The list is one tab stop: its current message (the last), then that message's own buttons only.
        self.script(alice, "document.getElementById('scroller').focus()")
        labels = []
        for _ in range(8):
            alice.switch_to.active_element.send_keys(Keys.TAB)
            here = self.focused(alice)
            if here["id"] == "message-input":
                break
            labels.append((here["seq"], here["label"]))
        edited_label = self.item(alice, mine).find_element(By.CSS_SELECTOR, ".edited").get_attribute("aria-label") or ""
        self.assertEqual(
            labels,
            [
                (str(mine), None),
                (str(mine), edited_label),
                (str(mine), f"Reply to {alice_name}"),
                (str(mine), "React to your message"),
                (str(mine), "Edit your message"),
                (str(mine), "Delete your message"),
            ],
        )
        self.assertTrue(edited_label.startswith("Edited at "))

        # Up moves to the message before; its action bar shows while the focus is in it.
        alice.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)  # back on Delete
        for _ in range(5):
            alice.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
        self.assertEqual(self.focused(alice)["label"], None)  # the message itself
        alice.switch_to.active_element.send_keys(Keys.ARROW_UP)
        bobs = self.seq_of(alice, "from bob")
        self.assertEqual(self.focused(alice)["seq"], str(bobs))
        bar = self.item(alice, bobs).find_element(By.CSS_SELECTOR, ".message-actions")
        self.wait_until(alice, lambda: bar.value_of_css_property("opacity") == "1", "the action bar shown on focus")

        # React from the keyboard: the picker opens on the first reaction, arrows move, Enter picks.
        alice.switch_to.active_element.send_keys(Keys.TAB)
        alice.switch_to.active_element.send_keys(Keys.TAB)
        self.assertEqual(self.focused(alice)["label"], f"React to {self.name_in(bob)}'s message")
        alice.switch_to.active_element.send_keys(Keys.ENTER)
        self.assertEqual(self.focused(alice)["label"], "React with 👍")
        alice.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
        self.assertEqual(self.focused(alice)["label"], f"React with {HEART}")
        alice.switch_to.active_element.send_keys(Keys.ENTER)
        self.assertEqual(self.focused(alice)["label"], f"React to {self.name_in(bob)}'s message")
        self.wait_for_shown(bob, bobs, "the reaction", reactions={HEART: [1, False, alice_name]})
        chip = self.item(alice, bobs).find_element(By.CSS_SELECTOR, ".chip")
        self.wait_until(alice, lambda: chip.get_attribute("aria-pressed") == "true", "the chip marked as yours")
        self.assertEqual(chip.get_attribute("aria-label"), f"{HEART} 1, from {alice_name}")

        # The chip toggles it back; every button in the list has a name.
        chip.send_keys(Keys.ENTER)
        self.wait_for_shown(bob, bobs, "the reaction taken back", reactions={})
        unnamed = (
            "return [...document.querySelectorAll('#messages button')]"
            ".filter((b) => !b.getAttribute('aria-label') && !b.textContent.trim()).length"
        )
        self.assertEqual(self.script(alice, unnamed), 0)
        reactions = Message.objects.filter(kind=Kind.REACTION).order_by("seq").values_list("emoji", "added")
        self.assertEqual(list(reactions), [(HEART, True), (HEART, False)])
