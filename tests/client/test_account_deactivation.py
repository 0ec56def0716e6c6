"""`POST /account/deactivate`: UIA, erase, leaving rooms, no login afterwards."""

from __future__ import annotations

import httpx

from relay.federation.routes import federation_app
from store import accounts as store_accounts
from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, password_auth, sync, uid

PATH = f"{V3}/account/deactivate"


async def test_deactivate_with_uia_leaves_rooms_and_blocks_login(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, bob, preset="public_chat")
    await join(api, alice, room_id)
    invited = await create_room(api, bob, invite=[uid("alice")])

    # No auth: the 401 of UIA, with the password flow; nothing happens.
    r = await api.http.post(PATH, headers=alice, json={})
    assert r.status_code == 401
    challenge = r.json()
    assert challenge["flows"] == [{"stages": ["m.login.password"]}]
    assert challenge["completed"] == [] and isinstance(challenge["session"], str)
    # A wrong password: 401 with M_FORBIDDEN, still nothing happens.
    r = await api.http.post(
        PATH, headers=alice, json={"auth": password_auth(challenge["session"], "nope")}
    )
    assert (r.status_code, r.json()["errcode"]) == (401, "M_FORBIDDEN")
    assert (await api.http.get(f"{V3}/account/whoami", headers=alice)).status_code == 200

    r = await api.http.post(PATH, headers=alice, json={"auth": password_auth(challenge["session"])})
    assert (r.status_code, r.json()) == (200, {"id_server_unbind_result": "success"})

    # The token is gone, login is refused as Synapse refuses it, the rooms were left.
    r = await api.http.get(f"{V3}/account/whoami", headers=alice)
    assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    r = await api.http.post(
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "pw",
        },
    )
    # Synapse 1.163.2 answers a deactivated user's login as a wrong password.
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    members = await api.http.get(f"{V3}/rooms/{room_id}/joined_members", headers=bob)
    assert uid("alice") not in members.json()["joined"]
    state = await api.http.get(
        f"{V3}/rooms/{invited}/state/m.room.member/{uid('alice')}", headers=bob
    )
    assert state.json()["membership"] == "leave"
    # The user id stays taken.
    r = await api.http.get(f"{V3}/register/available", params={"username": "alice"})
    assert r.json()["errcode"] == "M_USER_IN_USE"
    # Deactivated users have no public profile here.
    r = await api.http.get(f"{V3}/profile/{uid('alice')}", headers=bob)
    assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_deactivate_with_erase_clears_profile(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.post(PATH, headers=alice, json={"erase": True})
    session = r.json()["session"]
    r = await api.http.post(
        PATH, headers=alice, json={"erase": True, "auth": password_auth(session)}
    )
    assert r.status_code == 200
    user = await api.services.database.read(store_accounts.get_user, uid("alice"))
    assert user["deactivated"] and user["erased"]
    assert user["displayname"] is None and user["avatar_url"] is None


async def test_deactivate_errors(api: ClientApi) -> None:
    alice = await api.login("alice")
    await api.login("bob")
    r = await api.http.post(PATH, headers=alice, json={"erase": "yes"})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_JSON")
    r = await api.http.post(PATH, json={})
    assert (r.status_code, r.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    # Bob's password does not deactivate alice, and a session of another operation is refused.
    session = (await api.http.post(PATH, headers=alice, json={})).json()["session"]
    r = await api.http.post(PATH, headers=alice, json={"auth": password_auth(session, user="bob")})
    assert (r.status_code, r.json()["errcode"]) == (401, "M_FORBIDDEN")
    other = (
        await api.http.post(f"{V3}/account/password", headers=alice, json={"new_password": "x"})
    ).json()["session"]
    r = await api.http.post(PATH, headers=alice, json={"auth": password_auth(other)})
    assert r.status_code == 400
    assert (await api.http.get(f"{V3}/account/whoami", headers=alice)).status_code == 200
    await sync(api, alice)


async def test_deactivation_revokes_openid_tokens(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.post(
        f"{V3}/user/{uid('alice')}/openid/request_token", headers=alice, json={}
    )
    token = r.json()["access_token"]
    session = (await api.http.post(PATH, headers=alice, json={})).json()["session"]
    r = await api.http.post(PATH, headers=alice, json={"auth": password_auth(session)})
    assert r.status_code == 200, r.text
    transport = httpx.ASGITransport(app=federation_app(api.services))
    async with httpx.AsyncClient(transport=transport, base_url="https://relay.test") as fed:
        r = await fed.get("/_matrix/federation/v1/openid/userinfo", params={"access_token": token})
        assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
