"""Fetching a room's older history from another server (`GET /backfill`), for readers
who page back past what we have: a relay that joined a room over federation holds its
state and what came after the join, nothing before.

Rules kept:

- Asked for the events we lack that our history names as prev_events (its backward
  extremities): `v` are those ids, and the answer is them and what preceded them.
- Asked of servers with users in the room, the room creator's first (it has the whole
  history); the next one only when a server fails or has nothing new.
- What comes back is received as any PDU (relay/federation/ingest.py: hashes,
  signatures, auth against its auth events and the state before it) and stored as
  history (`backfilled`: below every sync position, not new to /sync).
- Failures are not the reader's: an unreachable or erring server, or a deadline
  passed, leave the page as it is locally. An extremity no server could fill is not
  asked for again for `retry_after_s`, so paging back and forth stays local.
- As many events a request as the server's link carries within the request timeout
  (pull.py); a reader's page asks for more pieces, each from where the one before ended,
  until it has its events, the server has no more, or the deadline passes.

Spec: https://spec.matrix.org/v1.16/server-server-api/#backfilling-and-retrieving-missing-events
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import trio

from relay.events.ids import server_of
from relay.events.pdu import Pdu
from relay.events.room_versions import RoomVersion
from relay.federation.errors import PeerUnreachable, RemoteError
from relay.federation.ingest import BadPdu, Ingest
from relay.federation.pull import listed, pull
from relay.services import Services
from store import Connection
from store import events as store_events
from store import rooms as store_rooms

log = logging.getLogger(__name__)

#: Events asked for in one request: at least a few pages' worth (each request whose
#: oldest event's prevs stay missing costs a /state_ids too), at most Synapse's 100.
MIN_LIMIT = 50
MAX_LIMIT = 100
#: Servers tried in one backfill before giving up.
MAX_SERVERS = 3
#: Extremities named in one request.
MAX_EXTREMITIES = 5


class Backfill:
    """The outbound side of /backfill for one relay (services.backfill)."""

    def __init__(
        self,
        services: Services,
        ingest: Ingest,
        *,
        request_timeout_s: float = 10.0,
        deadline_s: float = 20.0,
        retry_after_s: float = 60.0,
    ) -> None:
        self.services = services
        self.ingest = ingest
        self.request_timeout_s = request_timeout_s
        self.deadline_s = deadline_s
        self.retry_after_s = retry_after_s
        #: Extremity -> trio time it may be asked for again (nobody could fill it).
        self._fruitless: dict[str, float] = {}
        self._locks: dict[str, trio.Lock] = {}
        self._requests = 0
        self._stored = 0

    def statistics(self) -> dict[str, int]:
        """/backfill requests sent, and events they added to rooms."""
        return {"requests": self._requests, "stored": self._stored}

    async def backfill(self, room_id: str, event_ids: Sequence[str], limit: int) -> int:
        """Fetch and store up to `limit` (capped) events at and before `event_ids`;
        returns how many joined the room. Never raises for a peer's failure."""
        async with self._locks.setdefault(room_id, trio.Lock()):
            wanted = await self._still_missing(room_id, event_ids)
            if not wanted:
                return 0
            before = self.ingest.backfilled.get(room_id, 0)
            with trio.move_on_after(self.deadline_s):
                batch = min(max(limit, MIN_LIMIT), MAX_LIMIT)
                await self._from_servers(room_id, wanted, batch)
            # Counted as stored, so what a deadline cut short still counts.
            stored = self.ingest.backfilled.get(room_id, 0) - before
            self._stored += stored
            if stored == 0:
                now = trio.current_time()
                self._fruitless = {e: t for e, t in self._fruitless.items() if t > now}
                self._fruitless.update(dict.fromkeys(wanted, now + self.retry_after_s))
            return stored

    async def _still_missing(self, room_id: str, event_ids: Sequence[str]) -> list[str]:
        """The ids not yet part of the room (another reader may have fetched them while
        we waited for the lock), not recently asked for in vain."""
        now = trio.current_time()
        ids = [e for e in dict.fromkeys(event_ids) if self._fruitless.get(e, 0.0) <= now]

        def txn(conn: Connection) -> list[str]:
            rows = {e: store_events.get_event_row(conn, e) for e in ids}
            return [e for e, row in rows.items() if row is None or row["outlier"]]

        return (await self.services.database.read(txn))[:MAX_EXTREMITIES]

    async def _servers(self, room_id: str) -> list[str]:
        def txn(conn: Connection) -> list[str]:
            joined = store_rooms.servers_in_room(conn, room_id)
            room = store_rooms.get_room(conn, room_id)
            creator = server_of(room["creator"]) if room and room.get("creator") else ""
            return [creator, *joined] if creator in joined else joined

        ours = self.services.server_name
        servers = [s for s in dict.fromkeys(await self.services.database.read(txn)) if s != ours]
        return servers[:MAX_SERVERS]

    async def _from_servers(self, room_id: str, event_ids: list[str], limit: int) -> None:
        """Ask one server after another until one gives us something new."""
        rv = await self.ingest.room_version_of(room_id)
        if rv is None:
            return
        for server in await self._servers(room_id):
            if await self._from_server(server, rv, room_id, event_ids, limit):
                return

    async def _from_server(
        self, server: str, rv: RoomVersion, room_id: str, event_ids: list[str], limit: int
    ) -> bool:
        """Up to `limit` events at and before `event_ids` from `server`, in pieces its link
        carries (pull.py), each piece asked from where the one before ended; whether any
        was new."""
        client = self.services.federation_client
        wanted, left, new = event_ids, limit, 0
        while wanted and left > 0:

            async def ask(limit: int, timeout: float, wanted: list[str] = wanted) -> dict[str, Any]:
                self._requests += 1
                body = await client.get_json(
                    server,
                    f"/_matrix/federation/v1/backfill/{quote(room_id, safe='')}",
                    query={"v": wanted, "limit": limit},
                    timeout=timeout,
                )
                return body

            try:
                # As many as the server's link carries in time: a few on a slow link.
                body, asked = await pull(
                    client, server, ask, listed("pdus"), most=left, timeout=self.request_timeout_s
                )
            except (PeerUnreachable, RemoteError) as exc:
                log.info("backfill of %s from %s failed: %s", room_id, server, exc)
                return new > 0
            pdus: list[Pdu] = []
            raw = body.get("pdus")
            for event in raw if isinstance(raw, list) else []:
                try:
                    pdu = await self.ingest.verified_pdu(event, rv)
                except BadPdu as exc:
                    log.info("dropping a backfilled event from %s: %s", server, exc)
                    continue
                if pdu.room_id == room_id:
                    pdus.append(pdu)
            # A peer's odd answer (or our bug on it) must not fail the reader's page.
            try:
                stored = await self.ingest.accept_backfilled(server, pdus)
            except Exception:
                log.warning("backfill of %s from %s broke off", room_id, server, exc_info=True)
                return new > 0
            log.info(
                "backfill of %s from %s: %d events sent, %d new", room_id, server, len(pdus), stored
            )
            new += stored
            if not stored or len(raw if isinstance(raw, list) else []) < asked:
                break  # nothing new, or all the server has
            left -= len(pdus)
            prevs = [prev for p in pdus for prev in p.prev_event_ids]
            wanted = await self._still_missing(room_id, prevs)
        return new > 0
