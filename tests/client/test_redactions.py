"""PUT /rooms/{roomId}/redact/{eventId}/{txnId} through the real app: who may redact what,
what a refused redaction answers (Synapse's answers), and that every read (/event,
/context, /messages, /sync) shows an event redacted exactly when a redaction applies."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, send, sync, timeline

VERSIONS = pytest.mark.parametrize("version", [str(v) for v in range(1, 13)])


async def _redact(
    api: ClientApi, headers: dict[str, str], room_id: str, event_id: str, txn: str
) -> Any:
    return await api.http.put(
        f"{V3}/rooms/{room_id}/redact/{quote(event_id, safe='')}/{txn}",
        headers=headers,
        json={"reason": "r"},
    )


async def _contents(
    api: ClientApi, headers: dict[str, str], room_id: str, event_id: str
) -> list[dict[str, Any]]:
    """The event's content as each read shows it: /event, /context, /messages, /sync."""
    seen = []
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/event/{quote(event_id, safe='')}", headers=headers
    )
    assert r.status_code == 200, r.text
    seen.append(r.json()["content"])
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/context/{quote(event_id, safe='')}", headers=headers
    )
    assert r.status_code == 200, r.text
    seen.append(r.json()["event"]["content"])
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/messages", headers=headers, params={"dir": "b", "limit": 50}
    )
    assert r.status_code == 200, r.text
    seen += [e["content"] for e in r.json()["chunk"] if e["event_id"] == event_id]
    body = await sync(api, headers, filter={"room": {"timeline": {"limit": 50}}})
    seen += [e["content"] for e in timeline(body, room_id) if e["event_id"] == event_id]
    assert len(seen) == 4
    return seen


def _ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


def _intact(contents: list[dict[str, Any]], text: str) -> bool:
    return all(c.get("body") == text for c in contents)


def _redacted(contents: list[dict[str, Any]]) -> bool:
    return all(c == {} for c in contents)


@VERSIONS
async def test_redacting_an_event_of_another_room_is_400_and_changes_nothing(
    api: ClientApi, version: str
) -> None:
    alice = await api.login("alice")
    mallory = await api.login("mallory")
    private = await create_room(api, alice, room_version=version, preset="private_chat")
    secret = await send(api, alice, private, "secret")
    # Mallory redacts it from her own room, where she has every power.
    own = await create_room(api, mallory, room_version=version)
    r = await _redact(api, mallory, own, secret, "m1")
    assert r.status_code == 400, r.text
    assert r.json()["errcode"] == "M_UNKNOWN"
    # Alice has power in both rooms; across rooms she cannot either.
    await api.http.post(
        f"{V3}/rooms/{own}/invite", headers=mallory, json={"user_id": "@alice:relay.test"}
    )
    await join(api, alice, own)
    r = await _redact(api, alice, own, secret, "a1")
    assert r.status_code == 400, r.text
    assert _intact(await _contents(api, alice, private, secret), "secret")
    # The twin: in the event's own room, Alice's redaction applies.
    r = await _redact(api, alice, private, secret, "a2")
    assert r.status_code == 200, r.text
    assert _redacted(await _contents(api, alice, private, secret))


@VERSIONS
async def test_redacting_an_unknown_event_needs_the_redact_level(
    api: ClientApi, version: str
) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, room_version=version, preset="public_chat")
    await join(api, bob, room_id)
    # Bob (power 0): 404, as Synapse answers; nothing is sent. In v1/v2 the auth rules
    # themselves look first (rule 11 reads the target id's server): this id has none, and
    # Synapse answers 400 M_UNKNOWN.
    before = await api.http.get(
        f"{V3}/rooms/{room_id}/messages", headers=alice, params={"dir": "b", "limit": 50}
    )
    r = await _redact(api, bob, room_id, "$not-stored-here", "b1")
    expected = (400, "M_UNKNOWN") if version in ("1", "2") else (404, "M_NOT_FOUND")
    assert (r.status_code, r.json()["errcode"]) == expected, r.text
    after = await api.http.get(
        f"{V3}/rooms/{room_id}/messages", headers=alice, params={"dir": "b", "limit": 50}
    )
    assert _ids(after.json()["chunk"]) == _ids(before.json()["chunk"])
    # Alice (power 100) may: the redaction is held until the event arrives.
    r = await _redact(api, alice, room_id, "$not-stored-here", "a1")
    assert r.status_code == 200, r.text


@VERSIONS
async def test_redacting_someone_elses_event_needs_the_redact_level(
    api: ClientApi, version: str
) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    carol = await api.login("carol")
    room_id = await create_room(api, alice, room_version=version, preset="public_chat")
    await join(api, bob, room_id)
    await join(api, carol, room_id)
    carol_msg = await send(api, carol, room_id, "carol's")
    bob_msg = await send(api, bob, room_id, "bob's")
    # Bob and Carol share a server, but Bob has no power over Carol's event.
    r = await _redact(api, bob, room_id, carol_msg, "b1")
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    # His own event, yes; and Alice (power 100) may redact Carol's.
    assert (await _redact(api, bob, room_id, bob_msg, "b2")).status_code == 200
    assert _redacted(await _contents(api, bob, room_id, bob_msg))
    assert _intact(await _contents(api, bob, room_id, carol_msg), "carol's")
    # The create event is never redacted, whatever the power (Synapse: 403).
    r = await api.http.get(f"{V3}/rooms/{room_id}/state", headers=alice)
    [create] = [e["event_id"] for e in r.json() if e["type"] == "m.room.create"]
    r = await _redact(api, alice, room_id, create, "a0")
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    assert (await _redact(api, alice, room_id, carol_msg, "a1")).status_code == 200
    assert _redacted(await _contents(api, bob, room_id, carol_msg))
