"""What a person does in the relay's web chat client (Hydrogen), as steps for tests:
open it, log in, register with a token, create/open a room, send, wait for a message.

Selectors are Hydrogen's own class names and labels (hydrogen-view-sdk, pinned in
web/package-lock.json); they change only when that pin does.
"""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Locator, Page, expect

#: Long enough for a first sync and olm's start on a busy shared machine; no timing is
#: asserted, this only bounds a hang.
UI_TIMEOUT_MS = 30_000
#: Console errors that are the relay's expected answers to probes Hydrogen and the page make,
#: not faults: registration closed (403), no dehydrated devices (MSC2697, unstable: 404).
EXPECTED_CONSOLE_ERRORS = [r"status of 403", r"status of 404"]
expect.set_options(timeout=UI_TIMEOUT_MS)


def open_chat(context: BrowserContext, client_url: str) -> Page:
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(client_url + "/")
    return page


def log_in(page: Page, username: str, password: str) -> None:
    """From the login screen to the room list."""
    page.fill("#username", username)
    page.fill("#password", password)
    page.get_by_role("button", name="Log In").click()
    expect(page.locator(".SessionView .RoomList")).to_be_visible()


def register(page: Page, username: str, password: str, token: str) -> None:
    """From the login screen, through the token registration form, to the room list."""
    page.get_by_text("Create an account with an invitation token").click()
    page.fill("#username", username)
    page.fill("#password", password)
    page.fill("#token", token)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator(".SessionView .RoomList")).to_be_visible()


def create_room(page: Page, name: str, *, encrypted: bool = True) -> None:
    """Create a private room (encrypted unless told) and open it."""
    page.locator("button.create").click()
    page.locator(".menu .menu-item", has_text="Create Room").click()
    page.fill("#name", name)
    checkbox = page.locator("#isEncrypted")
    if checkbox.is_checked() != encrypted:
        checkbox.click()
    page.locator(".CreateRoomView button[type=submit]").click()
    open_room(page, name)


def open_room(page: Page, name: str) -> None:
    page.locator(".RoomList").get_by_text(name, exact=True).click()
    expect(page.locator(".RoomView .MessageComposer textarea")).to_be_visible()


def send(page: Page, text: str) -> None:
    composer = page.locator(".MessageComposer textarea")
    composer.fill(text)
    composer.press("Enter")
    expect_message(page, text)


def expect_message(page: Page, text: str) -> None:
    """The message shows in the open room's timeline, decrypted and sent (not pending)."""
    expect(message(page, text)).to_be_visible()


def message(page: Page, text: str) -> Locator:
    """The timeline's message whose body holds `text` (the body also holds its time)."""
    return page.locator(
        ".Timeline_message", has=page.locator(".Timeline_messageBody", has_text=text)
    )
