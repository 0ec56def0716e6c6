"""What a /sync does besides building its answer, now read in the build's snapshot
(relay/sync/builder.py `SyncService.sync`): the presence a syncing client sets, and the
to-device messages its `since` acknowledges."""

from __future__ import annotations

from hypothesis import strategies as st

from relay.client.tokens import parse_token
from relay.sync.builder import SyncParams
from store import device_inbox as store_inbox
from store import presence as store_presence
from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, sync, uid
from tests.support import draw_examples

SEND = f"{V3}/sendToDevice"


async def _device(api: ClientApi, headers: dict[str, str]) -> str:
    r = await api.http.get(f"{V3}/account/whoami", headers=headers)
    return r.json()["device_id"]


async def test_the_first_sync_of_an_offline_user_carries_its_own_new_presence(
    api: ClientApi,
) -> None:
    """The presence write comes after the build's read now: the answer must still show
    the state the sync itself stored, as when the write came first."""
    alice = await api.login("alice")
    body = await sync(api, alice, set_presence="unavailable")
    mine = [e for e in body["presence"]["events"] if e["sender"] == uid("alice")]
    assert [e["content"]["presence"] for e in mine] == ["unavailable"]
    r = await api.http.get(f"{V3}/presence/{uid('alice')}/status", headers=alice)
    assert r.json()["presence"] == "unavailable"
    # Without set_presence an unavailable user stays unavailable; "online" moves them.
    r = await api.http.get(f"{V3}/sync", headers=alice, params={"timeout": 0})
    assert r.status_code == 200
    r = await api.http.get(f"{V3}/presence/{uid('alice')}/status", headers=alice)
    assert r.json()["presence"] == "unavailable"
    await sync(api, alice, set_presence="online")
    r = await api.http.get(f"{V3}/presence/{uid('alice')}/status", headers=alice)
    assert r.json()["presence"] == "online"


async def test_a_room_mate_sees_a_syncing_user_come_online_at_once(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    since = (await sync(api, bob))["next_batch"]
    await sync(api, alice, set_presence="online")
    events = (await sync(api, bob, since))["presence"]["events"]
    assert (uid("alice"), "online") in [(e["sender"], e["content"]["presence"]) for e in events]


async def test_an_acknowledged_message_is_left_out_before_it_is_deleted(api: ClientApi) -> None:
    """A build reads the device's messages after `since` only: one the token covers is
    never delivered again, whether or not the delete after the build has run yet."""
    alice = await api.login("alice")
    bob = await api.login("bob")
    bob_device = await _device(api, bob)
    first = await sync(api, bob)
    body = {"messages": {uid("bob"): {bob_device: {"n": 1}}}}
    assert (await api.http.put(f"{SEND}/m.test/t1", json=body, headers=alice)).status_code == 200
    carried = await sync(api, bob, first["next_batch"])
    assert [e["content"] for e in carried["to_device"]["events"]] == [{"n": 1}]
    token = parse_token(carried["next_batch"], "since")
    database = api.services.database

    def inbox(conn):
        return store_inbox.messages_up_to(conn, uid("bob"), bob_device, 2**62, 100)

    # The build alone (no delete yet): the message is still stored, and left out.
    service = api.services.sync
    params = SyncParams(user_id=uid("bob"), device_id=bob_device, since=token.stream)
    typing = service.typing.snapshot(0)
    built, _ = await database.read(service._build_txn, params, typing, {}, 0)
    assert built.devices is not None and built.devices.to_device == []
    assert built.devices.acknowledged is True
    assert len(await database.read(inbox)) == 1
    # The sync itself deletes it after its build.
    after = await sync(api, bob, carried["next_batch"])
    assert after["to_device"]["events"] == []
    assert await database.read(inbox) == []


async def test_a_lost_answer_is_delivered_again_from_the_older_token(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    bob_device = await _device(api, bob)
    first = await sync(api, bob)
    body = {"messages": {uid("bob"): {bob_device: {"n": 2}}}}
    assert (await api.http.put(f"{SEND}/m.test/t2", json=body, headers=alice)).status_code == 200
    for _ in range(2):  # the client never got the answer: it asks from `first` again
        again = await sync(api, bob, first["next_batch"])
        assert [e["content"] for e in again["to_device"]["events"]] == [{"n": 2}]


PRESENCE_OPS = st.lists(
    st.tuples(
        st.sampled_from(["alice", "bob"]),
        st.sampled_from(["put", "sync"]),
        st.sampled_from([None, "online", "unavailable", "offline"]),
    ),
    min_size=1,
    max_size=12,
)


async def test_the_known_presence_is_the_stored_row(api: ClientApi) -> None:
    """`PresenceService.known_state` (what lets a sync skip the presence read) equals the
    row in the store after any mix of `PUT /presence` and syncs with `set_presence`."""
    heads = {name: await api.login(name) for name in ("alice", "bob")}
    presence = api.services.presence
    compared = 0
    for ops in draw_examples(PRESENCE_OPS, 15):
        for user, op, state in ops:
            if op == "put":
                r = await api.http.put(
                    f"{V3}/presence/{uid(user)}/status",
                    headers=heads[user],
                    json={"presence": state or "online"},
                )
            else:
                params = {"timeout": "0", **({"set_presence": state} if state else {})}
                r = await api.http.get(f"{V3}/sync", headers=heads[user], params=params)
            assert r.status_code == 200, r.text
            for name in heads:
                known, cached = presence.known_state(uid(name))
                row = await api.services.database.read(store_presence.get_presence, uid(name))
                if known:
                    assert cached == (row["state"] if row else None), (ops, name)
                    compared += 1
    assert compared > 15
