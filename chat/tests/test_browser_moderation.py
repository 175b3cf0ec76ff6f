"""Moderation on the room page in real headless Chromium: a moderator's form, and what the moderated person's
page says. Skipped with a reason where Chromium is missing, unless CHAT_REQUIRE_BROWSER=1 (see test_browser.py).
"""

from django.contrib.auth import get_user_model
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from chat.models import Membership, Report, Role, Room

from .test_browser import BrowserTestCase, needs_chromium

PASSWORD = "a-long-test-password-1"


@needs_chromium
class ModerationInChromiumTests(BrowserTestCase):
    def setUp(self) -> None:
        super().setUp()
        users = get_user_model().objects
        self.room = Room.objects.create(name="town")
        moderator = users.create_user("mod", password=PASSWORD)
        users.create_user("bob", password=PASSWORD)
        Membership.objects.create(room=self.room, user=moderator, role=Role.MODERATOR)

    def log_in(self, username: str) -> webdriver.Chrome:
        browser = self.open_browser()
        browser.get(f"{self.live_server_url}/accounts/login/")
        browser.find_element(By.NAME, "username").send_keys(username)
        browser.find_element(By.NAME, "password").send_keys(PASSWORD, Keys.ENTER)
        self.wait_until(browser, lambda: "Signed in as" in browser.page_source, "logged in")
        return self.open_room("town", browser)

    def moderate(self, browser: webdriver.Chrome, user: str, choice: str) -> None:
        self.wait_until(browser, lambda: browser.find_element(By.ID, "moderate-form").is_displayed(), "the form")
        browser.find_element(By.ID, "moderate-user").send_keys(user)
        Select(browser.find_element(By.ID, "moderate-action")).select_by_value(choice)
        browser.find_element(By.ID, "moderate-apply").click()

    def status(self, browser: webdriver.Chrome) -> str:
        return self.script(
            browser, "const s = document.getElementById('moderation-status'); return s.hidden ? '' : s.textContent"
        )

    def test_a_member_sees_no_moderation_form(self) -> None:
        bob = self.log_in("bob")
        self.wait_for_status(bob, "Connected")
        self.assertFalse(bob.find_element(By.ID, "moderation-tools").is_displayed())

    def test_a_moderator_mutes_someone_and_their_page_says_so_and_keeps_their_message(self) -> None:
        moderator = self.log_in("mod")
        bob = self.log_in("bob")
        self.wait_for_status(bob, "Connected")
        self.moderate(moderator, "bob", "mute-600")
        self.wait_until(bob, lambda: self.status(bob).startswith("You are muted in this room until"), "the banner")
        self.wait_until(moderator, lambda: "mod muted bob for 10 min" in moderator.page_source, "the notice")
        self.send(bob, "can anyone hear me?")
        self.wait_until(bob, lambda: "muted" in self.text_of(bob, "outbox"), "the refusal on the message")
        self.assertNotIn("can anyone hear me?", self.bodies(moderator))

    def test_a_muted_person_who_opens_the_room_is_told_at_once_and_unmuting_clears_it(self) -> None:
        moderator = self.log_in("mod")
        self.wait_for_status(moderator, "Connected")
        self.moderate(moderator, "bob", "mute")
        self.wait_until(moderator, lambda: "mod muted bob" in moderator.page_source, "the notice")
        bob = self.log_in("bob")
        self.wait_until(
            bob, lambda: self.status(bob) == "You are muted in this room: you can read, but not post.", "muted"
        )
        self.moderate(moderator, "bob", "unmute")
        self.wait_until(bob, lambda: self.status(bob) == "", "the banner gone")

    def test_slow_mode_is_shown_to_everyone_but_moderators(self) -> None:
        moderator = self.log_in("mod")
        bob = self.log_in("bob")
        self.wait_for_status(bob, "Connected")
        self.wait_until(moderator, lambda: moderator.find_element(By.ID, "slow-mode").is_displayed(), "the control")
        Select(moderator.find_element(By.ID, "slow-mode")).select_by_value("30")
        self.wait_until(bob, lambda: self.status(bob) == "Slow mode: one message every 30 s.", "slow mode shown")
        self.assertEqual(self.status(moderator), "")

    def test_a_kicked_person_is_told_they_have_no_access(self) -> None:
        moderator = self.log_in("mod")
        bob = self.log_in("bob")
        self.wait_for_status(bob, "Connected")
        self.moderate(moderator, "bob", "kick")
        self.wait_for_status(bob, "You do not have access to this room (any more).")

    def test_a_reader_reports_a_message_and_the_moderators_get_it(self) -> None:
        moderator = self.log_in("mod")
        self.send(moderator, "buy cheap watches at example.com")
        bob = self.log_in("bob")
        self.wait_for_message(bob, "buy cheap watches at example.com")
        item = self.script(
            bob,
            "return [...document.querySelectorAll('#messages .message')].find(m => m.textContent.includes('watches'))",
        )
        ActionChains(bob).move_to_element(item).perform()
        item.find_element(By.CSS_SELECTOR, '.message-actions [data-action="report"]').click()
        prompt = bob.switch_to.alert
        prompt.send_keys("spam")
        prompt.accept()
        self.wait_until(bob, lambda: "You reported the message" in bob.page_source, "the reporter told")
        report = Report.objects.get()
        self.assertEqual((report.by, report.reason, report.room.name), ("bob", "spam", "town"))
