"""`POST /search` (room_events): the answer's shape, rank and recent order, next_batch
pages, filters, context, state, groups, history visibility, ignored users, redactions,
encrypted events, the query syntax and the errors (relay/rooms/search.py)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import pytest

from store import search as store_search
from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, send, uid

SEARCH = f"{V3}/search"


async def _search(
    api: ClientApi,
    headers: dict[str, str],
    term: str,
    next_batch: str | None = None,
    **criteria: Any,
) -> dict[str, Any]:
    params = {"next_batch": next_batch} if next_batch is not None else {}
    body = {"search_categories": {"room_events": {"search_term": term, **criteria}}}
    r = await api.http.post(SEARCH, headers=headers, json=body, params=params)
    assert r.status_code == 200, r.text
    return r.json()["search_categories"]["room_events"]


def _bodies(found: dict[str, Any]) -> list[str]:
    return [r["result"]["content"].get("body") for r in found["results"]]


async def _error(
    api: ClientApi, headers: dict[str, str], body: Any, **params: str
) -> tuple[int, str]:
    r = await api.http.post(SEARCH, headers=headers, json=body, params=params)
    return r.status_code, r.json()["errcode"]


async def test_a_word_finds_the_message(api: ClientApi) -> None:
    alice = await api.login("alice")
    room = await create_room(api, alice)
    event_id = await send(api, alice, room, "Lunch at the Harbour café today")
    await send(api, alice, room, "nothing to see")
    found = await _search(api, alice, "harbour")
    assert found["count"] == 1
    assert found["highlights"] == ["harbour"]
    [result] = found["results"]
    assert result["result"]["event_id"] == event_id
    assert result["result"]["room_id"] == room
    assert result["result"]["sender"] == uid("alice")
    assert result["result"]["content"]["body"] == "Lunch at the Harbour café today"
    assert isinstance(result["rank"], float) and result["rank"] > 0
    assert result["context"] == {}
    assert "next_batch" not in found and "groups" not in found and "state" not in found
    # Case and diacritics fold; a word that is not there finds nothing.
    assert _bodies(await _search(api, alice, "CAFE")) == ["Lunch at the Harbour café today"]
    assert (await _search(api, alice, "harb"))["results"] == []


async def test_names_and_topics_are_found_and_keys_narrow(api: ClientApi) -> None:
    alice = await api.login("alice")
    room = await create_room(api, alice, name="Logistics depot", topic="depot shifts")
    await send(api, alice, room, "the depot opens at six")
    found = await _search(api, alice, "depot")
    types = sorted(r["result"]["type"] for r in found["results"])
    assert types == ["m.room.message", "m.room.name", "m.room.topic"]
    assert found["count"] == 3
    only_body = await _search(api, alice, "depot", keys=["content.body"])
    assert _bodies(only_body) == ["the depot opens at six"]
    only_name = await _search(api, alice, "depot", keys=["content.name"])
    assert [r["result"]["content"]["name"] for r in only_name["results"]] == ["Logistics depot"]


async def test_recent_is_newest_first_and_pages_with_next_batch(api: ClientApi) -> None:
    alice = await api.login("alice")
    room = await create_room(api, alice)
    for i in range(25):
        await send(api, alice, room, f"convoy {i}")
    await send(api, alice, room, "unrelated")
    pages, batch = [], None
    while True:
        found = await _search(
            api, alice, "convoy", next_batch=batch, order_by="recent", filter={"limit": 10}
        )
        assert found["count"] == 25
        pages.append(_bodies(found))
        batch = found.get("next_batch")
        if batch is None:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [b for p in pages for b in p] == [f"convoy {i}" for i in reversed(range(25))]


async def test_rank_puts_the_closest_match_first(api: ClientApi) -> None:
    alice = await api.login("alice")
    room = await create_room(api, alice)
    await send(api, alice, room, "water " + "and many other words besides " * 5)
    await send(api, alice, room, "water water")
    found = await _search(api, alice, "water")
    assert _bodies(found)[0] == "water water"
    ranks = [r["rank"] for r in found["results"]]
    assert ranks == sorted(ranks, reverse=True)
    assert "next_batch" not in found


async def test_filter_rooms_senders_types_and_limit(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    one = await create_room(api, alice, preset="public_chat")
    two = await create_room(api, alice, preset="public_chat", name="fuel depot")
    await join(api, bob, one)
    await send(api, alice, one, "fuel in one")
    await send(api, bob, one, "fuel from bob")
    await send(api, alice, two, "fuel in two", url="mxc://x/y")

    async def texts(**event_filter: Any) -> list[str]:
        found = await _search(api, alice, "fuel", order_by="recent", filter=event_filter)
        content = [r["result"]["content"] for r in found["results"]]
        return sorted(c.get("body") or c["name"] for c in content)

    assert await texts(rooms=[one]) == ["fuel from bob", "fuel in one"]
    assert await texts(not_rooms=[one]) == ["fuel depot", "fuel in two"]
    assert await texts(senders=[uid("bob")]) == ["fuel from bob"]
    assert await texts(not_senders=[uid("alice")]) == ["fuel from bob"]
    assert await texts(types=["m.room.name"]) == ["fuel depot"]
    assert await texts(not_types=["m.room.message"]) == ["fuel depot"]
    assert await texts(contains_url=True) == ["fuel in two"]
    assert len(await texts(limit=2)) == 2
    assert await texts(limit=0) == []


async def test_only_joined_rooms_and_what_history_visibility_shows(api: ClientApi) -> None:
    alice, bob, eve = await api.login("alice"), await api.login("bob"), await api.login("eve")
    room = await create_room(api, alice, preset="public_chat")
    r = await api.http.put(
        f"{V3}/rooms/{room}/state/m.room.history_visibility/",
        headers=alice,
        json={"history_visibility": "joined"},
    )
    assert r.status_code == 200, r.text
    await send(api, alice, room, "secret before bob")
    await join(api, bob, room)
    await send(api, alice, room, "secret after bob")
    assert _bodies(await _search(api, bob, "secret")) == ["secret after bob"]
    # Eve is in no room of Alice's: nothing, and no count of what she cannot see.
    found = await _search(api, eve, "secret")
    assert found == {"results": [], "count": 0, "highlights": []}
    # Bob leaves: as Synapse, only the rooms one is joined to are searched.
    r = await api.http.post(f"{V3}/rooms/{room}/leave", headers=bob, json={})
    assert r.status_code == 200, r.text
    assert (await _search(api, bob, "secret"))["results"] == []


async def test_ignored_users_messages_are_left_out(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    room = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room)
    await send(api, alice, room, "supply from alice")
    await send(api, bob, room, "supply from bob")
    r = await api.http.put(
        f"{V3}/user/{uid('alice')}/account_data/m.ignored_user_list",
        headers=alice,
        json={"ignored_users": {uid("bob"): {}}},
    )
    assert r.status_code == 200, r.text
    found = await _search(api, alice, "supply", event_context={"before_limit": 3})
    assert _bodies(found) == ["supply from alice"]
    assert found["results"][0]["context"]["events_after"] == []


async def test_a_redacted_message_is_not_found(api: ClientApi) -> None:
    alice = await api.login("alice")
    room = await create_room(api, alice)
    event_id = await send(api, alice, room, "password is hunter2")
    await send(api, alice, room, "hunter2 again")
    r = await api.http.put(
        f"{V3}/rooms/{room}/redact/{quote(event_id, safe='')}/r1", headers=alice, json={}
    )
    assert r.status_code == 200, r.text
    found = await _search(api, alice, "hunter2")
    assert _bodies(found) == ["hunter2 again"]
    # The index itself let go of it, in the redaction's write (count is before any rule).
    assert found["count"] == 1


async def test_a_redacted_message_left_in_the_index_is_still_not_found(api: ClientApi) -> None:
    """The event_search migration indexes what was stored before it, redacted events too: every
    hit is asked the redaction rule."""
    alice = await api.login("alice")
    room = await create_room(api, alice)
    event_id = await send(api, alice, room, "pin 1234")
    r = await api.http.put(
        f"{V3}/rooms/{room}/redact/{quote(event_id, safe='')}/r1", headers=alice, json={}
    )
    assert r.status_code == 200, r.text

    def reindex(conn: Any) -> None:
        store_search.insert_search_entry(
            conn, event_id=event_id, room_id=room, key="content.body", value="pin 1234"
        )

    await api.services.database.write(reindex)
    found = await _search(api, alice, "1234")
    assert found["count"] == 1 and found["results"] == []


async def test_encrypted_events_are_never_indexed(api: ClientApi) -> None:
    alice = await api.login("alice")
    room = await create_room(api, alice)
    # Even one carrying a plaintext `body` (a broken client): the server never indexes it.
    await send(api, alice, room, "cleartext-leak", type="m.room.encrypted", ciphertext="x")
    found = await _search(api, alice, "cleartext-leak")
    assert found["results"] == [] and found["count"] == 0


async def test_event_context_with_profiles(api: ClientApi) -> None:
    alice = await api.login("alice")
    room = await create_room(api, alice)
    r = await api.http.put(
        f"{V3}/profile/{uid('alice')}/displayname", headers=alice, json={"displayname": "Alice"}
    )
    assert r.status_code == 200, r.text
    for body in ["one", "two", "target word", "three", "four"]:
        await send(api, alice, room, body)
    found = await _search(
        api,
        alice,
        "target",
        event_context={"before_limit": 2, "after_limit": 1, "include_profile": True},
    )
    [result] = found["results"]
    context = result["context"]
    assert [e["content"]["body"] for e in context["events_before"]] == ["two", "one"]
    assert [e["content"]["body"] for e in context["events_after"]] == ["three"]
    assert context["profile_info"] == {uid("alice"): {"displayname": "Alice", "avatar_url": None}}
    # The tokens page on from the context, as /context's do.
    r = await api.http.get(
        f"{V3}/rooms/{room}/messages",
        headers=alice,
        params={"from": context["end"], "dir": "f", "limit": 5},
    )
    assert r.status_code == 200, r.text
    assert [e["content"].get("body") for e in r.json()["chunk"]] == ["four"]


async def test_include_state_and_groupings(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    one = await create_room(api, alice, preset="public_chat")
    two = await create_room(api, alice)
    await join(api, bob, one)
    e1 = await send(api, bob, one, "radio check")
    e2 = await send(api, alice, two, "radio silence")
    groupings = {"group_by": [{"key": "room_id"}, {"key": "sender"}]}
    found = await _search(api, alice, "radio", include_state=True, groupings=groupings)
    assert set(found["state"]) == {one, two}
    assert any(e["type"] == "m.room.create" for e in found["state"][one])
    rooms = found["groups"]["room_id"]
    assert rooms[one]["results"] == [e1] and rooms[two]["results"] == [e2]
    assert isinstance(rooms[one]["order"], float)
    senders = found["groups"]["sender"]
    assert senders[uid("bob")]["results"] == [e1]
    # `recent` groups by room only, each with its own next_batch when the page is full.
    found = await _search(
        api, alice, "radio", order_by="recent", groupings=groupings, filter={"limit": 1}
    )
    [(room_id, group)] = found["groups"]["room_id"].items()
    assert room_id == two and "sender" not in found["groups"] and "next_batch" in group
    rest = await _search(api, alice, "radio", next_batch=group["next_batch"], order_by="recent")
    assert rest["results"] == []  # that room had one hit: the page after it is empty


async def test_query_syntax(api: ClientApi) -> None:
    alice = await api.login("alice")
    room = await create_room(api, alice)
    for body in ["red apple pie", "green apple", "apple red", "banana split"]:
        await send(api, alice, room, body)

    async def bodies(term: str) -> list[str]:
        return sorted(_bodies(await _search(api, alice, term, order_by="recent")))

    assert await bodies("apple red") == ["apple red", "red apple pie"]
    assert await bodies('"red apple"') == ["red apple pie"]
    assert await bodies("apple -red") == ["green apple"]
    assert await bodies("green or banana") == ["banana split", "green apple"]
    assert await bodies("the") == []  # stop words only
    assert await bodies("-apple") == []  # exclusions only
    # FTS5 syntax typed by a user is just words.
    for term in ["apple AND (", "NEAR(apple red)", "apple*", '"', "red:apple", "^apple"]:
        await _search(api, alice, term)


async def test_a_filter_room_searches_the_rooms_it_upgraded_from(api: ClientApi) -> None:
    alice = await api.login("alice")
    old = await create_room(api, alice)
    await send(api, alice, old, "archive note")
    r = await api.http.post(f"{V3}/rooms/{old}/upgrade", headers=alice, json={"new_version": "11"})
    assert r.status_code == 200, r.text
    new = r.json()["replacement_room"]
    await send(api, alice, new, "archive follow-up")
    found = await _search(api, alice, "archive", order_by="recent", filter={"rooms": [new]})
    assert _bodies(found) == ["archive follow-up", "archive note"]


async def test_errors_as_synapse_answers_them(api: ClientApi) -> None:
    alice = await api.login("alice")
    await create_room(api, alice)

    def criteria(**extra: Any) -> dict[str, Any]:
        return {"search_categories": {"room_events": {"search_term": "x", **extra}}}

    unknown = (400, "M_UNKNOWN")
    assert await _error(api, alice, {}) == unknown
    assert await _error(api, alice, {"search_categories": {"messages": {}}}) == unknown
    assert await _error(api, alice, {"search_categories": {"room_events": {}}}) == unknown
    assert await _error(api, alice, criteria(order_by="oldest")) == unknown
    assert await _error(api, alice, criteria(groupings={"group_by": [{"key": "type"}]})) == (
        unknown
    )
    assert await _error(api, alice, criteria(), next_batch="!!!") == unknown
    not_ours = base64.b64encode(b"all\n\nnot-a-position").decode()
    assert await _error(api, alice, criteria(), next_batch=not_ours) == unknown
    # Where Synapse fails with a 500 or ignores the input, a clear 400.
    assert await _error(api, alice, criteria(filter={"rooms": "!a:b"})) == (400, "M_BAD_JSON")
    assert await _error(api, alice, criteria(filter=5)) == (400, "M_BAD_JSON")
    assert await _error(api, alice, criteria(search_term=5)) == (400, "M_BAD_JSON")
    assert await _error(api, alice, criteria(keys=["content.secret"])) == (
        400,
        "M_INVALID_PARAM",
    )
    assert await _error(api, alice, criteria(event_context={"before_limit": "3"})) == (
        400,
        "M_BAD_JSON",
    )
    assert await _error(api, alice, criteria(search_term="w " * 300)) == (400, "M_INVALID_PARAM")
    r = await api.http.post(SEARCH, headers=alice, content=b"not json")
    assert r.status_code == 400 and r.json()["errcode"] == "M_NOT_JSON"
    r = await api.http.post(SEARCH, json=criteria())
    assert r.status_code == 401


@pytest.mark.parametrize("order_by", ["rank", "recent"])
async def test_a_page_is_bounded(api: ClientApi, order_by: str) -> None:
    # 105 sends as fast as the machine goes: past the sending rate limit on a quiet one.
    api.services.send_limiter.per_second = 0
    alice = await api.login("alice")
    room = await create_room(api, alice)
    for i in range(105):
        await send(api, alice, room, f"flood {i}")
    found = await _search(api, alice, "flood", order_by=order_by, filter={"limit": 10_000})
    assert len(found["results"]) == 100
    assert found["count"] == 105
