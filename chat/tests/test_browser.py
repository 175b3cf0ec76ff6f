"""The room page in real headless Chromium against a live daphne server.

Skipped with a reason where Chromium or its driver is missing, unless CHAT_REQUIRE_BROWSER=1 (CI sets it), which
turns a missing browser into a failure.
"""

import os
import shutil
import unittest

from channels.testing import ChannelsLiveServerTestCase
from django.db import connections
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("CHAT_REQUIRE_BROWSER") == "1"
WAIT_SECONDS = 10


def start_chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=1000,800",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


@unittest.skipUnless(
    (CHROMIUM and CHROMEDRIVER) or REQUIRED,
    "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)
class RoomPageInChromiumTests(ChannelsLiveServerTestCase):
    serve_static = True

    @classmethod
    def setUpClass(cls) -> None:
        # The live server is a forked process: a SQLite handle open in this process would be shared with it,
        # and two processes writing through one handle corrupt it ("disk I/O error").
        connections.close_all()
        super().setUpClass()

    def setUp(self) -> None:
        super().setUp()
        self.browsers: list[webdriver.Chrome] = []

    def tearDown(self) -> None:
        for browser in self.browsers:
            browser.quit()
        super().tearDown()

    def open_room(self, room: str) -> webdriver.Chrome:
        browser = start_chromium()
        self.browsers.append(browser)
        browser.get(f"{self.live_server_url}/chat/{room}/")
        try:
            self.wait(browser).until(expected_conditions.text_to_be_present_in_element((By.ID, "status"), "Connected"))
        except TimeoutException:
            self.fail(f"the room never connected; browser log: {browser.get_log('browser')}")
        return browser

    def wait(self, browser: webdriver.Chrome) -> WebDriverWait:
        return WebDriverWait(browser, WAIT_SECONDS)

    def send(self, browser: webdriver.Chrome, text: str) -> None:
        box = browser.find_element(By.ID, "message-input")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)

    def wait_for_message(self, browser: webdriver.Chrome, text: str) -> None:
        self.wait(browser).until(
            lambda b: text in [e.text for e in b.find_elements(By.CSS_SELECTOR, "#messages li.message[data-seq] .body")]
        )

    def test_a_message_typed_in_one_window_appears_in_the_other_both_ways(self) -> None:
        alice = self.open_room("lobby")
        bob = self.open_room("lobby")

        self.send(alice, "hello from alice")
        self.wait_for_message(bob, "hello from alice")
        self.send(bob, "hi alice")
        self.wait_for_message(alice, "hi alice")

        bodies = [e.text for e in alice.find_elements(By.CSS_SELECTOR, "#messages li.message .body")]
        self.assertEqual(bodies, ["hello from alice", "hi alice"])

    def test_a_markup_body_is_shown_as_text_and_runs_nothing(self) -> None:
        alice = self.open_room("lobby")
        bob = self.open_room("lobby")
        payload = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'

        self.send(alice, payload)
        self.wait_for_message(bob, payload)

        self.assertEqual(bob.find_elements(By.CSS_SELECTOR, "#messages img, #messages script"), [])
        self.assertNotEqual(bob.title, "pwned")

    def test_a_reload_shows_the_history_and_the_room_keeps_going(self) -> None:
        alice = self.open_room("lobby")
        self.send(alice, "before reload")
        self.wait_for_message(alice, "before reload")

        alice.refresh()
        self.wait_for_message(alice, "before reload")
        bob = self.open_room("lobby")
        self.send(bob, "after reload")
        self.wait_for_message(alice, "after reload")
