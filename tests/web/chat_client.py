"""What a person does in the relay's web chat client (Hydrogen), as steps for tests:
open it, log in, register with a token, create/open a room, send, wait for a message.

Selectors are Hydrogen's own class names and labels (hydrogen-view-sdk, pinned in
web/package-lock.json); they change only when that pin does.
"""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.web.browser import Screenshots

#: Long enough for a first sync and olm's start on a busy shared machine; no timing is
#: asserted, this only bounds a hang.
UI_TIMEOUT_MS = 30_000
#: Console errors that are the relay's expected answers to probes the page and Hydrogen make,
#: not faults: registration's user-interactive steps (401 listing the flows; 403 when
#: registration is closed), and no
#: dehydrated device (MSC2697, unstable: 404).
EXPECTED_CONSOLE_ERRORS = [
    r"status of 40[13] .* http://[^ ]+/_matrix/client/(v3|r0)/register(\?.*)?$",
    r"status of 404 .*/unstable/org\.matrix\.msc2697\.v2/dehydrated_device",
]
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
    expect_room_list(page)


def expect_room_list(page: Page) -> None:
    expect(page.locator(".SessionView .RoomList")).to_be_visible()


def register(
    page: Page, username: str, password: str, token: str, shots: Screenshots | None = None
) -> None:
    """From the login screen, through the token registration form, to the room list."""
    page.get_by_text("Create an account with an invitation token").click()
    fill_registration(page, username, password, token, shots)
    expect_room_list(page)


def fill_registration(
    page: Page, username: str, password: str, token: str, shots: Screenshots | None = None
) -> None:
    page.fill(".RelayRegisterView #username", username)
    page.fill(".RelayRegisterView #password", password)
    page.fill(".RelayRegisterView #token", token)
    if shots is not None:
        shots.take("registration-form")
    page.get_by_role("button", name="Create account").click()


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
    """The timeline's message whose body text is exactly `text` (its time, a child element
    of the body, aside)."""
    if "'" in text:
        raise ValueError("message texts in tests have no single quote (XPath literal)")
    return page.locator(
        "xpath=//li[contains(@class, 'Timeline_message')]"
        f"[.//*[contains(@class, 'Timeline_messageBody')]/text()[normalize-space() = '{text}']]"
    )


def invite(page: Page, user_id: str) -> None:
    """Invite someone to the open room: room options, details, people, invite."""
    page.locator("button.room-options").click()
    page.locator(".menu .menu-item", has_text="Room details").click()
    page.locator(".RoomDetailsView_row", has=page.locator(".MemberCount")).click()
    page.locator(".MemberListView__invite-btn").click()
    page.locator(".InvitePanelView__input").fill(user_id)
    page.locator(".InvitePanelView__btn").click()
    # The panel closes itself; the timeline shows the invite.
    expect(page.locator(".Timeline").get_by_text(f"{user_id} was invited")).to_be_visible()


def accept_invite(page: Page, room_name: str) -> None:
    page.locator(".RoomList").get_by_text(room_name, exact=True).click()
    page.get_by_role("button", name="Accept").click()
    expect(page.locator(".RoomView .MessageComposer textarea")).to_be_visible()


def send_picture(page: Page, path: str) -> None:
    """Share an image through the composer's attachment menu."""
    with page.expect_file_chooser() as chooser:
        page.locator("button.sendFile").click()
        page.locator(".menu .menu-item", has_text="Send picture").click()
    chooser.value.set_files(path)


def expect_picture(page: Page) -> Locator:
    """The open room's newest picture, shown: downloaded (through the service worker that
    authenticates media requests), decrypted and decoded."""
    image = page.locator(".Timeline .media img").last
    expect(image).to_be_visible()
    # Asked afresh each time: Hydrogen replaces the element when the upload is sent.
    page.wait_for_function(
        """() => {
            const images = document.querySelectorAll(".Timeline .media img");
            const newest = images[images.length - 1];
            return !!newest && newest.complete && newest.naturalWidth > 0;
        }"""
    )
    return image


def join_room(page: Page, alias_or_id: str) -> None:
    """Join by alias or room id through the "+" menu, and open the room."""
    page.locator("button.create").click()
    page.locator(".menu .menu-item", has_text="Join Room").click()
    page.locator(".JoinRoomView #id").fill(alias_or_id)
    page.locator(".JoinRoomView button[type=submit]").click()
    expect(page.locator(".RoomView .MessageComposer textarea")).to_be_visible()


def leave_room(page: Page) -> None:
    """Leave the open room through its options menu (and the browser's confirm dialog)."""
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("button.room-options").click()
    page.locator(".menu .menu-item", has_text="Leave room").click()


def scroll_back_until(page: Page, text: str, max_scrolls: int = 40) -> int:
    """Scroll the open room's timeline to the top until the message with `text` shows;
    how many scrolls it took (each at the top makes Hydrogen fetch older history)."""
    target = message(page, text)
    for scrolls in range(max_scrolls):
        if target.count() and target.is_visible():
            return scrolls
        page.evaluate(
            """() => {
                const scroller = document.querySelector(".Timeline .bottom-aligned-scroll");
                if (scroller) scroller.scrollTop = 0;
            }"""
        )
        page.wait_for_timeout(300)
    expect(target).to_be_visible()
    return max_scrolls


def type_without_sending(page: Page, text: str) -> None:
    page.locator(".MessageComposer textarea").press_sequentially(text)


def room_activity(page: Page) -> Locator:
    """The line above the composer: who is typing, who has seen the newest message."""
    return page.locator(".RoomView .RelayRoomActivity")
