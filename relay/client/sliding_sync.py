"""`POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`: Simplified Sliding
Sync (MSC4186), as Synapse serves it: parse `pos`, `timeout` and the body, ask the
sliding sync service (relay/sync/sliding.py), render its answer.

The rendering follows Synapse's: `lists` with `count` and `ops`; per room the counts
always, other fields only when they have a value (`initial` only when true, `is_dm` only
on DMs, `required_state`/`timeline` only when non-empty); events in the client format
without `room_id`; `prev_batch` a token /messages takes; extensions by name. An initial
`account_data` extension carries `m.push_rules`, as /sync's does.

Spec: MSC4186 (proposals/4186-simplified-sliding-sync.md)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.push_rules import merge_rules
from relay.client.route import ClientRoute
from relay.client.sync import render_event
from relay.client.tokens import StreamToken, parse_token
from relay.errors import InvalidParam, UnknownPos
from relay.rooms.filters import DEFAULT_FILTER
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response, read_json_object
from relay.sync.sliding import Since, SlidingResult, SlidingRoom
from relay.sync.sliding_request import parse_request

UNSTABLE = ("/_matrix/client/unstable/org.matrix.simplified_msc3575",)
#: What /versions advertises in `unstable_features`.
FEATURE = "org.matrix.simplified_msc3575"


def parse_pos(text: str) -> Since:
    """`<connection position>/s<stream>_<typing>` -> Since; M_UNKNOWN_POS otherwise
    (the client then starts a new connection, as with Synapse)."""
    head, slash, tail = text.partition("/")
    if not slash or not (head.isascii() and head.isdigit()) or len(head) > 18:
        raise UnknownPos("Unknown position")
    try:
        token = parse_token(tail, "pos")
    except InvalidParam:
        raise UnknownPos("Unknown position") from None
    return Since(int(head), token.stream, token.typing)


def pos_token(result: SlidingResult) -> str:
    return f"{result.connection_position}/{StreamToken(result.stream, result.typing).sync_token()}"


def _render_room(room: SlidingRoom, now: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "notification_count": room.notification_count,
        "highlight_count": room.highlight_count,
    }
    optional = {
        "bump_stamp": room.bump_stamp,
        "joined_count": room.joined_count,
        "invited_count": room.invited_count,
        "name": room.name,
        "avatar": room.avatar,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    if room.heroes:
        out["heroes"] = room.heroes
    if room.initial:
        out["initial"] = True
    if room.expanded_timeline:
        out["unstable_expanded_timeline"] = True
    if room.required_state:
        out["required_state"] = [render_event(v, now, DEFAULT_FILTER) for v in room.required_state]
    if room.timeline:
        out["timeline"] = [render_event(v, now, DEFAULT_FILTER) for v in room.timeline]
    if room.limited is not None:
        out["limited"] = room.limited
    if room.prev_batch is not None:
        out["prev_batch"] = StreamToken(room.prev_batch).pagination_token()
    if room.num_live is not None:
        out["num_live"] = room.num_live
    if room.is_dm:
        out["is_dm"] = True
    if room.invite_state:
        out["invite_state"] = room.invite_state
    return out


def render_sliding(result: SlidingResult, user_id: str, initial: bool) -> dict[str, Any]:
    now = now_ms()
    body: dict[str, Any] = {"pos": pos_token(result)}
    if result.lists:
        body["lists"] = result.lists
    body["rooms"] = {rid: _render_room(room, now) for rid, room in result.rooms.items()}
    extensions = dict(result.extensions)
    account_data = extensions.get("account_data")
    if initial and account_data is not None:
        if not any(e["type"] == "m.push_rules" for e in account_data["global"]):
            account_data["global"].append(
                {"type": "m.push_rules", "content": {"global": merge_rules(user_id, None)}}
            )
    body["extensions"] = extensions
    return body


def _timeout(request: Request) -> int:
    raw = request.query_params.get("timeout", "0")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise InvalidParam("timeout must be a non-negative integer")
    return int(raw)


async def sliding_sync(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`"""
    pos = request.query_params.get("pos")
    since = parse_pos(pos) if pos else None
    timeout_ms = _timeout(request)
    body = parse_request(await read_json_object(request))
    service = services_of(request).sliding_sync
    result = await service.sync(requester.user_id, requester.device_id, body, since, timeout_ms)
    return json_response(render_sliding(result, requester.user_id, since is None))


ROUTES = [ClientRoute("/sync", sliding_sync, ("POST",), prefixes=UNSTABLE)]
