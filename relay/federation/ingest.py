"""Receiving PDUs from other servers: check them, close the gaps before them, accept them.

For each PDU (from /send, a pull, a join's state, a backfill):

1. parse it in its room's version; a PDU that fails the content hash is
   processed in its redacted form, as the spec says; one whose signatures
   don't verify is dropped; one pushed to us whose signing key cannot be found
   yet is kept (store/pending_pdus.py) and received again when a key of that
   server is cached, or on the next retry round (`serve_pending`): on a mesh an
   event often arrives before its writer's key does, and nothing carried may be
   lost to that ordering. Kept PDUs are bounded (MAX_PENDING, PENDING_TTL_MS);
2. fetch what it depends on: auth events (`/event_auth`, `/event`), and prev
   events by looping `/get_missing_events` (oldest first) up to a cap; when a
   gap cannot be closed, ask the peer for the state at the missing event
   (`/state_ids`) and accept the PDU on that state;
3. hand it to `relay.rooms.remote_pdus.accept_pdu_txn` in one write transaction.

Bounds on what one received PDU can make us do (a hostile peer chooses the PDU and the
answers): the PDU names at most 20 prev events and 10 auth events
(`relay.events.limits`, checked in `parse_pdu`); gap filling asks `/get_missing_events`
at most `gap_requests` times (`gap_cap` events at 100 a request, never more than
`MAX_GAP_REQUESTS`) and keeps at most the `limit` it asked for from each answer (the
rest is dropped unverified). The missing events are fetched before the room's lock is
taken, so a slow or hostile peer does not stall the room's other PDUs while it answers;
what was fetched is accepted, oldest first, under the lock. Auth-event and state
fetches (`/event_auth`, `/state_ids`, `/event`) still happen under the lock.

Slow links: `/get_missing_events`, `/event_auth`, `/state_ids` and `/event` go through
`pull.py`, which asks for pieces the origin's link carries within the request timeout (its
measured goodput, link_budget.py) and asks again smaller when one is cut.

Spec: https://spec.matrix.org/v1.16/server-server-api/#checks-performed-on-receipt-of-a-pdu
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import trio

from relay.events.hashes import check_content_hash
from relay.events.ids import create_event_id_of, server_of
from relay.events.limits import check_pdu_limits
from relay.events.pdu import MalformedPdu, Pdu
from relay.events.redaction import redact
from relay.events.room_versions import RoomVersion, room_version
from relay.events.signing import SignatureError
from relay.federation.client import ROOM_STATE_RESPONSE_BYTES, segment
from relay.federation.errors import PeerUnreachable, RemoteError
from relay.federation.pull import listed, pull
from relay.federation.server_keys import KeyNotFound
from relay.rooms.remote_pdus import (
    DUPLICATE,
    MissingEvents,
    Outcome,
    accept_pdu_txn,
    is_promotable_outlier,
)
from relay.runtime.clock import now_ms
from relay.services import Services
from store import Connection
from store import events as store_events
from store import pending_pdus as store_pending
from store import rooms as store_rooms

log = logging.getLogger(__name__)

DEFAULT_GAP_CAP = 10_000
MISSING_EVENTS_BATCH = 100
#: `/get_missing_events` requests per received PDU, whatever `gap_cap` says.
MAX_GAP_REQUESTS = 100
#: PDUs kept waiting for a key: at most this many, for at most this long.
MAX_PENDING = 10_000
PENDING_TTL_MS = 7 * 24 * 3600 * 1000
#: How often kept PDUs are tried again when no key arrival wakes them first.
PENDING_RETRY_INTERVAL = 30.0
PENDING = "pending"


class BadPdu(Exception):
    """The PDU cannot be used at all (malformed, bad signature, unknown room). `event_id` is
    set when the PDU was well formed enough to have one (a signature failure): `/send` then
    answers an error for it, as Synapse does."""

    def __init__(self, message: str, event_id: str | None = None) -> None:
        super().__init__(message)
        self.event_id = event_id


class KeyPending(BadPdu):
    """The PDU's signature could not be checked: `server_name`'s key is not found yet."""

    def __init__(self, message: str, pdu: Pdu, server_name: str) -> None:
        super().__init__(message, pdu.event_id)
        self.pdu = pdu
        self.server_name = server_name


def parse_pdu(event: dict[str, Any], rv: RoomVersion) -> Pdu:
    """The Pdu for a received event dict: `unsigned` dropped, refused if over a limit of
    `relay.events.limits` (size, field lengths, prev/auth counts), redacted if the content
    hash fails. Every inbound PDU passes here. Raises BadPdu."""
    if not isinstance(event, dict):
        raise BadPdu("PDU is not an object")
    event = {k: v for k, v in event.items() if k != "unsigned"}
    # Before redaction: an oversized event must not get in by failing its hash.
    reason = check_pdu_limits(event)
    if reason is not None:
        raise BadPdu(f"PDU over the limits: {reason}")
    if not check_content_hash(event):
        # Spec: an event whose content hash fails is redacted, then processed as normal.
        event = redact(event, rv)
    try:
        return Pdu.from_dict(event, rv)
    except MalformedPdu as exc:
        raise BadPdu(f"malformed PDU: {exc}") from None


class Ingest:
    """The receiving side of federation for one relay."""

    def __init__(self, services: Services, *, gap_cap: int = DEFAULT_GAP_CAP) -> None:
        self.services = services
        self.gap_cap = gap_cap
        #: `/get_missing_events` requests one received PDU may cause.
        self.gap_requests = min(-(-gap_cap // MISSING_EVENTS_BATCH), MAX_GAP_REQUESTS)
        # One room at a time: gap filling and acceptance of a room's PDUs must not
        # interleave with each other.
        self._room_locks: dict[str, trio.Lock] = {}
        #: Called with (origin, pdu) once a PDU joins the room graph (the mesh's gossip
        #: carries it on to peers that lack it).
        self.on_accepted: Callable[[str, Pdu], Awaitable[None]] | None = None
        #: Backfilled events stored, by room, counted as each is written (so a caller
        #: cancelled half-way still sees what it got).
        self.backfilled: dict[str, int] = {}
        #: Servers whose keys were cached since kept PDUs were last tried.
        self._keys_arrived: set[str] = set()
        self._wake_pending = trio.Event()
        #: PDUs being received now, set once each is done.
        self._receiving: dict[str, trio.Event] = {}

    def _lock(self, room_id: str) -> trio.Lock:
        return self._room_locks.setdefault(room_id, trio.Lock())

    def room_lock(self, room_id: str) -> trio.Lock:
        """The lock PDUs of `room_id` are accepted under: a join holds it from creating the
        room until its join event is stored, so no PDU slips in between."""
        return self._lock(room_id)

    async def room_version_of(self, room_id: str) -> RoomVersion | None:
        identifier = await self.services.database.read(store_rooms.get_room_version, room_id)
        return room_version(identifier) if identifier else None

    async def verified_pdu(self, event: dict[str, Any], rv: RoomVersion) -> Pdu:
        pdu = parse_pdu(event, rv)
        try:
            await self.services.keyring.verify_event_signatures(pdu.as_dict(), rv)
        except (PeerUnreachable, RemoteError) as exc:
            raise BadPdu(
                f"cannot fetch keys to verify {pdu.event_id}: {exc}", pdu.event_id
            ) from None
        except KeyNotFound as exc:
            server = exc.server_name or server_of(pdu.sender)
            raise KeyPending(
                f"signature check failed for {pdu.event_id}: {exc}", pdu, server
            ) from None
        except SignatureError as exc:  # a forged or damaged event; anything else is our bug
            raise BadPdu(
                f"signature check failed for {pdu.event_id}: {exc}", pdu.event_id
            ) from None
        return pdu

    # -- the entry points -----------------------------------------------------------

    async def receive(self, origin: str, event: dict[str, Any]) -> tuple[str | None, Outcome]:
        """Process one PDU pushed by `origin`; returns (event_id, outcome)."""
        room_id = event.get("room_id") if isinstance(event, dict) else None
        if not isinstance(room_id, str):
            return None, Outcome("rejected", "PDU without room_id")
        rv = await self.room_version_of(room_id)
        if rv is None:
            return None, Outcome("rejected", f"unknown room {room_id}")
        try:
            pdu = await self.verified_pdu(event, rv)
        except KeyPending as exc:
            if await self._keep(origin, event, exc):
                return exc.pdu.event_id, Outcome(PENDING, str(exc))
            return None, Outcome("rejected", str(exc))
        except BadPdu as exc:
            return exc.event_id, Outcome("rejected", str(exc))
        # The same PDU again while it is being received (a transaction retried by a sender
        # that gave up waiting): wait for the first, never pull its gap twice at once.
        while (busy := self._receiving.get(pdu.event_id)) is not None:
            await busy.wait()
        if await self._stored(pdu.event_id):
            return pdu.event_id, DUPLICATE
        done = self._receiving[pdu.event_id] = trio.Event()
        try:
            # Network first, without the lock: the room's other PDUs need not wait for it.
            fetched = await self._fetch_missing(origin, pdu)
            async with self._lock(room_id):
                return pdu.event_id, await self._receive_locked(origin, pdu, fetched)
        finally:
            del self._receiving[pdu.event_id]
            done.set()

    # -- PDUs kept until their key is found ----------------------------------------------

    async def _keep(self, origin: str, event: dict[str, Any], exc: KeyPending) -> bool:
        """Keep a PDU whose key is missing; False when too many are kept already."""
        text = json.dumps(event)

        def txn(conn: Connection) -> bool:
            new = store_pending.put_pending_pdu(
                conn,
                event_id=exc.pdu.event_id,
                origin=origin,
                room_id=exc.pdu.room_id,
                key_server=exc.server_name,
                pdu_json=text,
                now_ms=now_ms(),
            )
            if new and store_pending.count_pending_pdus(conn) > MAX_PENDING:
                store_pending.delete_pending_pdu(conn, exc.pdu.event_id)
                return False
            return True

        kept = await self.services.database.write(txn)
        if kept:
            log.info(
                "kept %s from %s until a key of %s is found",
                exc.pdu.event_id,
                origin,
                exc.server_name,
            )
        return kept

    def keys_cached(self, server_name: str) -> None:
        """The KeyRing's `on_keys_cached`: PDUs waiting for `server_name` are tried again."""
        self._keys_arrived.add(server_name)
        self._wake_pending.set()

    async def retry_pending(self, key_server: str | None = None) -> int:
        """Receive again the kept PDUs waiting for `key_server`'s key; with no server, for
        each server waited for, its oldest PDU first and the rest only if that one passed.
        Returns how many left the pending list (accepted, refused or duplicate)."""
        database = self.services.database
        cutoff = now_ms() - PENDING_TTL_MS
        await database.write(
            lambda conn: store_pending.prune_pending_pdus(conn, older_than_ms=cutoff)
        )
        if key_server is not None:
            return await self._retry(key_server, limit=MAX_PENDING)
        done = 0
        for server in await database.read(store_pending.pending_key_servers):
            first = await self._retry(server, limit=1)
            done += first
            if first:
                done += await self._retry(server, limit=MAX_PENDING)
        return done

    async def _retry(self, key_server: str, *, limit: int) -> int:
        database = self.services.database
        rows = await database.read(
            lambda conn: store_pending.get_pending_pdus(conn, key_server=key_server, limit=limit)
        )
        done = 0
        for row in rows:
            _, outcome = await self.receive(row["origin"], json.loads(row["pdu_json"]))
            if outcome.status == PENDING:
                continue
            await database.write(store_pending.delete_pending_pdu, row["event_id"])
            log.info(
                "kept PDU %s from %s: %s %s",
                row["event_id"],
                row["origin"],
                outcome.status,
                outcome.reason or "",
            )
            done += 1
        return done

    async def serve_pending(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Try kept PDUs again whenever a key is cached, and every PENDING_RETRY_INTERVAL."""
        task_status.started()
        while True:
            with trio.move_on_after(PENDING_RETRY_INTERVAL):
                await self._wake_pending.wait()
            self._wake_pending = trio.Event()
            arrived, self._keys_arrived = self._keys_arrived, set()
            try:
                if arrived:
                    for server in sorted(arrived):
                        await self.retry_pending(server)
                else:
                    await self.retry_pending()
            except Exception:  # a retry round must never stop the relay; the next one runs
                log.exception("retrying kept PDUs failed")

    async def _receive_locked(self, origin: str, pdu: Pdu, fetched: list[Pdu]) -> Outcome:
        if await self._stored(pdu.event_id):
            return DUPLICATE
        await self._accept_fetched(origin, fetched)
        return await self._accept(origin, pdu)

    async def accept_backfilled(self, origin: str, pdus: list[Pdu]) -> int:
        """Store history `origin` sent from /backfill, oldest first, each checked as any
        received PDU (the caller verified hashes and signatures); an event whose prev
        events are not among them nor stored is accepted on the state `origin` reports
        there (/state_ids), and stays where our history begins. Returns how many joined
        the room (accepted or soft-failed); one bad event never stops the rest."""
        stored = 0
        for room_id in sorted({p.room_id for p in pdus}):
            async with self._lock(room_id):
                for pdu in sorted((p for p in pdus if p.room_id == room_id), key=lambda p: p.depth):
                    if await self._stored(pdu.event_id):
                        continue
                    try:
                        outcome = await self._accept_once(origin, pdu, backfilled=True)
                    except (PeerUnreachable, RemoteError, BadPdu, MissingEvents) as exc:
                        log.info("could not backfill %s from %s: %s", pdu.event_id, origin, exc)
                        continue
                    if outcome.status in ("accepted", "soft_failed"):
                        stored += 1
                        self.backfilled[room_id] = self.backfilled.get(room_id, 0) + 1
        return stored

    async def accept_outlier(self, origin: str, pdu: Pdu) -> Outcome:
        """Store an event for its own sake (auth chains, join state)."""
        await self._fetch_auth_events(origin, pdu)
        return await self._write_accept(pdu, outlier=True)

    # -- steps ------------------------------------------------------------------------

    async def _accept(self, origin: str, pdu: Pdu, state_before: dict | None = None) -> Outcome:
        outcome = await self._accept_once(origin, pdu, state_before)
        if outcome.status in ("accepted", "soft_failed") and self.on_accepted is not None:
            await self.on_accepted(origin, pdu)
        return outcome

    async def _accept_once(
        self,
        origin: str,
        pdu: Pdu,
        state_before: dict | None = None,
        *,
        backfilled: bool = False,
    ) -> Outcome:
        for _ in range(3):
            try:
                return await self._write_accept(
                    pdu, state_before=state_before, backfilled=backfilled
                )
            except MissingEvents as exc:
                if exc.auth_missing:
                    await self._fetch_auth_events(origin, pdu)
                else:
                    state_before = await self._state_from_peer(origin, pdu)
        try:
            return await self._write_accept(pdu, state_before=state_before, backfilled=backfilled)
        except MissingEvents as exc:
            # Its auth events could not be had (the origin would not give them): refused,
            # not stored, so a later copy with its auth chain can still get in.
            return Outcome("rejected", str(exc))

    async def _write_accept(
        self,
        pdu: Pdu,
        *,
        state_before: dict | None = None,
        outlier: bool = False,
        backfilled: bool = False,
    ) -> Outcome:
        rooms = self.services.rooms

        def txn(conn: Connection) -> Outcome:
            return accept_pdu_txn(
                rooms,
                conn,
                pdu,
                state_before=state_before,
                outlier=outlier,
                backfilled=backfilled,
            )

        outcome = await self.services.database.write(txn)
        # Backfilled history is behind every sync position: nothing new to wake for.
        if outcome.status in ("accepted", "soft_failed") and not backfilled:
            self.services.notifier.on_stream(
                await self.services.database.read(store_events.max_stream_ordering)
            )
        if outcome.status != "duplicate":
            log.debug("%s %s from %s", outcome.status, pdu.event_id, pdu.sender)
        return outcome

    async def _fetch_auth_events(self, origin: str, pdu: Pdu) -> None:
        """Fetch and store (as outliers) the PDU's auth chain that we lack."""
        needed = list(pdu.auth_event_ids)
        if pdu.room_version.room_id_is_create_event_hash and pdu.type != "m.room.create":
            needed.append(create_event_id_of(pdu.room_id))
        missing = await self._missing(needed)
        if not missing:
            return
        client = self.services.federation_client

        async def ask(_: int, timeout: float) -> dict[str, Any]:
            body = await client.get_json(
                origin,
                f"/_matrix/federation/v1/event_auth/{segment(pdu.room_id)}/{segment(pdu.event_id)}",
                max_bytes=ROOM_STATE_RESPONSE_BYTES,
                timeout=timeout,
            )
            return body

        try:
            body, _ = await pull(client, origin, ask, listed("auth_chain"), most=1)
        except (PeerUnreachable, RemoteError) as exc:
            log.info("no auth chain for %s from %s: %s", pdu.event_id, origin, exc)
            return
        given = body.get("auth_chain") if isinstance(body, dict) else None
        chain = []
        for event in given if isinstance(given, list) else []:
            try:
                chain.append(await self.verified_pdu(event, pdu.room_version))
            except BadPdu as exc:  # one bad event does not spoil the rest of the chain
                log.info("skipped an auth chain event from %s: %s", origin, exc)
        await self.store_auth_chain(chain)

    async def store_auth_chain(self, chain: list[Pdu]) -> None:
        """Store events as outliers in an order where each one's auth events come first."""
        pending = {p.event_id: p for p in chain}
        stored = await self.services.database.read(store_events.have_events, list(pending))
        for event_id in stored:
            pending.pop(event_id, None)
        while pending:
            progressed = False
            for event_id, pdu in list(pending.items()):
                deps = set(pdu.auth_event_ids)
                if pdu.room_version.room_id_is_create_event_hash and pdu.type != "m.room.create":
                    deps.add(create_event_id_of(pdu.room_id))
                if deps & set(pending):
                    continue
                try:
                    await self._write_accept(pdu, outlier=True)
                except MissingEvents as exc:
                    log.warning("auth chain event %s lacks %s", event_id, exc.event_ids)
                del pending[event_id]
                progressed = True
            if not progressed:
                log.warning("auth chain has a cycle or holes: %s", sorted(pending))
                return

    async def _stored(self, event_id: str) -> bool:
        """Stored as part of the room (or rejected): an outlier may still join the room."""
        row = await self.services.database.read(store_events.get_event_row, event_id)
        return row is not None and not is_promotable_outlier(row)

    async def _missing(self, event_ids: Iterable[str]) -> list[str]:
        ids = list(dict.fromkeys(event_ids))
        have = await self.services.database.read(store_events.have_events, ids)
        return [e for e in ids if e not in have]

    async def _fetch_missing(self, origin: str, pdu: Pdu) -> list[Pdu]:
        """The PDU's missing ancestors, fetched from `origin` with /get_missing_events and
        verified, walking back until none are missing, `gap_cap` events are in hand, or
        `gap_requests` requests were made. Each answer counts for at most the `limit` it
        was asked for. Reads the database, writes nothing: no lock needed."""
        missing = await self._missing(pdu.prev_event_ids)
        if not missing:
            return []
        room_id = pdu.room_id
        client = self.services.federation_client
        fetched: dict[str, Pdu] = {}
        latest = [pdu.event_id]
        for _ in range(self.gap_requests):
            limit = min(MISSING_EVENTS_BATCH, self.gap_cap - len(fetched))
            if limit <= 0:
                break
            earliest = await self.services.database.read(
                store_events.get_forward_extremities, room_id
            )

            async def ask(
                limit: int,
                timeout: float,
                earliest: list[str] = earliest,
                latest: list[str] = latest,
            ) -> dict[str, Any]:
                body = await client.post_json(
                    origin,
                    f"/_matrix/federation/v1/get_missing_events/{segment(room_id)}",
                    {
                        "earliest_events": earliest,
                        "latest_events": latest,
                        "limit": limit,
                        "min_depth": 0,
                    },
                    timeout=timeout,
                )
                return body

            try:
                # In pieces the link carries: on a slow link fewer than asked, walked
                # back over more requests.
                body, limit = await pull(client, origin, ask, listed("events"), most=limit)
            except (PeerUnreachable, RemoteError) as exc:
                log.info("get_missing_events from %s failed: %s", origin, exc)
                break
            events = body.get("events")
            if not isinstance(events, list):
                break
            if len(events) > limit:
                log.info(
                    "get_missing_events from %s: %d events for a limit of %d; kept %d",
                    origin,
                    len(events),
                    limit,
                    limit,
                )
            batch = []
            for event in events[:limit]:
                try:
                    batch.append(await self.verified_pdu(event, pdu.room_version))
                except BadPdu as exc:
                    log.info("dropping fetched event: %s", exc)
            new = [p for p in batch if p.room_id == room_id and p.event_id not in fetched]
            if not new:
                break
            for p in new:
                fetched[p.event_id] = p
            # Keep walking back from the oldest ancestors we still lack.
            known = set(fetched) | set(
                await self.services.database.read(
                    store_events.have_events, [e for p in new for e in p.prev_event_ids]
                )
            )
            frontier = [e for p in new for e in p.prev_event_ids if e not in known]
            if not frontier:
                break
            latest = [p.event_id for p in new if set(p.prev_event_ids) - known]
        return list(fetched.values())

    async def _accept_fetched(self, origin: str, fetched: list[Pdu]) -> None:
        """Accept fetched ancestors oldest first (by depth, then arrival); the room's lock
        is held."""
        for p in sorted(fetched, key=lambda p: p.depth):
            if await self._stored(p.event_id):
                continue
            try:
                await self._accept(origin, p)
            except (PeerUnreachable, RemoteError) as exc:
                log.info("could not complete %s: %s", p.event_id, exc)

    async def _state_from_peer(self, origin: str, pdu: Pdu) -> dict[tuple[str, str], str]:
        """The state before `pdu`, asked of `origin` when its prev events are out of reach:
        the state at each missing prev event (state_ids + the prev itself), resolved."""
        client = self.services.federation_client
        states: list[dict[tuple[str, str], str]] = []
        for prev in pdu.prev_event_ids:

            async def ask(_: int, timeout: float, prev: str = prev) -> dict[str, Any]:
                body = await client.get_json(
                    origin,
                    f"/_matrix/federation/v1/state_ids/{segment(pdu.room_id)}",
                    query={"event_id": prev},
                    max_bytes=ROOM_STATE_RESPONSE_BYTES,
                    timeout=timeout,
                )
                return body

            # One piece that cannot be split (the ids are small): cut, it is asked again
            # with a longer timeout.
            body, _ = await pull(client, origin, ask, lambda answer: [answer], most=1)
            ids = list(body.get("pdu_ids", [])) + list(body.get("auth_chain_ids", []))
            await self._fetch_events_as_outliers(origin, pdu.room_version, [*ids, prev])
            state = await self.services.database.read(self._state_map, body.get("pdu_ids", []))
            prev_pdu = await self.services.database.read(self.services.rooms.get_pdu_txn, prev)
            if prev_pdu is not None and prev_pdu.state_key is not None:
                state[(prev_pdu.type, prev_pdu.state_key)] = prev
            states.append(state)
        rooms = self.services.rooms

        def resolve_txn(conn: Connection) -> dict[tuple[str, str], str]:
            from relay.rooms.remote_pdus import EventLoader, resolve

            return resolve(rooms, conn, pdu.room_version, states, EventLoader(rooms, conn))

        return await self.services.database.read(resolve_txn)

    def _state_map(self, conn: Connection, ids: list[str]) -> dict[tuple[str, str], str]:
        state: dict[tuple[str, str], str] = {}
        for event_id, pdu in self.services.rooms.get_pdus_txn(conn, ids).items():
            if pdu.state_key is not None:
                state[(pdu.type, pdu.state_key)] = event_id
        return state

    async def _fetch_events_as_outliers(
        self, origin: str, rv: RoomVersion, event_ids: list[str]
    ) -> None:
        missing = await self._missing(event_ids)
        client = self.services.federation_client
        fetched = []
        for event_id in missing:

            async def ask(_: int, timeout: float, event_id: str = event_id) -> dict[str, Any]:
                body = await client.get_json(
                    origin, f"/_matrix/federation/v1/event/{segment(event_id)}", timeout=timeout
                )
                return body

            try:
                body, _ = await pull(client, origin, ask, listed("pdus"), most=1)
                for event in body.get("pdus", []):
                    fetched.append(await self.verified_pdu(event, rv))
            except (PeerUnreachable, RemoteError, BadPdu) as exc:
                log.info("could not fetch %s from %s: %s", event_id, origin, exc)
        await self.store_auth_chain(fetched)
