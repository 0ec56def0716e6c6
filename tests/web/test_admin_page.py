"""The operator page in-process (real app, real store): its login, CSRF, every action and
the backup download. The browser drives it in test_admin_page_browser.py."""

from __future__ import annotations

import re
import tarfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from relay.client.routes import client_app
from relay.config import load_config
from relay.node import build_services
from relay.operator.backup import restore_backup
from relay.runtime.database import open_database
from relay.runtime.identity import read_signing_key
from relay.services import Services
from store import accounts as store_accounts
from store import peers as store_peers
from store import registration_tokens as store_tokens
from tests.integration.conftest import run_cli

SERVER_NAME = "kit.test"

PAGE = "/_relay/admin/"


class Page:
    def __init__(self, services: Services, http: httpx.AsyncClient) -> None:
        self.services = services
        self.http = http
        self.csrf = ""

    async def add_user(self, localpart: str, *, admin: bool) -> None:
        hashed = store_accounts.hash_password("pw")
        await self.services.database.write(
            lambda conn: store_accounts.create_user(
                conn,
                user_id=f"@{localpart}:{SERVER_NAME}",
                password=None,
                password_hash=hashed,
                admin=admin,
                now_ms=0,
            )
        )

    async def login(self, username: str = "op", password: str = "pw") -> httpx.Response:
        return await self.http.post(
            f"{PAGE}login", data={"username": username, "password": password}
        )

    async def show(self) -> str:
        r = await self.http.get(PAGE)
        assert r.status_code == 200
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', r.text)
        self.csrf = found.group(1) if found else ""
        return r.text

    async def act(self, path: str, **fields: str) -> httpx.Response:
        return await self.http.post(f"{PAGE}{path}", data={"csrf": self.csrf, **fields})


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    """The page of a relay made by `relay init` (keys, certificate and config on disk, so
    a backup has everything to archive)."""
    run_cli("init", "--data-dir", str(tmp_path / "kit"), "--server-name", SERVER_NAME)
    config = load_config(tmp_path / "kit")
    key = read_signing_key(config.signing_key_path)
    async with open_database(config.database_path, synchronous="NORMAL") as database:
        services = await build_services(config, database, key)
        transport = httpx.ASGITransport(app=client_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://relay.test") as http:
            p = Page(services, http)
            await p.add_user("op", admin=True)
            yield p


async def test_login_form_then_session(page: Page) -> None:
    r = await page.http.get(PAGE)
    assert r.status_code == 200 and 'action="/_relay/admin/login"' in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"]
    r = await page.login()
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/_relay/admin" in cookie
    text = await page.show()
    assert f"{SERVER_NAME}: operator" in text and page.csrf
    for section in ('id="status"', 'id="peers"', 'id="users"', 'id="tokens"', 'id="backup"'):
        assert section in text
    css = await page.http.get(f"{PAGE}admin.css")
    assert css.headers["content-type"].startswith("text/css")


async def test_wrong_password_and_non_admins_get_no_session(page: Page) -> None:
    await page.add_user("alice", admin=False)
    for username, password in (("op", "nope"), ("alice", "pw"), ("ghost", "pw")):
        r = await page.login(username, password)
        assert r.status_code == 403 and "set-cookie" not in r.headers
    assert 'action="/_relay/admin/login"' in (await page.http.get(PAGE)).text


async def test_actions_need_the_csrf_token(page: Page) -> None:
    await page.login()
    await page.show()
    r = await page.http.post(f"{PAGE}tokens/add", data={"token": "forged"})
    assert r.status_code == 403
    r = await page.http.post(f"{PAGE}tokens/add", data={"token": "forged", "csrf": "0" * 64})
    assert r.status_code == 403
    assert await page.services.database.read(store_tokens.list_tokens) == []


async def test_tokens_add_list_delete(page: Page) -> None:
    await page.login()
    await page.show()
    r = await page.act("tokens/add", token="kit07-volunteers", uses="3", expires_in_hours="")
    assert r.status_code == 200 and "Created registration token kit07-volunteers" in r.text
    assert ">kit0…<" in r.text  # the listing shows the token's first quarter
    rows = await page.services.database.read(store_tokens.list_tokens)
    assert [(row["hint"], row["uses_allowed"]) for row in rows] == [("kit0", 3)]
    r = await page.act("tokens/add", token="bad token!")
    assert r.status_code == 400 and "token must consist only" in r.text
    r = await page.act("tokens/delete", token_hash=rows[0]["token_hash"])
    assert r.status_code == 200 and "Deleted" in r.text
    assert await page.services.database.read(store_tokens.list_tokens) == []


async def test_approve_and_revoke_a_pending_peer(page: Page) -> None:
    def seed(conn) -> None:
        store_peers.upsert_peer(
            conn,
            server_name="kit-b.lan",
            address="10.0.0.2",
            port=8448,
            key_id="ed25519:a_b",
            verify_key="A" * 43,
            fingerprint="ab" * 32,
            status="pending",
            version=None,
            reachable=True,
            reason="key not pinned",
            now_ms=int(time.time() * 1000),
        )

    await page.services.database.write(seed)
    await page.login()
    text = await page.show()
    assert "kit-b.lan" in text and "ab" * 32 in text
    r = await page.act("peers/approve", name="kit-b.lan")
    assert r.status_code == 200 and "Approved kit-b.lan" in r.text
    peer = await page.services.database.read(store_peers.get_peer, "kit-b.lan")
    assert peer["status"] == "trusted" and peer["approved_key"] == "A" * 43
    r = await page.act("peers/revoke", name="kit-b.lan")
    assert "Revoked kit-b.lan" in r.text
    peer = await page.services.database.read(store_peers.get_peer, "kit-b.lan")
    assert peer["status"] == "rejected" and peer["approved_key"] is None
    r = await page.act("peers/approve", name="nobody.lan")
    assert r.status_code == 400 and "no LAN peer nobody.lan" in r.text


async def test_users_add_reset_deactivate(page: Page) -> None:
    await page.login()
    await page.show()
    r = await page.act("users/add", localpart="bob", password="first")
    assert r.status_code == 200 and f"Created @bob:{SERVER_NAME}" in r.text
    bob = f"@bob:{SERVER_NAME}"
    assert await page.services.accounts.check_password(bob, "first")
    r = await page.act("users/add", localpart="bob", password="again")
    assert r.status_code == 400 and "already taken" in r.text
    r = await page.act("users/password", user_id=bob, password="second")
    assert "Password of" in r.text
    assert await page.services.accounts.check_password(bob, "second")
    r = await page.act("users/deactivate", user_id=bob)
    assert "Deactivated" in r.text
    user = await page.services.database.read(store_accounts.get_user, bob)
    assert user["deactivated"] is True
    r = await page.act("users/deactivate", user_id=f"@op:{SERVER_NAME}")
    assert r.status_code == 400  # not yourself


async def test_names_from_the_network_are_escaped(page: Page) -> None:
    def seed(conn) -> None:
        store_peers.upsert_peer(
            conn,
            server_name="evil.lan",
            address="10.0.0.9",
            port=8448,
            key_id=None,
            verify_key=None,
            fingerprint=None,
            status="pending",
            version=None,
            reachable=False,
            reason="<script>alert(1)</script>",
            now_ms=0,
        )

    await page.services.database.write(seed)
    await page.login()
    text = await page.show()
    assert "<script>" not in text and "&lt;script&gt;" in text


async def test_backup_download_restores(page: Page, tmp_path: Path) -> None:
    await page.login()
    await page.show()
    r = await page.act("backup")
    assert r.status_code == 200
    assert r.headers["content-disposition"].startswith("attachment;")
    archive = tmp_path / "download.tar.gz"
    archive.write_bytes(r.content)
    with tarfile.open(archive) as tar:
        assert tar.getnames()[-1] == "manifest.json"
    summary = restore_backup(archive, tmp_path / "restored")
    assert summary.server_name == SERVER_NAME


async def test_logout_ends_the_session(page: Page) -> None:
    await page.login()
    await page.show()
    r = await page.act("logout")
    assert r.status_code == 303
    await page.show()
    assert page.csrf == ""  # the login form again


async def test_reports_are_listed_and_dismissed(page: Page) -> None:
    from store import reports as store_reports

    await page.add_user("bob", admin=False)
    report_id = await page.services.database.write(
        lambda conn: store_reports.add_report(
            conn,
            kind="user",
            reporter=f"@bob:{SERVER_NAME}",
            reason="<script>alert(1)</script> keeps messaging me",
            target_user_id=f"@op:{SERVER_NAME}",
            received_ts=int(time.time() * 1000),
        )
    )
    await page.login()
    text = await page.show()
    assert f'data-id="{report_id}"' in text and "keeps messaging me" in text
    assert "<script>alert(1)</script>" not in text  # the reporter's words are escaped
    r = await page.act("reports/dismiss", id=str(report_id))
    assert r.status_code == 200 and f"Dismissed report {report_id}" in r.text
    assert "No reports." in r.text
    r = await page.act("reports/dismiss", id=str(report_id))
    assert r.status_code == 400 and f"No report {report_id}" in r.text
