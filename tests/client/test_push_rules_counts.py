"""Push rules set a room's unread counts in /sync (issue 14 item 3): Element's "Mute"
(an override rule on the room id) silences the room, mentions included; "Mentions and
keywords" (a room rule without notify) counts only mentions; `.m.rule.master` silences
everything; removing the rule brings the counts back."""

from __future__ import annotations

from typing import Any

import pytest

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, send, sync, uid

P = f"{V3}/pushrules/global"


def _counts(body: dict[str, Any], room_id: str) -> dict[str, int]:
    return body["rooms"]["join"][room_id]["unread_notifications"]


async def _room_with_news(api: ClientApi) -> tuple[dict[str, str], str]:
    """Alice's room where Bob sent two messages, one mentioning her."""
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    await send(api, bob, room_id, "hello")
    await send(api, bob, room_id, "hi alice", **{"m.mentions": {"user_ids": [uid("alice")]}})
    assert _counts(await sync(api, alice), room_id) == {
        "notification_count": 2,
        "highlight_count": 1,
    }
    return alice, room_id


async def test_a_muted_room_counts_nothing_until_unmuted(api: ClientApi) -> None:
    alice, room_id = await _room_with_news(api)
    mute = {
        "actions": [],
        "conditions": [{"kind": "event_match", "key": "room_id", "pattern": room_id}],
    }
    r = await api.http.put(f"{P}/override/{room_id}", json=mute, headers=alice)
    assert r.status_code == 200, r.text
    assert _counts(await sync(api, alice), room_id) == {
        "notification_count": 0,
        "highlight_count": 0,
    }
    assert (await api.http.delete(f"{P}/override/{room_id}", headers=alice)).status_code == 200
    assert _counts(await sync(api, alice), room_id)["notification_count"] == 2


async def test_mentions_only_counts_the_mentions(api: ClientApi) -> None:
    alice, room_id = await _room_with_news(api)
    r = await api.http.put(f"{P}/room/{room_id}", json={"actions": []}, headers=alice)
    assert r.status_code == 200, r.text
    assert _counts(await sync(api, alice), room_id) == {
        "notification_count": 1,
        "highlight_count": 1,
    }
    # A disabled rule decides nothing.
    r = await api.http.put(f"{P}/room/{room_id}/enabled", json={"enabled": False}, headers=alice)
    assert r.status_code == 200
    assert _counts(await sync(api, alice), room_id)["notification_count"] == 2


async def test_the_master_rule_silences_every_room(api: ClientApi) -> None:
    alice, room_id = await _room_with_news(api)
    r = await api.http.put(
        f"{P}/override/.m.rule.master/enabled", json={"enabled": True}, headers=alice
    )
    assert r.status_code == 200
    assert _counts(await sync(api, alice), room_id) == {
        "notification_count": 0,
        "highlight_count": 0,
    }


async def test_a_keyword_rule_counts_and_highlights(api: ClientApi) -> None:
    """A content rule (Element's keywords) highlights the messages holding the word, at
    word boundaries, case-insensitively; with the room on "Mentions and keywords" the
    keyword messages still count."""
    alice, room_id = await _room_with_news(api)
    keyword = {"pattern": "cake", "actions": ["notify", {"set_tweak": "highlight"}]}
    r = await api.http.put(f"{P}/content/cake", json=keyword, headers=alice)
    assert r.status_code == 200, r.text
    bob = {"Authorization": f"Bearer {api.tokens['bob']}"}
    await send(api, bob, room_id, "Who wants CAKE?")
    await send(api, bob, room_id, "pancakes are not it")
    assert _counts(await sync(api, alice), room_id) == {
        "notification_count": 4,
        "highlight_count": 2,
    }
    r = await api.http.put(f"{P}/room/{room_id}", json={"actions": []}, headers=alice)
    assert r.status_code == 200, r.text
    assert _counts(await sync(api, alice), room_id) == {
        "notification_count": 2,
        "highlight_count": 2,
    }
    body = (await api.http.get(f"{V3}/notifications", headers=alice)).json()
    assert [n["event"]["content"]["body"] for n in body["notifications"]] == [
        "Who wants CAKE?",
        "hi alice",
    ]
    assert all({"set_tweak": "highlight"} in n["actions"] for n in body["notifications"])


async def test_a_sender_rule_silences_that_sender(api: ClientApi) -> None:
    alice, room_id = await _room_with_news(api)
    carol = await api.login("carol")
    await join(api, carol, room_id)
    await send(api, carol, room_id, "from carol")
    r = await api.http.put(f"{P}/sender/{uid('bob')}", json={"actions": []}, headers=alice)
    assert r.status_code == 200, r.text
    # Bob's mention still counts: the mention rules are override rules, above sender rules.
    assert _counts(await sync(api, alice), room_id) == {
        "notification_count": 2,
        "highlight_count": 1,
    }
    body = (await api.http.get(f"{V3}/notifications", headers=alice)).json()
    assert [n["event"]["content"]["body"] for n in body["notifications"]] == [
        "from carol",
        "hi alice",
    ]
    r = await api.http.put(
        f"{P}/sender/{uid('bob')}/enabled", json={"enabled": False}, headers=alice
    )
    assert r.status_code == 200
    assert _counts(await sync(api, alice), room_id)["notification_count"] == 3


@pytest.mark.parametrize("keyword", [None, "zebra", "t2"])
async def test_thread_counts_are_the_same_when_each_event_is_evaluated(
    api: ClientApi, keyword: str | None
) -> None:
    """A keyword rule makes the counts evaluate each event: a keyword that matches nothing
    gives the counts of the fast path, thread by thread and across threaded receipts; one
    that matches a thread reply highlights in that thread only."""
    alice, bob = await api.login("alice"), await api.login("bob")
    if keyword is not None:
        rule = {"pattern": keyword, "actions": ["notify", {"set_tweak": "highlight"}]}
        r = await api.http.put(f"{P}/content/k", json=rule, headers=bob)
        assert r.status_code == 200, r.text
    room = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room)
    await send(api, alice, room, "m1")
    root = await send(api, alice, room, "root")
    thread = {"rel_type": "m.thread", "event_id": root}
    t1 = await send(api, alice, room, "t1", **{"m.relates_to": thread})
    await send(api, alice, room, "t2", **{"m.relates_to": thread})
    m2 = await send(api, alice, room, "m2")
    threaded = {"room": {"timeline": {"limit": 1, "unread_thread_notifications": True}}}
    marked = 1 if keyword == "t2" else 0

    async def counts() -> tuple[int, dict[str, Any]]:
        body = await sync(api, bob, filter=threaded)
        entry = body["rooms"]["join"][room]
        return entry["unread_notifications"]["notification_count"], entry[
            "unread_thread_notifications"
        ]

    assert await counts() == (3, {root: {"notification_count": 2, "highlight_count": marked}})
    r = await api.http.post(
        f"{V3}/rooms/{room}/receipt/m.read/{t1}", headers=bob, json={"thread_id": root}
    )
    assert r.status_code == 200, r.text
    assert await counts() == (3, {root: {"notification_count": 1, "highlight_count": marked}})
    r = await api.http.post(
        f"{V3}/rooms/{room}/receipt/m.read/{m2}", headers=bob, json={"thread_id": "main"}
    )
    assert r.status_code == 200, r.text
    assert await counts() == (0, {root: {"notification_count": 1, "highlight_count": marked}})


async def test_an_override_rule_of_the_users_own_counts(api: ClientApi) -> None:
    """Not a room's mute: an override rule on the body highlights, one silencing a
    msgtype silences it (the room level cannot say; each event is evaluated)."""
    alice, room_id = await _room_with_news(api)
    urgent = {
        "actions": ["notify", {"set_tweak": "highlight"}],
        "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "urgent"}],
    }
    r = await api.http.put(f"{P}/override/urgent", json=urgent, headers=alice)
    assert r.status_code == 200, r.text
    bob = {"Authorization": f"Bearer {api.tokens['bob']}"}
    await send(api, bob, room_id, "this is URGENT")
    assert _counts(await sync(api, alice), room_id) == {
        "notification_count": 3,
        "highlight_count": 2,
    }
    no_emotes = {
        "actions": [],
        "conditions": [{"kind": "event_match", "key": "content.msgtype", "pattern": "m.emote"}],
    }
    r = await api.http.put(f"{P}/override/no-emotes", json=no_emotes, headers=alice)
    assert r.status_code == 200, r.text
    await send(api, bob, room_id, "waves", msgtype="m.emote")
    assert _counts(await sync(api, alice), room_id)["notification_count"] == 3


async def test_a_long_unread_room_evaluates_only_its_newest_events(
    api: ClientApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The work is bounded: beyond the newest MAX_EVALUATED events, the older unread ones
    count by the room's level (here: a keyword in an old message does not highlight)."""
    from relay.sync import rooms as sync_rooms

    monkeypatch.setattr(sync_rooms, "MAX_EVALUATED", 2)
    alice, room_id = await _room_with_news(api)  # "hello", then a mention
    rule = {"pattern": "hello", "actions": ["notify", {"set_tweak": "highlight"}]}
    assert (await api.http.put(f"{P}/content/k", json=rule, headers=alice)).status_code == 200
    bob = {"Authorization": f"Bearer {api.tokens['bob']}"}
    await send(api, bob, room_id, "hello again")
    await send(api, bob, room_id, "plain")
    # Evaluated: "plain", "hello again" (highlighted); by level: the mention, "hello".
    assert _counts(await sync(api, alice), room_id) == {
        "notification_count": 4,
        "highlight_count": 2,
    }
