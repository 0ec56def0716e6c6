"""`GET /sync`: parse the query, ask the sync service, render its answer as JSON.

The rendering lives here because it is the client format: events without room_id,
`unsigned.transaction_id` for the requester's own device, redacted events in
redacted form with `redacted_because`, and `next_batch`/`prev_batch` tokens
(relay/client/tokens.py). The device sections (to-device, device lists, key counts)
come from relay/sync/devices.py.

Spec: https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3sync (sync.yaml)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.format import render_view
from relay.client.params import bool_query, int_query
from relay.client.push_rules import merge_rules
from relay.client.route import ClientRoute
from relay.client.tokens import StreamToken, parse_token
from relay.errors import InvalidParam
from relay.rooms.filters import Filter, select_fields
from relay.rooms.reads import EventView
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response
from relay.sync.builder import SyncParams, SyncResult
from relay.sync.devices import DeviceSection
from relay.sync.rooms import RoomSync

PRESENCE_STATES = ("online", "offline", "unavailable")


def render_event(view: EventView, now: int, sync_filter: Filter) -> dict[str, Any]:
    if sync_filter.event_format == "federation":
        event = {**view.pdu.as_dict(), "event_id": view.pdu.event_id}
    else:
        event = render_view(view, now_ms=now, include_room_id=False)
    if sync_filter.event_fields is not None:
        event = select_fields(event, sync_filter.event_fields)
    return event


def _render_room(room: RoomSync, now: int, sync_filter: Filter) -> dict[str, Any]:
    def events(views: list[EventView]) -> list[dict[str, Any]]:
        return [render_event(view, now, sync_filter) for view in views]

    out: dict[str, Any] = {
        "timeline": {
            "events": events(room.timeline),
            "limited": room.limited,
            "prev_batch": StreamToken(room.prev_batch).pagination_token(),
        },
        "state": {"events": events(room.state)},
        "account_data": {"events": room.account_data},
    }
    if room.unread is not None:
        out["ephemeral"] = {"events": room.ephemeral}
        out["unread_notifications"] = {
            "notification_count": room.unread[0],
            "highlight_count": room.unread[1],
        }
    if room.unread_threads is not None:
        out["unread_thread_notifications"] = {
            root: {"notification_count": count, "highlight_count": highlights}
            for root, (count, highlights) in room.unread_threads.items()
        }
    if room.summary is not None:
        out["summary"] = room.summary
    return out


def render_sync(result: SyncResult, sync_filter: Filter, now: int) -> dict[str, Any]:
    return {
        "next_batch": StreamToken(result.stream, result.typing).sync_token(),
        "rooms": {
            "join": {rid: _render_room(r, now, sync_filter) for rid, r in result.join.items()},
            "invite": {
                rid: {"invite_state": {"events": pdus}} for rid, pdus in result.invite.items()
            },
            "leave": {rid: _render_room(r, now, sync_filter) for rid, r in result.leave.items()},
            "knock": {},
        },
        "account_data": {"events": result.account_data},
        "presence": {"events": result.presence},
        **(result.devices or DeviceSection()).as_json(),
    }


async def sync(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/sync`"""
    query = request.query_params
    service = services_of(request).sync
    since = parse_token(query["since"], "since token") if query.get("since") else None
    set_presence = query.get("set_presence")
    if set_presence is not None and set_presence not in PRESENCE_STATES:
        raise InvalidParam("set_presence must be online, offline or unavailable")
    sync_filter = await service.resolve_filter(requester.user_id, query.get("filter"))
    params = SyncParams(
        user_id=requester.user_id,
        device_id=requester.device_id,
        since=since.stream if since else None,
        since_typing=since.typing if since else 0,
        filter=sync_filter,
        full_state=bool(bool_query(request, "full_state", False)),
        timeout_ms=int_query(request, "timeout", 0),
        set_presence=set_presence,
    )
    result = await service.sync(params)
    body = render_sync(result, sync_filter, now_ms())
    if since is None:
        _add_default_push_rules(body, requester.user_id, sync_filter)
    return json_response(body)


def _add_default_push_rules(body: dict[str, Any], user_id: str, sync_filter: Filter) -> None:
    """An initial sync always carries `m.push_rules` (clients such as nio read them only
    from here); a user who never changed them gets the server defaults."""
    events = body["account_data"]["events"]
    if sync_filter.account_data.allows("m.push_rules", user_id) and not any(
        event["type"] == "m.push_rules" for event in events
    ):
        events.append({"type": "m.push_rules", "content": {"global": merge_rules(user_id, None)}})


ROUTES = [ClientRoute("/sync", sync, ("GET",))]
