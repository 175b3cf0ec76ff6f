"""Regenerate the README screenshots: the lobby, a busy room, what entries do to messages (reactions, a reply,
an edit, a delete), a private room with its members panel and a direct message, light and dark, in headless
Chromium.

Run from the repository root:

    .venv/bin/python docs/screenshots/make_screenshots.py

It serves chatsite from a throwaway SQLite database on a free port, seeds yesterday's part of a conversation
through the one write path (chat.services), then has three people log in and chat through the real pages.
Needs chromium and chromedriver, as the browser tests do, and an emoji font for the reactions
(apt-get install fonts-noto-color-emoji).
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
PEOPLE = ("ada", "grace", "linus")
PASSWORD = "screenshots-only-9f3k"  # noqa: S105 - a throwaway database, deleted afterwards
WIDTH, HEIGHT = 1200, 900
LOBBY_HEIGHT = 400

YESTERDAY = [
    ("grace", "Morning! Did the reconnect fix land?"),
    ("linus", "Merged last night. Kill the server mid-conversation and nothing is lost."),
    ("ada", "Tried it: turned the wifi off, typed three messages, turned it back on."),
    ("ada", "All three arrived, once each, in order."),
    ("grace", "That's the outbox doing its job."),
]
TODAY = [
    ("linus", "Release notes draft is up: https://example.com/chatsite/releases/0.3 (comments welcome)"),
    ("grace", "Looks good. Two nits:\n• mention that the lobby refreshes itself\n• screenshots in the README"),
    ("ada", "I'll take the screenshots."),
]
LIVE = [
    ("grace", "@ada thanks! Light and dark, please."),
    ("linus", "And <script>alert('hi')</script> still shows up as plain text, right?"),
    ("ada", "Right: message bodies only ever become text nodes."),
]
# The entries scene: what is said, then what is done to it.
TAG = "Tagging 0.3 at 15:00 unless someone objects."
WRONG_ROOM = "lunch at 12?"
CHECKLIST = "Deploy checklist is in the wiki"
CHECKLIST_EDITED = "Deploy checklist is in the wiki: https://example.com/chatsite/wiki/deploy"
REPLY = "No objection. I'll write the announcement."


def setup_django(database: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def seed() -> None:
    """People, rooms and yesterday's messages; today's come from the browsers."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from chat import services
    from chat.models import Message, Room

    for name in PEOPLE:
        get_user_model().objects.create_user(name, password=PASSWORD)
    now = timezone.localtime()
    general = services.room_get_or_create("general")
    yesterday = now.replace(hour=16, minute=2) - timedelta(days=1)
    today = now - timedelta(minutes=len(TODAY) * 3 + 5)
    for index, (author, body) in enumerate(YESTERDAY):
        post(general, author, body, yesterday + timedelta(minutes=index * 2))
    for index, (author, body) in enumerate(TODAY):
        post(general, author, body, today + timedelta(minutes=index * 3))
    Room.objects.filter(pk=general.pk).update(last_activity=now)
    design = services.room_get_or_create("design")
    post(design, "grace", "New palette for dark mode is in the Figma file.", now - timedelta(minutes=25))
    random = services.room_get_or_create("random")
    post(random, "linus", "Anyone up for lunch?", now - timedelta(hours=3))
    services.room_get_or_create("incidents")
    assert Message.objects.count() == len(YESTERDAY) + len(TODAY) + 2  # noqa: S101 - a script, not a check


def post(room, author: str, body: str, at: datetime) -> None:
    from chat import services
    from chat.models import Message, Room

    message = services.message_create(room=room, author=author, body=body).message
    Message.objects.filter(pk=message.pk).update(created=at)
    Room.objects.filter(pk=room.pk).update(last_activity=at)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(port: int) -> subprocess.Popen:
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env={**os.environ, "CHAT_LOG_LEVEL": "WARNING"},
    )
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.1)
    server.terminate()
    raise RuntimeError("the server did not start")


def chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    viewport(browser, WIDTH, HEIGHT)
    return browser


def viewport(browser: webdriver.Chrome, width: int, height: int, mobile: bool = False) -> None:
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def scheme(browser: webdriver.Chrome, value: str) -> None:
    features = [{"name": "prefers-color-scheme", "value": value}]
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})


def until(browser: webdriver.Chrome, condition: Callable[[], object]) -> None:
    WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda _: condition())


def log_in(browser: webdriver.Chrome, base: str, name: str) -> None:
    browser.get(f"{base}/accounts/login/")
    browser.find_element(By.NAME, "username").send_keys(name)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD, Keys.ENTER)
    until(browser, lambda: "Signed in as" in browser.page_source)


def open_room(browser: webdriver.Chrome, base: str, room: str) -> None:
    browser.get(f"{base}/chat/{room}/")
    until(browser, lambda: browser.find_element(By.ID, "status").text == "Connected")


def say(browser: webdriver.Chrome, text: str) -> None:
    box = browser.find_element(By.ID, "message-input")
    for index, line in enumerate(text.split("\n")):
        if index:
            box.send_keys(Keys.SHIFT, Keys.ENTER, Keys.SHIFT)
        box.send_keys(line)
    box.send_keys(Keys.ENTER)
    until(browser, lambda: not browser.find_elements(By.CSS_SELECTOR, "#outbox .message"))


def item(browser: webdriver.Chrome, body: str):
    """The shown message whose body is ``body``."""
    until(browser, lambda: body in browser.find_element(By.ID, "messages").text)
    return browser.execute_script(
        "return [...document.querySelectorAll('#messages .message')]"
        ".find((m) => m.querySelector('.body').textContent === arguments[0])",
        body,
    )


def act(browser: webdriver.Chrome, body: str, action: str) -> None:
    """Point at a message and use its action bar, as a person does."""
    message = item(browser, body)
    ActionChains(browser).move_to_element(message).perform()
    message.find_element(By.CSS_SELECTOR, f'.message-actions [data-action="{action}"]').click()


def react(browser: webdriver.Chrome, body: str, emoji: str) -> None:
    act(browser, body, "react")
    item(browser, body).find_element(By.CSS_SELECTOR, f'.picker [data-emoji="{emoji}"]').click()
    # Stored before the next step: the chip stops being drawn as pending once its entry is back.
    until(browser, lambda: not browser.find_elements(By.CSS_SELECTOR, "#messages .chip.pending"))


def entries_scene(ada: webdriver.Chrome, grace: webdriver.Chrome, linus: webdriver.Chrome) -> None:
    """Reactions, a reply, an edit and a delete, each done through the page by the person who would."""
    grace.find_element(By.ID, "message-input").clear()  # "on it", typed for the typing line
    say(linus, TAG)
    say(linus, WRONG_ROOM)
    say(ada, CHECKLIST)
    react(ada, TAG, "\N{PARTY POPPER}")
    react(grace, TAG, "\N{PARTY POPPER}")
    react(grace, TAG, "\N{THUMBS UP SIGN}")
    act(grace, TAG, "reply")
    say(grace, REPLY)
    react(ada, REPLY, "\u2764\ufe0f")
    act(linus, WRONG_ROOM, "delete")
    linus.switch_to.alert.accept()
    checklist = item(ada, CHECKLIST)
    act(ada, CHECKLIST, "edit")
    box = checklist.find_element(By.CSS_SELECTOR, ".edit-input")
    box.clear()
    box.send_keys(CHECKLIST_EDITED, Keys.ENTER)
    until(ada, lambda: "Message deleted" in ada.find_element(By.ID, "messages").text)
    until(ada, lambda: len(ada.find_elements(By.CSS_SELECTOR, "#messages .chip")) == 3)
    # The edited message's earlier version on show; the pointer on the reply, so its action bar is too.
    until(ada, lambda: item(ada, CHECKLIST_EDITED).find_elements(By.CSS_SELECTOR, ".edited"))
    item(ada, CHECKLIST_EDITED).find_element(By.CSS_SELECTOR, ".edited").click()
    until(ada, lambda: ada.find_elements(By.CSS_SELECTOR, ".versions-list"))
    ada.execute_script("document.activeElement.blur()")  # one action bar on show, the hovered one's
    ActionChains(ada).move_to_element(item(ada, REPLY)).perform()


PRIVATE = [
    ("ada", "Release room: only the three of us until the announcement."),
    ("linus", "Changelog is final. Tagging after lunch."),
]
DIRECT = [
    ("grace", "Got a minute before the release call?"),
    ("ada", "Sure, ring me."),
]


def private_scene(base: str, ada: webdriver.Chrome, grace: webdriver.Chrome, linus: webdriver.Chrome) -> None:
    """ada makes a private room in the lobby, adds grace as moderator and linus as member in its members panel,
    and makes an invite link; grace turns slow mode on. Each in a new tab, so #general stays open."""
    for browser in (ada, grace, linus):
        browser.switch_to.new_window("tab")
        viewport(browser, WIDTH, HEIGHT)  # a new tab has the window's size, not the emulated one
    ada.get(base)
    ada.find_element(By.ID, "id_name").send_keys("release")
    ada.find_element(By.ID, "room-kind-private").click()
    ada.find_element(By.ID, "room-create-submit").click()
    until(ada, lambda: ada.find_element(By.ID, "status").text == "Connected")
    ada.find_element(By.ID, "members-toggle").click()
    for name, role in (("grace", "moderator"), ("linus", "member")):
        ada.find_element(By.ID, "member-add-name").send_keys(name)
        Select(ada.find_element(By.ID, "member-add-role")).select_by_value(role)
        ada.find_element(By.ID, "member-add-submit").click()
        row = f'.member-row[data-username="{name}"]'
        until(ada, partial(ada.find_elements, By.CSS_SELECTOR, row))
    for browser in (grace, linus):
        open_room(browser, base, "release")
    people = {"ada": ada, "linus": linus}
    for author, body in PRIVATE:
        say(people[author], body)
    Select(grace.find_element(By.ID, "slow-mode")).select_by_value("30")
    until(ada, lambda: "slow mode on" in ada.find_element(By.ID, "messages").text)
    ada.find_element(By.ID, "invite-create").click()
    until(ada, lambda: ada.find_element(By.ID, "invite-url").get_attribute("value"))
    # The members with their roles on show, rather than the link just made.
    ada.execute_script("document.activeElement.blur(); document.getElementById('members-panel').scrollTop = 0")


def direct_scene(base: str, ada: webdriver.Chrome, grace: webdriver.Chrome) -> None:
    """grace opens a direct message to ada from the lobby's box; they talk."""
    grace.get(base)
    grace.find_element(By.ID, "dm-username").send_keys("ada", Keys.ENTER)
    until(grace, lambda: grace.find_element(By.ID, "status").text == "Connected")
    ada.get(grace.current_url)
    until(ada, lambda: ada.find_element(By.ID, "status").text == "Connected")
    people = {"ada": ada, "grace": grace}
    for author, body in DIRECT:
        say(people[author], body)
    until(ada, lambda: DIRECT[-1][1] in ada.find_element(By.ID, "messages").text)


def shoot(browser: webdriver.Chrome, name: str) -> None:
    time.sleep(0.3)  # let the last layout and font rendering settle; nothing is asserted here
    browser.save_screenshot(str(OUT / name))
    print("wrote", OUT / name)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="chatsite-screenshots-"))
    setup_django(workdir / "db.sqlite3")
    seed()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(port)
    browsers = {name: chromium() for name in PEOPLE}
    try:
        for name, browser in browsers.items():
            log_in(browser, base, name)
            open_room(browser, base, "general")
        ada, grace, linus = (browsers[name] for name in PEOPLE)
        # A second tab each in #design: the lobby counts people, not tabs.
        for browser in (grace, linus):
            browser.switch_to.new_window("tab")
            open_room(browser, base, "design")
            browser.switch_to.window(browser.window_handles[0])
        for author, body in LIVE:
            say(browsers[author], body)
        until(ada, lambda: LIVE[-1][1] in ada.find_element(By.ID, "messages").text)

        for mode in ("light", "dark"):
            scheme(ada, mode)
            # A page tells the room it is typing at most every 2.5 s: wait that out, then type.
            grace.find_element(By.ID, "message-input").clear()
            time.sleep(3)
            grace.find_element(By.ID, "message-input").send_keys("on it")
            until(ada, lambda: "is typing" in ada.find_element(By.ID, "typing").text)
            shoot(ada, f"room-{mode}.png")

        viewport(ada, 390, 780, mobile=True)
        shoot(ada, "room-phone-dark.png")
        viewport(ada, WIDTH, HEIGHT)
        scheme(ada, "light")

        # The outbox at work: offline, a message waits, shown as such, until the network is back.
        ada.execute_cdp_cmd("Network.enable", {})
        offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
        ada.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
        until(ada, lambda: ada.find_element(By.ID, "status").text == "Offline")
        ada.find_element(By.ID, "message-input").send_keys("Sent from the train, no signal here.", Keys.ENTER)
        shoot(ada, "room-offline.png")
        ada.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})
        until(ada, lambda: not ada.find_elements(By.CSS_SELECTOR, "#outbox .message"))

        entries_scene(ada, grace, linus)
        for mode in ("light", "dark"):
            scheme(ada, mode)
            shoot(ada, f"room-entries-{mode}.png")
        scheme(ada, "light")

        private_scene(base, ada, grace, linus)
        for mode in ("light", "dark"):
            scheme(ada, mode)
            shoot(ada, f"private-room-{mode}.png")
        scheme(ada, "light")
        direct_scene(base, ada, grace)
        for mode in ("light", "dark"):
            scheme(ada, mode)
            shoot(ada, f"direct-{mode}.png")
        scheme(ada, "light")

        # The lobby, from a tab of ada's while she stays in #general.
        ada.switch_to.new_window("tab")
        viewport(ada, WIDTH, LOBBY_HEIGHT)
        ada.get(base)
        until(ada, lambda: "3 online" in ada.find_element(By.ID, "room-list").text)
        for mode in ("light", "dark"):
            scheme(ada, mode)
            shoot(ada, f"lobby-{mode}.png")
    finally:
        for browser in browsers.values():
            browser.quit()
        server.terminate()
        server.wait()
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
