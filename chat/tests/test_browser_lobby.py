"""The lobby in real headless Chromium against a live daphne server.

Skipped with a reason where Chromium is missing, unless CHAT_REQUIRE_BROWSER=1 (see test_browser.py).
"""

from unittest import mock

from selenium.webdriver.common.by import By

from chat import views
from chat.models import Room
from chat.rooms import normalize_room_name

from .test_browser import BrowserTestCase, needs_chromium

# Whether the browser's own check of the room-name input (its pattern) refuses each of the given names.
PATTERN_MISMATCH = (
    "const input = document.getElementById('id_name');"
    "return arguments[0].map(name => { input.value = name; return input.validity.patternMismatch; })"
)
ROWS = "return [...document.querySelectorAll('#room-list .room-row')].map(r => r.innerText.replace(/\\s+/g, ' '))"


@needs_chromium
class LobbyInChromiumTests(BrowserTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        # Refresh every second instead of every ten. Patched before the live server is forked, so it has it too.
        cls.enterClassContext(mock.patch.object(views, "LOBBY_REFRESH_SECONDS", 1))
        super().setUpClass()

    def rows(self, browser) -> list[str]:
        return self.script(browser, ROWS)

    def test_the_lobby_shows_a_new_room_and_who_is_in_it_without_a_reload(self) -> None:
        Room.objects.create(name="quiet")
        lobby = self.open_browser()
        lobby.get(self.live_server_url)
        self.script(lobby, "window.notReloaded = true")
        self.assertEqual(self.rows(lobby), ["#quiet 0 online no messages yet"])

        alice = self.open_room("busy")
        self.send(alice, "anyone here?")

        self.wait_until(
            lobby,
            # "1": the unread badge, alice's message.
            lambda: self.rows(lobby) == ["#busy 1 1 online active just now", "#quiet 0 online no messages yet"],
            "the lobby refreshed",
        )
        self.assertTrue(self.script(lobby, "return window.notReloaded"))

    def test_the_lobby_drops_someone_who_left_from_the_online_count(self) -> None:
        lobby = self.open_browser()
        alice = self.open_room("brief")
        lobby.get(self.live_server_url)
        self.wait_until(lobby, lambda: self.rows(lobby) == ["#brief 1 online no messages yet"], "alice counted")

        self.close_browser(alice)

        self.wait_until(lobby, lambda: self.rows(lobby) == ["#brief 0 online no messages yet"], "alice gone")

    def test_opening_a_room_from_the_lobby_creates_it_and_connects(self) -> None:
        browser = self.open_browser()
        browser.get(self.live_server_url)

        browser.find_element(By.ID, "id_name").send_keys("New-Room")
        browser.find_element(By.CSS_SELECTOR, "form[action='/rooms/'] button").click()

        self.wait_for_status(browser, "Connected")
        self.assertEqual(browser.current_url, f"{self.live_server_url}/chat/new-room/")
        self.assertTrue(Room.objects.filter(name="new-room").exists())

    def test_the_room_name_input_refuses_in_the_browser_exactly_the_names_the_server_refuses(self) -> None:
        # A pattern the browser cannot compile (with the v flag) is ignored: then nothing would be refused.
        names = ["general", "New-Room_2", "x", "A" * 64, "a" * 65, "bad.name", "a b", "a/b", "caf\u00e9", "\uff21", "-"]
        browser = self.open_browser()
        browser.get(self.live_server_url)

        refused = dict(zip(names, self.script(browser, PATTERN_MISMATCH, names), strict=True))

        self.assertEqual(refused, {name: normalize_room_name(name) is None for name in names})
