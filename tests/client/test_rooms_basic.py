"""The room spine through the real app: create, join, send, membership, errors."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from relay.events.ids import is_valid_event_id
from relay.events.room_versions import room_version
from tests.client.conftest import SERVER_NAME, ClientApi

V3 = "/_matrix/client/v3"


@pytest.mark.parametrize("version", [str(v) for v in range(1, 13)])
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


@pytest.mark.parametrize("version", ["1", "5", "6", "12"])
async def test_floats_and_big_integers_only_in_rooms_before_v6(
    api: ClientApi, version: str
) -> None:
    """Rooms v6+ enforce canonical JSON (400 M_BAD_JSON, nothing sent); v1-v5 must not, so a
    float or an integer past 2**53 is sent and read back as it was (Synapse does the same)."""
    alice = await api.login("alice")
    r = await api.http.post(f"{V3}/createRoom", headers=alice, json={"room_version": version})
    room_id = r.json()["room_id"]
    content = {"msgtype": "m.text", "body": "n", "ratio": 1.5, "big": 2**60}
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/f1", headers=alice, json=content
    )
    if version in ("6", "12"):
        assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_JSON")
        return
    assert r.status_code == 200, r.text
    event_id = r.json()["event_id"]
    path = f"{V3}/rooms/{room_id}/event/{quote(event_id, safe='')}"
    got = (await api.http.get(path, headers=alice)).json()["content"]
    assert (got["ratio"], got["big"]) == (1.5, 2**60)


@pytest.mark.parametrize("version", [str(v) for v in range(1, 13)])
async def test_state_and_history_in_every_room_version(api: ClientApi, version: str) -> None:
    """A room of each version created here: its create event names the version, state set
    and read back, messages paged with /messages, and event ids of the version's form."""
    alice = await api.login("alice")
    r = await api.http.post(
        f"{V3}/createRoom", headers=alice, json={"room_version": version, "name": "v"}
    )
    room_id = r.json()["room_id"]
    create = await api.http.get(f"{V3}/rooms/{room_id}/state/m.room.create/", headers=alice)
    assert create.json()["room_version"] == version
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/state/m.room.topic/", headers=alice, json={"topic": "t"}
    )
    assert r.status_code == 200, r.text
    topic_id = r.json()["event_id"]
    got = await api.http.get(f"{V3}/rooms/{room_id}/state/m.room.topic/", headers=alice)
    assert got.json() == {"topic": "t"}
    sent = []
    for i in range(3):
        r = await api.http.put(
            f"{V3}/rooms/{room_id}/send/m.room.message/m{i}",
            headers=alice,
            json={"msgtype": "m.text", "body": f"m{i}"},
        )
        sent.append(r.json()["event_id"])
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/messages", headers=alice, params={"dir": "b", "limit": 4}
    )
    chunk = r.json()["chunk"]
    assert [e["event_id"] for e in chunk] == [*reversed(sent), topic_id]
    rv = room_version(version)
    assert rv is not None
    assert all(is_valid_event_id(e, rv) for e in [*sent, topic_id])
    if rv.event_id_in_event:
        assert all(e.endswith(f":{SERVER_NAME}") for e in sent)


@pytest.mark.parametrize("version", ["13", "0", "9.0", "org.example.custom"])
async def test_create_room_in_a_version_we_lack_is_400_unsupported(
    api: ClientApi, version: str
) -> None:
    """Only the stable versions /capabilities lists are created; anything else is refused
    with M_UNSUPPORTED_ROOM_VERSION (Synapse's answer) and no room appears."""
    alice = await api.login("alice")
    r = await api.http.post(f"{V3}/createRoom", headers=alice, json={"room_version": version})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION"), r.text
    joined = await api.http.get(f"{V3}/joined_rooms", headers=alice)
    assert joined.json()["joined_rooms"] == []
    caps = (await api.http.get(f"{V3}/capabilities", headers=alice)).json()["capabilities"]
    assert version not in caps["m.room_versions"]["available"]


async def test_event_paths_take_v3_event_ids_with_an_encoded_slash(api: ClientApi) -> None:
    """Room v3 event ids are standard base64 (`/`, `+`): a client sends them percent-encoded
    and every route naming an event finds it (/event, /context, /relations, /redact)."""
    alice = await api.login("alice")
    r = await api.http.post(f"{V3}/createRoom", headers=alice, json={"room_version": "3"})
    room_id = r.json()["room_id"]
    ids: list[str] = []
    for i in range(40):  # 40 ids: some hold a "/" (each does with odds of about 1 - (63/64)**43)
        r = await api.http.put(
            f"{V3}/rooms/{room_id}/send/m.room.message/s{i}",
            headers=alice,
            json={"msgtype": "m.text", "body": f"m{i}"},
        )
        ids.append(r.json()["event_id"])
    slashed = next(e for e in ids if "/" in e)
    target = quote(slashed, safe="")
    for path in (
        f"{V3}/rooms/{room_id}/event/{target}",
        f"{V3}/rooms/{room_id}/context/{target}",
        f"/_matrix/client/v1/rooms/{room_id}/relations/{target}",
    ):
        r = await api.http.get(path, headers=alice)
        assert r.status_code == 200, (path, r.text)
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/redact/{target}/r1", headers=alice, json={"reason": "x"}
    )
    assert r.status_code == 200, r.text
    got = await api.http.get(f"{V3}/rooms/{room_id}/event/{target}", headers=alice)
    assert got.json()["content"] == {}
