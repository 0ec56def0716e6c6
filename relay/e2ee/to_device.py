"""To-device messages: from a client or another server into a device's inbox, out in
that device's /sync, gone once the device has seen them.

Rules kept:

- `PUT /sendToDevice/{type}/{txnId}` is idempotent per sending device and txn id:
  a retry changes nothing.
- Local recipients get one inbox row per device (`*` means every device of the
  user); remote recipients get one `m.direct_to_device` EDU per server, queued in the
  outbox in the same write, so it survives outages and restarts. Its `message_id` is
  random and unique.
- A message takes a position on the main stream and wakes the notifier, so a
  long-polling /sync answers at once. A device's messages are deleted when it syncs
  with a `since` at or past their position (it received them in the answer that
  handed out that token).
- Inbound EDUs are accepted only with a `sender` of the origin server, and deliver
  only to local users, once per origin server and `message_id` (a retry in a new
  transaction, even after a restart, delivers nothing).

Spec: https://spec.matrix.org/v1.16/client-server-api/#send-to-device-messaging and
https://spec.matrix.org/v1.16/server-server-api/#send-to-device-messaging
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from relay.e2ee.device_lists import dumps
from relay.events.ids import server_of
from relay.rooms.service import RoomService
from relay.runtime.clock import now_ms
from relay.runtime.database import Database
from relay.runtime.notifier import Notifier
from store import Connection
from store import accounts as store_accounts
from store import device_inbox as store_inbox
from store import events as store_events
from store import outbox as store_outbox

#: The federation EDU that carries to-device messages between servers.
EDU_TYPE = "m.direct_to_device"

JSON = dict[str, Any]


class ToDevice:
    def __init__(
        self, database: Database, rooms: RoomService, notifier: Notifier, server_name: str
    ) -> None:
        self.database = database
        self.rooms = rooms
        self.notifier = notifier
        self.server_name = server_name

    async def send(
        self, sender: str, sender_device: str, event_type: str, txn_id: str, messages: JSON
    ) -> None:
        """Deliver `messages` ({user_id: {device_id | "*": content}}) once per txn id."""
        remote: dict[str, JSON] = {}
        for user_id, devices in messages.items():
            if server_of(user_id) != self.server_name and server_of(user_id):
                remote.setdefault(server_of(user_id), {})[user_id] = devices

        def txn(conn: Connection) -> int:
            if not store_inbox.claim_txn(conn, sender, sender_device, txn_id, now_ms()):
                return 0
            stream = self._deliver_txn(conn, sender, event_type, messages)
            for server, users in remote.items():
                edu = {
                    "edu_type": EDU_TYPE,
                    "content": {
                        "sender": sender,
                        "type": event_type,
                        "message_id": secrets.token_urlsafe(16),
                        "messages": users,
                    },
                }
                store_outbox.enqueue(
                    conn,
                    destination=server,
                    kind="edu",
                    payload=dumps(edu).encode(),
                    now_ms=now_ms(),
                )
            return stream

        stream = await self.database.write(txn)
        if stream:
            self.notifier.on_stream(stream)
        if remote and self.rooms.outbox_listener is not None:
            await self.rooms.outbox_listener()

    def _deliver_txn(self, conn: Connection, sender: str, event_type: str, messages: JSON) -> int:
        """Inbox rows for the local recipients; returns the last position used (or 0)."""
        stream = 0
        for user_id, devices in messages.items():
            if server_of(user_id) != self.server_name:
                continue
            known = [d["device_id"] for d in store_accounts.list_devices(conn, user_id)]
            for device_id, content in devices.items():
                if not isinstance(content, dict):
                    continue
                targets = known if device_id == "*" else [d for d in known if d == device_id]
                message = json.dumps(
                    {"sender": sender, "type": event_type, "content": content},
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
                for target in targets:
                    stream = store_events.next_stream_ordering(conn)
                    store_inbox.add_message(
                        conn, stream=stream, user_id=user_id, device_id=target, message_json=message
                    )
        return stream

    async def on_direct_to_device(self, origin: str, content: JSON) -> None:
        """An inbound `m.direct_to_device` EDU."""
        sender, event_type = content.get("sender"), content.get("type")
        messages = content.get("messages")
        if (
            not isinstance(sender, str)
            or server_of(sender) != origin
            or not isinstance(event_type, str)
            or not isinstance(messages, dict)
        ):
            return
        local = {
            u: d
            for u, d in messages.items()
            if isinstance(u, str) and server_of(u) == self.server_name and isinstance(d, dict)
        }
        message_id = content.get("message_id")

        def txn(conn: Connection) -> int:
            # A retried EDU can come in a new transaction, so the transaction id alone
            # does not stop a second delivery; its message_id does. An EDU without one
            # (not spec-conformant) is delivered as it comes.
            if isinstance(message_id, str) and not store_inbox.claim_remote_message(
                conn, origin, message_id, now_ms()
            ):
                return 0
            return self._deliver_txn(conn, sender, event_type, local)

        stream = await self.database.write(txn)
        if stream:
            self.notifier.on_stream(stream)

    # -- /sync --------------------------------------------------------------------------------

    async def acknowledge(self, user_id: str, device_id: str, since: int) -> None:
        """The device synced from `since`: it has every message up to there."""
        if await self.database.read(self.acknowledged_txn, user_id, device_id, since):
            await self.forget_acknowledged(user_id, device_id, since)

    def acknowledged_txn(self, conn: Connection, user_id: str, device_id: str, since: int) -> bool:
        """Whether the device still holds messages a sync from `since` acknowledges."""
        return store_inbox.has_messages_up_to(conn, user_id, device_id, since)

    async def forget_acknowledged(self, user_id: str, device_id: str, since: int) -> None:
        await self.database.write(store_inbox.delete_up_to, user_id, device_id, since)

    def messages_txn(
        self, conn: Connection, user_id: str, device_id: str, since: int | None, to: int
    ) -> list[JSON]:
        """The device's messages in (`since`, `to`]: those up to `since` it acknowledged by
        syncing from there, whether or not they are deleted yet."""
        after = -1 if since is None else since
        rows = store_inbox.messages_up_to(conn, user_id, device_id, to, 10_000, after=after)
        return [json.loads(row) for row in rows]

    def page_txn(
        self, conn: Connection, user_id: str, device_id: str, to: int, limit: int
    ) -> tuple[list[JSON], int]:
        """Up to `limit` messages stored up to `to`, and the position the device has
        them all up to once it has these (`to` unless the page is full): the
        `next_batch` of the sliding sync to-device extension."""
        rows = store_inbox.messages_with_positions_up_to(conn, user_id, device_id, to, limit)
        if limit > 0 and len(rows) == limit:
            to = rows[-1][0]
        return [json.loads(text) for _, text in rows], to

    async def forget_devices(self, user_id: str, device_ids: list[str]) -> None:
        def txn(conn: Connection) -> None:
            for device_id in device_ids:
                store_inbox.delete_device_messages(conn, user_id, device_id)

        await self.database.write(txn)
