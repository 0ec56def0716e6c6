"""Other servers' users joining, knocking, leaving and being invited, through us.

`make_join`/`make_knock`/`make_leave` hand out an unsigned template built on our
tips (join and knock only in a room version the asking server lists in `ver`,
else 400 `M_INCOMPATIBLE_ROOM_VERSION` with the `room_version`);
`send_join`/`send_knock`/`send_leave` take the signed event back, check it like
any PDU, store it and pass it on to the other servers in the room; `send_join`
answers with the state before the join and its auth chain, `send_knock` with the
room's `knock_room_state`. `invite` (v2) is a remote room inviting one of our
users: we sign it and remember the room's stripped state for the invitee's
/sync; an invite in a room version we do not know is 400
`M_INCOMPATIBLE_ROOM_VERSION`, as the spec's invite v2 answer says.

Every one of them is refused (403 `M_FORBIDDEN`) to a server the room's ACL
denies (`relay.federation.acl`), before anything else is looked at.

`send_join` with `omit_members=true` (partial joins) answers as Synapse: the state
without `m.room.member` events, the auth chain without what the state already holds,
`members_omitted: true` and `servers_in_room` (a full join gets no `servers_in_room`, as
from Synapse). The deprecated v1 `send_join`,
`send_leave` and `invite` are served too (as Synapse), their answers in `[200, ...]`.

Spec: https://spec.matrix.org/v1.16/server-server-api/#joining-rooms
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.errors import (
    BadJson,
    Forbidden,
    IncompatibleRoomVersion,
    InvalidParam,
    MatrixError,
    MissingParam,
    NotFound,
    NotHostedHere,
)
from relay.events.auth import AUTHORISING_USER, AuthError, check_auth
from relay.events.ids import server_of
from relay.events.room_versions import RoomVersion, room_version
from relay.events.signing import sign_event
from relay.federation.acl import require_allowed_txn
from relay.federation.ingest import BadPdu, parse_pdu
from relay.federation.remote_membership import STRIPPED_TYPES
from relay.federation.room_events import auth_chain_txn
from relay.rooms.remote_pdus import EventLoader, _auth_state_from, create_event_for
from relay.rooms.restricted_joins import authoriser_for_join_txn, check_voucher_txn
from relay.rooms.service import remember_remote_membership_txn
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response, read_json_object
from relay.services import Services
from store import Connection
from store import accounts as store_accounts
from store import events as store_events
from store import rooms as store_rooms
from store import state as store_state


def _services(request: Request) -> Services:
    return request.app.state.services


def _refusal(exc: BadPdu) -> MatrixError:
    """A membership event we cannot use: 403 when it failed its signatures (it has an id),
    as Synapse answers; 400 `M_BAD_JSON` when it is not a well-formed event at all."""
    if exc.event_id is not None:
        return Forbidden(str(exc))
    return BadJson(str(exc))


async def _make_membership(request: Request, origin: str, membership: str) -> Response:
    services = _services(request)
    room_id = request.path_params["room_id"]
    user_id = request.path_params["user_id"]
    if server_of(user_id) != origin:
        raise Forbidden("User is not on the requesting server")
    rooms = services.rooms
    supported = request.query_params.getlist("ver")
    if membership == "join":
        supported = supported or ["1"]  # the spec's default
    elif membership == "knock" and not supported:
        raise MissingParam("ver is required")

    def txn(conn: Connection) -> dict[str, Any]:
        require_allowed_txn(rooms, conn, room_id, origin)
        rv = rooms.room_version_txn(conn, room_id)
        if membership in ("join", "knock"):
            if rv.identifier not in supported:
                raise IncompatibleRoomVersion(
                    f"Your homeserver does not support room version {rv.identifier}",
                    room_version=rv.identifier,
                )
        if not store_rooms.joined_users(conn, room_id) or not any(
            server_of(u) == services.server_name for u in store_rooms.joined_users(conn, room_id)
        ):
            raise NotFound("This server is not in the room")
        content: dict[str, Any] = {"membership": membership}
        if membership == "join":
            voucher = authoriser_for_join_txn(conn, rooms, room_id, user_id)
            if voucher is not None:
                content[AUTHORISING_USER] = voucher
        partial: dict[str, Any] = {
            "type": "m.room.member",
            "room_id": room_id,
            "sender": user_id,
            "state_key": user_id,
            "content": content,
            "origin_server_ts": now_ms(),
        }
        if not rv.updated_redaction_rules:
            partial["origin"] = origin
        state = rooms.place_on_tips_txn(conn, rv, partial)
        # Refuse early what the auth rules would refuse later.
        event = {**partial, "event_id": "$template"}
        loader = EventLoader(rooms, conn)
        try:
            check_auth(
                event,
                _auth_state_from(event, state, rv, loader),
                rv,
                create_event=create_event_for(rooms, conn, rv, room_id),
            )
        except AuthError as exc:
            raise Forbidden(
                f"You are not allowed to {membership} this room: {exc.reason}"
            ) from None
        return {"event": partial, "room_version": rv.identifier}

    return json_response(await services.database.read(txn))


async def make_join(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/make_join/{roomId}/{userId}`"""
    return await _make_membership(request, origin, "join")


async def make_leave(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/make_leave/{roomId}/{userId}`"""
    return await _make_membership(request, origin, "leave")


async def make_knock(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/make_knock/{roomId}/{userId}`"""
    return await _make_membership(request, origin, "knock")


async def _send_membership(request: Request, origin: str, membership: str) -> tuple[Any, Any]:
    services = _services(request)
    room_id = request.path_params["room_id"]
    event_id = request.path_params["event_id"]
    body = await read_json_object(request)
    rv = await services.ingest.room_version_of(room_id)
    if rv is None:
        raise NotFound(f"Unknown room {room_id}")
    await services.database.read(
        lambda conn: require_allowed_txn(services.rooms, conn, room_id, origin)
    )
    if membership == "join":
        body = await _vouched(services, origin, room_id, body, rv)
    try:
        pdu = await services.ingest.verified_pdu(body, rv)
    except BadPdu as exc:
        raise _refusal(exc) from None
    if pdu.event_id != event_id or pdu.room_id != room_id:
        raise BadJson("Event id or room id does not match the path")
    if (
        pdu.type != "m.room.member"
        or pdu.state_key != pdu.sender
        or pdu.content.get("membership") != membership
        or server_of(pdu.sender) != origin
    ):
        raise BadJson(f"Not a {membership} event of a user on {origin}")
    _eid, outcome = await services.ingest.receive(origin, json.loads(pdu.raw))
    if outcome.status not in ("accepted", "duplicate"):
        raise Forbidden(f"The {membership} was not accepted: {outcome.reason or outcome.status}")

    rooms = services.rooms

    def pass_on(conn: Connection) -> None:
        rooms.enqueue_for_peers_txn(conn, pdu, exclude=[origin])

    await services.database.write(pass_on)
    if rooms.outbox_listener is not None:
        await rooms.outbox_listener()
    return pdu, rv


async def _vouched(
    services: Services, origin: str, room_id: str, body: dict[str, Any], rv: RoomVersion
) -> dict[str, Any]:
    """A restricted join naming one of our users as its voucher, signed by us once we
    have checked the voucher may (the auth rules need our signature); any other join as
    it came."""
    content = body.get("content")
    voucher = content.get(AUTHORISING_USER) if isinstance(content, dict) else None
    sender = body.get("sender")
    if not isinstance(voucher, str) or server_of(voucher) != services.server_name:
        return body
    if not isinstance(sender, str) or server_of(sender) != origin:
        raise BadJson(f"Not a join event of a user on {origin}")
    await services.database.read(check_voucher_txn, services.rooms, room_id, sender, voucher)
    key = services.signing_key
    return sign_event(body, rv, services.server_name, key.key_id, key.key)


async def _joined(request: Request, origin: str, *, omit_members: bool) -> dict[str, Any]:
    """The room as the joining server needs it: the state before its join and the auth
    chain. With `omit_members`, as Synapse: the state without its `m.room.member` events, and
    the auth chain without the events already in the state."""
    services = _services(request)
    pdu, _rv = await _send_membership(request, origin, "join")
    rooms = services.rooms

    def txn(conn: Connection) -> dict[str, Any]:
        state = store_state.get_state_before(conn, pdu.event_id) or {}
        state_pdus = list(rooms.get_pdus_txn(conn, state.values()).values())
        chain = auth_chain_txn(rooms, conn, [p.event_id for p in state_pdus] + [pdu.event_id])
        if omit_members:
            state_pdus = [p for p in state_pdus if p.type != "m.room.member"]
            in_state = {p.event_id for p in state_pdus}
            chain = [p for p in chain if p.event_id not in in_state]
        answer = {
            "origin": services.server_name,
            "state": [rooms.event_for_servers_txn(conn, p) for p in state_pdus],
            "auth_chain": [rooms.event_for_servers_txn(conn, p) for p in chain],
            "event": json.loads(pdu.raw),
            "members_omitted": omit_members,
        }
        if omit_members:
            # Only a partial join needs them (the spec: required when members are omitted);
            # a full join has the members themselves. Synapse sends them the same way.
            answer["servers_in_room"] = store_rooms.servers_in_room(conn, pdu.room_id)
        return answer

    return await services.database.read(txn)


def _omit_members(request: Request) -> bool:
    value = request.query_params.get("omit_members", "false")
    if value not in ("true", "false"):
        raise InvalidParam("omit_members must be true or false")
    return value == "true"


async def send_join(request: Request, origin: str) -> Response:
    """# `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}`"""
    return json_response(await _joined(request, origin, omit_members=_omit_members(request)))


async def send_join_v1(request: Request, origin: str) -> Response:
    """# `PUT /_matrix/federation/v1/send_join/{roomId}/{eventId}`

    Deprecated, still served (Synapse does): the v2 answer, without the partial-join
    fields, inside `[200, ...]`."""
    answer = await _joined(request, origin, omit_members=False)
    v1 = {k: answer[k] for k in ("origin", "state", "auth_chain", "event")}
    return json_response([200, v1])


async def send_leave(request: Request, origin: str) -> Response:
    """# `PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}`"""
    await _send_membership(request, origin, "leave")
    return json_response({})


async def send_leave_v1(request: Request, origin: str) -> Response:
    """# `PUT /_matrix/federation/v1/send_leave/{roomId}/{eventId}` (deprecated, served)"""
    await _send_membership(request, origin, "leave")
    return json_response([200, {}])


async def send_knock(request: Request, origin: str) -> Response:
    """# `PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}`"""
    services = _services(request)
    pdu, _rv = await _send_membership(request, origin, "knock")
    rooms = services.rooms

    def txn(conn: Connection) -> dict[str, Any]:
        events = [rooms.state_event_txn(conn, pdu.room_id, t, "") for t in STRIPPED_TYPES]
        return {
            "knock_room_state": [
                rooms.event_for_servers_txn(conn, e) for e in events if e is not None
            ]
        }

    return json_response(await services.database.read(txn))


async def invite(request: Request, origin: str) -> Response:
    """# `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`"""
    body = await read_json_object(request)
    signed = await _invited(
        request,
        origin,
        event=body.get("event"),
        asked=body.get("room_version", ""),
        stripped=body.get("invite_room_state", []),
    )
    return json_response({"event": signed})


async def invite_v1(request: Request, origin: str) -> Response:
    """# `PUT /_matrix/federation/v1/invite/{roomId}/{eventId}` (deprecated, served)

    The body is the event itself and names no room version: it is read as room version 1,
    as Synapse reads it (v2 exists because of this)."""
    event = await read_json_object(request)
    unsigned = event.get("unsigned")
    stripped = unsigned.get("invite_room_state", []) if isinstance(unsigned, dict) else []
    signed = await _invited(request, origin, event=event, asked="1", stripped=stripped)
    return json_response([200, {"event": signed}])


async def _invited(
    request: Request, origin: str, *, event: Any, asked: Any, stripped: Any
) -> dict[str, Any]:
    """Check, sign and remember a remote room's invite of a local user; the signed event."""
    services = _services(request)
    room_id = request.path_params["room_id"]
    rv = room_version(asked) if isinstance(asked, str) else None
    if rv is None:
        raise IncompatibleRoomVersion(
            f"This server does not support room version {asked}", room_version=str(asked)
        )
    await services.database.read(
        lambda conn: require_allowed_txn(services.rooms, conn, room_id, origin)
    )
    if not isinstance(event, dict):
        raise BadJson("event is required")
    try:
        pdu = await services.ingest.verified_pdu(event, rv)
    except BadPdu as exc:
        raise _refusal(exc) from None
    invitee = pdu.state_key or ""
    if (
        pdu.room_id != room_id
        or pdu.event_id != request.path_params["event_id"]
        or pdu.type != "m.room.member"
        or pdu.content.get("membership") != "invite"
        or server_of(pdu.sender) != origin
    ):
        raise BadJson("Not an invite from the requesting server")
    if server_of(invitee) != services.server_name:
        raise NotHostedHere("The invite event must be for this server")
    if await services.database.read(store_accounts.get_user, invitee) is None:
        raise NotFound(f"Unknown user {invitee}")
    signed = sign_event(
        pdu.as_dict(),
        rv,
        services.server_name,
        services.signing_key.key_id,
        services.signing_key.key,
    )
    signed_pdu = parse_pdu(signed, rv)
    if not isinstance(stripped, list):
        stripped = []

    def txn(conn: Connection) -> None:
        if store_rooms.get_room_version(conn, room_id) is None:
            # A room we are not in: remember the invite and its stripped state.
            remember_remote_membership_txn(
                conn, signed_pdu, invitee, "invite", stripped_state=stripped
            )

    await services.database.write(txn)
    services.notifier.on_stream(await services.database.read(store_events.max_stream_ordering))
    return signed
