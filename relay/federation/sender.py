"""The outbound side of federation: one task per destination drains its outbox.

The SQLite outbox (store/outbox.py) is the queue, so nothing is lost across
restarts; a `trio.Event` per destination only wakes its task. A transaction
carries the destination's oldest rows, in the order they were queued (which is
DAG order for our own events: each was built on the ones before), at most 50
PDUs and 100 EDUs, and ending before the first PDU queued after a to-device EDU:
a room key then reaches the destination in an earlier transaction than the
events encrypted with it (Synapse handles a transaction's PDUs and EDUs
concurrently, so within one transaction the event may reach a /sync first).
A PDU goes out as other servers get it when it leaves (`RoomService.event_for_servers_txn`):
an event redacted while it waited in the outbox (ours, or one the mesh carries) leaves
pruned, never with the content its sender took back. Rows leave the outbox only once the
destination answered 200. Failures back off
(doubling, capped at `retry_max_s`); the uplink monitor pokes a destination as
soon as it answers again, so a healed link starts flushing within seconds,
whatever the backoff.

Spec: https://spec.matrix.org/v1.16/server-server-api/#transactions
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from relay.e2ee.to_device import EDU_TYPE as TO_DEVICE_EDU
from relay.federation.errors import PeerUnreachable, RemoteError
from relay.runtime.clock import now_ms
from relay.services import Services
from store import Connection
from store import outbox as store_outbox

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 2.0


@dataclass
class DestinationState:
    wake: trio.Event = field(default_factory=trio.Event)
    reachable: bool | None = None
    backoff_s: float = 0.0
    running: bool = False
    sent_transactions: int = 0


def keys_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The part of an outbox batch to send now: up to the first PDU queued after a
    to-device EDU (which the destination then has before that PDU)."""
    to_device = False
    for index, row in enumerate(rows):
        if row["kind"] == "pdu" and to_device:
            return rows[:index]
        if row["kind"] == "edu":
            to_device = to_device or json.loads(row["payload"]).get("edu_type") == TO_DEVICE_EDU
    return rows


class FederationSender:
    def __init__(
        self,
        services: Services,
        *,
        retry_min_s: float = 1.0,
        retry_max_s: float = 30.0,
        probe_interval_s: float = PROBE_INTERVAL_S,
    ) -> None:
        self.services = services
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.probe_interval_s = probe_interval_s
        self.destinations: dict[str, DestinationState] = {}
        self._nursery: trio.Nursery | None = None
        self._txn_prefix = f"er{now_ms()}"

    # -- waking ------------------------------------------------------------------------

    def notify(self, destination: str) -> None:
        """Rows were queued for `destination`: make sure its task runs and is awake."""
        if destination == self.services.server_name:
            return
        state = self.destinations.setdefault(destination, DestinationState())
        state.wake.set()
        if not state.running and self._nursery is not None:
            state.running = True
            self._nursery.start_soon(self._serve_destination, destination)

    async def check_backlog(self) -> None:
        """Wake every destination that has rows queued (after a local write)."""
        for destination in await self.services.database.read(
            store_outbox.destinations_with_backlog
        ):
            self.notify(destination)

    def poke(self, destination: str) -> None:
        """The destination answered again: retry now, forget the backoff."""
        state = self.destinations.get(destination)
        if state is not None:
            state.backoff_s = 0.0
            state.wake.set()

    # -- the service ---------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            backlog = await self.services.database.read(store_outbox.destinations_with_backlog)
            for destination in backlog:
                self.notify(destination)
            if backlog:
                log.info("federation backlog at start: %s", ", ".join(backlog))
            task_status.started()
            await trio.sleep_forever()

    async def _serve_destination(self, destination: str) -> None:
        state = self.destinations[destination]
        try:
            while True:
                rows = await self.services.database.read(store_outbox.peek, destination)
                if not rows:
                    state.wake = trio.Event()
                    # Re-check after re-arming: a notify may have landed in between.
                    rows = await self.services.database.read(store_outbox.peek, destination)
                    if not rows:
                        await state.wake.wait()
                        continue
                if state.backoff_s > 0:
                    state.wake = trio.Event()
                    with trio.move_on_after(state.backoff_s):
                        await state.wake.wait()
                await self._send_batch(destination, state, keys_first(rows))
        finally:
            state.running = False

    def _pdus_as_served_txn(
        self, conn: Connection, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The batch's PDUs as other servers get them now (pruned if redacted since)."""
        rooms = self.services.rooms
        pdus: list[dict[str, Any]] = []
        for row in rows:
            if row["kind"] != "pdu":
                continue
            pdu = rooms.get_pdu_txn(conn, row["event_id"]) if row["event_id"] else None
            if pdu is None:
                pdus.append(json.loads(row["payload"]))
            else:
                pdus.append(rooms.event_for_servers_txn(conn, pdu))
        return pdus

    async def _send_batch(
        self, destination: str, state: DestinationState, rows: list[dict[str, Any]]
    ) -> None:
        pdus = await self.services.database.read(self._pdus_as_served_txn, rows)
        edus = [json.loads(row["payload"]) for row in rows if row["kind"] == "edu"]
        txn_id = f"{self._txn_prefix}.{rows[0]['id']}-{rows[-1]['id']}"
        body = {
            "origin": self.services.server_name,
            "origin_server_ts": now_ms(),
            "pdus": pdus,
            "edus": edus,
        }
        client = self.services.federation_client
        try:
            response = await client.put_json(
                destination, f"/_matrix/federation/v1/send/{txn_id}", body
            )
        except (PeerUnreachable, RemoteError) as exc:
            self._count(destination, "unreachable" if isinstance(exc, PeerUnreachable) else "error")
            await self._failed(destination, state, exc)
            return
        failures = {
            event_id: result
            for event_id, result in (response.get("pdus") or {}).items()
            if isinstance(result, dict) and result.get("error")
        }
        self._count(destination, "refused_pdus" if failures else "ok")
        if failures:
            # The destination refused some PDUs; retrying will not change its mind.
            log.warning("%s refused %d PDUs: %s", destination, len(failures), failures)
        last_id = rows[-1]["id"]

        def ack(conn: Any) -> None:
            store_outbox.ack(conn, destination, last_id)
            store_outbox.mark_success(conn, destination, now_ms=now_ms())

        await self.services.database.write(ack)
        if state.reachable is not True:
            log.info("%s is reachable; flushing its backlog", destination)
        state.reachable = True
        state.backoff_s = 0.0
        state.sent_transactions += 1

    def _count(self, destination: str, result: str) -> None:
        self.services.metrics.transactions.inc(destination, result)

    async def _failed(self, destination: str, state: DestinationState, exc: Exception) -> None:
        state.backoff_s = min(
            self.retry_max_s, max(self.retry_min_s, state.backoff_s * 2 or self.retry_min_s)
        )
        if state.reachable is not False:
            log.warning("sending to %s failed (%s); retrying with backoff", destination, exc)
        state.reachable = False

        def mark(conn: Any) -> None:
            store_outbox.mark_failure(
                conn,
                destination,
                now_ms=now_ms(),
                min_retry_ms=int(self.retry_min_s * 1000),
                max_retry_ms=int(self.retry_max_s * 1000),
            )

        await self.services.database.write(mark)

    # -- the uplink monitor ----------------------------------------------------------------

    async def serve_monitor(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Probe the upstream and every destination that is failing; when one answers,
        flush to it at once and make a signed request so it wakes its own queue to us."""
        task_status.started()
        while True:
            await trio.sleep(self.probe_interval_s)
            watched = {
                d for d, s in self.destinations.items() if s.reachable is False or s.backoff_s
            }
            upstream = self.services.config.upstream
            if upstream:
                watched.add(upstream)
            for destination in sorted(watched):
                await self._probe(destination)

    async def _probe(self, destination: str) -> None:
        state = self.destinations.setdefault(destination, DestinationState())
        client = self.services.federation_client
        try:
            with trio.fail_after(max(1.0, self.probe_interval_s)):
                await client.get_json(destination, "/_matrix/federation/v1/version")
        except (PeerUnreachable, RemoteError, trio.TooSlowError) as exc:
            if state.reachable is not False:
                log.info("%s unreachable: %s", destination, exc)
                await self._record(destination, reachable=False)
            state.reachable = False
            return
        if state.reachable is not True:
            await self._record(destination, reachable=True)
            if state.reachable is False:
                log.info("%s answers again", destination)
            await self._wake_remote_queue(destination)
            # Back (or first seen since start): pull what we missed from it.
            self.on_link_up(destination)
        state.reachable = True
        self.poke(destination)

    async def _record(self, destination: str, *, reachable: bool) -> None:
        """Note a change of reachability for `relay status` (only on changes: no write
        every probe)."""

        def txn(conn: Any) -> None:
            if reachable:
                store_outbox.mark_success(conn, destination, now_ms=now_ms())
            else:
                store_outbox.mark_failure(
                    conn,
                    destination,
                    now_ms=now_ms(),
                    min_retry_ms=int(self.retry_min_s * 1000),
                    max_retry_ms=int(self.retry_max_s * 1000),
                )

        await self.services.database.write(txn)

    async def _wake_remote_queue(self, destination: str) -> None:
        """An authenticated request: Synapse then marks us up and retries its backlog to
        us at once instead of waiting out its backoff. Not a transaction: a server
        takes one transaction per origin at a time, and the sender may be mid-send."""
        client = self.services.federation_client
        try:
            with trio.move_on_after(5):
                await client.get_json(
                    destination,
                    "/_matrix/federation/v1/query/profile",
                    query={"user_id": f"@edge-relay-probe:{destination}"},
                )
        except (PeerUnreachable, RemoteError):
            pass  # a 404 is the expected answer; the request itself is what counts

    def on_link_up(self, destination: str) -> None:
        """Hook for catch-up pulls when a destination comes back (set by node.py)."""
        if self._nursery is not None:
            self._nursery.start_soon(self.services.on_link_up, destination)
