"""The room spine through the real app: create, join, send, membership, errors."""

from __future__ import annotations

import pytest

from tests.client.conftest import SERVER_NAME, ClientApi

V3 = "/_matrix/client/v3"


@pytest.mark.parametrize("version", ["10", "11", "12"])
async def test_create_join_send_leave(api: ClientApi, version: str) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    r = await api.http.post(
        f"{V3}/createRoom",
        headers=alice,
        json={"room_version": version, "invite": [f"@bob:{SERVER_NAME}"], "name": "ops"},
    )
    assert r.status_code == 200, r.text
    room_id = r.json()["room_id"]
    assert (
        await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    ).status_code == 200
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/t1",
        headers=bob,
        json={"msgtype": "m.text", "body": "hi"},
    )
    assert r.status_code == 200
    assert r.json()["event_id"].startswith("$")
    r = await api.http.post(f"{V3}/rooms/{room_id}/leave", headers=bob, json={})
    assert r.status_code == 200
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/t2", headers=bob, json={"body": "x"}
    )
    assert r.status_code == 403
    assert r.json()["errcode"] == "M_FORBIDDEN"


async def test_send_same_txn_id_returns_same_event_id(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = (await api.http.post(f"{V3}/createRoom", headers=alice, json={})).json()["room_id"]
    path = f"{V3}/rooms/{room_id}/send/m.room.message/same"
    first = await api.http.put(path, headers=alice, json={"body": "once"})
    second = await api.http.put(path, headers=alice, json={"body": "once"})
    assert first.json() == second.json()


async def test_uninvited_user_cannot_join_private_room(api: ClientApi) -> None:
    alice = await api.login("alice")
    eve = await api.login("eve")
    room_id = (await api.http.post(f"{V3}/createRoom", headers=alice, json={})).json()["room_id"]
    r = await api.http.post(f"{V3}/rooms/{room_id}/join", headers=eve, json={})
    assert r.status_code == 403
    assert r.json()["errcode"] == "M_FORBIDDEN"


async def test_missing_and_unknown_tokens(api: ClientApi) -> None:
    r = await api.http.get(f"{V3}/account/whoami")
    assert (r.status_code, r.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    r = await api.http.get(f"{V3}/account/whoami", headers={"Authorization": "Bearer nope"})
    assert (r.status_code, r.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_logout_invalidates_token(api: ClientApi) -> None:
    alice = await api.login("alice")
    assert (await api.http.get(f"{V3}/account/whoami", headers=alice)).json()["user_id"] == (
        f"@alice:{SERVER_NAME}"
    )
    assert (await api.http.post(f"{V3}/logout", headers=alice)).status_code == 200
    r = await api.http.get(f"{V3}/account/whoami", headers=alice)
    assert r.json()["errcode"] == "M_UNKNOWN_TOKEN"


async def test_wrong_password_is_forbidden(api: ClientApi) -> None:
    await api.add_user("alice", "right")
    r = await api.http.post(
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "wrong",
        },
    )
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_malformed_json_is_not_json_and_stores_nothing(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = (await api.http.post(f"{V3}/createRoom", headers=alice, json={})).json()["room_id"]
    before = api.services.notifier.stream_position
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/bad", headers=alice, content=b"{not json"
    )
    assert (r.status_code, r.json()["errcode"]) == (400, "M_NOT_JSON")
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/bad2", headers=alice, content=b"[1,2]"
    )
    assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_JSON")
    assert api.services.notifier.stream_position == before


async def test_oversized_event_is_too_large(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = (await api.http.post(f"{V3}/createRoom", headers=alice, json={})).json()["room_id"]
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/big", headers=alice, json={"body": "x" * 70000}
    )
    assert (r.status_code, r.json()["errcode"]) == (413, "M_TOO_LARGE")


async def test_send_to_unknown_room_is_not_found(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.put(
        f"{V3}/rooms/!nope:{SERVER_NAME}/send/m.room.message/1", headers=alice, json={}
    )
    assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_login_rate_limit_gives_retry_after(tmp_path) -> None:
    from relay.runtime.ratelimit import RateLimiter

    limiter = RateLimiter(per_second=1.0, burst=2)
    limiter.take("k", now=0.0)
    limiter.take("k", now=0.0)
    from relay.errors import LimitExceeded

    with pytest.raises(LimitExceeded) as info:
        limiter.take("k", now=0.0)
    assert info.value.to_json()["retry_after_ms"] > 0
    limiter.take("k", now=1.5)
