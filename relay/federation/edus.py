"""EDUs received in a transaction: typing, read receipts, presence, to-device messages
and device list updates.

An EDU about a user is only taken from that user's own server. Unknown EDU
types are ignored, as the spec says. A typing notification, and a room's share of
a receipt EDU, are ignored when the room's server ACL denies the origin
(`relay.federation.acl`).

Spec: https://spec.matrix.org/v1.16/server-server-api/#edus
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard

from relay.e2ee.to_device import EDU_TYPE as TO_DEVICE_EDU
from relay.events.ids import server_of
from relay.federation.acl import origin_allowed_txn
from relay.services import Services
from store import events as store_events
from store import receipts as store_receipts
from store import rooms as store_rooms

log = logging.getLogger(__name__)

FEDERATION_TYPING_TIMEOUT_S = 30.0


def _from_origin(user_id: Any, origin: str) -> TypeGuard[str]:
    return (
        isinstance(user_id, str)
        and user_id.rsplit(":", 1)[0] != user_id
        and (server_of(user_id) == origin)
    )


async def _typing(services: Services, origin: str, content: dict[str, Any]) -> None:
    room_id, user_id, typing = content.get("room_id"), content.get("user_id"), content.get("typing")
    if (
        not isinstance(room_id, str)
        or not _from_origin(user_id, origin)
        or not isinstance(typing, bool)
    ):
        return

    def joined_and_allowed(conn: Any) -> bool:
        return store_rooms.get_membership(conn, room_id, user_id) == "join" and origin_allowed_txn(
            services.rooms, conn, room_id, origin
        )

    if not await services.database.read(joined_and_allowed):
        return
    services.typing.set_typing(room_id, user_id, typing, FEDERATION_TYPING_TIMEOUT_S)


async def _receipt(services: Services, origin: str, content: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str, str, dict[str, Any]]] = []
    for room_id, by_type in content.items():
        if not isinstance(by_type, dict):
            continue
        for receipt_type, by_user in by_type.items():
            if receipt_type != "m.read" or not isinstance(by_user, dict):
                continue  # private receipts never cross servers
            for user_id, receipt in by_user.items():
                if not _from_origin(user_id, origin) or not isinstance(receipt, dict):
                    continue
                event_ids = receipt.get("event_ids")
                given = receipt.get("data")
                data: dict[str, Any] = given if isinstance(given, dict) else {}
                if isinstance(event_ids, list) and event_ids and isinstance(event_ids[0], str):
                    rows.append((room_id, receipt_type, user_id, event_ids[0], data))
    if not rows:
        return

    def txn(conn: Any) -> None:
        allowed = {
            room_id: origin_allowed_txn(services.rooms, conn, room_id, origin)
            for room_id in {row[0] for row in rows}
        }
        for room_id, receipt_type, user_id, event_id, data in rows:
            if not allowed[room_id]:
                continue
            if store_rooms.get_membership(conn, room_id, user_id) != "join":
                continue
            given_thread = data.get("thread_id")
            thread_id = given_thread if isinstance(given_thread, str) else ""
            store_receipts.set_receipt(
                conn,
                room_id=room_id,
                receipt_type=receipt_type,
                user_id=user_id,
                event_id=event_id,
                thread_id=thread_id,
                data=json.dumps({k: v for k, v in data.items() if k != "thread_id"}),
                stream_ordering=store_events.next_stream_ordering(conn),
            )

    await services.database.write(txn)
    services.notifier.on_stream(await services.database.read(store_events.max_stream_ordering))


async def _ignore(services: Services, origin: str, content: dict[str, Any]) -> None:
    return None


async def _direct_to_device(services: Services, origin: str, content: dict[str, Any]) -> None:
    await services.to_device.on_direct_to_device(origin, content)


async def _device_list_update(services: Services, origin: str, content: dict[str, Any]) -> None:
    await services.device_lists.on_device_list_update(origin, content)


async def _signing_key_update(services: Services, origin: str, content: dict[str, Any]) -> None:
    await services.device_lists.on_signing_key_update(origin, content)


EDU_HANDLERS: dict[str, Callable[[Services, str, dict[str, Any]], Awaitable[None]]] = {
    "m.typing": _typing,
    "m.receipt": _receipt,
    "m.presence": _ignore,
    # End-to-end encryption (relay/e2ee/to_device.py, relay/e2ee/device_lists.py).
    TO_DEVICE_EDU: _direct_to_device,
    "m.device_list_update": _device_list_update,
    "m.signing_key_update": _signing_key_update,
}


async def handle_edu(services: Services, origin: str, edu: dict[str, Any]) -> None:
    edu_type = edu.get("edu_type")
    handler = EDU_HANDLERS.get(edu_type) if isinstance(edu_type, str) else None
    content = edu.get("content")
    if handler is None or not isinstance(content, dict):
        return
    log.debug("EDU %s from %s", edu_type, origin)
    try:
        await handler(services, origin, content)
    except Exception:
        # One bad EDU must not fail the transaction that carried it.
        log.exception("EDU %s from %s failed", edu.get("edu_type"), origin)
