"""A history page and a woken sync cost the same whatever the room's history: every
statement of `GET /messages` and of an incremental `GET /sync` is planned on an index
by a key narrower than the room (no SCAN, no walk of the room's events; the same
check as tests/client/test_send_cost.py). Plans, not timings."""

from __future__ import annotations

import sqlite3

from tests.client.conftest import ClientApi
from tests.client.test_send_cost import ROOM_HISTORY_INDEXES, _add_messages, _walks

V3 = "/_matrix/client/v3"


class Recorder:
    """Every statement the relay's connections run while it is open."""

    def __init__(self, api: ClientApi) -> None:
        database = api.services.database
        self.connections = [database._writer, *database._all_readers]
        self.statements: list[str] = []

    def __enter__(self) -> list[str]:
        for conn in self.connections:
            conn.set_trace_callback(self.statements.append)
        return self.statements

    def __exit__(self, *exc: object) -> None:
        for conn in self.connections:
            conn.set_trace_callback(None)


async def _room_with_history(api: ClientApi, headers: dict[str, str]) -> str:
    r = await api.http.post(f"{V3}/createRoom", headers=headers, json={"preset": "public_chat"})
    room_id = r.json()["room_id"]
    await api.services.database.write(_add_messages(api, room_id, 200))
    return room_id


async def test_a_messages_page_walks_no_history(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await _room_with_history(api, alice)
    with Recorder(api) as statements:
        r = await api.http.get(
            f"{V3}/rooms/{room_id}/messages", headers=alice, params={"dir": "b", "limit": 20}
        )
    assert r.status_code == 200, r.text
    assert len(r.json()["chunk"]) == 20
    assert any("state_key IS NOT NULL" in s for s in statements)  # visibility asked
    assert await api.services.database.read(_plans_walking, statements) == []


async def test_a_woken_sync_walks_no_history(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await _room_with_history(api, alice)
    r = await api.http.get(f"{V3}/sync", headers=alice, params={"timeout": 0})
    since = r.json()["next_batch"]
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/t1",
        headers=alice,
        json={"msgtype": "m.text", "body": "new"},
    )
    assert r.status_code == 200, r.text
    with Recorder(api) as statements:
        r = await api.http.get(f"{V3}/sync", headers=alice, params={"since": since})
    assert r.status_code == 200, r.text
    timeline = r.json()["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["content"].get("body") for e in timeline] == ["new"]
    assert await api.services.database.read(_plans_walking, statements) == []


def _bounded(conn: sqlite3.Connection, walk: str) -> bool:
    """A plan step `_walks` reports that still reads only a page: json_each over one
    event's JSON (the push mentions of count_unread), or the room's history walked in
    the index's own order (no sort) by a statement that stops at its LIMIT."""
    step, _, sql = walk.partition("  <-  ")
    if step.startswith("SCAN json_each"):
        return True
    plan = [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
    in_order = not any(p.startswith("USE TEMP B-TREE") for p in plan)
    return "events_room_depth_stream (room_id=?)" in step and in_order and " LIMIT " in sql


def _plans_walking(conn: sqlite3.Connection, statements: list[str]) -> list[str]:
    # json_each walks one event's JSON (the push mentions of count_unread), not a table.
    found = [w for w in _walks(conn, statements) if not _bounded(conn, w)]
    # A search of a room's history by a stream range that then sorts what it found by
    # another order reads the whole range to return a page of it: the first /messages
    # page (stream_ordering <= now, ordered by depth) sorted the room's whole history.
    for sql in statements:
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        plan = [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        on_history = any(f"INDEX {i} " in step for i in ROOM_HISTORY_INDEXES for step in plan)
        if on_history and "USE TEMP B-TREE FOR ORDER BY" in plan:
            found.append(f"{plan}  <-  {sql}")
    return found


async def test_a_search_reads_the_full_text_index(api: ClientApi) -> None:
    """`POST /search`: the words are found through the FTS5 index (a MATCH, not a walk of
    the documents), each hit's event by its key; the rest is the same per-page reads as
    /messages (context, visibility). Sorting `recent` hits by time costs the matches of
    the words, not the rooms' history."""
    alice = await api.login("alice")
    room_id = await _room_with_history(api, alice)
    for order_by in ("recent", "rank"):
        body = {
            "search_categories": {
                "room_events": {
                    "search_term": "history 150",
                    "order_by": order_by,
                    "event_context": {"before_limit": 2, "after_limit": 2},
                }
            }
        }
        with Recorder(api) as statements:
            r = await api.http.post(f"{V3}/search", headers=alice, json=body)
        assert r.status_code == 200, r.text
        found = r.json()["search_categories"]["room_events"]
        first = found["results"][0]["result"]
        assert first["content"]["body"] == "history 150" and first["room_id"] == room_id
        # (FTS5's own statements on its shadow tables are traced too: not ours to plan.)
        searches = [s for s in statements if "event_search MATCH" in s]
        assert len(searches) == 2  # the count and the page
        assert await api.services.database.read(_fts_plans, searches) == []
        others = [s for s in statements if "event_search" not in s]
        assert await api.services.database.read(_plans_walking, others) == []


def _fts_plans(conn: sqlite3.Connection, statements: list[str]) -> list[str]:
    """Plan steps of the search statements that read a table without a key: anything but
    the FTS5 MATCH (`VIRTUAL TABLE INDEX n:M...`) and lookups by primary key."""
    bad = []
    for sql in statements:
        for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"):
            detail = row[-1]
            match = detail.startswith("SCAN event_search VIRTUAL TABLE INDEX") and ":M" in detail
            if detail.startswith("SCAN") and not match:
                bad.append(f"{detail}  <-  {sql}")
    return bad
