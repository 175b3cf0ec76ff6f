"""Unread state, read markers and mention notifications, in real headless Chromium against a live daphne server.

Skipped with a reason where Chromium is missing, unless CHAT_REQUIRE_BROWSER=1 (see test_browser.py).
"""

from unittest import mock

from django.contrib.auth import get_user_model
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from chat import services, views
from chat.models import Room

from .test_browser import BrowserTestCase, needs_chromium

PASSWORD = "unread-only-in-tests-4k"
# Counts the notifications each tab makes, in storage that every tab of the browser shares: headless Chromium
# shows none, so the page's calls are what can be observed. Installed before any script of the page runs.
COUNT_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  class Counted extends Real {
    constructor(title, options) {
      super(title, options);
      const count = Number(localStorage.getItem("test:notifications") ?? 0) + 1;
      localStorage.setItem("test:notifications", String(count));
      localStorage.setItem("test:last-notification", `${title}|${options?.body ?? ""}`);
    }
  }
  Object.defineProperty(Counted, "permission", { get: () => Real.permission });
  Counted.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Counted;
})();
"""
# The page as the browser reports a tab in the background, and back: a hidden tab of a headless browser cannot be
# read without the driver switching to it, which shows it.
SET_VISIBILITY = (
    "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => arguments[0]});"
    " document.dispatchEvent(new Event('visibilitychange'));"
)
# [room, [its visible badges]] in page order (a list: an object's keys would come back sorted).
BADGES = (
    "return [...document.querySelectorAll('#room-list .room-row')].map((row) => [row.dataset.room,"
    " [...row.querySelectorAll('.badge')].filter((b) => !b.hidden).map((b) => b.textContent)])"
)


@needs_chromium
class UnreadInChromiumTests(BrowserTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        # The lobby asks every second (patched before the live server is forked, so it has it too).
        cls.enterClassContext(mock.patch.object(views, "LOBBY_REFRESH_SECONDS", 1))
        super().setUpClass()

    def setUp(self) -> None:
        super().setUp()
        self.users = get_user_model().objects
        self.ada = self.users.create_user("ada", password=PASSWORD)

    def log_in(self, browser: webdriver.Chrome, username: str = "ada") -> webdriver.Chrome:
        browser.get(f"{self.live_server_url}/accounts/login/")
        browser.find_element(By.NAME, "username").send_keys(username)
        browser.find_element(By.NAME, "password").send_keys(PASSWORD, Keys.ENTER)
        self.wait_until(browser, lambda: "Signed in as" in browser.page_source, "logged in")
        return browser

    def post(self, room: str, body: str, author: str = "bob") -> int:
        """A message stored without a broadcast the live server would see: pages read it when they open."""
        room_row = Room.objects.get_or_create(name=room)[0]
        return services.message_create(room=room_row, author=author, body=body).message.seq

    def count_notifications(self, browser: webdriver.Chrome, *, grant: bool) -> None:
        """Count the notifications of the pages this tab loads from now on (the script is per tab, and harmless
        to a later test that reuses the browser); grant the permission, until the test ends."""
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_NOTIFICATIONS})
        if grant:
            permission = {"origin": self.live_server_url, "permissions": ["notifications"]}
            browser.execute_cdp_cmd("Browser.grantPermissions", permission)
            self.addCleanup(browser.execute_cdp_cmd, "Browser.resetPermissions", {})

    def badges(self, browser: webdriver.Chrome) -> dict[str, list[str]]:
        return dict(self.script(browser, BADGES))

    def test_reading_in_one_window_clears_the_unread_badge_in_the_other_windows_lobby(self) -> None:
        laptop = self.log_in(self.open_browser())
        phone = self.log_in(self.open_browser())
        self.post("news", "one")
        self.post("news", "two, @ada")
        phone.get(self.live_server_url)
        self.wait_until(phone, lambda: self.badges(phone) == {"news": ["@1", "2"]}, "the unread badges")

        self.open_room("news", laptop)

        self.wait_until(phone, lambda: self.badges(phone) == {"news": []}, "the badges cleared by the other window")

    def test_the_lobby_lists_rooms_that_mention_you_first(self) -> None:
        browser = self.log_in(self.open_browser())
        self.post("quiet", "about @ada")
        self.post("busy", "hello")
        browser.get(self.live_server_url)
        self.wait_until(browser, lambda: list(self.badges(browser)) == ["quiet", "busy"], "the mentioned room first")

    def test_the_new_messages_divider_lands_on_the_first_unread_after_a_reload(self) -> None:
        browser = self.log_in(self.open_browser())
        for index in range(3):
            self.post("divider", f"read {index}")
        self.open_room("divider", browser)
        self.wait_until(browser, lambda: self.read_seq("divider") == 3, "the marker stored")
        self.close_browser(browser)
        first = self.post("divider", "first unread")
        for index in range(40):
            self.post("divider", f"unread {index}")

        browser = self.log_in(self.open_browser())
        self.open_room("divider", browser)

        divider_on = "return document.querySelector('.message.first-unread')?.dataset.seq"
        self.wait_until(browser, lambda: self.script(browser, divider_on) == str(first), "the divider placed")
        in_view = (
            "const box = document.getElementById('unread-divider').getBoundingClientRect();"
            "const view = document.getElementById('scroller').getBoundingClientRect();"
            "return box.top >= view.top - 1 && box.bottom <= view.bottom + 1"
        )
        self.wait_until(browser, lambda: self.script(browser, in_view), "the page opened at the divider")
        self.assertEqual(self.text_of(browser, "unread-divider"), "New messages")

    def read_seq(self, room: str) -> int:
        from chat.models import ReadMarker

        marker = ReadMarker.objects.filter(room__name=room, who=f"user:{self.ada.pk}").first()
        return marker.seq if marker else 0

    def test_a_mention_while_the_tab_is_hidden_raises_one_notification_for_two_tabs(self) -> None:
        bob = self.open_room("ping")
        browser = self.log_in(self.open_browser())
        self.count_notifications(browser, grant=True)
        self.open_room("ping", browser)
        browser.switch_to.new_window("tab")
        self.count_notifications(browser, grant=False)
        self.open_room("ping", browser)
        browser.switch_to.new_window("tab")  # both room tabs hidden now
        browser.get(f"{self.live_server_url}/accounts/login/")
        count = "return Number(localStorage.getItem('test:notifications') ?? 0)"

        self.send(bob, "not for you")
        self.send(bob, "look @ada")

        self.wait_until(browser, lambda: self.script(browser, count) == 1, "one notification")
        last = self.script(browser, "return localStorage.getItem('test:last-notification')")
        self.assertEqual(last, f"{self.name_in(bob)} in #ping|look @ada")
        self.send(bob, "and now it is read")  # both tabs have had the time to notify again, had they been going to
        self.wait_until(bob, lambda: "and now it is read" in self.bodies(bob), "bob's last message")
        self.assertEqual(self.script(browser, count), 1)

    def test_while_the_tab_is_hidden_its_title_counts_the_unread_messages(self) -> None:
        bob = self.open_room("counted")
        browser = self.log_in(self.open_browser())
        self.open_room("counted", browser)
        browser.execute_script(SET_VISIBILITY, "hidden")
        self.send(bob, "one")
        self.send(bob, "two, @ada")
        self.wait_until(browser, lambda: browser.title == "(2) #counted · chatsite", "the count in the title")

        browser.execute_script(SET_VISIBILITY, "visible")

        self.wait_until(browser, lambda: browser.title == "#counted · chatsite", "the title without the count")
        self.wait_until(browser, lambda: self.read_seq("counted") == 2, "the marker moved once looked at")

    def test_notify_me_asks_for_permission_only_when_clicked(self) -> None:
        browser = self.log_in(self.open_browser())
        self.count_notifications(browser, grant=False)
        self.open_room("asking", browser)
        self.assertEqual(self.script(browser, "return Notification.permission"), "default")
        self.assertTrue(browser.find_element(By.ID, "notify-me").is_displayed())

    def test_a_link_from_the_mentions_page_opens_the_room_at_that_message(self) -> None:
        target = self.post("far", "way back, @ada")
        for index in range(80):
            self.post("far", f"later {index}")
        browser = self.log_in(self.open_browser())
        browser.get(f"{self.live_server_url}/mentions/")
        browser.find_element(By.CSS_SELECTOR, ".mention-link").click()
        self.wait_for_status(browser, "Connected")
        focused = "return document.activeElement?.dataset?.seq"
        self.wait_until(browser, lambda: self.script(browser, focused) == str(target), "the mentioned message shown")
