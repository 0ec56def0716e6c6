"""OpenID tokens: a user asks for one (client API) and a third party learns who they are from
federation `/openid/userinfo` (no X-Matrix). Only for oneself; an expired token names nobody.
tests/federation/differential compares the userinfo answers with Synapse's."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from relay.federation.routes import federation_app
from store import openid_tokens as store_openid
from tests.client.conftest import SERVER_NAME, ClientApi

USERINFO = "/_matrix/federation/v1/openid/userinfo"


def request_token_url(user_id: str) -> str:
    return f"/_matrix/client/v3/user/{quote(user_id)}/openid/request_token"


async def userinfo(api: ClientApi, token: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=federation_app(api.services)),
        base_url=f"http://{SERVER_NAME}",
    ) as fed:
        return await fed.get(USERINFO, params={"access_token": token})


async def test_a_token_names_its_user_to_a_third_party(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.post(request_token_url(f"@alice:{SERVER_NAME}"), headers=alice, json={})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["token_type"], body["matrix_server_name"], body["expires_in"]) == (
        "Bearer",
        SERVER_NAME,
        3600,
    )
    info = await userinfo(api, body["access_token"])
    assert (info.status_code, info.json()) == (200, {"sub": f"@alice:{SERVER_NAME}"})


async def test_only_for_oneself(api: ClientApi) -> None:
    alice = await api.login("alice")
    await api.add_user("bob")
    r = await api.http.post(request_token_url(f"@bob:{SERVER_NAME}"), headers=alice, json={})
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_an_expired_token_names_nobody(api: ClientApi) -> None:
    await api.add_user("alice")
    await api.services.database.write(
        lambda conn: store_openid.put_openid_token(
            conn, token="old", user_id=f"@alice:{SERVER_NAME}", expires_ms=1000, now_ms=0
        )
    )
    r = await userinfo(api, "old")
    assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
