"""The room client's modules (static/chat/*.js), run in real headless Chromium: the rules that end-to-end tests
cannot force at will, such as a hole of 150 messages or a seq the server proves missing.

Each test imports a module into a page of the live server (no build step, no npm) and runs a few lines
against it. Skipped with a reason where Chromium is missing, unless CHAT_REQUIRE_BROWSER=1 (see test_browser.py).
"""

import json
import sys
import unicodedata

# RUN_IN_MODULE lives with BrowserTestCase.run_module; test_hostile.py imports it from here.
from .test_browser import RUN_IN_MODULE as RUN_IN_MODULE
from .test_browser import BrowserTestCase, needs_chromium

# A Timeline whose requests are recorded in `asked` as [before, limit].
TIMELINE = """
const asked = [];
const timeline = new Timeline({ request: (before, limit) => asked.push([before, limit]) > 0, pageSize: 50 });
const message = (seq) => ({ seq, author: "ada", body: `m${seq}`, sent_at: "2026-11-28T07:35:51Z", client_id: null });
const answer = (before, seqs, hasMore) => timeline.history({ before, messages: seqs.map(message), has_more: hasMore });
"""

# An Outbox for room "r", person "ada", whose frames are recorded in `sent` as their bodies.
OUTBOX = """
const sent = [];
const open = () => new Outbox({
  room: "r", you: "ada", maxLength: 20, send: (frame) => sent.push(frame.body) > 0, onChange: () => {},
});
const outbox = open();
"""


@needs_chromium
class ClientModulesInChromiumTests(BrowserTestCase):
    def test_the_timeline_drops_a_message_it_already_holds(self) -> None:
        result = self.run_module(
            "timeline.js", TIMELINE + "return [timeline.add(message(1)), timeline.add(message(1))];"
        )
        self.assertEqual(result, [True, False])

    def test_the_timeline_asks_for_the_hole_below_a_message_that_skipped_ahead(self) -> None:
        result = self.run_module(
            "timeline.js",
            TIMELINE
            + """
            timeline.add(message(1));
            timeline.add(message(4));
            const before = [...asked];
            const fresh = answer(4, [2, 3], true).map((m) => m.seq);
            return { before, fresh, through: timeline.through, after: asked };
            """,
        )
        self.assertEqual(result, {"before": [[4, 2]], "fresh": [2, 3], "through": 4, "after": [[4, 2]]})

    def test_the_timeline_fills_a_hole_bigger_than_a_page_one_page_at_a_time_from_the_top(self) -> None:
        result = self.run_module(
            "timeline.js",
            TIMELINE
            + """
            timeline.add(message(1));
            timeline.add(message(200));
            for (const [before, limit] of asked) {
              const seqs = Array.from({ length: limit }, (_, i) => before - limit + i);
              answer(before, seqs, true);
            }
            return { asked, through: timeline.through };
            """,
        )
        self.assertEqual(result, {"asked": [[200, 50], [150, 50], [100, 50], [50, 48]], "through": 200})

    def test_the_timeline_asks_for_what_a_pong_says_exists_beyond_the_last_message_held(self) -> None:
        result = self.run_module(
            "timeline.js",
            TIMELINE + "timeline.add(message(1)); timeline.add(message(2)); timeline.pong(5); return asked;",
        )
        self.assertEqual(result, [[6, 3]])

    def test_the_timeline_does_not_wait_for_a_seq_the_server_proved_missing(self) -> None:
        # Message 2 was deleted: the newest two before 4 are 1 and 3, and nothing is older.
        result = self.run_module(
            "timeline.js",
            TIMELINE
            + """
            timeline.add(message(1));
            timeline.add(message(4));
            answer(4, [1, 3], false);
            timeline.add(message(5));
            return { through: timeline.through, asked };
            """,
        )
        self.assertEqual(result, {"through": 5, "asked": [[4, 2]]})

    def test_the_timeline_resumes_after_the_last_contiguous_seq_not_the_highest(self) -> None:
        result = self.run_module(
            "timeline.js",
            TIMELINE + "timeline.add(message(1)); timeline.add(message(2)); timeline.add(message(5)); "
            "return timeline.resumeAfter;",
        )
        self.assertEqual(result, 2)

    def test_the_timeline_of_an_empty_room_resumes_after_0_and_a_fresh_one_joins_afresh(self) -> None:
        result = self.run_module(
            "timeline.js",
            TIMELINE
            + """
            const fresh = timeline.resumeAfter;
            timeline.hello(0);
            return [fresh, timeline.resumeAfter];
            """,
        )
        self.assertEqual(result, [None, 0])

    def test_the_timeline_pages_older_messages_down_to_the_first(self) -> None:
        result = self.run_module(
            "timeline.js",
            TIMELINE
            + """
            timeline.hello(100);
            for (let seq = 51; seq <= 100; seq += 1) timeline.add(message(seq));
            const first = timeline.loadOlder();
            const again = timeline.loadOlder();  // one page at a time
            answer(51, Array.from({ length: 50 }, (_, i) => i + 1), false);
            const more = timeline.loadOlder();
            return { first, again, asked, floor: timeline.floor, hasOlder: timeline.hasOlder, more };
            """,
        )
        self.assertEqual(
            result, {"first": True, "again": False, "asked": [[51, 50]], "floor": 1, "hasOlder": False, "more": False}
        )

    def test_the_outbox_sends_one_message_at_a_time_in_the_order_typed(self) -> None:
        result = self.run_module(
            "outbox.js",
            OUTBOX
            + """
            outbox.connect();
            const a = outbox.add("first");
            outbox.add("second");
            const before = [...sent];
            outbox.stored(a.clientId);
            return [before, sent];
            """,
        )
        self.assertEqual(result, [["first"], ["first", "second"]])

    def test_the_outbox_keeps_messages_until_they_are_stored_even_across_a_reload(self) -> None:
        result = self.run_module(
            "outbox.js",
            OUTBOX
            + """
            const a = outbox.add("first");
            outbox.add("second");
            const reloaded = open();
            reloaded.stored(a.clientId);
            return [...open().entries.values()].map((entry) => entry.body);
            """,
        )
        self.assertEqual(result, ["second"])

    def test_the_outbox_sends_again_what_was_in_flight_when_the_connection_dropped(self) -> None:
        result = self.run_module(
            "outbox.js",
            OUTBOX + 'outbox.connect(); outbox.add("lost?"); outbox.disconnect(); outbox.connect(); return sent;',
        )
        self.assertEqual(result, ["lost?", "lost?"])

    def test_the_outbox_sends_again_after_a_pause_when_rate_limited(self) -> None:
        result = self.run_module(
            "outbox.js",
            OUTBOX
            + """
            outbox.connect();
            outbox.add("hurry");
            outbox.refused({ code: "rate_limited", detail: "slow down" });
            const paused = [...sent];
            await new Promise((resolve) => setTimeout(resolve, 1100));
            return { paused, later: sent, state: [...outbox.entries.values()][0].state };
            """,
        )
        self.assertEqual(result, {"paused": ["hurry"], "later": ["hurry", "hurry"], "state": "sending"})

    def test_the_outbox_marks_a_refused_message_failed_with_the_reason_and_goes_on(self) -> None:
        result = self.run_module(
            "outbox.js",
            OUTBOX
            + """
            outbox.connect();
            outbox.add("bad");
            outbox.add("good");
            outbox.refused({ code: "bad_text", detail: "No control characters." });
            return { sent, entries: [...open().entries.values()].map((e) => [e.body, e.state, e.reason]) };
            """,
        )
        self.assertEqual(
            result,
            {
                "sent": ["bad", "good"],
                "entries": [["bad", "failed", "No control characters."], ["good", "pending", ""]],
            },
        )

    def test_the_outbox_resends_a_slow_mode_refusal_after_retry_after(self) -> None:
        result = self.run_module(
            "outbox.js",
            OUTBOX
            + """
            outbox.connect();
            outbox.add("again");
            outbox.refused({ code: "slow_mode", detail: "wait", retry_after: 1 });
            const paused = [...sent];
            await new Promise((resolve) => setTimeout(resolve, 1100));
            return { paused, later: sent };
            """,
        )
        self.assertEqual(result, {"paused": ["again"], "later": ["again", "again"]})

    def test_a_1012_close_reconnects_after_a_random_half_to_five_seconds_without_growing_the_backoff(self) -> None:
        result = self.run_module(
            "connection.js",
            """
            // A WebSocket that never connects; the test closes it with a code, as a server would.
            const sockets = [];
            window.WebSocket = class {
              constructor() { this.listeners = {}; sockets.push(this); }
              addEventListener(type, listener) { this.listeners[type] = listener; }
              close() {}
            };
            const waits = [];
            const realTimeout = window.setTimeout;
            // Timers are recorded, never run; 15 s is the hello timeout, not a retry.
            window.setTimeout = (fn, ms) => {
              if (ms !== 15000) waits.push(ms);
              return realTimeout(() => {}, 0);
            };
            const statuses = [];
            const connection = new RoomConnection({
              url: () => "ws://example.invalid/",
              onFrame: () => {},
              onStatus: (s) => statuses.push(s),
              onLost: () => {},
            });
            for (const random of [0, 0.999]) {
              Math.random = () => random;
              connection.connect();
              sockets.at(-1).listeners.close({ code: 1012 });
            }
            const attempts = connection.attempt;
            Math.random = () => 0;
            connection.connect();
            sockets.at(-1).listeners.close({ code: 1006 });
            window.setTimeout = realTimeout;
            return { waits, attempts, detail: statuses.find((s) => s.detail)?.detail };
            """,
        )
        restart_short, restart_long, backoff = result["waits"]
        self.assertEqual(restart_short, 500)
        self.assertAlmostEqual(restart_long, 5000, delta=10)
        self.assertEqual(result["attempts"], 0)  # a restart is no failure: the backoff starts from its first step
        self.assertEqual(backoff, 250)  # the first backoff step (500 ms ceiling, jittered down to its half)
        self.assertEqual(result["detail"], "Server restarting")

    def test_a_web_address_keeps_a_parenthesis_it_opened_but_not_the_sentences_punctuation(self) -> None:
        result = self.run_module(
            "render.js",
            """
            const p = document.createElement("p");
            appendBody(p, "see https://en.wikipedia.org/wiki/Rust_(language), or (https://example.com/x).");
            return [...p.querySelectorAll("a")].map((a) => a.textContent);
            """,
        )
        self.assertEqual(result, ["https://en.wikipedia.org/wiki/Rust_(language)", "https://example.com/x"])

    def test_a_mention_is_the_whole_name_with_or_without_at_and_never_part_of_an_address(self) -> None:
        result = self.run_module(
            "render.js",
            """
            const mention = mentionPattern("ada (guest)");
            return ["hi ada!", "hi @Ada", "adam", "ada-lovelace", "mail ada@example.com", "bob@ada.org"]
              .map((text) => [...text.matchAll(mention)].length);
            """,
        )
        self.assertEqual(result, [1, 1, 0, 0, 0, 0])

    def test_the_page_strips_and_counts_a_body_exactly_as_the_server_does(self) -> None:
        # Every character Python's str.strip() removes, and a few it keeps that JavaScript's trim() would not.
        spaces = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
        samples = [f"{space}x{space}" for space in [*spaces, "\ufeff", "\u200b", "\u180e"]]
        samples += ["e\u0301", "😀" * 3]
        counted = self.run_module("format.js", f"return {json.dumps(samples)}.map(bodyLength);")
        server = [len(unicodedata.normalize("NFC", sample).strip()) for sample in samples]
        self.assertEqual(dict(zip(samples, counted, strict=True)), dict(zip(samples, server, strict=True)))
