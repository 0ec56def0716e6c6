"""OpenID: a user's token (client API) traded for the user id on the federation listener,
as a widget or call service does."""

from __future__ import annotations

import httpx

from relay.federation.routes import federation_app
from relay.runtime.clock import now_ms
from store import accounts as store_accounts
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.helpers import V3, uid

USERINFO = "/_matrix/federation/v1/openid/userinfo"


def federation(api: ClientApi) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=federation_app(api.services))
    return httpx.AsyncClient(transport=transport, base_url="https://relay.test")


async def test_openid_token_is_traded_for_the_user_id(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.post(
        f"{V3}/user/{uid('alice')}/openid/request_token", headers=alice, json={}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "token_type", "matrix_server_name", "expires_in"}
    assert (body["token_type"], body["matrix_server_name"]) == ("Bearer", SERVER_NAME)
    assert body["expires_in"] == 3600
    async with federation(api) as fed:
        r = await fed.get(USERINFO, params={"access_token": body["access_token"]})
        assert (r.status_code, r.json()) == (200, {"sub": uid("alice")})
        # The OpenID token opens nothing on the client API.
        r = await api.http.get(
            f"{V3}/account/whoami", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        # Nor does an access token answer userinfo.
        r = await fed.get(USERINFO, params={"access_token": api.tokens["alice"]})
        assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_openid_errors(api: ClientApi) -> None:
    alice = await api.login("alice")
    await api.login("bob")
    r = await api.http.post(f"{V3}/user/{uid('bob')}/openid/request_token", headers=alice, json={})
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    r = await api.http.post(f"{V3}/user/{uid('alice')}/openid/request_token", json={})
    assert (r.status_code, r.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    async with federation(api) as fed:
        r = await fed.get(USERINFO)
        assert (r.status_code, r.json()["errcode"]) == (401, "M_MISSING_TOKEN")
        r = await fed.get(USERINFO, params={"access_token": "made-up"})
        assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        # An expired token is unknown.
        await api.services.database.write(
            lambda conn: store_accounts.add_openid_token(
                conn, token="old", user_id=uid("alice"), expires_ts=now_ms() - 1, now_ms=0
            )
        )
        r = await fed.get(USERINFO, params={"access_token": "old"})
        assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_deactivation_revokes_openid_tokens(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.post(
        f"{V3}/user/{uid('alice')}/openid/request_token", headers=alice, json={}
    )
    token = r.json()["access_token"]
    session = (await api.http.post(f"{V3}/account/deactivate", headers=alice, json={})).json()
    auth = {"type": "m.login.password", "user": "alice", "password": "pw"}
    r = await api.http.post(
        f"{V3}/account/deactivate",
        headers=alice,
        json={"auth": {**auth, "session": session["session"]}},
    )
    assert r.status_code == 200, r.text
    async with federation(api) as fed:
        r = await fed.get(USERINFO, params={"access_token": token})
        assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
