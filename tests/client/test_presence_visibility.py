"""`GET /presence/{userId}/status`: who may see whose presence (Synapse's rules)."""

from __future__ import annotations

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, uid


def status(user_id: str) -> str:
    return f"{V3}/presence/{user_id}/status"


async def test_presence_visible_to_self_and_room_mates_only(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    carol = await api.login("carol")
    # Never set: the user sees themself offline (as Synapse), not a 404.
    r = await api.http.get(status(uid("alice")), headers=alice)
    assert (r.status_code, r.json()) == (200, {"presence": "offline"})
    r = await api.http.put(status(uid("alice")), headers=alice, json={"presence": "online"})
    assert r.status_code == 200
    # Bob shares no room with alice yet, carol neither, and an unknown user looks the same.
    for who, headers in ((uid("alice"), bob), (uid("alice"), carol), (uid("nobody"), bob)):
        r = await api.http.get(status(who), headers=headers)
        assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    room_id = await create_room(api, alice, invite=[uid("bob")])
    # An invite is not a shared room.
    r = await api.http.get(status(uid("alice")), headers=bob)
    assert r.status_code == 403
    await join(api, bob, room_id)
    r = await api.http.get(status(uid("alice")), headers=bob)
    assert r.status_code == 200 and r.json()["presence"] == "online"
    assert isinstance(r.json()["last_active_ago"], int)
    # Bob never set presence: alice sees him offline.
    r = await api.http.get(status(uid("bob")), headers=alice)
    assert (r.status_code, r.json()) == (200, {"presence": "offline"})
    r = await api.http.get(status(uid("alice")), headers=carol)
    assert r.status_code == 403


async def test_presence_of_a_malformed_user_id_is_400(api: ClientApi) -> None:
    alice = await api.login("alice")
    for bad in ("alice", "@alice", "not a user"):
        r = await api.http.get(status(bad), headers=alice)
        assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM"), bad
