"""The room page in real headless Chromium against a live daphne server: nothing typed is lost, nothing is shown twice.

Skipped with a reason where Chromium or its driver is missing, unless CHAT_REQUIRE_BROWSER=1 (CI sets it), which
turns a missing browser into a failure. BrowserTestCase, the live server and the helpers, is shared with
test_browser_room.py, test_browser_lobby.py, test_browser_client.py and test_browser_entries.py.
"""

import json
import logging
import os
import re
import shutil
import unittest
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any
from unittest import mock

from channels.testing import ChannelsLiveServerTestCase
from channels.testing.live import make_application, set_database_connection
from daphne.testing import DaphneProcess
from django.db import connections
from django.utils import timezone
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.wait import WebDriverWait

from chat import services
from chat.models import Message, Room

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("CHAT_REQUIRE_BROWSER") == "1"
WAIT_SECONDS = 10
# A client retries on its own backoff schedule (at most ~4 s apart after a short outage); allow for it.
RECONNECT_SECONDS = 20
POLL_SECONDS = 0.1

# Runs arguments[1], the body of an async function, with the named exports of the module at arguments[0] in
# scope, and hands back what it returns (or the error it throws, as {"error": ...}).
RUN_IN_MODULE = """
const [url, body, done] = arguments;
import(url)
  .then((module) => {
    const AsyncFunction = (async () => {}).constructor;
    return new AsyncFunction(...Object.keys(module), body)(...Object.values(module));
  })
  .then(done, (error) => done({ error: String(error) }));
"""

needs_chromium = unittest.skipUnless(
    (CHROMIUM and CHROMEDRIVER) or REQUIRED,
    "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)


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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def _quiet_setup(setup: Callable[[], None] | None) -> None:
    # The server process sets Django up again, which resets logging to INFO; the test runner wants warnings only.
    logging.getLogger("chat").setLevel(logging.WARNING)
    if setup is not None:
        setup()


class LiveServerProcess(DaphneProcess):
    """The forked daphne of ChannelsLiveServerTestCase, logging warnings only."""

    def __init__(self, host: str, get_application: Callable[[], Any], setup=None, port: int | None = None) -> None:
        super().__init__(host, get_application, setup=partial(_quiet_setup, setup), port=port)


class BrowserTestCase(ChannelsLiveServerTestCase):
    """A live server, Chromium windows and the helpers that drive the room page.

    Starting Chromium costs about a second, so a class keeps the browsers its tests used and hands them to the
    next test reset: one tab on about:blank (its page and socket gone), no cookies, no storage, no emulation.
    A browser that cannot be reset is quit; the rest are quit when the class ends.
    """

    serve_static = True
    ProtocolServerProcess = LiveServerProcess
    idle_browsers: list[webdriver.Chrome]

    @classmethod
    def setUpClass(cls) -> None:
        # The live server is a forked process: a SQLite handle open in this process would be shared with it,
        # and two processes writing through one handle corrupt it ("disk I/O error").
        connections.close_all()
        super().setUpClass()
        cls.idle_browsers = []
        cls.addClassCleanup(cls.quit_idle_browsers)

    @classmethod
    def quit_idle_browsers(cls) -> None:
        while cls.idle_browsers:
            cls.idle_browsers.pop().quit()

    def setUp(self) -> None:
        super().setUp()
        self.browsers: list[webdriver.Chrome] = []

    def tearDown(self) -> None:
        # Before the database is emptied: no page of this test may still be talking to the server then.
        for browser in self.browsers:
            try:
                self.reset(browser)
            except WebDriverException:
                browser.quit()
            else:
                self.idle_browsers.append(browser)
        super().tearDown()

    def reset(self, browser: webdriver.Chrome) -> None:
        first, *others = browser.window_handles
        for handle in others:
            browser.switch_to.window(handle)
            browser.close()
        browser.switch_to.window(first)
        browser.get("about:blank")
        self.set_offline(browser, False)
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
        browser.execute_cdp_cmd(
            "Storage.clearDataForOrigin", {"origin": self.live_server_url, "storageTypes": "local_storage"}
        )
        browser.get_log("browser")  # drop this test's console lines

    # The server

    @classmethod
    def stop_server(cls) -> None:
        """Kill the live server, as a crash would: its sockets close and nothing answers on its port."""
        cls._server_process.terminate()
        cls._server_process.join(WAIT_SECONDS)

    @classmethod
    def start_server(cls) -> None:
        """Start a new live server on the same port (a restart), unless one is running."""
        if cls._server_process.is_alive():
            return
        connections.close_all()
        get_application = partial(make_application, static_wrapper=cls.static_wrapper if cls.serve_static else None)
        cls._server_process = cls.ProtocolServerProcess(
            cls.host, get_application, setup=set_database_connection, port=cls._port
        )
        cls._server_process.start()
        if not cls._server_process.ready.wait(WAIT_SECONDS):
            raise RuntimeError("the live server did not start again")

    # Browsers and pages

    def open_browser(self) -> webdriver.Chrome:
        browser = self.idle_browsers.pop() if self.idle_browsers else start_chromium()
        self.browsers.append(browser)
        return browser

    def close_browser(self, browser: webdriver.Chrome) -> None:
        """Quit a browser during a test, as a person closing their window."""
        self.browsers.remove(browser)
        browser.quit()

    def open_room(self, room: str, browser: webdriver.Chrome | None = None) -> webdriver.Chrome:
        browser = browser or self.open_browser()
        browser.get(f"{self.live_server_url}/chat/{room}/")
        self.wait_for_status(browser, "Connected")
        return browser

    def name_in(self, browser: webdriver.Chrome) -> str:
        return browser.find_element(By.ID, "room").get_attribute("data-you") or ""

    def send(self, browser: webdriver.Chrome, text: str) -> None:
        box = browser.find_element(By.ID, "message-input")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)

    def script(self, browser: webdriver.Chrome, code: str, *args: Any) -> Any:
        return browser.execute_script(code, *args)

    def run_module(self, module: str, body: str) -> Any:
        """Runs ``body`` with the exports of static/chat/``module`` in scope, in a page of the live server that has
        no script of its own, and returns what it returns."""
        browser = self.open_browser()
        if not browser.current_url.startswith(self.live_server_url):
            browser.get(f"{self.live_server_url}/accounts/login/")
        result = browser.execute_async_script(RUN_IN_MODULE, f"/static/chat/{module}", body)
        if isinstance(result, dict) and "error" in result:
            self.fail(result["error"])
        return result

    def bodies(self, browser: webdriver.Chrome) -> list[str]:
        """The stored messages shown, in page order."""
        return self.script(
            browser, "return [...document.querySelectorAll('#messages .message .body')].map(e => e.textContent)"
        )

    def seqs(self, browser: webdriver.Chrome) -> list[int]:
        return self.script(
            browser, "return [...document.querySelectorAll('#messages .message')].map(e => +e.dataset.seq)"
        )

    def pending(self, browser: webdriver.Chrome) -> list[str]:
        """The outbox: messages typed and not yet stored, with their state lines."""
        return self.script(
            browser,
            "return [...document.querySelectorAll('#outbox .message')]"
            ".map(e => e.querySelector('.body').textContent + ' | ' + e.querySelector('.state').textContent)",
        )

    def text_of(self, browser: webdriver.Chrome, element_id: str) -> str:
        """The element's text, or "" while the page that has it is still loading (after a click that navigates)."""
        return self.script(browser, "return document.getElementById(arguments[0])?.textContent ?? ''", element_id)

    def outbox_key(self, browser: webdriver.Chrome, room: str) -> str:
        return f"chatsite:outbox:{room}:{self.name_in(browser)}"

    def set_outbox(self, browser: webdriver.Chrome, room: str, entries: dict[str, dict[str, Any]]) -> None:
        """Put entries in the room's stored outbox, as a page would have left them (it reads them on load)."""
        self.script(
            browser,
            "localStorage.setItem(arguments[0], arguments[1])",
            self.outbox_key(browser, room),
            json.dumps(entries),
        )

    def stored_outbox(self, browser: webdriver.Chrome, room: str) -> str | None:
        return self.script(browser, "return localStorage.getItem(arguments[0])", self.outbox_key(browser, room))

    def set_offline(self, browser: webdriver.Chrome, offline: bool) -> None:
        """Chromium's network emulation: new connections fail and the page gets an offline/online event.

        It does not cut a WebSocket that is already open; the page closes its own when told it is offline.
        """
        browser.execute_cdp_cmd("Network.enable", {})
        conditions = {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)

    # Waiting

    def wait_until(
        self, browser: webdriver.Chrome, condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS
    ) -> None:
        try:
            WebDriverWait(browser, timeout, poll_frequency=POLL_SECONDS).until(lambda _: condition())
        except TimeoutException:
            self.fail(f"not true within {timeout} s: {what}\n{self.describe(browser)}")

    def wait_for_status(self, browser: webdriver.Chrome, text: str, timeout: float = WAIT_SECONDS) -> None:
        self.wait_until(browser, lambda: text in self.text_of(browser, "status"), f"status shows {text!r}", timeout)

    def wait_for_message(self, browser: webdriver.Chrome, text: str, timeout: float = WAIT_SECONDS) -> None:
        self.wait_until(browser, lambda: text in self.bodies(browser), f"message {text!r} shown", timeout)

    def describe(self, browser: webdriver.Chrome) -> str:
        try:
            return (
                f"status={self.text_of(browser, 'status')!r} messages={self.bodies(browser)!r} "
                f"outbox={self.pending(browser)!r} console={browser.get_log('browser')!r}"
            )
        except WebDriverException as exc:
            return f"(page state unavailable: {exc.msg})"


def store_unannounced(room_name: str, body: str, *, author: str = "system", client_id: str | None = None) -> Message:
    """Store a message through the one write path but drop its broadcast, as a channel layer may.

    No open page is told about it; a page learns of it only from the log (history, a resume, a pong's last_seq).
    """
    room, _ = Room.objects.get_or_create(name=room_name)
    with mock.patch("chat.services.broadcast", new=mock.AsyncMock(return_value=True)) as broadcast:
        message = services.message_create(room=room, author=author, body=body, client_id=client_id).message
    if not broadcast.called:
        raise AssertionError("message_create no longer broadcasts through chat.services.broadcast")
    return message


def fill_room(room_name: str, count: int) -> Room:
    """A room whose log already holds ``count`` messages, "old message 1" to "old message N", a minute apart."""
    room = Room.objects.create(name=room_name, last_seq=count)
    start = timezone.now() - timedelta(minutes=count)
    Message.objects.bulk_create(
        Message(room=room, seq=seq, author="system", body=f"old message {seq}", created=start + timedelta(minutes=seq))
        for seq in range(1, count + 1)
    )
    return room


@needs_chromium
class DeliveryInChromiumTests(BrowserTestCase):
    """Nothing typed is lost and nothing is shown twice: across windows, reloads, outages and dropped broadcasts."""

    def test_a_message_typed_in_one_window_appears_in_the_other_both_ways(self) -> None:
        alice = self.open_room("lobby")
        bob = self.open_room("lobby")

        self.send(alice, "hello from alice")
        self.wait_for_message(bob, "hello from alice")
        self.send(bob, "hi alice")
        self.wait_for_message(alice, "hi alice")

        self.assertEqual(self.bodies(alice), ["hello from alice", "hi alice"])
        self.assertEqual(self.bodies(bob), ["hello from alice", "hi alice"])

    def test_a_reload_shows_the_history_and_the_room_keeps_going(self) -> None:
        alice = self.open_room("lobby")
        self.send(alice, "before reload")
        self.wait_for_message(alice, "before reload")

        alice.refresh()
        self.wait_for_status(alice, "Connected")
        self.wait_for_message(alice, "before reload")
        bob = self.open_room("lobby")
        self.send(bob, "after reload")
        self.wait_for_message(alice, "after reload")
        self.assertEqual(self.bodies(alice), ["before reload", "after reload"])

    def test_messages_typed_while_the_server_is_down_are_pending_then_delivered_exactly_once(self) -> None:
        self.addCleanup(self.start_server)
        alice = self.open_room("outage")
        bob = self.open_room("outage")
        self.send(alice, "before the outage")
        self.wait_for_message(bob, "before the outage")

        self.stop_server()
        self.wait_for_status(alice, "Reconnecting")
        typed = ["typed while the server was down", "and a second one"]
        for text in typed:
            self.send(alice, text)
        self.wait_until(
            alice,
            lambda: [line.split(" | ")[0] for line in self.pending(alice)] == typed,
            "both messages shown pending",
        )
        self.assertEqual(Message.objects.filter(body__in=typed).count(), 0)

        self.start_server()
        self.wait_until(
            bob, lambda: self.bodies(bob)[-2:] == typed, "the other window got both", timeout=RECONNECT_SECONDS
        )
        self.wait_until(alice, lambda: self.pending(alice) == [], "the outbox emptied", timeout=RECONNECT_SECONDS)
        expected = ["before the outage", *typed]
        # The ack may come before the sender's own copy (through Redis, it often does): the copy is polled for.
        self.wait_until(alice, lambda: self.bodies(alice) == expected, "alice's own copies")
        self.assertEqual(self.bodies(bob), expected)
        self.assertEqual(self.seqs(bob), [1, 2, 3])
        self.assertEqual(list(Message.objects.order_by("seq").values_list("body", flat=True)), expected)

    def test_the_outbox_survives_a_reload_while_offline(self) -> None:
        self.addCleanup(self.start_server)
        alice = self.open_room("offline")
        self.set_offline(alice, True)
        self.wait_for_status(alice, "Offline")
        self.send(alice, "typed offline")
        self.wait_until(alice, lambda: self.pending(alice) == ["typed offline | Waiting for connection…"], "pending")

        # Chromium's offline emulation lets a page that is being reloaded open one more socket, which a real
        # offline browser could not: the server is down across the reload too.
        self.stop_server()
        alice.refresh()  # the browser's error page: nothing of the room's page is left
        self.assertEqual(Message.objects.filter(body="typed offline").count(), 0)
        self.start_server()
        self.set_offline(alice, False)
        self.open_room("offline", alice)

        self.wait_until(alice, lambda: self.bodies(alice) == ["typed offline"], "the message was delivered")
        self.wait_until(alice, lambda: self.pending(alice) == [], "the outbox emptied")
        self.assertEqual(Message.objects.filter(body="typed offline").count(), 1)
        self.assertIsNone(self.stored_outbox(alice, "offline"))

    def test_a_message_stored_whose_ack_was_lost_is_shown_once_after_a_reload(self) -> None:
        alice = self.open_room("lost-ack")
        client_id = "5f0c7a34-9d1e-4c41-8a5f-0c2b3f8a9e11"
        store_unannounced("lost-ack", "stored, ack lost", author=self.name_in(alice), client_id=client_id)
        self.set_outbox(alice, "lost-ack", {client_id: {"body": "stored, ack lost", "created": 1, "state": "pending"}})

        alice.refresh()
        self.wait_for_status(alice, "Connected")
        self.wait_until(alice, lambda: self.pending(alice) == [], "the outbox emptied")
        self.assertEqual(self.bodies(alice), ["stored, ack lost"])
        self.assertEqual(Message.objects.filter(client_id=client_id).count(), 1)
        self.assertIsNone(self.stored_outbox(alice, "lost-ack"))

    def test_a_message_whose_broadcast_was_lost_is_fetched_when_the_next_one_reveals_the_gap(self) -> None:
        alice = self.open_room("gap")
        bob = self.open_room("gap")
        self.send(bob, "one")
        self.wait_for_message(alice, "one")

        store_unannounced("gap", "two, never broadcast")
        self.send(bob, "three")

        self.wait_until(
            alice, lambda: self.bodies(alice) == ["one", "two, never broadcast", "three"], "the gap was filled"
        )
        self.assertEqual(self.seqs(alice), [1, 2, 3])

    def test_a_message_whose_broadcast_was_lost_at_the_end_is_fetched_when_the_tab_is_shown_again(self) -> None:
        alice = self.open_room("tail")
        room_tab = alice.current_window_handle
        store_unannounced("tail", "nothing came after me")

        # Another tab hides the room's; coming back makes the page check the connection with a ping, whose
        # pong tells the room's last seq.
        alice.switch_to.new_window("tab")
        alice.close()
        alice.switch_to.window(room_tab)

        self.wait_until(alice, lambda: self.bodies(alice) == ["nothing came after me"], "the missed message shown")

    def test_going_offline_shows_it_and_coming_back_online_reconnects_at_once(self) -> None:
        alice = self.open_room("network")
        self.set_offline(alice, True)
        self.wait_for_status(alice, "Offline")
        self.assertTrue(alice.find_element(By.ID, "reconnect").is_displayed())
        # Failed attempts push the next one back; wait until it is at least 3 s away.
        self.wait_until(alice, lambda: self.retry_in(alice) >= 3, "the backoff grew")

        self.set_offline(alice, False)
        self.wait_for_status(alice, "Connected", timeout=1.5)

    def retry_in(self, browser: webdriver.Chrome) -> int:
        """The seconds until the next attempt, as the page counts them down."""
        found = re.search(r"(\d+) s", self.text_of(browser, "status-countdown"))
        return int(found.group(1)) if found else 0

    def test_a_message_the_server_refuses_says_why_and_can_be_edited(self) -> None:
        alice = self.open_room("refused")
        self.set_outbox(alice, "refused", {"c-1": {"body": "a bell \u0007 rings", "created": 1, "state": "pending"}})

        alice.refresh()
        self.wait_until(
            alice,
            lambda: (
                self.pending(alice)
                == [
                    "a bell \u0007 rings | Not sent: The message contains a control character or an invalid code point."
                ]
            ),
            "the refusal and its reason shown",
        )
        alice.find_element(By.CSS_SELECTOR, "#outbox button[data-action='edit']").click()

        self.assertEqual(alice.find_element(By.ID, "message-input").get_attribute("value"), "a bell \u0007 rings")
        self.assertEqual(self.pending(alice), [])
        self.assertIsNone(self.stored_outbox(alice, "refused"))

    def test_a_kept_message_over_the_limit_says_why_and_can_be_discarded(self) -> None:
        alice = self.open_room("too-long")
        too_long = "x" * 2001
        self.set_outbox(alice, "too-long", {"c-1": {"body": too_long, "created": 1, "state": "pending"}})

        alice.refresh()
        self.wait_until(
            alice,
            lambda: self.pending(alice) == [f"{too_long} | Not sent: The message is longer than 2000 characters."],
            "the refusal and its reason shown",
        )
        alice.find_element(By.CSS_SELECTOR, "#outbox button[data-action='discard']").click()

        self.assertEqual(self.pending(alice), [])
        self.assertEqual(alice.find_element(By.ID, "message-input").get_attribute("value"), "")
        self.assertIsNone(self.stored_outbox(alice, "too-long"))
        self.assertEqual(Message.objects.count(), 0)

    def test_a_message_over_the_limit_cannot_be_sent_and_the_counter_says_so(self) -> None:
        alice = self.open_room("limit")
        box = alice.find_element(By.ID, "message-input")
        # Typing 2001 keys one by one is slow; set the text and fire the input event the page listens to.
        self.script(
            alice, "arguments[0].value = '😀'.repeat(2001); arguments[0].dispatchEvent(new Event('input'))", box
        )
        box.send_keys(Keys.ENTER)

        self.assertEqual(self.text_of(alice, "counter"), "2001 / 2000")
        self.assertFalse(alice.find_element(By.ID, "send").is_enabled())
        self.assertEqual(self.pending(alice), [])
        box.send_keys(Keys.BACKSPACE)  # one emoji is one character, as the server counts
        self.assertEqual(self.text_of(alice, "counter"), "2000 / 2000")
        box.send_keys(Keys.ENTER)
        self.wait_until(alice, lambda: len(self.bodies(alice)) == 1, "the message at the limit was sent")
