"""Push delivery: every http pusher gets a notification at its gateway for each event the
user's push rules say `notify` for.

Rules kept (https://spec.matrix.org/v1.16/push-gateway-api/, Synapse's HttpPusher as the
tie-breaker):

- One trio service (`serve`), one nursery: one task per http pusher, started when the
  pusher is set or found at start, ended when it is gone; a stream change or a pusher
  change wakes them. Cancelling the service ends every task and closes the client.
- The store is the queue: a pusher's `last_stream_ordering` says how far it got. Events
  after it are read in order (`SCAN` at a time, at most `PAGE` notifications), evaluated
  with the user's rules (relay/sync/push_actions.py), and pushed one by one; the
  position moves past an event once its push is done, so each event is pushed at most
  once per pusher while the relay runs, in stream order. (A crash between the gateway's
  answer and that write may push it once more, as Synapse would.)
- An unreachable gateway (or 5xx/429) is retried, the same notification, with backoff
  from `retry_min_s` doubling to `retry_max_s`. A refused destination or another answer
  drops that one notification (relay/push/gateway.py).
- Bounded: a pusher that falls more than `MAX_BACKLOG` events behind skips to the newest
  `MAX_BACKLOG` (logged); one request at a time per pusher; bodies carry one event.
- The gateway's `rejected` naming the pusher's pushkey deletes the pusher.
- The notification: `event_id`, `room_id`, `type`, `sender`, `content`, `prio` (high for
  encrypted, highlighting or sounding events, else low), `counts` {`unread`: the
  notifications the user has not read across their rooms, `missed_calls`: the unread
  call invites}, `devices` [{`app_id`, `pushkey`, `pushkey_ts` (seconds), `data` without
  `url`, `tweaks`}]; with `data.format == "event_id_only"` only `event_id`, `room_id`,
  `prio`, `counts` and `devices` (no tweaks), as Synapse sends it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from relay.events.pdu import Pdu, membership
from relay.events.push_rules import notifies, tweaks_of
from relay.push.gateway import Dropped, Outcome, Pushed, PushGateways
from relay.rooms.filters import parse_filter
from relay.rooms.service import RoomService
from relay.runtime.database import Database
from relay.runtime.notifier import Notifier
from relay.sync.push_actions import PushEvaluator
from relay.sync.rooms import RoomReader
from store import Connection
from store import events as store_events
from store import pushers as store_pushers
from store import rooms as store_rooms

log = logging.getLogger(__name__)

SCAN = 100
PAGE = 20
MAX_BACKLOG = 200
NO_TYPING = 2**62
#: How long the stream watcher sleeps between checks when nothing happens.
IDLE_S = 3600.0

PusherKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class PendingPush:
    """One event to push: where it is on the stream, and what to send."""

    stream: int
    notification: dict[str, Any]
    tweaks: dict[str, Any]


@dataclass(slots=True)
class _Task:
    wake: trio.Event = field(default_factory=trio.Event)


def _prio(pdu: Pdu, tweaks: dict[str, Any]) -> str:
    loud = tweaks.get("highlight") is True or bool(tweaks.get("sound"))
    return "high" if pdu.type == "m.room.encrypted" or loud else "low"


def _device(pusher: store_pushers.Pusher, tweaks: dict[str, Any]) -> dict[str, Any]:
    device: dict[str, Any] = {
        "app_id": pusher.app_id,
        "pushkey": pusher.pushkey,
        "pushkey_ts": pusher.pushkey_ts // 1000,
        "data": {k: v for k, v in pusher.data.items() if k != "url"},
    }
    if tweaks:
        device["tweaks"] = tweaks
    return device


class PushDelivery:
    """See the module docstring."""

    def __init__(
        self,
        database: Database,
        rooms: RoomService,
        notifier: Notifier,
        gateways: PushGateways,
        *,
        retry_min_s: float = 1.0,
        retry_max_s: float = 600.0,
    ) -> None:
        self.database = database
        self.rooms = rooms
        self.notifier = notifier
        self.gateways = gateways
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self._tasks: dict[PusherKey, _Task] = {}
        self._pushers_changed = trio.Event()

    def wake(self) -> None:
        """Pushers were added, changed or deleted."""
        self._pushers_changed.set()

    def statistics(self) -> dict[str, int]:
        return {"pushers": len(self._tasks), **self.gateways.statistics()}

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                await self._start_tasks(nursery)
                nursery.start_soon(self._watch_stream)
                nursery.start_soon(self._watch_pushers, nursery)
                task_status.started()
        finally:
            with trio.move_on_after(1.0, shield=True):
                await self.gateways.aclose()

    async def _start_tasks(self, nursery: trio.Nursery) -> None:
        for pusher in await self.database.read(store_pushers.pushers_of_kind, "http"):
            key = (pusher.user_id, pusher.app_id, pusher.pushkey)
            if key not in self._tasks:
                self._tasks[key] = _Task()
                nursery.start_soon(self._serve_pusher, key)

    def _wake_all(self) -> None:
        for task in self._tasks.values():
            task.wake.set()

    async def _watch_stream(self) -> None:
        seen = self.notifier.stream_position
        while True:
            await self.notifier.wait_for_change(seen, NO_TYPING, IDLE_S)
            seen = self.notifier.stream_position
            self._wake_all()

    async def _watch_pushers(self, nursery: trio.Nursery) -> None:
        while True:
            await self._pushers_changed.wait()
            self._pushers_changed = trio.Event()
            await self._start_tasks(nursery)
            self._wake_all()

    # -- one pusher ---------------------------------------------------------------------

    async def _serve_pusher(self, key: PusherKey) -> None:
        task = self._tasks[key]
        try:
            while True:
                task.wake = trio.Event()
                pusher = await self.database.read(store_pushers.get_pusher, *key)
                if pusher is None or pusher.kind != "http":
                    return
                if not await self._push_some(pusher):
                    await task.wake.wait()
        finally:
            del self._tasks[key]

    async def _push_some(self, pusher: store_pushers.Pusher) -> bool:
        """Push the next page of the pusher's events; False when there was nothing new."""
        key = (pusher.user_id, pusher.app_id, pusher.pushkey)
        skip_to = await self.database.read(
            store_events.position_keeping_newest,
            pusher.user_id,
            pusher.last_stream_ordering,
            MAX_BACKLOG,
        )
        if skip_to is not None:
            log.warning(
                "pusher %s fell more than %d events behind: older ones are not pushed",
                key,
                MAX_BACKLOG,
            )
            await self.database.write(store_pushers.advance_pusher, *key, skip_to)
            return True
        pending, scanned_to = await self.database.read(self._pending_txn, pusher)
        if scanned_to is None:
            return False
        for push in pending:
            outcome = await self._deliver(key, push)
            if outcome is None:
                return True  # the pusher is gone
            if isinstance(outcome, Pushed) and pusher.pushkey in outcome.rejected:
                log.info("the gateway rejected pushkey of %s: pusher deleted", key)
                await self.database.write(store_pushers.delete_pusher, *key)
                return True
            await self.database.write(store_pushers.advance_pusher, *key, push.stream)
        await self.database.write(store_pushers.advance_pusher, *key, scanned_to)
        return True

    async def _deliver(self, key: PusherKey, push: PendingPush) -> Outcome | None:
        """Push one notification, retrying with backoff while the gateway is unreachable;
        None when the pusher was deleted meanwhile."""
        delay = self.retry_min_s
        while True:
            pusher = await self.database.read(store_pushers.get_pusher, *key)
            if pusher is None or pusher.kind != "http":
                return None
            tweaks = {} if pusher.data.get("format") == "event_id_only" else push.tweaks
            notification = {**push.notification, "devices": [_device(pusher, tweaks)]}
            outcome = await self.gateways.notify(str(pusher.data.get("url")), notification)
            if isinstance(outcome, (Pushed, Dropped)):
                return outcome
            log.info("push to %s failed (%s); again in %.0f s", key, outcome.why, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, self.retry_max_s)

    # -- reading what to push (one read transaction) --------------------------------------

    def _pending_txn(
        self, conn: Connection, pusher: store_pushers.Pusher
    ) -> tuple[list[PendingPush], int | None]:
        """The next notifications of `pusher` (at most PAGE) and how far the scan got
        (None: no events after its position)."""
        rows = store_events.events_for_user_after(
            conn, pusher.user_id, pusher.last_stream_ordering, SCAN
        )
        if not rows:
            return [], None
        evaluator = PushEvaluator(conn, self.rooms, pusher.user_id)
        pending: list[PendingPush] = []
        scanned_to = pusher.last_stream_ordering
        for event_id, stream in rows:
            if len(pending) >= PAGE:
                break
            scanned_to = stream
            pdu = self.rooms.get_pdu_txn(conn, event_id)
            if pdu is None or self.rooms.redacted_by_txn(conn, event_id) is not None:
                continue
            actions = evaluator.actions(pdu)
            if not notifies(actions):
                continue
            tweaks = tweaks_of(actions)
            pending.append(
                PendingPush(
                    stream, self._notification_txn(conn, pusher, pdu, stream, tweaks), tweaks
                )
            )
        return pending, scanned_to

    def _notification_txn(
        self,
        conn: Connection,
        pusher: store_pushers.Pusher,
        pdu: Pdu,
        stream: int,
        tweaks: dict[str, Any],
    ) -> dict[str, Any]:
        counts = self._counts_txn(conn, pusher.user_id, stream)
        prio = _prio(pdu, tweaks)
        if pusher.data.get("format") == "event_id_only":
            return {
                "event_id": pdu.event_id,
                "room_id": pdu.room_id,
                "prio": prio,
                "counts": counts,
            }
        notification: dict[str, Any] = {
            "event_id": pdu.event_id,
            "room_id": pdu.room_id,
            "type": pdu.type,
            "sender": pdu.sender,
            "prio": prio,
            "counts": counts,
        }
        if pdu.content:
            notification["content"] = pdu.content
        if pdu.type == "m.room.member" and pdu.state_key is not None:
            notification["membership"] = membership(pdu)
            notification["user_is_target"] = pdu.state_key == pusher.user_id
        sender = self.rooms.state_event_txn(conn, pdu.room_id, "m.room.member", pdu.sender)
        name = sender.content.get("displayname") if sender is not None else None
        if isinstance(name, str) and name:
            notification["sender_display_name"] = name
        room = self.rooms.state_event_txn(conn, pdu.room_id, "m.room.name", "")
        room_name = room.content.get("name") if room is not None else None
        if isinstance(room_name, str) and room_name:
            notification["room_name"] = room_name
        return notification

    def _counts_txn(self, conn: Connection, user_id: str, to: int) -> dict[str, int]:
        """The user's unread notifications across their rooms, and unread call invites,
        as of stream position `to`."""
        reader = RoomReader(conn, self.rooms, user_id, "", parse_filter({}))
        unread = missed_calls = 0
        for row in store_rooms.memberships_of_user(conn, user_id):
            if row["membership"] != "join":
                continue
            room_id, joined_at = row["room_id"], row["stream_ordering"]
            unread += reader.unread(room_id, to, joined_at)[0]
            read_up_to = reader.read_up_to(room_id, joined_at)
            missed_calls += store_events.count_unread(
                conn, room_id, user_id, read_up_to, to, ("m.call.invite",)
            )[0]
        return {"unread": unread, "missed_calls": missed_calls}
