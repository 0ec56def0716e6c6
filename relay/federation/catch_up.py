"""Pulling what we missed from a server that comes back.

A relay behind NAT may be unreachable for its upstream, and after a long
outage Synapse only sends the newest event per room. So when a destination
answers again, for every room we share with it we ask for its newest event
(`/timestamp_to_event`, now, backwards); if we lack it, we fetch it and let
the ingest pipeline close the gap before it (`/get_missing_events`, oldest
first, up to the configured cap).

Spec: https://spec.matrix.org/v1.16/server-server-api/#get_matrixfederationv1timestamp_to_eventroomid
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from relay.federation.errors import PeerUnreachable, RemoteError
from relay.federation.ingest import BadPdu, Ingest
from relay.runtime.clock import now_ms
from relay.services import Services
from store import Connection
from store import events as store_events
from store import rooms as store_rooms

log = logging.getLogger(__name__)


class CatchUp:
    def __init__(self, services: Services, ingest: Ingest) -> None:
        self.services = services
        self.ingest = ingest

    async def shared_rooms(self, destination: str) -> list[str]:
        def txn(conn: Connection) -> list[str]:
            return [
                room_id
                for room_id in store_rooms.all_room_ids(conn)
                if destination in store_rooms.servers_in_room(conn, room_id)
            ]

        return await self.services.database.read(txn)

    async def catch_up(self, destination: str) -> int:
        """Pull every shared room's newest events from `destination`; returns how many
        rooms had something new."""
        rooms = await self.shared_rooms(destination)
        pulled = 0
        for room_id in rooms:
            try:
                if await self._catch_up_room(destination, room_id):
                    pulled += 1
            except (PeerUnreachable, RemoteError, BadPdu) as exc:
                log.info("catch-up of %s from %s failed: %s", room_id, destination, exc)
        if pulled:
            log.info("caught up %d rooms from %s", pulled, destination)
        return pulled

    async def _catch_up_room(self, destination: str, room_id: str) -> bool:
        client = self.services.federation_client
        body = await client.get_json(
            destination,
            f"/_matrix/federation/v1/timestamp_to_event/{quote(room_id)}",
            query={"ts": str(now_ms() + 60_000), "dir": "b"},
        )
        newest = body.get("event_id")
        if not isinstance(newest, str):
            return False
        if await self.services.database.read(store_events.event_exists, newest):
            return False
        event = await client.get_json(destination, f"/_matrix/federation/v1/event/{quote(newest)}")
        pdus = event.get("pdus") or []
        if not pdus:
            return False
        _event_id, outcome = await self.ingest.receive(destination, pdus[0])
        log.debug("catch-up %s in %s: %s", newest, room_id, outcome.status)
        return True
