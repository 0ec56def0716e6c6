"""Synapse's admin API on the relay: shapes and errors (in-process, real app and store).
synadm drives the same API end to end in tests/integration/test_synadm.py."""

from __future__ import annotations

import pytest

from store import accounts as store_accounts
from tests.client.conftest import SERVER_NAME, ClientApi

V1 = "/_synapse/admin/v1"
V2 = "/_synapse/admin/v2"
BOB = f"@bob:{SERVER_NAME}"


async def _admin(api: ClientApi) -> dict[str, str]:
    headers = await api.login("op")
    await api.services.database.write(store_accounts.set_admin, f"@op:{SERVER_NAME}", True)
    return headers


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{V2}/users"),
        ("GET", f"{V2}/users/{BOB}"),
        ("PUT", f"{V2}/users/{BOB}"),
        ("POST", f"{V1}/deactivate/{BOB}"),
        ("GET", f"{V1}/rooms"),
        ("GET", f"{V1}/registration_tokens"),
        ("POST", f"{V1}/registration_tokens/new"),
        ("DELETE", f"{V1}/registration_tokens/abc"),
        ("GET", f"{V1}/whois/{BOB}"),
    ],
)
async def test_admin_endpoints_refuse_non_admins(api: ClientApi, method: str, path: str) -> None:
    headers = await api.login("alice")
    r = await api.http.request(method, path, headers=headers, json={})
    assert r.status_code == 403
    assert r.json() == {"errcode": "M_FORBIDDEN", "error": "You are not a server admin"}
    r = await api.http.request(method, path, json={})
    assert r.status_code == 401 and r.json()["errcode"] == "M_MISSING_TOKEN"


async def test_server_version_needs_no_token(api: ClientApi) -> None:
    r = await api.http.get(f"{V1}/server_version")
    assert r.status_code == 200 and r.json()["server_version"].startswith("edge-relay ")


async def test_put_creates_201_then_modifies_200(api: ClientApi) -> None:
    headers = await _admin(api)
    r = await api.http.put(
        f"{V2}/users/{BOB}", headers=headers, json={"password": "pw1", "displayname": "Bob"}
    )
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["name"] == BOB and user["displayname"] == "Bob" and user["admin"] is False
    assert user["threepids"] == [] and user["is_guest"] is False
    assert isinstance(user["creation_ts"], int) and user["creation_ts"] < 10**11  # seconds
    r = await api.http.put(f"{V2}/users/{BOB}", headers=headers, json={"admin": True})
    assert r.status_code == 200 and r.json()["admin"] is True
    listed = (await api.http.get(f"{V2}/users", headers=headers)).json()
    assert [u["name"] for u in listed["users"]] == [BOB, f"@op:{SERVER_NAME}"]
    assert listed["total"] == 2 and "next_token" not in listed
    assert listed["users"][0]["creation_ts"] > 10**11  # milliseconds, as Synapse's list
    page = (await api.http.get(f"{V2}/users?limit=1", headers=headers)).json()
    assert len(page["users"]) == 1 and page["next_token"] == "1"


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"admin": "yes"}, "M_BAD_JSON"),
        ({"password": 5}, "M_INVALID_PARAM"),
        ({"password": "x" * 513}, "M_INVALID_PARAM"),
        ({"deactivated": 1}, "M_BAD_JSON"),
        ({"user_type": "bot"}, "M_INVALID_PARAM"),
    ],
)
async def test_put_refuses_bad_fields_and_changes_nothing(
    api: ClientApi, body: dict, errcode: str
) -> None:
    headers = await _admin(api)
    r = await api.http.put(f"{V2}/users/{BOB}", headers=headers, json=body)
    assert r.status_code == 400 and r.json()["errcode"] == errcode
    assert await api.services.database.read(store_accounts.get_user, BOB) is None


async def test_remote_and_unknown_users(api: ClientApi) -> None:
    headers = await _admin(api)
    r = await api.http.get(f"{V2}/users/@bob:elsewhere.example", headers=headers)
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM"
    r = await api.http.get(f"{V2}/users/{BOB}", headers=headers)
    assert r.status_code == 404 and r.json() == {
        "errcode": "M_NOT_FOUND",
        "error": "User not found",
    }
    r = await api.http.post(f"{V1}/deactivate/{BOB}", headers=headers, json={})
    assert r.status_code == 404


async def test_admin_may_not_demote_themself(api: ClientApi) -> None:
    headers = await _admin(api)
    r = await api.http.put(f"{V2}/users/@op:{SERVER_NAME}", headers=headers, json={"admin": False})
    assert r.status_code == 400 and r.json()["error"] == "You may not demote yourself."


async def test_deactivate_leaves_rooms_and_logs_out(api: ClientApi) -> None:
    headers = await _admin(api)
    bob = await api.login("bob")
    room = (await api.http.post("/_matrix/client/v3/createRoom", headers=bob, json={})).json()
    r = await api.http.post(f"{V1}/deactivate/{BOB}", headers=headers, json={})
    assert r.status_code == 200 and r.json() == {"id_server_unbind_result": "success"}
    r = await api.http.get("/_matrix/client/v3/account/whoami", headers=bob)
    assert r.status_code == 401
    members = (await api.http.get(f"{V1}/rooms/{room['room_id']}/members", headers=headers)).json()
    assert members == {"members": [], "total": 0}
    details = (await api.http.get(f"{V1}/rooms/{room['room_id']}", headers=headers)).json()
    assert details["joined_members"] == 0 and details["creator"] == BOB


async def test_rooms_list_and_errors(api: ClientApi) -> None:
    headers = await _admin(api)
    for name in ("Bravo", "Alpha"):
        r = await api.http.post(
            "/_matrix/client/v3/createRoom", headers=headers, json={"name": name}
        )
        assert r.status_code == 200
    body = (await api.http.get(f"{V1}/rooms", headers=headers)).json()
    assert [r["name"] for r in body["rooms"]] == ["Alpha", "Bravo"]
    assert body["offset"] == 0 and body["total_rooms"] == 2
    assert set(body["rooms"][0]) >= {"room_id", "joined_members", "version", "state_events"}
    found = (await api.http.get(f"{V1}/rooms?search_term=rav", headers=headers)).json()
    assert [r["name"] for r in found["rooms"]] == ["Bravo"]
    r = await api.http.get(f"{V1}/rooms?search_term=", headers=headers)
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM"
    r = await api.http.get(f"{V1}/rooms?order_by=colour", headers=headers)
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM"
    r = await api.http.get(f"{V1}/rooms?limit=-1", headers=headers)
    assert r.status_code == 400
    r = await api.http.get(f"{V1}/rooms/!nope:{SERVER_NAME}", headers=headers)
    assert r.status_code == 404 and r.json()["error"] == "Room not found"


@pytest.mark.parametrize(
    "body",
    [
        {"token": "has space"},
        {"token": "x" * 65},
        {"length": 0},
        {"length": "16"},
        {"uses_allowed": -1},
        {"expiry_time": 1},
        {"expiry_time": "soon"},
    ],
)
async def test_new_token_refuses_bad_fields(api: ClientApi, body: dict) -> None:
    headers = await _admin(api)
    r = await api.http.post(f"{V1}/registration_tokens/new", headers=headers, json=body)
    assert r.status_code == 400 and r.json()["errcode"] == "M_INVALID_PARAM", r.text
    listed = (await api.http.get(f"{V1}/registration_tokens", headers=headers)).json()
    assert listed == {"registration_tokens": []}


async def test_token_lifecycle_and_errors(api: ClientApi) -> None:
    headers = await _admin(api)
    r = await api.http.post(
        f"{V1}/registration_tokens/new", headers=headers, json={"token": "abcd", "uses_allowed": 0}
    )
    assert r.json() == {
        "token": "abcd",
        "uses_allowed": 0,
        "pending": 0,
        "completed": 0,
        "expiry_time": None,
    }
    r = await api.http.post(
        f"{V1}/registration_tokens/new", headers=headers, json={"token": "abcd"}
    )
    assert r.status_code == 400 and r.json()["error"] == "Token already exists: abcd"
    invalid = (await api.http.get(f"{V1}/registration_tokens?valid=false", headers=headers)).json()
    assert [t["token"] for t in invalid["registration_tokens"]] == ["a…"]
    r = await api.http.put(
        f"{V1}/registration_tokens/abcd", headers=headers, json={"uses_allowed": None}
    )
    assert r.json()["uses_allowed"] is None
    r = await api.http.put(f"{V1}/registration_tokens/zzzz", headers=headers, json={})
    assert r.status_code == 404 and r.json()["error"] == "No such registration token: zzzz"
    assert (await api.http.delete(f"{V1}/registration_tokens/abcd", headers=headers)).json() == {}
    r = await api.http.delete(f"{V1}/registration_tokens/abcd", headers=headers)
    assert r.status_code == 404


async def test_whois_shows_devices_last_seen(api: ClientApi) -> None:
    headers = await _admin(api)
    await api.login("bob")
    r = await api.http.get(f"{V1}/whois/{BOB}", headers=headers)
    body = r.json()
    assert body["user_id"] == BOB
    connections = body["devices"][""]["sessions"][0]["connections"]
    assert len(connections) == 1 and isinstance(connections[0]["last_seen"], int)


async def test_a_localpart_with_a_slash_is_one_path_segment(api: ClientApi) -> None:
    """`/` is allowed in a localpart: clients send it encoded (%2F) and it must stay in
    the user id segment (matched on the raw path, as Synapse does)."""
    headers = await _admin(api)
    r = await api.http.put(
        f"{V2}/users/%40radio%2Fnet:{SERVER_NAME}", headers=headers, json={"password": "pw"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["name"] == f"@radio/net:{SERVER_NAME}"
    r = await api.http.get(f"{V2}/users/%40radio%2Fnet%3A{SERVER_NAME}", headers=headers)
    assert r.status_code == 200 and r.json()["name"] == f"@radio/net:{SERVER_NAME}"
