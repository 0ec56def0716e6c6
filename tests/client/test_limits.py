"""Errors and limits on every sending path (issue 14 item 8): numbers the room version's
canonical JSON forbids, NaN/Infinity, events over 65536 bytes, invalid filters at upload,
and `createRoom` ignoring `creation_content.room_version`. Each refusal changes nothing.
tests/synapse/test_limits_differential.py compares the same answers with Synapse."""

from __future__ import annotations

import pytest

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, send, sync, timeline, uid

BIG = "x" * 70_000

BAD_CONTENT = [
    ("above 2**53-1", '{"n": 9007199254740992}', 400, "M_BAD_JSON"),
    ("below -(2**53-1)", '{"n": -9007199254740992}', 400, "M_BAD_JSON"),
    ("a float", '{"n": 1.5}', 400, "M_BAD_JSON"),
    ("an integral float", '{"n": 2.0}', 400, "M_BAD_JSON"),
    ("NaN", '{"n": NaN}', 400, "M_NOT_JSON"),
    ("Infinity", '{"n": Infinity}', 400, "M_NOT_JSON"),
    ("over 65536 bytes", '{"body": "' + BIG + '"}', 413, "M_TOO_LARGE"),
]


def _paths(room_id: str, event_id: str, n: int) -> list[str]:
    return [
        f"{V3}/rooms/{room_id}/send/m.test/t{n}",
        f"{V3}/rooms/{room_id}/state/m.test/k{n}",
        f"{V3}/rooms/{room_id}/redact/{event_id}/r{n}",
    ]


@pytest.mark.parametrize(
    ("case", "raw", "status", "errcode"), BAD_CONTENT, ids=[c[0] for c in BAD_CONTENT]
)
async def test_every_sending_path_refuses_bad_numbers_and_big_events(
    api: ClientApi, case: str, raw: str, status: int, errcode: str
) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    event_id = await send(api, alice, room_id, "target")
    since = (await sync(api, alice))["next_batch"]
    for path in _paths(room_id, event_id, 1):
        r = await api.http.put(
            path, content=raw.encode(), headers={**alice, "Content-Type": "application/json"}
        )
        assert (r.status_code, r.json()["errcode"]) == (status, errcode), (case, path, r.text)
        assert isinstance(r.json()["error"], str)
    assert room_id not in (await sync(api, alice, since, timeout=0))["rooms"]["join"]


async def test_the_largest_safe_integers_are_accepted(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    raw = '{"hi": 9007199254740991, "lo": -9007199254740991}'
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/send/m.test/t",
        content=raw.encode(),
        headers={**alice, "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text


async def test_an_invite_with_a_huge_reason_is_too_large(api: ClientApi) -> None:
    alice = await api.login("alice")
    await api.login("bob")
    room_id = await create_room(api, alice)
    r = await api.http.post(
        f"{V3}/rooms/{room_id}/invite", json={"user_id": uid("bob"), "reason": BIG}, headers=alice
    )
    assert r.status_code == 413 and r.json()["errcode"] == "M_TOO_LARGE"
    r = await api.http.get(f"{V3}/rooms/{room_id}/state/m.room.member/{uid('bob')}", headers=alice)
    assert r.status_code == 404


async def test_profile_values_are_bounded_before_any_member_event(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    since = (await sync(api, alice))["next_batch"]
    for field, value in (("displayname", "d" * 300), ("avatar_url", "mxc://a/" + "b" * 1100)):
        r = await api.http.put(
            f"{V3}/profile/{uid('alice')}/{field}", json={field: value}, headers=alice
        )
        assert r.status_code == 400, (field, r.text)
    assert room_id not in (await sync(api, alice, since, timeout=0))["rooms"]["join"]


BAD_FILTERS = [
    ("limit a string", {"room": {"timeline": {"limit": "ten"}}}),
    ("limit a float", {"room": {"timeline": {"limit": 1.5}}}),
    ("limit negative", {"room": {"timeline": {"limit": -1}}}),
    ("event_fields a string", {"event_fields": "x"}),
    ("event_format unknown", {"event_format": "x"}),
    ("types a string", {"room": {"timeline": {"types": "m.x"}}}),
    ("rooms with a non-room id", {"room": {"rooms": ["notaroom"]}}),
    ("not_rooms with a non-room id", {"room": {"not_rooms": ["#alias:x"]}}),
    ("timeline rooms with a non-room id", {"room": {"timeline": {"rooms": ["x"]}}}),
    ("senders with a non-user id", {"presence": {"senders": ["bob"]}}),
    ("not_senders with a non-user id", {"room": {"state": {"not_senders": ["@bob"]}}}),
    ("include_leave a string", {"room": {"include_leave": "yes"}}),
    ("a filter that is a list", []),
]


@pytest.mark.parametrize(("case", "body"), BAD_FILTERS, ids=[c[0] for c in BAD_FILTERS])
async def test_invalid_filters_are_refused_at_upload(
    api: ClientApi, case: str, body: object
) -> None:
    alice = await api.login("alice")
    r = await api.http.post(f"{V3}/user/{uid('alice')}/filter", json=body, headers=alice)
    assert r.status_code == 400 and r.json()["errcode"] == "M_BAD_JSON", (case, r.text)


async def test_filters_with_room_ids_of_every_form_and_user_ids_are_kept(api: ClientApi) -> None:
    alice = await api.login("alice")
    body = {
        "room": {"rooms": ["!old:relay.test", "!" + "A" * 43], "timeline": {"limit": 5}},
        "presence": {"senders": [uid("bob")]},
    }
    r = await api.http.post(f"{V3}/user/{uid('alice')}/filter", json=body, headers=alice)
    assert r.status_code == 200 and isinstance(r.json()["filter_id"], str)


@pytest.mark.parametrize("asked", ["1", 5, "9", "no-such-version"])
async def test_create_room_ignores_creation_content_room_version(
    api: ClientApi, asked: object
) -> None:
    alice = await api.login("alice")
    r = await api.http.get(f"{V3}/capabilities", headers=alice)
    default = r.json()["capabilities"]["m.room_versions"]["default"]
    room_id = await create_room(api, alice, creation_content={"room_version": asked})
    r = await api.http.get(f"{V3}/rooms/{room_id}/state/m.room.create", headers=alice)
    assert r.json()["room_version"] == default
    room_id = await create_room(
        api, alice, room_version="11", creation_content={"room_version": asked}
    )
    r = await api.http.get(f"{V3}/rooms/{room_id}/state/m.room.create", headers=alice)
    assert r.json()["room_version"] == "11"
    events = timeline(await sync(api, alice), room_id)
    create = next(e for e in events if e["type"] == "m.room.create")
    assert create["content"]["room_version"] == "11"


@pytest.mark.parametrize(
    ("version", "strict"), [("1", False), ("5", False), ("6", True), ("12", True)]
)
async def test_floats_and_big_integers_follow_the_room_version(
    api: ClientApi, version: str, strict: bool
) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice, room_version=version)
    for n, raw in enumerate(('{"n": 1.5}', '{"n": 9007199254740992}')):
        r = await api.http.put(
            f"{V3}/rooms/{room_id}/send/m.test/v{n}",
            content=raw.encode(),
            headers={**alice, "Content-Type": "application/json"},
        )
        if strict:
            assert r.status_code == 400 and r.json()["errcode"] == "M_BAD_JSON", r.text
        else:
            assert r.status_code == 200, r.text
