"""Incremental `/sync` across gaps (issue 14, item 5): what a client that was away (an
outage) gets when it syncs again. Each test checks the shape of the room entry: the
state section against the room's real state, the timeline, `limited`, the summary.

Spec: https://spec.matrix.org/v1.16/client-server-api/#syncing (Synapse 1.163.2's
`synapse/handlers/sync.py` as the tie-breaker)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, bodies, create_room, join, send, sync, timeline, uid
from tests.support import draw_examples

LL = {"room": {"state": {"lazy_load_members": True}}}
USERS = ("bob", "carol", "dave")


def _ll(limit: int | None = None, **state: Any) -> dict[str, Any]:
    room: dict[str, Any] = {"state": {"lazy_load_members": True, **state}}
    if limit is not None:
        room["timeline"] = {"limit": limit}
    return {"room": room}


def _limit(limit: int) -> dict[str, Any]:
    return {"room": {"timeline": {"limit": limit}}}


def _lazy(flt: dict[str, Any], lazy: bool) -> dict[str, Any]:
    if lazy:
        flt["room"]["state"] = {"lazy_load_members": True}
    return flt


async def _put_state(
    api: ClientApi,
    headers: dict[str, str],
    room_id: str,
    type_: str,
    content: dict[str, Any],
    state_key: str = "",
) -> Any:
    return await api.http.put(
        f"{V3}/rooms/{room_id}/state/{type_}/{state_key}", headers=headers, json=content
    )


async def _leave(api: ClientApi, headers: dict[str, str], room_id: str) -> None:
    r = await api.http.post(f"{V3}/rooms/{room_id}/leave", headers=headers, json={})
    assert r.status_code == 200, r.text


def _state(room: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["type"], e["state_key"]): e for e in room["state"]["events"]}


def _members(room: dict[str, Any]) -> dict[str, str]:
    return {
        e["state_key"]: e["content"]["membership"]
        for e in room["state"]["events"]
        if e["type"] == "m.room.member"
    }


async def _current_state(
    api: ClientApi, headers: dict[str, str], room_id: str
) -> dict[tuple[str, str], str]:
    r = await api.http.get(f"{V3}/rooms/{room_id}/state", headers=headers)
    assert r.status_code == 200, r.text
    return {(e["type"], e["state_key"]): e["event_id"] for e in r.json()}


def _no_overlap(room: dict[str, Any]) -> None:
    in_timeline = {e["event_id"] for e in room["timeline"]["events"]}
    assert not in_timeline & {e["event_id"] for e in room["state"]["events"]}


# -- 1. a limited sync carries every state change of the gap ------------------------------


async def test_limited_sync_carries_every_state_change_in_the_gap(api: ClientApi) -> None:
    alice, bob, carol, dave = [await api.login(n) for n in ("alice", "bob", "carol", "dave")]
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    since = (await sync(api, alice))["next_batch"]
    await join(api, carol, room_id)  # carol joins and leaves inside the gap
    await _leave(api, carol, room_id)
    for topic in ("first", "second"):
        r = await _put_state(api, alice, room_id, "m.room.topic", {"topic": topic})
        assert r.status_code == 200, r.text
    await join(api, dave, room_id)
    for n in range(5):
        await send(api, bob, room_id, f"m{n}")
    room = (await sync(api, alice, since, filter=_limit(3)))["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    assert bodies(room["timeline"]["events"]) == ["m2", "m3", "m4"]
    state = _state(room)
    assert set(state) == {
        ("m.room.member", uid("carol")),
        ("m.room.topic", ""),
        ("m.room.member", uid("dave")),
    }
    assert state[("m.room.member", uid("carol"))]["content"]["membership"] == "leave"
    assert state[("m.room.topic", "")]["content"] == {"topic": "second"}
    current = await _current_state(api, alice, room_id)
    assert all(current[key] == event["event_id"] for key, event in state.items())


async def test_limited_sync_leaves_out_state_that_is_in_the_timeline(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    since = (await sync(api, alice))["next_batch"]
    assert (await _put_state(api, alice, room_id, "m.room.topic", {"topic": "gap"})).is_success
    for n in range(4):
        await send(api, bob, room_id, f"m{n}")
    assert (await _put_state(api, alice, room_id, "m.room.name", {"name": "n"})).is_success
    room = (await sync(api, alice, since, filter=_limit(2)))["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    assert [e["type"] for e in room["timeline"]["events"]] == ["m.room.message", "m.room.name"]
    assert set(_state(room)) == {("m.room.topic", "")}
    _no_overlap(room)


async def test_state_after_a_filtered_timeline_still_reaches_the_client(api: ClientApi) -> None:
    """A timeline filter that leaves state events out: they come in `state` (as Synapse:
    the state at the end of the timeline counts too), never lost."""
    alice, bob = await api.login("alice"), await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    flt = {"room": {"timeline": {"types": ["m.room.message"]}}}
    since = (await sync(api, alice, filter=flt))["next_batch"]
    await send(api, bob, room_id, "before")
    assert (await _put_state(api, alice, room_id, "m.room.topic", {"topic": "after"})).is_success
    room = (await sync(api, alice, since, filter=flt))["rooms"]["join"][room_id]
    assert bodies(room["timeline"]["events"]) == ["before"]
    assert _state(room)[("m.room.topic", "")]["content"] == {"topic": "after"}


# -- 2. lazy loading ----------------------------------------------------------------------


async def test_lazy_full_sync_has_the_senders_and_self(api: ClientApi) -> None:
    alice, bob, carol = [await api.login(n) for n in ("alice", "bob", "carol")]
    room_id = await create_room(api, alice, preset="public_chat", name="named: no heroes")
    await join(api, bob, room_id)
    await join(api, carol, room_id)
    await send(api, bob, room_id, "hi")
    room = (await sync(api, alice, filter=_ll(1)))["rooms"]["join"][room_id]
    assert _members(room) == {uid("alice"): "join", uid("bob"): "join"}


async def test_lazy_incremental_never_resends_a_member_to_the_same_device(
    api: ClientApi,
) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    await send(api, bob, room_id, "first")
    first = await sync(api, alice, filter=_ll(1))
    assert uid("bob") in _members(first["rooms"]["join"][room_id])
    await send(api, bob, room_id, "again")
    second = await sync(api, alice, first["next_batch"], filter=_ll(1))
    room = second["rooms"]["join"][room_id]
    assert bodies(room["timeline"]["events"]) == ["again"]
    assert _members(room) == {}
    # ... unless the client asks for redundant members ...
    await send(api, bob, room_id, "third")
    flt = _ll(1, include_redundant_members=True)
    third = await sync(api, alice, second["next_batch"], filter=flt)
    assert _members(third["rooms"]["join"][room_id]) == {uid("bob"): "join"}
    # ... or did not take the answer that had it (a retry from the same token).
    retry = await sync(api, alice, first["next_batch"], filter=_ll(1))
    assert retry["rooms"]["join"][room_id]["timeline"]["limited"] is True
    assert _members(retry["rooms"]["join"][room_id]) == {}  # first's answer was taken
    other_device = await api.login("alice")
    fresh = await sync(api, other_device, filter=_ll(1))
    assert uid("bob") in _members(fresh["rooms"]["join"][room_id])


async def test_lazy_retry_from_an_old_token_gets_the_member_again(api: ClientApi) -> None:
    alice, bob, carol = [await api.login(n) for n in ("alice", "bob", "carol")]
    room_id = await create_room(api, alice, preset="public_chat", name="named")
    await join(api, bob, room_id)
    await join(api, carol, room_id)
    await send(api, alice, room_id, "the last word before the gap")
    since = (await sync(api, alice, filter=_ll(1)))["next_batch"]
    await send(api, carol, room_id, "carol speaks")
    lost = await sync(api, alice, since, filter=_ll(1))
    assert uid("carol") in _members(lost["rooms"]["join"][room_id])
    # The answer was lost: the client syncs from the same token again.
    again = await sync(api, alice, since, filter=_ll(1))
    assert uid("carol") in _members(again["rooms"]["join"][room_id])


async def test_lazy_member_changed_since_it_was_sent_is_sent_again(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    await send(api, bob, room_id, "one")
    since = (await sync(api, alice, filter=_ll(1)))["next_batch"]
    r = await _put_state(
        api,
        bob,
        room_id,
        "m.room.member",
        {"membership": "join", "displayname": "Bobby"},
        uid("bob"),
    )
    assert r.status_code == 200, r.text
    for n in range(3):
        await send(api, bob, room_id, f"m{n}")
    room = (await sync(api, alice, since, filter=_ll(1)))["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    member = _state(room)[("m.room.member", uid("bob"))]
    assert member["content"]["displayname"] == "Bobby"


async def test_lazy_limited_sync_keeps_membership_changes_of_the_gap(api: ClientApi) -> None:
    """As Synapse: lazy loading does not hide who joined or left during a gap."""
    alice, bob, carol = [await api.login(n) for n in ("alice", "bob", "carol")]
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    since = (await sync(api, alice, filter=_ll(2)))["next_batch"]
    await join(api, carol, room_id)
    await _leave(api, carol, room_id)
    for n in range(4):
        await send(api, bob, room_id, f"m{n}")
    room = (await sync(api, alice, since, filter=_ll(2)))["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    # bob's join came in the last answer's timeline: the device has it.
    assert _members(room) == {uid("carol"): "leave"}
    # A device that never had bob's join gets it with the gap.
    other = await api.login("alice")
    first = await sync(api, other, filter=_ll(1))
    assert uid("bob") in _members(first["rooms"]["join"][room_id])


# -- 3. a room joined between two syncs -----------------------------------------------------


async def test_newly_joined_room_has_full_state_and_limited_timeline(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat", name="ops")
    await _put_state(api, alice, room_id, "m.room.topic", {"topic": "t"})
    await send(api, alice, room_id, "before bob")
    since = (await sync(api, bob))["next_batch"]
    await join(api, bob, room_id)
    await send(api, alice, room_id, "after bob")
    room = (await sync(api, bob, since, filter=_limit(50)))["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True  # as Synapse marks a newly joined room
    assert bodies(room["timeline"]["events"]) == ["before bob", "after bob"]
    seen = {e["event_id"] for e in room["state"]["events"] + room["timeline"]["events"]}
    current = await _current_state(api, bob, room_id)
    assert set(current.values()) <= seen
    _no_overlap(room)
    assert room["summary"]["m.joined_member_count"] == 2


async def test_rejoined_room_with_a_later_profile_change_is_new_again(api: ClientApi) -> None:
    """Left and joined again inside the gap, then a display name change: the room is
    still new to the client (full state), as Synapse counts any non-join in the gap."""
    alice, bob = await api.login("alice"), await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    since = (await sync(api, bob))["next_batch"]
    await _leave(api, bob, room_id)
    await _put_state(api, alice, room_id, "m.room.topic", {"topic": "while away"})
    await join(api, bob, room_id)
    r = await api.http.put(
        f"{V3}/profile/{uid('bob')}/displayname", headers=bob, json={"displayname": "B"}
    )
    assert r.status_code == 200, r.text
    room = (await sync(api, bob, since))["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    seen = {e["event_id"] for e in room["state"]["events"] + room["timeline"]["events"]}
    assert ("m.room.create", "") in {
        (e["type"], e["state_key"]) for e in room["state"]["events"] + room["timeline"]["events"]
    }
    assert set((await _current_state(api, bob, room_id)).values()) <= seen


# -- 4. own member event: display name and avatar ------------------------------------------


async def test_put_own_member_event_changes_displayname_and_avatar(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    since = (await sync(api, alice))["next_batch"]
    content = {"membership": "join", "displayname": "Robert", "avatar_url": "mxc://x/y"}
    r = await _put_state(api, bob, room_id, "m.room.member", content, uid("bob"))
    assert r.status_code == 200, r.text
    events = timeline(await sync(api, alice, since), room_id)
    [member] = [e for e in events if e["type"] == "m.room.member"]
    assert member["state_key"] == uid("bob")
    assert member["content"] == content
    assert member["unsigned"]["prev_content"]["membership"] == "join"


async def test_put_member_event_is_checked_by_the_auth_rules(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    before = await _current_state(api, alice, room_id)
    # Nobody may set another user's join, nor a membership that is not a string.
    content = {"membership": "join", "displayname": "not yours"}
    r = await _put_state(api, alice, room_id, "m.room.member", content, uid("bob"))
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    r = await _put_state(api, bob, room_id, "m.room.member", {"membership": 1}, uid("bob"))
    assert r.status_code == 400
    r = await _put_state(api, bob, room_id, "m.room.member", {"displayname": "x"}, uid("bob"))
    assert r.status_code == 400
    r = await _put_state(api, bob, room_id, "m.room.member", {"membership": "join"}, "bob")
    assert r.status_code == 400
    assert await _current_state(api, alice, room_id) == before
    # A user outside the room can't set a member event there by PUT either.
    carol = await api.login("carol")
    private = await create_room(api, alice)
    r = await _put_state(api, carol, private, "m.room.member", {"membership": "join"}, uid("carol"))
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    # Leaving by PUT works as /leave does.
    r = await _put_state(api, bob, room_id, "m.room.member", {"membership": "leave"}, uid("bob"))
    assert r.status_code == 200, r.text
    assert (await _current_state(api, alice, room_id))[("m.room.member", uid("bob"))] == (
        r.json()["event_id"]
    )


async def test_profile_change_reaches_others_in_a_gapped_sync(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    since = (await sync(api, alice, filter=_limit(2)))["next_batch"]
    r = await api.http.put(
        f"{V3}/profile/{uid('bob')}/avatar_url", headers=bob, json={"avatar_url": "mxc://a/b"}
    )
    assert r.status_code == 200, r.text
    for n in range(3):
        await send(api, bob, room_id, f"m{n}")
    room = (await sync(api, alice, since, filter=_limit(2)))["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    assert _state(room)[("m.room.member", uid("bob"))]["content"]["avatar_url"] == "mxc://a/b"


# -- 5. joined and left inside one gap -----------------------------------------------------


async def test_joined_and_left_in_one_gap_gives_full_state(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat", name="ops")
    await send(api, alice, room_id, "hello")
    since = (await sync(api, bob))["next_batch"]
    await join(api, bob, room_id)
    await _leave(api, bob, room_id)
    body = await sync(api, bob, since)
    left = body["rooms"]["leave"][room_id]
    assert left["timeline"]["limited"] is True
    keys = {(e["type"], e["state_key"]) for e in left["state"]["events"]}
    keys |= {(e["type"], e["state_key"]) for e in left["timeline"]["events"]}
    for needed in ("m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.name"):
        assert (needed, "") in keys
    assert left["timeline"]["events"][-1]["content"]["membership"] == "leave"
    _no_overlap(left)
    # Joining again later: the room comes with its full state again.
    since = body["next_batch"]
    await join(api, bob, room_id)
    room = (await sync(api, bob, since))["rooms"]["join"][room_id]
    seen = {e["event_id"] for e in room["state"]["events"] + room["timeline"]["events"]}
    assert set((await _current_state(api, bob, room_id)).values()) <= seen


# -- 6. room summaries ---------------------------------------------------------------------


async def test_summary_follows_membership_as_synapse_sends_it(api: ClientApi) -> None:
    alice, bob, carol = [await api.login(n) for n in ("alice", "bob", "carol")]
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, carol, room_id)  # carol joins before bob: heroes by join order
    await join(api, bob, room_id)
    first = await sync(api, alice, filter=LL)
    assert first["rooms"]["join"][room_id]["summary"] == {
        "m.joined_member_count": 3,
        "m.invited_member_count": 0,
        "m.heroes": [uid("carol"), uid("bob")],
    }
    # Nothing about membership changed: no summary fields.
    await send(api, bob, room_id, "chat")
    second = await sync(api, alice, first["next_batch"], filter=LL)
    assert second["rooms"]["join"][room_id]["summary"] == {}
    # A member leaves and one is invited: the new counts come.
    await _leave(api, carol, room_id)
    r = await api.http.post(
        f"{V3}/rooms/{room_id}/invite", headers=alice, json={"user_id": uid("dave")}
    )
    assert r.status_code == 200, r.text
    third = await sync(api, alice, second["next_batch"], filter=LL)
    assert third["rooms"]["join"][room_id]["summary"] == {
        "m.joined_member_count": 2,
        "m.invited_member_count": 1,
        "m.heroes": [uid("bob"), uid("dave")],
    }
    # A named room has no heroes.
    await _put_state(api, alice, room_id, "m.room.name", {"name": "ops"})
    await join(api, carol, room_id)
    fourth = await sync(api, alice, third["next_batch"], filter=LL)
    assert fourth["rooms"]["join"][room_id]["summary"] == {
        "m.joined_member_count": 3,
        "m.invited_member_count": 1,
    }


async def test_summary_heroes_come_with_their_member_events_when_lazy(api: ClientApi) -> None:
    alice, bob, carol = [await api.login(n) for n in ("alice", "bob", "carol")]
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    await join(api, carol, room_id)
    await send(api, alice, room_id, "only me talks")
    room = (await sync(api, alice, filter=_ll(1)))["rooms"]["join"][room_id]
    assert room["summary"]["m.heroes"] == [uid("bob"), uid("carol")]
    assert set(_members(room)) == {uid("alice"), uid("bob"), uid("carol")}


async def test_summary_when_left_and_only_leavers_remain(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    await _leave(api, bob, room_id)
    room = (await sync(api, alice, filter=LL))["rooms"]["join"][room_id]
    assert room["summary"] == {
        "m.joined_member_count": 1,
        "m.invited_member_count": 0,
        "m.heroes": [uid("bob")],
    }


# -- the client's picture after any run of gaps ----------------------------------------------

GAP_OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["join", "leave", "msg", "rename"]), st.sampled_from(USERS)),
        st.tuples(st.just("topic"), st.sampled_from(["a", "b", "c"])),
        st.tuples(st.sampled_from(["sync", "sync_messages"]), st.sampled_from([1, 2, 5, 50])),
    ),
    min_size=4,
    max_size=30,
)


@pytest.mark.parametrize("lazy", [False, True], ids=["all members", "lazy members"])
@pytest.mark.config({"limits.login_per_second": 0, "limits.send_per_second": 0})
async def test_a_client_rebuilds_the_room_state_from_any_run_of_gapped_syncs(
    api: ClientApi, lazy: bool
) -> None:
    """The client's rule (spec "syncing"): the state it had, then the `state` section,
    then the timeline's state events in order, is the room's state. On random runs of
    joins, leaves, display names, topics and messages between syncs of random timeline
    limits (some with a timeline of messages only), that picture always equals
    `GET /rooms/{roomId}/state`, and `state` never repeats a timeline event. With lazy
    loading the members are the exception: the client knows the member event of every
    sender it is shown, and the rest of the state exactly."""
    alice = await api.login("alice")
    heads = {u: await api.login(u) for u in USERS}
    checked = 0
    # First a run known to matter: a state change after the last allowed timeline event.
    known_runs: list[list[tuple[str, Any]]] = [
        [("join", "bob"), ("msg", "bob"), ("topic", "a"), ("sync_messages", 50)]
    ]
    for n, ops in enumerate(known_runs + draw_examples(GAP_OPS, 40)):
        room_id = await create_room(api, alice, preset="public_chat", name=f"run {n}")
        first = await sync(api, alice, filter=_lazy(_limit(3), lazy))
        entry = first["rooms"]["join"][room_id]
        known = {(e["type"], e["state_key"]): e["event_id"] for e in entry["state"]["events"]}
        for event in entry["timeline"]["events"]:
            if "state_key" in event:
                known[(event["type"], event["state_key"])] = event["event_id"]
        since = first["next_batch"]
        joined: set[str] = set()
        for step, (op, arg) in enumerate([*ops, ("sync", 3)]):
            if op in ("sync", "sync_messages"):
                flt = _limit(arg)
                if op == "sync_messages":  # a timeline of messages only
                    flt["room"]["timeline"]["types"] = ["m.room.message"]
                body = await sync(api, alice, since, filter=_lazy(flt, lazy))
                since = body["next_batch"]
                entry = body["rooms"]["join"].get(room_id)
                senders: set[str] = set()
                if entry is not None:
                    _no_overlap(entry)
                    for event in entry["state"]["events"] + entry["timeline"]["events"]:
                        if "state_key" in event:
                            known[(event["type"], event["state_key"])] = event["event_id"]
                    senders = {e["sender"] for e in entry["timeline"]["events"]}
                current = await _current_state(api, alice, room_id)
                if lazy:
                    assert all(("m.room.member", user) in known for user in senders)
                    current = {k: v for k, v in current.items() if k[0] != "m.room.member"}
                    picture = {k: v for k, v in known.items() if k[0] != "m.room.member"}
                else:
                    picture = known
                assert picture == current, (n, step, ops)
                checked += 1
            elif op == "join" and arg not in joined:
                await join(api, heads[arg], room_id)
                joined.add(arg)
            elif op == "leave" and arg in joined:
                await _leave(api, heads[arg], room_id)
                joined.discard(arg)
            elif op == "msg" and arg in joined:
                await send(api, heads[arg], room_id, f"{n}-{step}")
            elif op == "rename" and arg in joined:
                r = await _put_state(
                    api,
                    heads[arg],
                    room_id,
                    "m.room.member",
                    {"membership": "join", "displayname": f"{arg} {step}"},
                    uid(arg),
                )
                assert r.status_code == 200, r.text
            elif op == "topic":
                r = await _put_state(api, alice, room_id, "m.room.topic", {"topic": f"{arg}{step}"})
                assert r.status_code == 200, r.text
    assert checked >= 40
