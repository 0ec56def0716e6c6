"""Relations through the real app: /relations pages, /threads, the bundled aggregations
on every read (/event, /context, /messages, /sync), the edit rules, the refusals of a
local relation that can't stand, history visibility and redactions."""

from __future__ import annotations

import itertools
from typing import Any

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, send, sync, timeline

V1 = "/_matrix/client/v1"
_TXN = itertools.count()


async def _put(
    api: ClientApi, headers: dict[str, str], room_id: str, type_: str, content: dict[str, Any]
) -> Any:
    txn = f"t{next(_TXN)}"
    return await api.http.put(
        f"{V3}/rooms/{room_id}/send/{type_}/{txn}", headers=headers, json=content
    )


async def _send(
    api: ClientApi, headers: dict[str, str], room_id: str, type_: str, content: dict[str, Any]
) -> str:
    r = await _put(api, headers, room_id, type_, content)
    assert r.status_code == 200, r.text
    return r.json()["event_id"]


def _edit(parent: str, body: str) -> dict[str, Any]:
    new = {"msgtype": "m.text", "body": body}
    return {
        "msgtype": "m.text",
        "body": f"* {body}",
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": parent},
    }


def _reply_in_thread(root: str, body: str) -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": body,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    }


def _reaction(parent: str, key: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": parent, "key": key}}


async def _get(api: ClientApi, headers: dict[str, str], path: str, **params: Any) -> Any:
    r = await api.http.get(path, headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def _relations_of_every_read(
    api: ClientApi, headers: dict[str, str], room_id: str, event_id: str
) -> list[dict[str, Any]]:
    """`unsigned["m.relations"]` of the event as /event, /context, /messages, /sync show it."""
    seen = [(await _get(api, headers, f"{V3}/rooms/{room_id}/event/{event_id}"))["unsigned"]]
    seen.append(
        (await _get(api, headers, f"{V3}/rooms/{room_id}/context/{event_id}"))["event"]["unsigned"]
    )
    page = await _get(api, headers, f"{V3}/rooms/{room_id}/messages", dir="b", limit=50)
    seen += [e["unsigned"] for e in page["chunk"] if e["event_id"] == event_id]
    # /sync bundles on a limited timeline (as Synapse: else the client has them all).
    body = await sync(api, headers, filter={"room": {"timeline": {"limit": 50}}})
    events = timeline(body, room_id)
    assert not any("m.relations" in e["unsigned"] for e in events)
    from_event = len(events) - [e["event_id"] for e in events].index(event_id)
    body = await sync(api, headers, filter={"room": {"timeline": {"limit": from_event}}})
    assert body["rooms"]["join"][room_id]["timeline"]["limited"]
    seen += [e["unsigned"] for e in timeline(body, room_id) if e["event_id"] == event_id]
    assert len(seen) == 4
    return [u.get("m.relations", {}) for u in seen]


async def test_the_newest_edit_by_the_sender_is_bundled_on_every_read(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room)
    original = await send(api, alice, room, "hello")
    await _send(api, alice, room, "m.room.message", _edit(original, "hello (1)"))
    newest = await _send(api, alice, room, "m.room.message", _edit(original, "hello (2)"))
    # Bob may not edit Alice's message, and an edit of another type does not count.
    await _send(api, bob, room, "m.room.message", _edit(original, "bob's edit"))
    await _send(api, alice, room, "m.sticker", {**_edit(original, "sticker"), "url": "mxc://a/b"})
    for relations in await _relations_of_every_read(api, bob, room, original):
        assert relations["m.replace"]["event_id"] == newest
        assert relations["m.replace"]["content"]["m.new_content"]["body"] == "hello (2)"
    # The original is served as sent: clients apply m.new_content.
    event = await _get(api, bob, f"{V3}/rooms/{room}/event/{original}")
    assert event["content"]["body"] == "hello"
    # An edit gets no aggregations of its own, so an edit of an edit is never bundled.
    await _send(api, alice, room, "m.room.message", _edit(newest, "edit of an edit"))
    edit = await _get(api, bob, f"{V3}/rooms/{room}/event/{newest}")
    assert "m.relations" not in edit["unsigned"]


async def test_a_redacted_edit_drops_out_and_the_one_before_applies(api: ClientApi) -> None:
    alice = await api.login("alice")
    room = await create_room(api, alice)
    original = await send(api, alice, room, "v0")
    first = await _send(api, alice, room, "m.room.message", _edit(original, "v1"))
    second = await _send(api, alice, room, "m.room.message", _edit(original, "v2"))
    r = await api.http.put(
        f"{V3}/rooms/{room}/redact/{second}/r1", headers=alice, json={"reason": "oops"}
    )
    assert r.status_code == 200, r.text
    for relations in await _relations_of_every_read(api, alice, room, original):
        assert relations["m.replace"]["event_id"] == first
    page = await _get(api, alice, f"{V1}/rooms/{room}/relations/{original}")
    assert [e["event_id"] for e in page["chunk"]] == [first]
    # Redacting the original removes all of its aggregations.
    r = await api.http.put(f"{V3}/rooms/{room}/redact/{original}/r2", headers=alice, json={})
    assert r.status_code == 200, r.text
    for relations in await _relations_of_every_read(api, alice, room, original):
        assert relations == {}


async def test_thread_summary_relations_pages_and_threads_list(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room)
    root = await send(api, alice, room, "root")
    other_root = await send(api, alice, room, "other root")
    replies = [
        await _send(api, bob, room, "m.room.message", _reply_in_thread(root, f"r{i}"))
        for i in range(7)
    ]
    await _send(api, alice, room, "m.room.message", _reply_in_thread(other_root, "x"))
    edit = await _send(api, bob, room, "m.room.message", _edit(replies[-1], "r6 edited"))
    for relations in await _relations_of_every_read(api, alice, room, root):
        thread = relations["m.thread"]
        assert thread["count"] == 7
        assert thread["latest_event"]["event_id"] == replies[-1]
        assert thread["latest_event"]["unsigned"]["m.relations"]["m.replace"]["event_id"] == edit
        assert thread["current_user_participated"] is True  # alice sent the root
    as_bob = await _get(api, bob, f"{V3}/rooms/{room}/event/{other_root}")
    assert as_bob["unsigned"]["m.relations"]["m.thread"]["current_user_participated"] is False

    # /relations: newest first by default, 5 a page, next_batch until the end.
    first = await _get(api, alice, f"{V1}/rooms/{room}/relations/{root}")
    assert [e["event_id"] for e in first["chunk"]] == replies[::-1][:5]
    second = await _get(
        api, alice, f"{V1}/rooms/{room}/relations/{root}", **{"from": first["next_batch"]}
    )
    assert [e["event_id"] for e in second["chunk"]] == replies[::-1][5:]
    assert "next_batch" not in second and second["prev_batch"] == first["next_batch"]
    forwards = await _get(
        api, alice, f"{V1}/rooms/{room}/relations/{root}/m.thread", dir="f", limit=100
    )
    assert [e["event_id"] for e in forwards["chunk"]] == replies
    typed = await _get(api, alice, f"{V1}/rooms/{room}/relations/{root}/m.thread/m.sticker")
    assert typed["chunk"] == []
    # recurse reaches the edit of a reply.
    deep = await _get(api, alice, f"{V1}/rooms/{room}/relations/{root}/m.replace", recurse="true")
    assert [e["event_id"] for e in deep["chunk"]] == [edit] and deep["recursion_depth"] == 3

    # /threads: most recently active first; participated keeps bob's only.
    threads = await _get(api, alice, f"{V1}/rooms/{room}/threads")
    assert [e["event_id"] for e in threads["chunk"]] == [other_root, root]
    page = await _get(api, alice, f"{V1}/rooms/{room}/threads", limit=1)
    assert [e["event_id"] for e in page["chunk"]] == [other_root]
    page = await _get(
        api, alice, f"{V1}/rooms/{room}/threads", limit=1, **{"from": page["next_batch"]}
    )
    assert [e["event_id"] for e in page["chunk"]] == [root] and "next_batch" not in page
    mine = await _get(api, bob, f"{V1}/rooms/{room}/threads", include="participated")
    assert [e["event_id"] for e in mine["chunk"]] == [root]
    assert mine["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"] == 7


async def test_reactions_references_and_the_refusals(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room)
    message = await send(api, alice, room, "react to me")
    like = await _send(api, bob, room, "m.reaction", _reaction(message, "👍"))
    r = await _put(api, bob, room, "m.reaction", _reaction(message, "👍"))
    assert (r.status_code, r.json()["errcode"]) == (400, "M_DUPLICATE_ANNOTATION")
    r = await _put(
        api,
        bob,
        room,
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": message}},
    )
    assert (r.status_code, r.json()["errcode"]) == (400, "M_UNKNOWN")
    r = await _put(api, bob, room, "m.reaction", _reaction("$" + "x" * 43, "👍"))
    assert (r.status_code, r.json()["errcode"]) == (400, "M_UNKNOWN")
    reply = await _send(api, bob, room, "m.room.message", _reply_in_thread(message, "t"))
    r = await _put(api, bob, room, "m.room.message", _reply_in_thread(reply, "nested"))
    assert (r.status_code, r.json()["errcode"]) == (400, "M_UNKNOWN")
    other = await create_room(api, alice)
    r = await _put(api, alice, other, "m.reaction", _reaction(message, "x"))
    assert (r.status_code, r.json()["errcode"]) == (400, "M_UNKNOWN")
    ref = await _send(
        api,
        alice,
        room,
        "m.room.message",
        {
            "body": "see",
            "msgtype": "m.text",
            "m.relates_to": {"rel_type": "m.reference", "event_id": message},
        },
    )
    event = await _get(api, bob, f"{V3}/rooms/{room}/event/{message}")
    assert event["unsigned"]["m.relations"]["m.reference"] == {"chunk": [{"event_id": ref}]}
    assert "m.annotation" not in event["unsigned"]["m.relations"]
    reactions = await _get(api, bob, f"{V1}/rooms/{room}/relations/{message}/m.annotation")
    assert [e["event_id"] for e in reactions["chunk"]] == [like]
    # Once the reaction is redacted, the same reaction may be sent again.
    r = await api.http.put(f"{V3}/rooms/{room}/redact/{like}/u1", headers=bob, json={})
    assert r.status_code == 200, r.text
    again = await _send(api, bob, room, "m.reaction", _reaction(message, "👍"))
    reactions = await _get(api, bob, f"{V1}/rooms/{room}/relations/{message}/m.annotation")
    assert [e["event_id"] for e in reactions["chunk"]] == [again]


async def test_relations_respect_history_visibility(api: ClientApi) -> None:
    alice, bob, eve = await api.login("alice"), await api.login("bob"), await api.login("eve")
    room = await create_room(api, alice, preset="public_chat")
    r = await api.http.put(
        f"{V3}/rooms/{room}/state/m.room.history_visibility/",
        headers=alice,
        json={"history_visibility": "joined"},
    )
    assert r.status_code == 200, r.text
    root = await send(api, alice, room, "root")
    await _send(api, alice, room, "m.room.message", _reply_in_thread(root, "before bob"))
    await join(api, bob, room)
    after = await _send(api, alice, room, "m.room.message", _reply_in_thread(root, "after bob"))
    # Bob may not see the root: 404 as for an unknown event.
    r = await api.http.get(f"{V1}/rooms/{room}/relations/{root}", headers=bob)
    assert (r.status_code, r.json()["errcode"]) == (404, "M_UNKNOWN")
    # Alice sees both replies; Bob's thread list holds no root he can't see.
    page = await _get(api, alice, f"{V1}/rooms/{room}/relations/{root}")
    assert len(page["chunk"]) == 2 and page["chunk"][0]["event_id"] == after
    assert (await _get(api, bob, f"{V1}/rooms/{room}/threads"))["chunk"] == []
    # Someone who never joined a non-world-readable room is refused.
    r = await api.http.get(f"{V1}/rooms/{room}/relations/{root}", headers=eve)
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_bad_parameters_are_refused(api: ClientApi) -> None:
    alice = await api.login("alice")
    room = await create_room(api, alice)
    message = await send(api, alice, room, "m")
    for params in ({"dir": "x"}, {"from": "nonsense"}, {"recurse": "maybe"}, {"limit": "-1"}):
        r = await api.http.get(
            f"{V1}/rooms/{room}/relations/{message}", headers=alice, params=params
        )
        assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM"), params
    for params in ({"include": "some"}, {"from": "1_x"}):
        r = await api.http.get(f"{V1}/rooms/{room}/threads", headers=alice, params=params)
        assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM"), params


async def test_unread_thread_notifications_and_threaded_receipts(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room)
    await send(api, alice, room, "m1")
    root = await send(api, alice, room, "root")
    t1 = await _send(api, alice, room, "m.room.message", _reply_in_thread(root, "t1"))
    await _send(api, alice, room, "m.room.message", _reply_in_thread(root, "t2"))
    m2 = await send(api, alice, room, "m2")
    await _send(api, alice, room, "m.room.message", _edit(m2, "m2 edited"))
    threaded = {"room": {"timeline": {"limit": 1, "unread_thread_notifications": True}}}

    async def counts() -> tuple[int, dict[str, Any]]:
        body = await sync(api, bob, filter=threaded)
        entry = body["rooms"]["join"][room]
        return (
            entry["unread_notifications"]["notification_count"],
            entry["unread_thread_notifications"],
        )

    # The edit never notifies; thread replies count in their thread only.
    assert await counts() == (3, {root: {"notification_count": 2, "highlight_count": 0}})
    body = await sync(api, bob, filter={"room": {"timeline": {"limit": 1}}})
    assert "unread_thread_notifications" not in body["rooms"]["join"][room]
    assert body["rooms"]["join"][room]["unread_notifications"]["notification_count"] == 5
    r = await api.http.post(
        f"{V3}/rooms/{room}/receipt/m.read/{t1}", headers=bob, json={"thread_id": root}
    )
    assert r.status_code == 200, r.text
    assert await counts() == (3, {root: {"notification_count": 1, "highlight_count": 0}})
    r = await api.http.post(
        f"{V3}/rooms/{room}/receipt/m.read/{m2}", headers=bob, json={"thread_id": "main"}
    )
    assert r.status_code == 200, r.text
    assert await counts() == (0, {root: {"notification_count": 1, "highlight_count": 0}})


async def test_sync_bundles_for_a_newly_joined_room_even_when_not_limited(
    api: ClientApi,
) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room = await create_room(api, alice, preset="public_chat")
    original = await send(api, alice, room, "before bob")
    edit = await _send(api, alice, room, "m.room.message", _edit(original, "edited"))
    since = (await sync(api, bob))["next_batch"]
    await join(api, bob, room)
    body = await sync(api, bob, since, filter={"room": {"timeline": {"limit": 50}}})
    entry = body["rooms"]["join"][room]
    # A newly joined room's timeline starts from the room's beginning here (not limited
    # by the filter), yet the client lacks the story: aggregations come bundled.
    events = {e["event_id"]: e for e in entry["timeline"]["events"]}
    assert events[original]["unsigned"]["m.relations"]["m.replace"]["event_id"] == edit
