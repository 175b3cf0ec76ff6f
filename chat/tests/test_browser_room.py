"""What a person sees and does on the room page, in real headless Chromium against a live daphne server.

Skipped with a reason where Chromium is missing, unless CHAT_REQUIRE_BROWSER=1 (see test_browser.py).
"""

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from chat.models import Message

from .test_browser import BrowserTestCase, fill_room, needs_chromium

# What the page shows for a markup body must be exactly the text typed.
MARKUP = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'


@needs_chromium
class RoomPageInChromiumTests(BrowserTestCase):
    def test_a_markup_body_is_shown_as_text_and_runs_nothing(self) -> None:
        alice = self.open_room("markup")
        bob = self.open_room("markup")

        self.send(alice, MARKUP)
        self.wait_for_message(bob, MARKUP)

        self.assertEqual(bob.find_elements(By.CSS_SELECTOR, "#messages img, #messages script"), [])
        self.assertEqual(bob.title, "#markup · chatsite")

    def test_a_web_address_becomes_a_safe_link_and_other_schemes_stay_text(self) -> None:
        alice = self.open_room("links")
        bob = self.open_room("links")

        self.send(alice, "see https://example.com/a_(b)?q=1. not javascript:alert(1) nor data:text/html,hi")
        self.wait_for_message(bob, "see https://example.com/a_(b)?q=1. not javascript:alert(1) nor data:text/html,hi")

        links = bob.find_elements(By.CSS_SELECTOR, "#messages a")
        self.assertEqual(
            [(a.get_attribute("href"), a.text, a.get_attribute("rel"), a.get_attribute("target")) for a in links],
            [("https://example.com/a_(b)?q=1", "https://example.com/a_(b)?q=1", "noopener noreferrer", "_blank")],
        )

    def test_scrolling_to_the_top_loads_older_messages_without_moving_the_view(self) -> None:
        fill_room("history", 120)
        alice = self.open_room("history")
        self.wait_until(alice, lambda: self.seqs(alice) == list(range(71, 121)), "the newest 50 shown")
        position_of_71 = "return document.querySelector('[data-seq=\"71\"]').getBoundingClientRect().top"

        self.script(alice, "document.getElementById('scroller').scrollTop = 0")
        top_before = self.script(alice, position_of_71)
        self.wait_until(alice, lambda: self.seqs(alice) == list(range(21, 121)), "the page before them loaded")
        self.assertAlmostEqual(self.script(alice, position_of_71), top_before, delta=2)

        self.script(alice, "document.getElementById('scroller').scrollTop = 0")
        self.wait_until(alice, lambda: self.seqs(alice) == list(range(1, 121)), "the rest loaded")
        self.wait_until(
            alice, lambda: "This is the beginning of #history." in self.text_of(alice, "history-edge"), "the start"
        )

    def test_a_message_arriving_while_scrolled_up_shows_a_pill_instead_of_moving_the_view(self) -> None:
        fill_room("reading", 60)
        alice = self.open_room("reading")
        bob = self.open_room("reading")
        self.wait_until(alice, lambda: len(self.seqs(alice)) == 50, "the backlog shown")
        scroll_top = self.script(
            alice, "const s = document.getElementById('scroller'); s.scrollTop = 1000; return s.scrollTop"
        )

        self.send(bob, "while you were reading")
        self.wait_for_message(alice, "while you were reading")
        pill = alice.find_element(By.ID, "new-messages")
        self.wait_until(alice, pill.is_displayed, "the pill shown")
        self.assertEqual(pill.text, "1 new message ↓")
        self.assertEqual(self.script(alice, "return document.getElementById('scroller').scrollTop"), scroll_top)

        pill.click()
        self.wait_until(alice, lambda: not pill.is_displayed(), "the pill gone")
        at_bottom = (
            "const s = document.getElementById('scroller'); return s.scrollHeight - s.scrollTop - s.clientHeight"
        )
        self.assertLess(self.script(alice, at_bottom), 2)

    def test_a_new_message_keeps_the_view_at_the_bottom_when_it_was_there(self) -> None:
        fill_room("following", 60)
        alice = self.open_room("following")
        bob = self.open_room("following")

        self.send(bob, "latest")
        self.wait_for_message(alice, "latest")

        at_bottom = (
            "const s = document.getElementById('scroller'); return s.scrollHeight - s.scrollTop - s.clientHeight"
        )
        self.assertLess(self.script(alice, at_bottom), 2)
        self.assertFalse(alice.find_element(By.ID, "new-messages").is_displayed())

    def test_who_is_online_shows_in_the_other_window_until_they_close_it(self) -> None:
        alice = self.open_room("presence")
        bob = self.open_room("presence")
        bob_name = self.name_in(bob)
        online = "return [...document.querySelectorAll('#online .name')].map(e => e.textContent)"

        self.wait_until(
            alice, lambda: sorted(self.script(alice, online)) == sorted([self.name_in(alice), bob_name]), "both"
        )
        self.assertEqual(self.text_of(alice, "online-count"), "2")

        self.close_browser(bob)
        self.wait_until(alice, lambda: self.script(alice, online) == [self.name_in(alice)], "bob gone from the list")
        notices = "return [...document.querySelectorAll('#messages .notice span:first-child')].map(e => e.textContent)"
        self.assertIn(f"{bob_name} left", self.script(alice, notices))

    def test_someone_typing_shows_in_the_other_window_and_hides_a_few_seconds_after_they_stop(self) -> None:
        alice = self.open_room("typing")
        bob = self.open_room("typing")

        bob.find_element(By.ID, "message-input").send_keys("hel")
        self.wait_until(alice, lambda: self.text_of(alice, "typing") == f"{self.name_in(bob)} is typing…", "typing")
        self.wait_until(alice, lambda: self.text_of(alice, "typing") == "", "typing hidden", timeout=8)

    def test_the_tab_title_counts_messages_that_arrive_while_the_tab_is_hidden(self) -> None:
        alice = self.open_room("unread")
        bob = self.open_room("unread")
        room_tab = alice.current_window_handle

        alice.switch_to.new_window("tab")  # hides the room's tab
        self.send(bob, "one")
        self.send(bob, "two")

        def room_tab_title() -> str:
            targets = alice.execute_cdp_cmd("Target.getTargets", {})["targetInfos"]
            return next(t["title"] for t in targets if t["targetId"] == room_tab)

        self.wait_until(alice, lambda: room_tab_title() == "(2) #unread · chatsite", "the unread count in the title")
        alice.close()
        alice.switch_to.window(room_tab)
        self.wait_until(alice, lambda: alice.title == "#unread · chatsite", "the count cleared once seen")

    def test_a_mention_of_your_name_is_highlighted(self) -> None:
        alice = self.open_room("mention")
        bob = self.open_room("mention")
        alice_name = self.name_in(alice)

        self.send(bob, f"ping @{alice_name}, look")
        self.wait_for_message(alice, f"ping @{alice_name}, look")

        marks = alice.find_elements(By.CSS_SELECTOR, "#messages .message.mention mark")
        self.assertEqual([mark.text for mark in marks], [f"@{alice_name}"])
        self.assertEqual(bob.find_elements(By.CSS_SELECTOR, "#messages .mention"), [])

    def test_own_messages_are_marked_and_one_authors_run_of_messages_shares_a_header(self) -> None:
        alice = self.open_room("groups")
        bob = self.open_room("groups")
        self.send(alice, "first")
        self.wait_for_message(alice, "first")
        self.send(alice, "second")
        self.wait_for_message(alice, "second")
        self.send(bob, "third")
        self.wait_for_message(alice, "third")

        classes = "return [...document.querySelectorAll('#messages .message')].map(e => e.className)"
        self.assertEqual(self.script(alice, classes), ["message mine", "message mine continued", "message"])
        days = alice.find_elements(By.CSS_SELECTOR, "#messages .day")
        self.assertEqual([day.text for day in days], ["Today"])

    def test_shift_enter_starts_a_new_line_and_enter_sends(self) -> None:
        alice = self.open_room("keys")
        box = alice.find_element(By.ID, "message-input")

        box.send_keys("line one", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "line two")
        self.assertEqual(self.pending(alice), [])
        box.send_keys(Keys.ENTER)

        self.wait_for_message(alice, "line one\nline two")
        self.assertEqual(Message.objects.get().body, "line one\nline two")
        self.assertEqual(box.get_attribute("value"), "")

    def test_the_room_fits_a_narrow_phone_screen(self) -> None:
        alice = self.open_browser()
        alice.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {"width": 360, "height": 740, "deviceScaleFactor": 2, "mobile": True}
        )
        self.open_room("phone", alice)
        self.send(alice, "a long word: " + "x" * 200)
        self.wait_for_message(alice, "a long word: " + "x" * 200)

        self.assertLessEqual(self.script(alice, "return document.documentElement.scrollWidth"), 360)
        composer = "return document.getElementById('send').getBoundingClientRect().bottom"
        self.assertLessEqual(self.script(alice, composer), self.script(alice, "return innerHeight"))

    def test_the_room_follows_a_dark_colour_scheme(self) -> None:
        alice = self.open_browser()
        alice.execute_cdp_cmd(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
        )
        self.open_room("dark", alice)
        self.assertEqual(
            self.script(alice, "return getComputedStyle(document.body).backgroundColor"), "rgb(20, 23, 28)"
        )
