"""Receiving PDUs with holes before them, and PDUs that must be hidden or refused.

Two running relays; A reaches B only through a fault proxy, so a test can cut A's outbox
off while A's users keep writing, then hand B just the newest event (a signed /send as A,
straight to B's listener) and watch B close the gap itself by asking A: the missing events
can only have come from B's own `/get_missing_events` (or `/state_ids`) calls to A.
B's `federation.gap_fill_cap` is 10.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from relay.events.pdu import Pdu
from relay.events.room_versions import room_version
from relay.federation.errors import RemoteError
from store import events as store_events
from tests.federation.conftest import open_side
from tests.federation.peers import (
    V1,
    build_event,
    membership_of,
    new_txn_id,
    send_many,
    signing_key_of,
    transaction,
)
from tests.integration.conftest import RelayProcess, make_relay
from tests.integration.matrix_client import MatrixUser
from tests.support import free_port, fresh_loopback, wait_until
from tools.faultproxy import FaultProxy

pytestmark = pytest.mark.integration

GAP_CAP = 10


@dataclass
class Pair:
    a: RelayProcess
    b: RelayProcess
    to_b: FaultProxy  # A's only way to B
    alice: MatrixUser  # on A
    bob: MatrixUser  # on B
    room_id: str


def _set(toml: Path, key: str, value: str) -> None:
    lines = toml.read_text().splitlines()
    lines = [f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in lines]
    toml.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    base = tmp_path_factory.mktemp("ingest")
    a, b = make_relay(base, "a"), make_relay(base, "b")
    host = fresh_loopback()
    to_b = FaultProxy(host, free_port(host), b.host, b.federation_port).start()
    try:
        for r in (a, b):
            r.init("--no-verify-tls")
        toml = a.data_dir / "relay.toml"
        toml.write_text(
            toml.read_text().replace(
                "[federation.servers]\n",
                f'[federation.servers]\n"{b.server_name}" = "https://{host}:{to_b.listen_port}"\n',
            )
        )
        for key in ("send_per_second", "login_per_second"):
            _set(toml, key, "0")
        _set(b.data_dir / "relay.toml", "gap_fill_cap", str(GAP_CAP))
        for r in (a, b):
            r.start()
        a.cli("user", "add", "alice", "--password", "pw")
        b.cli("user", "add", "bob", "--password", "pw")
        alice = MatrixUser.login(a.client_url, "alice")
        bob = MatrixUser.login(b.client_url, "bob")
        room_id = bob.create_room(name="gaps", preset="public_chat")
        bob.invite(room_id, alice.user_id)
        alice.wait_for_invite(room_id)
        alice.join(room_id)
        wait_until(lambda: membership_of(bob, room_id, alice.user_id) == "join", what="join")
        yield Pair(a, b, to_b, alice, bob, room_id)
    finally:
        for r in (a, b):
            r.kill()
        to_b.stop()


async def _from_a(pair: Pair, event_id: str) -> dict[str, Any]:
    """An event as A serves it (asked as B, which is in the room)."""
    async with open_side(pair.b, verify_tls=False) as side:
        body = await side.client.get_json(pair.a.server_name, f"{V1}/event/{event_id}")
    return body["pdus"][0]


async def _send_as_a(pair: Pair, pdus: list[dict[str, Any]]) -> dict[str, Any]:
    # Straight to B's listener: the static map in A's config points at the proxy.
    async with open_side(pair.a, verify_tls=False, federation_map={}) as side:
        return await side.client.put_json(
            pair.b.server_name,
            f"{V1}/send/{new_txn_id()}",
            transaction(pair.a.server_name, pdus),
        )


async def _get_as_a(pair: Pair, path: str, **query: Any) -> Any:
    async with open_side(pair.a, verify_tls=False, federation_map={}) as side:
        return await side.client.get_json(pair.b.server_name, path, query=query or None)


async def _b_read(pair: Pair, fn: Any, *args: Any) -> Any:
    async with open_side(pair.b) as side:
        return await side.database.read(fn, *args)


def _timeline_ids(conn: Any, room_id: str) -> set[str]:
    rows = conn.execute("SELECT event_id FROM events WHERE room_id = ? AND outlier = 0", (room_id,))
    return {row[0] for row in rows}


def _with_prefix(user: MatrixUser, room_id: str, prefix: str) -> list[str]:
    return [body for body in user.bodies(room_id) if body.startswith(prefix)]


async def _link(pair: Pair, up: bool) -> None:
    # The proxy's controls block on its own trio loop: call them from a worker thread.
    await trio.to_thread.run_sync(pair.to_b.heal if up else pair.to_b.cut)


async def _converges(pair: Pair, prefix: str, expected: list[str]) -> None:
    """After the link heals, A's outbox delivers the rest and nothing is doubled; B's
    /messages shows them in DAG (depth) order, also those that arrived after newer ones."""
    await _link(pair, up=True)
    seen: list[str] = []

    def arrived() -> bool:
        seen[:] = _with_prefix(pair.bob, pair.room_id, prefix)
        return sorted(seen) == sorted(expected)

    try:
        wait_until(arrived, timeout=60, what=f"{prefix}messages after heal")
    except AssertionError:
        raise AssertionError(f"after heal B shows {seen}") from None
    assert len(seen) == len(set(seen))
    assert seen == expected


async def test_missing_prev_events_are_fetched_with_get_missing_events(pair: Pair) -> None:
    await _link(pair, up=False)
    try:
        bodies = [f"small {i}" for i in range(5)]
        ids = send_many(pair.alice, pair.room_id, bodies)
        assert _with_prefix(pair.bob, pair.room_id, "small ") == []
        newest = await _from_a(pair, ids[-1])
        result = await _send_as_a(pair, [newest])
        assert result == {"pdus": {ids[-1]: {}}}
        # All five are on B while A's outbox is still cut off: the four before came from
        # B's gap filling, oldest first.
        assert _with_prefix(pair.bob, pair.room_id, "small ") == bodies
        have = await _b_read(pair, store_events.have_events, ids)
        assert have == set(ids)
    finally:
        await _converges(pair, "small ", [f"small {i}" for i in range(5)])


async def test_a_gap_beyond_the_cap_is_bridged_with_state_ids(pair: Pair) -> None:
    await _link(pair, up=False)
    n = 3 * GAP_CAP
    bodies = [f"big {i:02d}" for i in range(n)]
    try:
        ids = send_many(pair.alice, pair.room_id, bodies)
        newest = await _from_a(pair, ids[-1])
        result = await _send_as_a(pair, [newest])
        assert result == {"pdus": {ids[-1]: {}}}
        # B fetched at most the cap's worth of the gap, newest first, and stored exactly
        # those as part of the room; the older part stays a gap, bridged by the state A
        # reported at its edge (the event there may be kept as an outlier, for that state).
        have = await _b_read(pair, _timeline_ids, pair.room_id)
        assert have & set(ids) == set(ids[n - 1 - GAP_CAP :])
        # A reader paging back over the gap has B fetch the rest from A (/backfill), while
        # A's outbox is still cut off: all of it, in order.
        assert _with_prefix(pair.bob, pair.room_id, "big ") == bodies
        # The room still works on B: its messages are accepted on top of the bridged gap.
        pair.bob.send(pair.room_id, "after the gap")
        assert pair.bob.bodies(pair.room_id)[-1] == "after the gap"
    finally:
        # Including the event at the gap's edge, which B first kept as an outlier.
        await _converges(pair, "big ", bodies)


async def test_events_that_arrive_late_are_served_in_depth_order(pair: Pair) -> None:
    # The older part of a gap beyond the cap reaches B only once the link heals (A's
    # outbox), after the newer part and after Bob's reply on top of it: B stores it
    # last, and /messages must still serve it where the DAG puts it. Nobody reads B's
    # /messages before that, or paging back would fetch the gap (/backfill) first.
    await _link(pair, up=False)
    n = 2 * GAP_CAP + 5
    bodies = [f"late {i:02d}" for i in range(n)]
    try:
        ids = send_many(pair.alice, pair.room_id, bodies)
        newest = await _from_a(pair, ids[-1])
        assert await _send_as_a(pair, [newest]) == {"pdus": {ids[-1]: {}}}
        have = await _b_read(pair, _timeline_ids, pair.room_id)
        assert have & set(ids) == set(ids[n - 1 - GAP_CAP :])
        reply = pair.bob.send(pair.room_id, "late reply")
    finally:
        await _link(pair, up=True)
    with trio.fail_after(60):
        while not set(ids) <= await _b_read(pair, _timeline_ids, pair.room_id):
            await trio.sleep(0.2)
    await _converges(pair, "late ", [*bodies, "late reply"])
    streams = await _b_read(pair, store_events.get_stream_orderings, [*ids, reply])
    depths = await _b_read(pair, store_events.get_depths, [*ids, reply])
    # Arrival order is not depth order: the oldest came after the reply...
    assert streams[ids[0]] > streams[reply] > streams[ids[-1]]
    assert depths[ids[0]] < depths[ids[-1]] < depths[reply]
    # ...and a client paging back in small pages still gets depth order, each once.
    page_ids = [e["event_id"] for e in pair.bob.messages(pair.room_id, limit=3)]
    assert [e for e in page_ids if e in streams] == [*ids, reply]


async def test_soft_failed_event_is_stored_but_not_shown(pair: Pair) -> None:
    pair.a.cli("user", "add", "sam", "--password", "pw")
    sam = MatrixUser.login(pair.a.client_url, "sam")
    sam.join(pair.room_id, via=[pair.b.server_name])
    wait_until(lambda: membership_of(pair.bob, pair.room_id, sam.user_id) == "join", what="sam")
    key = signing_key_of(pair.a)

    def build(conn: Any) -> Pdu:
        return build_event(
            conn,
            pair.room_id,
            server=pair.a.server_name,
            key=key,
            sender=sam.user_id,
            type_="m.room.message",
            content={"msgtype": "m.text", "body": "written before the ban arrived"},
            # Later than anything else in the room, so only it could answer a
            # timestamp lookup at its own time.
            origin_server_ts=late_ts,
        )

    late_ts = int(time.time() * 1000) + 3_600_000
    # Built while Sam is joined; B bans him before it arrives.
    pdu = await _b_read(pair, build)
    pair.bob.sync(timeout_ms=0)
    pair.bob.call("POST", f"/rooms/{pair.room_id}/ban", json={"user_id": sam.user_id})
    result = await _send_as_a(pair, [pdu.as_dict()])
    assert result == {"pdus": {pdu.event_id: {}}}
    row = await _b_read(pair, store_events.get_event_row, pdu.event_id)
    assert row is not None
    assert row["soft_failed"] and row["rejected_reason"] is None
    assert "written before the ban arrived" not in pair.bob.bodies(pair.room_id)
    sync = pair.bob.sync(timeout_ms=500)
    timeline = sync.get("rooms", {}).get("join", {}).get(pair.room_id, {}).get("timeline", {})
    assert pdu.event_id not in [e["event_id"] for e in timeline.get("events", [])]
    # Not a forward extremity: B's next event does not build on it.
    extremities = await _b_read(pair, store_events.get_forward_extremities, pair.room_id)
    assert pdu.event_id not in extremities
    # Nor is it an answer to a timestamp lookup, over federation or the client API.
    path = f"{V1}/timestamp_to_event/{pair.room_id}"
    with pytest.raises(RemoteError) as exc:
        await _get_as_a(pair, path, ts=str(late_ts), dir="f")
    assert exc.value.status == 404
    found = await _get_as_a(pair, path, ts=str(late_ts), dir="b")
    assert found["event_id"] != pdu.event_id
    r = pair.bob.http.get(
        f"/_matrix/client/v1/rooms/{pair.room_id}/timestamp_to_event",
        params={"ts": str(late_ts), "dir": "f"},
    )
    assert r.status_code == 404, r.text
    r = pair.bob.http.get(
        f"/_matrix/client/v1/rooms/{pair.room_id}/timestamp_to_event",
        params={"ts": str(late_ts), "dir": "b"},
    )
    assert r.status_code == 200 and r.json()["event_id"] != pdu.event_id, r.text


async def test_rejected_event_is_never_served(pair: Pair) -> None:
    key = signing_key_of(pair.a)
    intruder = f"@intruder:{pair.a.server_name}"

    def build(conn: Any) -> Pdu:
        return build_event(
            conn,
            pair.room_id,
            server=pair.a.server_name,
            key=key,
            sender=intruder,
            type_="m.room.message",
            content={"msgtype": "m.text", "body": "not a member"},
        )

    pdu = await _b_read(pair, build)
    result = await _send_as_a(pair, [pdu.as_dict()])
    assert result["pdus"][pdu.event_id].get("error")
    row = await _b_read(pair, store_events.get_event_row, pdu.event_id)
    assert row is not None and row["rejected_reason"], "kept as rejected"
    tip = pair.bob.send(pair.room_id, "after the intruder")

    with pytest.raises(RemoteError) as exc:
        await _get_as_a(pair, f"{V1}/event/{pdu.event_id}")
    assert exc.value.status == 404
    with pytest.raises(RemoteError) as exc:
        await _get_as_a(pair, f"{V1}/state_ids/{pair.room_id}", event_id=pdu.event_id)
    assert exc.value.status == 404
    rv = room_version(pdu.room_version.identifier)
    assert rv is not None
    for start in (pdu.event_id, tip):
        body = await _get_as_a(pair, f"{V1}/backfill/{pair.room_id}", v=start, limit="100")
        served = [Pdu.from_dict(e, rv).event_id for e in body["pdus"]]
        assert pdu.event_id not in served
    async with open_side(pair.a, verify_tls=False, federation_map={}) as side:
        body = await side.client.post_json(
            pair.b.server_name,
            f"{V1}/get_missing_events/{pair.room_id}",
            {"earliest_events": [], "latest_events": [tip], "limit": 100},
        )
    assert pdu.event_id not in [Pdu.from_dict(e, rv).event_id for e in body["events"]]
