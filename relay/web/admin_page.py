"""The operator page, `/_relay/admin/` on the client listener: what `relay status`
shows, LAN peers (approve, revoke), users (add, reset password, deactivate),
registration tokens (add, list, delete), users' content reports (read, dismiss) and a backup
download, for server admins.

Every action calls the same code as its CLI command (`relay.operator.actions`,
`relay.operator.backup`); the page adds only a session and HTML (relay/web/admin_html.py).

Rules kept:

- Its own login: a server admin's user name and password (`relay user add --admin`),
  rate-limited as `/login` is. A session is an ordinary access token of a device named
  "operator page", kept in an HttpOnly, SameSite=Strict cookie scoped to the page's
  path; logging out deletes the device. A user who is not (or no longer) an admin, or
  whose token is gone, gets the login form.
- Every action is a POST carrying the session's CSRF token (a hash of the session's
  access token); a request without it changes nothing (403).
- Forms are small: a body over `MAX_FORM_BYTES` is refused (413) before it is parsed.
- The page loads nothing but its own stylesheet and runs no script; its CSP says so.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import trio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from relay.accounts import Requester, user_id_for
from relay.errors import InvalidParam, MatrixError, TooLarge, UnknownToken
from relay.mesh.discovery import key_fingerprint
from relay.operator import actions as operator
from relay.runtime import clock
from relay.services import Services
from relay.web import admin_html
from relay.web.admin_html import PREFIX
from store import accounts as store_accounts
from store import registration_tokens as store_tokens

log = logging.getLogger(__name__)

COOKIE = "relay_admin"
DEVICE_NAME = "operator page"
MAX_FORM_BYTES = 16 * 1024
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
    " base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

Form = dict[str, str]
Action = Callable[[Services, Requester, Form], Awaitable[str]]


def _services(request: Request) -> Services:
    return request.app.state.services


def csrf_token(access_token: str) -> str:
    return hashlib.sha256(b"relay-admin-csrf\x00" + access_token.encode()).hexdigest()


async def _form(request: Request) -> Form:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        raise TooLarge("Form too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise TooLarge("Form too large")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {key: values[0] for key, values in parsed.items()}


async def _session(request: Request) -> tuple[Requester, str] | None:
    """The logged-in admin and their access token, or None."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 256:
        return None
    services = _services(request)
    try:
        requester = await services.accounts.authenticate(token)
    except UnknownToken:
        return None
    user = await services.database.read(store_accounts.get_user, requester.user_id)
    if user is None or not user["is_admin"] or user["deactivated"]:
        return None
    return requester, token


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=HEADERS)


async def _render(
    request: Request, requester: Requester, token: str, message: str | None, ok: bool
) -> HTMLResponse:
    services = _services(request)
    config = services.config

    def txn(conn: Any) -> dict[str, Any]:
        now = clock.now_ms()
        tokens = []
        for row in store_tokens.list_tokens(conn):
            view = operator.token_view(row, now)
            view["token_hash"] = row["token_hash"]
            tokens.append(view)
        return {
            "status": operator.status_txn(conn, config, services.signing_key),
            "peers": operator.peers_txn(conn, config),
            "users": store_accounts.list_users(conn),
            "tokens": tokens,
            "reports": operator.reports_txn(conn, services.rooms),
        }

    data = await services.database.read(txn)
    # What LAN peers show of this kit, to compare before approving it there.
    data["status"]["fingerprint"] = key_fingerprint(data["status"]["verify_key"])
    page = admin_html.main_page(
        user_id=requester.user_id,
        csrf=csrf_token(token),
        uptime_s=time.time() - services.started_ms / 1000,
        message=message,
        ok=ok,
        **data,
    )
    return _html(page, 200 if ok or message is None else 400)


async def show(request: Request) -> Response:
    """# `GET /_relay/admin/`"""
    session = await _session(request)
    if session is None:
        return _html(admin_html.login_page(_services(request).server_name))
    return await _render(request, *session, message=None, ok=True)


async def to_page(request: Request) -> Response:
    """# `GET /_relay/admin`"""
    return RedirectResponse(f"{PREFIX}/", status_code=308)


async def stylesheet(request: Request) -> Response:
    """# `GET /_relay/admin/admin.css`"""
    return Response(
        admin_html.STYLESHEET,
        media_type="text/css; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


async def login(request: Request) -> Response:
    """# `POST /_relay/admin/login`"""
    services = _services(request)
    await services.login_limiter.check(request.client.host if request.client else "")
    form = await _form(request)
    user_id = user_id_for(form.get("username", "").strip(), services.server_name)
    password = form.get("password", "")
    refused = admin_html.login_page(services.server_name, "Wrong user name or password.")
    if user_id is None or not password or len(password) > operator.MAX_PASSWORD_LENGTH:
        return _html(refused, 403)
    user = await services.database.read(store_accounts.get_user, user_id)
    if not await services.accounts.check_password(user_id, password):
        return _html(refused, 403)
    if user is None or not user["is_admin"]:
        page = admin_html.login_page(services.server_name, "This page is for server admins.")
        return _html(page, 403)
    session = await services.accounts.login(user_id, None, DEVICE_NAME)
    response = RedirectResponse(f"{PREFIX}/", status_code=303, headers=HEADERS)
    response.set_cookie(COOKIE, session.access_token, path=PREFIX, httponly=True, samesite="strict")
    log.info("operator page: %s logged in", user_id)
    return response


async def _checked(request: Request) -> tuple[Requester, str, Form] | Response:
    """The session and form of a POST action, or the response refusing it."""
    session = await _session(request)
    if session is None:
        return _html(admin_html.login_page(_services(request).server_name, "Log in again."), 403)
    form = await _form(request)
    requester, token = session
    if not hmac.compare_digest(form.get("csrf", ""), csrf_token(token)):
        return _html(admin_html.document("Refused", "<p>Stale form: reload the page.</p>"), 403)
    return requester, token, form


async def logout(request: Request) -> Response:
    """# `POST /_relay/admin/logout`"""
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    requester, _, _ = checked
    await _services(request).accounts.logout(requester)
    response = RedirectResponse(f"{PREFIX}/", status_code=303, headers=HEADERS)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


async def _approve_peer(services: Services, requester: Requester, form: Form) -> str:
    row = await services.database.write(operator.approve_peer_txn, form.get("name", ""))
    return f"Approved {row['server_name']}: key {row['key_id']}, fingerprint {row['fingerprint']}"


async def _revoke_peer(services: Services, requester: Requester, form: Form) -> str:
    name = form.get("name", "")
    await services.database.write(operator.revoke_peer_txn, name)
    return f"Revoked {name}"


async def _add_user(services: Services, requester: Requester, form: Form) -> str:
    user_id = await operator.add_user(
        services.accounts,
        services.server_name,
        form.get("localpart", "").strip(),
        form.get("password", ""),
        admin=form.get("admin") == "1",
    )
    return f"Created {user_id}"


def _local_user(services: Services, form: Form) -> str:
    return operator.local_user_id(form.get("user_id", ""), services.server_name)


async def _reset_password(services: Services, requester: Requester, form: Form) -> str:
    user_id = _local_user(services, form)
    devices = await operator.reset_password(
        services.accounts, services.rooms, user_id, form.get("password", ""), logout_devices=True
    )
    return f"Password of {user_id} reset; {len(devices)} device(s) logged out"


async def _deactivate(services: Services, requester: Requester, form: Form) -> str:
    user_id = _local_user(services, form)
    if user_id == requester.user_id:
        raise InvalidParam("You may not deactivate yourself here")
    await services.database.read(operator.existing_user_txn, user_id)
    await operator.deactivate_user(services.accounts, services.rooms, user_id)
    return f"Deactivated {user_id}"


def _optional_number(form: Form, name: str, kind: type) -> Any:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise InvalidParam(f"{name} must be a number") from None
    if value < 0:
        raise InvalidParam(f"{name} must not be negative")
    return value


async def _add_token(services: Services, requester: Requester, form: Form) -> str:
    text = form.get("token", "").strip()
    token = operator.check_token_text(text) if text else operator.random_token()
    uses = _optional_number(form, "uses", int)
    hours = _optional_number(form, "expires_in_hours", float)
    expiry = None if hours is None else clock.now_ms() + int(hours * 3_600_000)
    await services.database.write(operator.create_token_txn, token, uses, expiry)
    return f"Created registration token {token}"


async def _dismiss_report(services: Services, requester: Requester, form: Form) -> str:
    number = _optional_number(form, "id", int)
    if number is None:
        raise InvalidParam("Which report?")
    await services.database.write(operator.dismiss_report_txn, number)
    return f"Dismissed report {number}"


async def _delete_token(services: Services, requester: Requester, form: Form) -> str:
    await services.database.write(operator.delete_listed_token_txn, form.get("token_hash", ""))
    return "Deleted the registration token"


ACTIONS: dict[str, Action] = {
    "peers/approve": _approve_peer,
    "peers/revoke": _revoke_peer,
    "users/add": _add_user,
    "users/password": _reset_password,
    "users/deactivate": _deactivate,
    "tokens/add": _add_token,
    "tokens/delete": _delete_token,
    "reports/dismiss": _dismiss_report,
}


def _endpoint(path: str, action: Action) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        checked = await _checked(request)
        if isinstance(checked, Response):
            return checked
        requester, token, form = checked
        services = _services(request)
        try:
            message = await action(services, requester, form)
        except MatrixError as exc:
            return await _render(request, requester, token, exc.message, ok=False)
        log.info("operator page: %s did %s", requester.user_id, path)
        return await _render(request, requester, token, message, ok=True)

    endpoint.__name__ = "admin_page_" + path.replace("/", "_")
    return endpoint


async def download_backup(request: Request) -> Response:
    """# `POST /_relay/admin/backup`: the archive `relay backup` writes."""
    # Imported here: tarfile and the archive code are ~0.4 MiB resident that an idle
    # relay would otherwise carry for a download an operator makes now and then.
    from relay.operator.backup import BackupError, write_backup

    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    requester, token, _ = checked
    services = _services(request)
    folder = Path(tempfile.mkdtemp(prefix="relay-backup-download-"))
    name = f"relay-backup-{services.server_name.replace(':', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"
    archive = folder / f"{name}.tar.gz"
    try:
        await trio.to_thread.run_sync(write_backup, services.config, archive)
    except BackupError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return await _render(request, requester, token, f"Backup failed: {exc}", ok=False)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    log.info("operator page: %s downloaded a backup", requester.user_id)
    os.chmod(archive, 0o600)
    return FileResponse(
        archive,
        media_type="application/gzip",
        filename=archive.name,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


def routes() -> list[Route]:
    table = [
        Route(PREFIX, to_page, methods=["GET"]),
        Route(f"{PREFIX}/", show, methods=["GET"]),
        Route(f"{PREFIX}/admin.css", stylesheet, methods=["GET"]),
        Route(f"{PREFIX}/login", login, methods=["POST"]),
        Route(f"{PREFIX}/logout", logout, methods=["POST"]),
        Route(f"{PREFIX}/backup", download_backup, methods=["POST"]),
    ]
    table += [
        Route(f"{PREFIX}/{path}", _endpoint(path, action), methods=["POST"])
        for path, action in ACTIONS.items()
    ]
    return table
