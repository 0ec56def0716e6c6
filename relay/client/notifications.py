"""`GET /_matrix/client/v3/notifications` (matrix-spec `client-server/notifications.yaml`):
the events that notified the user, newest first, paged with `from` / `next_token`.

Which events notify is relay/sync/notifications.py's; here the request is parsed and the
answer shaped.

Spec: https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3notifications
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.format import render_view
from relay.client.message_pagination import parse_limit
from relay.client.route import ClientRoute
from relay.errors import InvalidParam
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response
from relay.sync.notifications import notifications_txn

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _from_token(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise InvalidParam("from must be a next_token this endpoint gave")
    return int(raw)


async def get_notifications(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/notifications`"""
    query = request.query_params
    before = _from_token(query.get("from"))
    limit = parse_limit(request, DEFAULT_LIMIT, MAX_LIMIT)
    only = query.get("only")
    if only not in (None, "", "highlight"):
        raise InvalidParam("only must be 'highlight'")
    services = services_of(request)
    found, next_before = await services.database.read(
        lambda conn: notifications_txn(
            conn,
            services.rooms,
            requester.user_id,
            requester.device_id,
            before=before,
            limit=limit,
            only_highlight=only == "highlight",
        )
    )
    now = now_ms()
    answer: dict[str, object] = {
        "notifications": [
            {
                "actions": n.actions,
                "event": render_view(n.view, now_ms=now),
                "read": n.read,
                "room_id": n.room_id,
                "ts": n.view.pdu.origin_server_ts,
            }
            for n in found
        ]
    }
    if next_before is not None:
        answer["next_token"] = str(next_before)
    return json_response(answer)


ROUTES = [ClientRoute("/notifications", get_notifications, ("GET",))]
