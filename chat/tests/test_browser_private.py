"""Private rooms and direct messages in real headless Chromium: made in the lobby, joined through an invite link
in another browser, opened from the lobby's direct-message box. Skipped with a reason where Chromium is missing,
unless CHAT_REQUIRE_BROWSER=1 (see test_browser.py).
"""

from django.contrib.auth import get_user_model
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from chat.models import Membership, Role, Room, RoomKind

from .test_browser import BrowserTestCase, needs_chromium

PASSWORD = "a-long-test-password-2"


@needs_chromium
class PrivateRoomsInChromiumTests(BrowserTestCase):
    def setUp(self) -> None:
        super().setUp()
        users = get_user_model().objects
        for name in ("ada", "bob"):
            users.create_user(name, password=PASSWORD)

    def log_in(self, username: str, then: str = "/") -> webdriver.Chrome:
        browser = self.open_browser()
        browser.get(f"{self.live_server_url}/accounts/login/?next={then}")
        browser.find_element(By.NAME, "username").send_keys(username)
        browser.find_element(By.NAME, "password").send_keys(PASSWORD, Keys.ENTER)
        self.wait_until(browser, lambda: "Signed in as" in browser.page_source, "logged in")
        return browser

    def lobby_rooms(self, browser: webdriver.Chrome, list_id: str) -> list[str]:
        return self.script(
            browser,
            "return [...document.querySelectorAll(`#${arguments[0]} .room-row`)].map(r => r.dataset.room)",
            list_id,
        )

    def create_private_room(self, browser: webdriver.Chrome, name: str) -> None:
        browser.find_element(By.ID, "id_name").send_keys(name)
        browser.find_element(By.ID, "room-kind-private").click()
        browser.find_element(By.ID, "room-create-submit").click()
        self.wait_until(browser, lambda: browser.current_url.endswith(f"/chat/{name}/"), "the new room")
        self.wait_for_status(browser, "Connected")

    def invite_link(self, browser: webdriver.Chrome) -> str:
        browser.find_element(By.ID, "members-toggle").click()
        self.wait_until(browser, lambda: browser.find_element(By.ID, "invite-create").is_displayed(), "the panel")
        browser.find_element(By.ID, "invite-create").click()
        self.wait_until(browser, lambda: browser.find_element(By.ID, "invite-url").get_attribute("value"), "a link")
        return str(browser.find_element(By.ID, "invite-url").get_attribute("value"))

    def test_a_private_room_made_in_the_lobby_is_its_makers_and_nobody_elses(self) -> None:
        ada = self.log_in("ada")
        self.create_private_room(ada, "plans")
        self.assertEqual(Room.objects.get(name="plans").kind, RoomKind.PRIVATE)
        self.assertEqual(Membership.objects.get(room__name="plans").role, Role.OWNER)
        self.send(ada, "the secret plan")
        bob = self.log_in("bob")
        self.assertNotIn("plans", self.lobby_rooms(bob, "room-list"))
        bob.get(f"{self.live_server_url}/chat/plans/")
        self.assertNotIn("the secret plan", bob.page_source)
        self.assertIn("Not Found", bob.title + bob.page_source)

    def test_an_invite_link_lets_someone_in_another_browser_join_and_read_the_room(self) -> None:
        ada = self.log_in("ada")
        self.create_private_room(ada, "plans")
        self.send(ada, "welcome aboard")
        self.wait_for_message(ada, "welcome aboard")
        link = self.invite_link(ada)
        self.assertRegex(link, r"/invite/[A-Za-z0-9_-]+/$")

        bob = self.log_in("bob", then=link.removeprefix(self.live_server_url))
        self.wait_until(bob, lambda: bob.current_url.endswith("/chat/plans/"), "the room, through the link")
        self.wait_for_message(bob, "welcome aboard")
        self.send(bob, "thanks for having me")
        self.wait_for_message(ada, "thanks for having me")
        self.assertEqual(Membership.objects.get(room__name="plans", user__username="bob").role, Role.MEMBER)

    def test_a_guest_following_an_invite_is_asked_to_log_in_and_comes_back_to_the_room(self) -> None:
        ada = self.log_in("ada")
        self.create_private_room(ada, "plans")
        link = self.invite_link(ada)
        bob = self.open_browser()
        bob.get(link)
        self.wait_until(bob, lambda: "/accounts/login/" in bob.current_url, "the login page")
        bob.find_element(By.NAME, "username").send_keys("bob")
        bob.find_element(By.NAME, "password").send_keys(PASSWORD, Keys.ENTER)
        self.wait_until(bob, lambda: bob.current_url.endswith("/chat/plans/"), "the room after logging in")
        self.wait_for_status(bob, "Connected")

    def test_a_direct_message_from_the_lobby_reaches_the_other_person_and_shows_in_their_lobby(self) -> None:
        ada = self.log_in("ada")
        ada.find_element(By.ID, "dm-username").send_keys("bob", Keys.ENTER)
        self.wait_until(ada, lambda: "/chat/dm-" in ada.current_url, "the direct room")
        self.wait_for_status(ada, "Connected")
        self.send(ada, "psst, bob")
        room = Room.objects.get(kind=RoomKind.DIRECT)
        bob = self.log_in("bob")
        self.wait_until(bob, lambda: room.name in self.lobby_rooms(bob, "dm-list"), "the direct room in bob's lobby")
        self.assertIn("@ada", bob.find_element(By.ID, "dm-list").text)
        bob.find_element(By.CSS_SELECTOR, f'#dm-list [data-room="{room.name}"] a').click()
        self.wait_for_message(bob, "psst, bob")
