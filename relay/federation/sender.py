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
destination answered 200.

Slow links (a 9.6 kbit/s satellite or radio link; issue 17):

- Size: a transaction also stops at the byte budget of its destination's link
  (`link_budget.py`: a third of the request timeout at the measured goodput), so it
  finishes well within the timeout; a request the timeout cut is split (the budget
  halves) and the rest resumed in smaller transactions, never re-sent whole. Events are
  never dropped: a single row over the budget still goes, with a longer timeout.
- Priorities: a transaction takes messages and state (PDUs, and the EDUs that must
  precede them: keys, device lists) first, in order, then receipts, then typing
  notifications, as far as the budget goes; what is left waits for the next one
  (`choose_rows`). Within a transaction the EDUs are listed in that order too. A typing
  notification older than `STALE_MS` is dropped instead of sent: on a slow link it would
  arrive meaningless, after the typing stopped.
- One connection per destination: a destination's sends and probes take turns
  (`DestinationState.lock`), so they share the client's pooled connection instead of
  opening a second one; the client keeps it warm (client.py, `KEEPALIVE_S`). To another
  relay, transactions and probes go on its transaction stream (transaction_stream.py,
  chosen by the client): one compressed WebSocket instead of a request each.
- Failures back off (doubling from `retry_min_s` to `retry_max_s`). The backoff ends
  early only when the destination comes back from being unreachable (a real link-up: a
  healed link starts flushing within seconds); a probe that merely finds a live
  destination never resets it (a too-big request would otherwise be retried at once, for
  ever).

The uplink monitor (`serve_monitor`) watches the upstream and every failing destination.
Liveness is learned from real traffic first: any answer from a destination, or any signed
request from it, counts (`FederationClient.last_heard`). A probe (a signed
`GET /_matrix/federation/v1/version`, ~1 KB with its answer, or a keep-alive of ~100 B on
an open transaction stream: `FederationClient.probe`) goes out only when a destination
has been silent: every `IDLE_PROBE_S` while it is reachable (about 8 B/s on an
idle link), every `probe_interval_s` while it is unreachable and refuses fast, backing off
to `MAX_PROBE_GAP_S` while probes time out. A probe runs under the client's full request
timeout, never cut mid-handshake, one at a time per destination, and a destination is
marked unreachable only if nothing at all was heard from it during the failed probe: no
flapping, and no catch-up storm on a slow link.

Spec: https://spec.matrix.org/v1.16/server-server-api/#transactions
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from relay.e2ee.to_device import EDU_TYPE as TO_DEVICE_EDU
from relay.events.canonical import canonical_json
from relay.federation.errors import PeerUnreachable, RemoteError, RequestTimedOut
from relay.federation.link_budget import LinkBudget
from relay.runtime.clock import now_ms
from relay.services import Services
from store import Connection
from store import outbox as store_outbox

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 2.0
IDLE_PROBE_S = 120.0
MAX_PROBE_GAP_S = 30.0
#: a transaction's bytes beyond its rows' own: origin, timestamps, list syntax.
TXN_OVERHEAD_BYTES = 100


@dataclass
class DestinationState:
    wake: trio.Event = field(default_factory=trio.Event)
    #: set when the destination comes back from unreachable: ends a backoff wait.
    link_up: trio.Event = field(default_factory=trio.Event)
    reachable: bool | None = None
    backoff_s: float = 0.0
    running: bool = False
    sent_transactions: int = 0
    #: sends and probes take turns, so they share one pooled connection.
    lock: trio.Lock = field(default_factory=trio.Lock)
    budget: LinkBudget = field(default_factory=LinkBudget)
    probing: bool = False
    last_probe: float = float("-inf")
    probe_gap_s: float = PROBE_INTERVAL_S


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


def within_budget(rows: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The longest prefix of `rows` whose transaction fits in `budget` bytes; at least the
    first row, whatever its size (an event is never dropped for being big)."""
    size = TXN_OVERHEAD_BYTES
    for index, row in enumerate(rows):
        size += len(row["payload"]) + 1
        if size > budget and index > 0:
            return rows[:index]
    return rows


#: EDU type -> priority: 0 (PDUs and every other EDU) goes first, then 1, then 2.
PRIORITY = {"m.receipt": 1, "m.typing": 2, "m.presence": 2}
#: EDU type -> age (ms) past which it is dropped rather than sent.
STALE_MS = {"m.typing": 30_000, "m.presence": 60_000}


def _edu_type(row: dict[str, Any]) -> str | None:
    if row["kind"] != "edu":
        return None
    edu_type = json.loads(row["payload"]).get("edu_type")
    return edu_type if isinstance(edu_type, str) else None


def choose_rows(
    rows: list[dict[str, Any]], budget: int, now: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows for the next transaction; stale rows to drop) from an outbox batch: priority 0
    as a prefix in queue order (their order matters), then receipts, then typing, each as
    far as `budget` bytes go; never nothing while something is live. The rows come tier by
    tier, each tier in queue order."""
    types = {row["id"]: _edu_type(row) or "" for row in rows}
    stale = [
        row
        for row in rows
        if types[row["id"]] in STALE_MS and now - row["created_ts"] > STALE_MS[types[row["id"]]]
    ]
    dropped = {row["id"] for row in stale}
    live = [row for row in rows if row["id"] not in dropped]
    chosen: list[dict[str, Any]] = []
    size = TXN_OVERHEAD_BYTES
    for level in (0, 1, 2):
        for row in live:
            if PRIORITY.get(types[row["id"]], 0) != level:
                continue
            cost = len(row["payload"]) + 1
            if size + cost > budget and chosen:
                break  # full: the rest of this tier (in order) and every lower tier wait
            chosen.append(row)
            size += cost
        else:
            continue
        break
    # Tier by tier, each in queue order: a receiver handles a transaction's EDUs in the
    # order listed (a relay does), so a receipt listed before a typing notification queued
    # earlier still arrives first.
    chosen.sort(key=lambda row: (PRIORITY.get(types[row["id"]], 0), row["id"]))
    return chosen, stale


def refused_pdus(answer: Any) -> dict[str, Any]:
    """The PDUs a transaction's answer says were refused (event id -> result). The answer
    is a peer's: one not shaped as the spec says (`pdus` not an object) refuses nothing,
    and never breaks the sender."""
    results = answer.get("pdus") if isinstance(answer, dict) else None
    if not isinstance(results, dict):
        return {}
    return {
        event_id: result
        for event_id, result in results.items()
        if isinstance(result, dict) and result.get("error")
    }


class FederationSender:
    def __init__(
        self,
        services: Services,
        *,
        retry_min_s: float = 1.0,
        retry_max_s: float = 30.0,
        probe_interval_s: float = PROBE_INTERVAL_S,
        idle_probe_s: float = IDLE_PROBE_S,
    ) -> None:
        self.services = services
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.probe_interval_s = probe_interval_s
        self.idle_probe_s = max(idle_probe_s, probe_interval_s)
        self.destinations: dict[str, DestinationState] = {}
        self._nursery: trio.Nursery | None = None
        self._txn_prefix = f"er{now_ms()}"

    # -- waking ------------------------------------------------------------------------

    def _state(self, destination: str) -> DestinationState:
        state = self.destinations.get(destination)
        if state is None:
            state = self.destinations[destination] = DestinationState(
                probe_gap_s=self.probe_interval_s,
                # The client's books for it, which pulls from it keep too.
                budget=self.services.federation_client.link_budget(destination),
            )
        return state

    def notify(self, destination: str) -> None:
        """Rows were queued for `destination`: make sure its task runs and is awake."""
        if destination == self.services.server_name:
            return
        state = self._state(destination)
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
        """The destination came back from being unreachable: retry now, forget the backoff."""
        state = self.destinations.get(destination)
        if state is not None:
            state.backoff_s = 0.0
            state.link_up.set()
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
                    # New rows do not end a backoff; only the link coming back does.
                    state.link_up = trio.Event()
                    with trio.move_on_after(state.backoff_s):
                        await state.link_up.wait()
                await self._send_batch(destination, state, keys_first(rows))
        finally:
            state.running = False

    def _pdus_as_served_txn(
        self, conn: Connection, rows: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[str | None]]:
        """The batch's PDUs as other servers get them now (pruned if redacted since), and
        each one's room version (None for a row whose event is not stored)."""
        rooms = self.services.rooms
        pdus: list[dict[str, Any]] = []
        versions: list[str | None] = []
        for row in rows:
            if row["kind"] != "pdu":
                continue
            pdu = rooms.get_pdu_txn(conn, row["event_id"]) if row["event_id"] else None
            if pdu is None:
                pdus.append(json.loads(row["payload"]))
                versions.append(None)
            else:
                pdus.append(rooms.event_for_servers_txn(conn, pdu))
                versions.append(pdu.room_version.identifier)
        return pdus, versions

    async def _send_batch(
        self, destination: str, state: DestinationState, rows: list[dict[str, Any]]
    ) -> None:
        client = self.services.federation_client
        rows, stale = choose_rows(rows, state.budget.budget(client.timeout), now_ms())
        if stale:
            stale_ids = [row["id"] for row in stale]
            await self.services.database.write(store_outbox.ack_rows, destination, stale_ids)
            log.info("dropped %d stale typing/presence EDUs for %s", len(stale_ids), destination)
        if not rows:
            return
        pdus, versions = await self.services.database.read(self._pdus_as_served_txn, rows)
        edus = [json.loads(row["payload"]) for row in rows if row["kind"] == "edu"]
        # The id names exactly these rows: a transaction with other rows never reuses it
        # (a server answers a known id from its cache, without reading the body).
        ids = ",".join(str(row["id"]) for row in rows)
        digest = hashlib.sha256(ids.encode()).hexdigest()[:10]
        txn_id = f"{self._txn_prefix}.{rows[0]['id']}-{rows[-1]['id']}.{digest}"
        body = {
            "origin": self.services.server_name,
            "origin_server_ts": now_ms(),
            "pdus": pdus,
            "edus": edus,
        }
        size = len(canonical_json(body))
        timeout = state.budget.timeout_for(size, client.timeout)
        async with state.lock:
            started = trio.current_time()
            try:
                response = await client.send_transaction(
                    destination, txn_id, body, timeout=timeout, room_versions=versions
                )
            except RequestTimedOut as exc:
                self._count(destination, "unreachable")
                state.budget.cut(size, exc.seconds)
                log.warning(
                    "transaction of %d B (%d PDUs, %d EDUs) to %s got no answer within %g s; "
                    "sending at most %d B per transaction from now on",
                    size,
                    len(pdus),
                    len(edus),
                    destination,
                    exc.seconds,
                    state.budget.budget(client.timeout),
                )
                await self._failed(destination, state, exc, unreachable=False)
                return
            except RemoteError as exc:
                # It answered: alive, whatever it thought of the request.
                self._count(destination, "error")
                await self._failed(destination, state, exc, unreachable=False)
                return
            except PeerUnreachable as exc:
                self._count(destination, "unreachable")
                await self._failed(destination, state, exc)
                return
            elapsed = trio.current_time() - started
            state.budget.answered(size, elapsed)
        log.debug(
            "%s took %d B (%d PDUs, %d EDUs) in %.1f s; goodput %.0f B/s",
            destination,
            size,
            len(pdus),
            len(edus),
            elapsed,
            state.budget.goodput or 0,
        )
        failures = refused_pdus(response)
        self._count(destination, "refused_pdus" if failures else "ok")
        if failures:
            # The destination refused some PDUs; retrying will not change its mind.
            log.warning("%s refused %d PDUs: %s", destination, len(failures), failures)
        sent_ids = [row["id"] for row in rows]

        def ack(conn: Any) -> None:
            store_outbox.ack_rows(conn, destination, sent_ids)
            store_outbox.mark_success(conn, destination, now_ms=now_ms())

        await self.services.database.write(ack)
        if state.reachable is not True:
            log.info("%s is reachable; flushing its backlog", destination)
        state.reachable = True
        state.backoff_s = 0.0
        state.sent_transactions += 1

    def _count(self, destination: str, result: str) -> None:
        self.services.metrics.transactions.inc(destination, result)

    async def _failed(
        self,
        destination: str,
        state: DestinationState,
        exc: Exception,
        *,
        unreachable: bool = True,
    ) -> None:
        """A send failed: back off. `unreachable` False is an error answer, or a request the
        timeout cut on a link that works (too big for it): the destination stays as
        reachable as it was, so no probe ends the backoff."""
        state.backoff_s = min(
            self.retry_max_s, max(self.retry_min_s, state.backoff_s * 2 or self.retry_min_s)
        )
        if state.reachable is not False and not isinstance(exc, RequestTimedOut):
            log.warning("sending to %s failed (%s); retrying with backoff", destination, exc)
        if unreachable:
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
        """Watch the upstream and every failing destination; probe the silent ones (see the
        module docstring). When one comes back, flush to it at once and make a signed
        request so it wakes its own queue to us."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                await trio.sleep(self.probe_interval_s)
                watched = {
                    d for d, s in self.destinations.items() if s.reachable is False or s.backoff_s
                }
                upstream = self.services.config.upstream
                if upstream:
                    watched.add(upstream)
                now = trio.current_time()
                for destination in sorted(watched):
                    state = self._state(destination)
                    if self._probe_due(destination, state, now):
                        state.probing = True
                        state.last_probe = now
                        nursery.start_soon(self._probe, destination)

    def _probe_due(self, destination: str, state: DestinationState, now: float) -> bool:
        if state.probing or state.lock.locked():
            return False  # one request at a time: a send in flight shows liveness itself
        if state.reachable is True:
            heard = self.services.federation_client.last_heard(destination)
            last = max(state.last_probe, heard if heard is not None else float("-inf"))
            return now - last >= self.idle_probe_s
        return now - state.last_probe >= state.probe_gap_s

    async def _probe(self, destination: str) -> None:
        state = self._state(destination)
        client = self.services.federation_client
        started = trio.current_time()
        try:
            async with state.lock:
                await client.probe(destination)
        except (PeerUnreachable, RemoteError) as exc:
            heard = client.last_heard(destination)
            if heard is not None and heard >= started:
                return  # it answered something else meanwhile: alive, no flap
            if isinstance(exc, RequestTimedOut):
                # A slow or dead link: probe less often, never more than one at a time.
                state.probe_gap_s = min(MAX_PROBE_GAP_S, state.probe_gap_s * 2)
            else:
                state.probe_gap_s = self.probe_interval_s  # refused fast: cheap to retry
            if state.reachable is not False:
                log.info("%s unreachable: %s", destination, exc)
                await self._record(destination, reachable=False)
            state.reachable = False
            return
        finally:
            state.probing = False
        state.probe_gap_s = self.probe_interval_s
        if state.reachable is not True:
            came_back = state.reachable is False
            state.reachable = True
            await self._record(destination, reachable=True)
            if came_back:
                log.info("%s answers again", destination)
                self.poke(destination)
            await self._wake_remote_queue(destination)
            # Back (or first seen since start): pull what we missed from it.
            self.on_link_up(destination)
        else:
            state.wake.set()

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
        takes one transaction per origin at a time, and the sender may be mid-send.
        Under the client's full timeout: a request cut mid-handshake wakes nothing."""
        client = self.services.federation_client
        state = self._state(destination)
        try:
            async with state.lock:
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
