"""How much one received PDU can make gap filling do, whatever its sender answers.

`Ingest` runs over stand-ins: a database that knows the room and none of its events, a
federation client that plays a hostile peer and counts its requests, and a key ring that
counts the events it is asked to verify. Bounds are counts, never times.
"""

from __future__ import annotations

import inspect
import json
from types import SimpleNamespace
from typing import Any

import trio
import trio.testing

from relay.events.hashes import add_content_hash
from relay.events.pdu import Pdu
from relay.events.room_versions import room_version
from relay.events.signing import sign_event
from relay.federation.errors import RequestTimedOut
from relay.federation.ingest import MAX_GAP_REQUESTS, MISSING_EVENTS_BATCH, Ingest
from relay.federation.link_budget import LinkBudget
from relay.rooms.remote_pdus import Outcome
from relay.runtime.identity import new_signing_key
from store import events as store_events
from store import rooms as store_rooms

RV = room_version("10")
KEY = new_signing_key()
ROOM = "!room:remote.example"


def _event(depth: int, prev: list[str]) -> dict[str, Any]:
    event = {
        "type": "m.room.message",
        "room_id": ROOM,
        "sender": "@u:remote.example",
        "content": {"body": str(depth)},
        "origin_server_ts": depth,
        "depth": depth,
        "prev_events": prev,
        "auth_events": [],
    }
    return sign_event(add_content_hash(event), RV, "remote.example", KEY.key_id, KEY.key)


def _id(event: dict[str, Any]) -> str:
    return Pdu.from_dict(event, RV).event_id


class Database:
    """Knows the room (v10) and no event of it; writes are refused, and counted."""

    def __init__(self) -> None:
        self.writes = 0

    async def read(self, fn: Any, *args: Any) -> Any:
        answers = {
            store_rooms.get_room_version: "10",
            store_events.get_event_row: None,
            store_events.have_events: set(),
            store_events.get_forward_extremities: [],
        }
        return answers[fn]

    async def write(self, fn: Any, *args: Any) -> Outcome:
        self.writes += 1
        return Outcome("rejected", "stand-in database")


class KeyRing:
    def __init__(self) -> None:
        self.verified = 0

    async def verify_event_signatures(self, event: dict[str, Any], rv: Any) -> None:
        self.verified += 1


class Peer:
    """Answers /get_missing_events with whatever `answer(limit)` returns; counts requests
    and notes whether the room's lock was held while it was asked."""

    timeout = 30.0

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        # A fast link (a LAN) already measured: pulls ask for full batches.
        self.budget = LinkBudget()
        self.turn = trio.Lock()
        self.budget.answered(10**6, 0.01)
        self.limits: list[int] = []
        self.locked_while_asked: list[bool] = []
        self.ingest: Ingest | None = None

    def pull_turn(self, destination: str) -> trio.Lock:
        return self.turn

    def link_budget(self, destination: str) -> LinkBudget:
        return self.budget

    async def post_json(self, origin: str, path: str, body: dict[str, Any], **_: Any) -> Any:
        assert "/get_missing_events/" in path
        self.limits.append(body["limit"])
        assert self.ingest is not None
        self.locked_while_asked.append(self.ingest._lock(ROOM).locked())
        events = self.answer(body["limit"])
        if inspect.isawaitable(events):
            events = await events
        return {"events": events}


def _ingest(peer: Peer, gap_cap: int = 10_000) -> tuple[Ingest, Database, KeyRing]:
    database, keyring = Database(), KeyRing()
    services = SimpleNamespace(
        database=database, federation_client=peer, keyring=keyring, rooms=None
    )
    ingest = Ingest(services, gap_cap=gap_cap)  # type: ignore[arg-type]
    peer.ingest = ingest
    return ingest, database, keyring


def _endless_ancestors() -> Any:
    """Each answer: fresh events each naming a prev event nobody has, so the walk goes on."""
    depth = [1_000_000]

    def answer(limit: int) -> list[dict[str, Any]]:
        events = []
        for _ in range(limit):
            depth[0] -= 1
            events.append(_event(depth[0], [f"$never-seen-{depth[0]}"]))
        return events

    return answer


async def test_an_answer_longer_than_the_limit_is_cut_to_the_limit() -> None:
    answer = _endless_ancestors()
    peer = Peer(lambda limit: answer(300))  # 300 events to a limit=100 request
    ingest, database, keyring = _ingest(peer, gap_cap=MISSING_EVENTS_BATCH)
    head = _event(2_000_000, ["$missing"])
    await ingest.receive("remote.example", head)
    assert peer.limits == [MISSING_EVENTS_BATCH]
    assert keyring.verified == 1 + MISSING_EVENTS_BATCH  # the PDU, then 100 of the 300
    assert database.writes == 1 + MISSING_EVENTS_BATCH


async def test_requests_per_pdu_are_bounded_when_every_answer_is_one_event() -> None:
    answer = _endless_ancestors()
    peer = Peer(lambda limit: answer(1))  # drip-feed: one new ancestor per request
    ingest, _, _ = _ingest(peer, gap_cap=10_000)
    await ingest.receive("remote.example", _event(2_000_000, ["$missing"]))
    assert ingest.gap_requests == MAX_GAP_REQUESTS == 100
    assert len(peer.limits) == MAX_GAP_REQUESTS


async def test_requests_per_pdu_follow_a_small_gap_cap() -> None:
    answer = _endless_ancestors()
    peer = Peer(answer)
    ingest, _, keyring = _ingest(peer, gap_cap=250)
    await ingest.receive("remote.example", _event(2_000_000, ["$missing"]))
    assert peer.limits == [100, 100, 50]
    assert keyring.verified == 1 + 250


async def test_the_room_lock_is_not_held_while_the_peer_answers() -> None:
    answer = _endless_ancestors()
    peer = Peer(answer)
    ingest, _, _ = _ingest(peer, gap_cap=200)
    await ingest.receive("remote.example", _event(2_000_000, ["$missing"]))
    assert peer.locked_while_asked == [False, False]


async def test_a_pdu_with_too_many_prev_events_causes_no_request() -> None:
    peer = Peer(_endless_ancestors())
    ingest, database, _ = _ingest(peer)
    _, outcome = await ingest.receive("remote.example", _event(5, [f"$p{i}" for i in range(200)]))
    assert outcome.status == "rejected" and "prev_events" in outcome.reason
    assert peer.limits == [] and database.writes == 0


class RememberingDatabase(Database):
    """As Database, but once anything was written the head PDU counts as stored."""

    def __init__(self, head: str) -> None:
        super().__init__()
        self.head = head

    async def read(self, fn: Any, *args: Any) -> Any:
        if fn is store_events.get_event_row and self.writes and args == (self.head,):
            return {"outlier": 0, "rejected_reason": "stand-in database"}
        return await super().read(fn, *args)


async def test_the_same_pdu_received_twice_at_once_pulls_its_gap_once() -> None:
    """A sender that gave up waiting for our answer retries the transaction while we still
    pull the gap before its PDU (over a slow link): the retry waits for the first."""
    answer = _endless_ancestors()
    release = trio.Event()

    async def slow_answer(limit: int) -> list[dict[str, Any]]:
        await release.wait()
        return answer(limit)

    peer = Peer(slow_answer)
    head = _event(2_000_000, ["$missing"])
    ingest, _, _ = _ingest(peer, gap_cap=MISSING_EVENTS_BATCH)
    ingest.services.database = RememberingDatabase(_id(head))  # type: ignore[misc]
    outcomes = []

    async def receive() -> None:
        outcomes.append((await ingest.receive("remote.example", head))[1].status)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        nursery.start_soon(receive)
        await trio.testing.wait_all_tasks_blocked()
        release.set()
    assert len(peer.limits) == 1
    assert sorted(outcomes) == ["duplicate", "rejected"]


class SlowPeer(Peer):
    """A peer behind a link carrying `rate` bytes a second (trio's clock): an answer the
    timeout cannot wait for is cut, as the real client cuts it."""

    def __init__(self, answer: Any, rate: float) -> None:
        super().__init__(answer)
        self.budget = LinkBudget()  # nothing known yet
        self.rate = rate

    async def post_json(self, origin: str, path: str, body: dict[str, Any], **kw: Any) -> Any:
        answer = await super().post_json(origin, path, body)
        needed = len(json.dumps(answer)) / self.rate
        if needed > kw["timeout"]:
            await trio.sleep(kw["timeout"])
            raise RequestTimedOut(origin, kw["timeout"])
        await trio.sleep(needed)
        return answer


async def test_over_a_slow_link_a_gap_is_pulled_in_pieces_the_link_carries(
    autojump_clock: Any,
) -> None:
    """40 long ancestors (2.5 KB each: 100 KB) over 9.6 kbit/s: asked for whole they could
    never arrive within a timeout; in pieces, all of them do."""
    chain: list[dict[str, Any]] = []
    prev = ["$before-the-gap"]
    for depth in range(1, 41):
        event = _event(depth, prev)
        event["content"]["body"] = "x" * 2000
        chain.append(sign_event(add_content_hash(event), RV, "remote.example", KEY.key_id, KEY.key))
        prev = [_id(chain[-1])]
    by_id = {_id(e): e for e in chain}
    walked: list[str] = []

    def answer(limit: int) -> list[dict[str, Any]]:
        """The `limit` newest ancestors not handed out yet (as Synapse walks back)."""
        left = [e for e in reversed(chain) if _id(e) not in walked]
        given = left[:limit]
        return given

    peer = SlowPeer(answer, rate=1100)
    ingest, _, keyring = _ingest(peer)
    head = _event(41, prev)

    original = peer.post_json

    async def post_json(origin: str, path: str, body: dict[str, Any], **kw: Any) -> Any:
        result = await original(origin, path, body, **kw)
        walked.extend(_id(e) for e in result["events"])
        return result

    peer.post_json = post_json  # type: ignore[method-assign]
    await ingest.receive("remote.example", head)
    assert set(walked) == set(by_id)  # every ancestor came
    assert keyring.verified == 1 + len(chain)
    assert max(peer.limits) < len(chain)  # never asked for the whole gap at once
    assert peer.budget.event_bytes is not None and peer.budget.event_bytes > 2000
