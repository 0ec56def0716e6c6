"""Reporting content to the server's operator: an event, a room or a user.

Rules kept (spec v1.16 "Reporting content"; Synapse's `reporting.py` where it is open):

- An event: the reporter must be able to see it (the one visibility rule, through
  `event_txn`); otherwise, or when it does not exist, 404 `M_NOT_FOUND`. `reason` is
  optional and a string, `score` optional and an integer (400 `M_BAD_JSON` otherwise).
- A room: it must exist here (404 `M_NOT_FOUND`), membership is not needed; `reason` is
  required.
- A user: `reason` is required; reporting someone of another server or who does not
  exist answers 200 and keeps nothing (nobody learns who exists).
- Bounded: `reason` is at most `MAX_REASON` characters (400 `M_BAD_JSON`), reports go
  through the sending rate limit, and one user keeps at most `MAX_PER_REPORTER` reports
  waiting for the operator (429 `M_LIMIT_EXCEEDED` beyond).
- The operator reads and dismisses them on the operator page and through Synapse's
  admin API (`/_synapse/admin/v1/event_reports`).

Spec: https://spec.matrix.org/v1.16/client-server-api/#reporting-content (report_content.yaml)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import BadJson, Forbidden, LimitExceeded, MissingParam, NotFound
from relay.events.ids import server_of
from relay.rooms.reads import event_txn
from relay.rooms.visibility import viewer_txn
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response, read_json_object
from store import Connection
from store import accounts as store_accounts
from store import reports as store_reports
from store import rooms as store_rooms

MAX_REASON = 1000
MAX_PER_REPORTER = 100


def _reason(body: dict[str, Any], *, required: bool) -> str | None:
    if "reason" not in body:
        if required:
            raise MissingParam("Missing reason")
        return None
    reason = body["reason"]
    if not isinstance(reason, str):
        raise BadJson("Param 'reason' must be a string")
    if len(reason) > MAX_REASON:
        raise BadJson(f"Reason must be at most {MAX_REASON} characters")
    return reason


async def _file(
    request: Request,
    requester: Requester,
    reason: str | None,
    check: Callable[[Connection], bool],
    **fields: Any,
) -> Response:
    """Keep one report after `check` (which raises, or says False to keep nothing and
    still answer 200), within the rate limit and the reporter's quota."""
    services = services_of(request)
    await services.send_limiter.check(requester.user_id)

    def txn(conn: Connection) -> None:
        if not check(conn):
            return
        if store_reports.count_reports(conn, reporter=requester.user_id) >= MAX_PER_REPORTER:
            raise LimitExceeded("Too many reports waiting for the operator", retry_after_ms=60_000)
        store_reports.add_report(
            conn, reporter=requester.user_id, reason=reason, received_ts=now_ms(), **fields
        )

    await services.database.write(txn)
    return json_response({})


async def report_event(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}`"""
    body = await read_json_object(request)
    reason = _reason(body, required=False)
    score = body.get("score")
    if score is not None and (not isinstance(score, int) or isinstance(score, bool)):
        raise BadJson("Param 'score' must be an integer")
    room_id, event_id = request.path_params["room_id"], request.path_params["event_id"]
    rooms = services_of(request).rooms

    def visible(conn: Connection) -> bool:
        try:
            event_txn(
                conn, rooms, viewer_txn(conn, rooms, room_id, requester.user_id), None, event_id
            )
        except (Forbidden, NotFound):
            raise NotFound(
                "Unable to report event: it does not exist or you aren't able to see it."
            ) from None
        return True

    return await _file(
        request,
        requester,
        reason,
        visible,
        kind="event",
        room_id=room_id,
        event_id=event_id,
        score=score,
    )


async def report_room(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/rooms/{roomId}/report`"""
    reason = _reason(await read_json_object(request), required=True)
    room_id = request.path_params["room_id"]

    def exists(conn: Connection) -> bool:
        if store_rooms.get_room(conn, room_id) is None:
            raise NotFound("Room does not exist")
        return True

    return await _file(request, requester, reason, exists, kind="room", room_id=room_id)


async def report_user(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/users/{userId}/report`"""
    reason = _reason(await read_json_object(request), required=True)
    target = request.path_params["user_id"]
    server_name = services_of(request).server_name

    def ours(conn: Connection) -> bool:
        # Another server's user, or nobody: answered as if kept, so nobody learns who exists.
        return (
            server_of(target) == server_name and store_accounts.get_user(conn, target) is not None
        )

    return await _file(request, requester, reason, ours, kind="user", target_user_id=target)


ROUTES = [
    ClientRoute("/rooms/{room_id}/report/{event_id}", report_event, ("POST",), raw_path=True),
    ClientRoute("/rooms/{room_id}/report", report_room, ("POST",)),
    ClientRoute("/users/{user_id}/report", report_user, ("POST",), raw_path=True),
]
