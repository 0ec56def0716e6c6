"""`PUT /_matrix/federation/v1/send/{txnId}`: PDUs and EDUs pushed to us.

A transaction id is remembered per origin: a retried transaction gets the
answer the first one got and changes nothing. Each PDU gets its own result; one
bad PDU never fails the transaction. A PDU of a room whose server ACL denies the
origin is ignored, its result a 403 `M_FORBIDDEN` error body (as Synapse answers);
typing and receipt EDUs of such a room are ignored (`edus.py`).

To-device EDUs are delivered before the transaction's PDUs, the other EDUs after
them. A client shares a room key (to-device) before it sends the event encrypted
with it, and an upstream that was busy sending to us carries both in one
transaction: delivered in that order, the key takes a stream position before the
event's, so no /sync answer can hand a device the event without its key (a client
that does not retry decryption, like matrix-nio, would never read it). The other
EDUs may be about the PDUs' rooms (typing and receipts check the sender's
membership), so they wait for the PDUs.

A relay may push the same transactions over its transaction stream instead
(`serve_transaction_stream`; the protocol is transaction_stream.py's): one WebSocket,
authenticated once by its signed upgrade request, each message a transaction answered
by `receive_transaction` exactly as `/send` answers it.

Spec: https://spec.matrix.org/v1.16/server-server-api/#put_matrixfederationv1sendtxnid
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from relay.e2ee.to_device import EDU_TYPE as TO_DEVICE_EDU
from relay.errors import BadJson, Forbidden, MatrixError, TooLarge
from relay.events.room_versions import RoomVersion, room_version
from relay.federation import transaction_stream as stream
from relay.federation.acl import DENIED, origin_allowed_txn
from relay.federation.edus import handle_edu
from relay.federation.inbound_auth import authenticate_request
from relay.federation.ingest import BadPdu, parse_pdu
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response, read_json_object
from relay.services import Services
from store import fed_txns as store_fed_txns
from store import rooms as store_rooms

log = logging.getLogger(__name__)

MAX_PDUS = 50
MAX_EDUS = 100
#: a transaction id on the stream (in `/send` it is a path segment, bounded by the URL).
MAX_TXN_ID = 255


async def send_transaction(request: Request, origin: str) -> Response:
    """# `PUT /_matrix/federation/v1/send/{txnId}`"""
    services: Services = request.app.state.services
    body = await read_json_object(request)
    answer = await receive_transaction(services, origin, request.path_params["txn_id"], body)
    return json_response(answer)


async def receive_transaction(
    services: Services, origin: str, txn_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """The answer to a transaction `origin` signed (over `/send`, or on its transaction
    stream: transaction_stream.py); the same answer again for a transaction id it already
    sent, which then changes nothing.

    Raises:
        Forbidden: the body names another origin.
        BadJson: `pdus`/`edus` are not lists, or hold too many.
    """
    if body.get("origin", origin) != origin:
        raise Forbidden("Transaction origin does not match the signing server")
    pdus = body.get("pdus", [])
    edus = body.get("edus", [])
    if not isinstance(pdus, list) or not isinstance(edus, list):
        raise BadJson("pdus and edus must be lists")
    if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
        raise BadJson(f"At most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs per transaction")

    earlier = await services.database.read(
        lambda conn: store_fed_txns.get_txn(conn, origin=origin, txn_id=txn_id)
    )
    if earlier is not None:
        answer: dict[str, Any] = json.loads(earlier)
        return answer

    valid = [edu for edu in edus if isinstance(edu, dict)]
    for edu in valid:
        if edu.get("edu_type") == TO_DEVICE_EDU:
            await handle_edu(services, origin, edu)
    ingest = services.ingest
    results: dict[str, Any] = {}
    allowed: dict[str, tuple[bool, RoomVersion | None]] = {}  # by room, for this transaction
    for pdu in pdus:
        denied = await _denied_event_id(services, origin, pdu, allowed)
        if denied is not None:
            log.info("ignored PDU %s from %s: the room's server ACL denies it", denied, origin)
            results[denied] = Forbidden(DENIED).to_json()
            continue
        event_id, outcome = await ingest.receive(origin, pdu)
        if event_id is None:
            log.info("dropped a PDU from %s: %s", origin, outcome.reason)
            continue
        if outcome.status == "pending":  # kept until its key is found: ours to finish
            log.info("kept a PDU from %s pending: %s", origin, outcome.reason)
        results[event_id] = {"error": outcome.reason} if outcome.status == "rejected" else {}
    for edu in valid:
        if edu.get("edu_type") != TO_DEVICE_EDU:
            await handle_edu(services, origin, edu)
    response = {"pdus": results}
    if pdus or edus:
        text = json.dumps(response)
        await services.database.write(
            lambda conn: store_fed_txns.put_txn(
                conn, origin=origin, txn_id=txn_id, response=text, now_ms=now_ms()
            )
        )
    return response


async def _denied_event_id(
    services: Services,
    origin: str,
    pdu: Any,
    allowed: dict[str, tuple[bool, RoomVersion | None]],
) -> str | None:
    """The event id of a PDU whose room's server ACL denies `origin` (None: not denied, or
    not a PDU of a room we know, which `Ingest.receive` answers). Not verified: a denied
    server's PDU is answered without fetching anything for it."""
    room_id = pdu.get("room_id") if isinstance(pdu, dict) else None
    if not isinstance(room_id, str):
        return None
    rooms = services.rooms

    def txn(conn: Any) -> tuple[bool, RoomVersion | None]:
        identifier = store_rooms.get_room_version(conn, room_id)
        if identifier is None:
            return True, None
        return origin_allowed_txn(rooms, conn, room_id, origin), room_version(identifier)

    if room_id not in allowed:
        allowed[room_id] = await services.database.read(txn)
    ok, rv = allowed[room_id]
    if ok or rv is None:
        return None
    try:
        return parse_pdu(pdu, rv).event_id
    except BadPdu:
        return None


class _InboundStream:
    """One open inbound stream, as its registry sees it."""

    def __init__(self) -> None:
        self.replaced = False
        #: set while the stream waits for its next message (the only time it may be cut).
        self.waiting: trio.CancelScope | None = None


class StreamRegistry:
    """The open inbound transaction streams, one per origin: a sender keeps one, so a
    second from the same origin replaces the first. The first is closed when it next waits
    for a message: a transaction it is working on is finished first (half a transaction is
    never left behind)."""

    def __init__(self) -> None:
        self._open: dict[str, _InboundStream] = {}

    def open(self, origin: str) -> _InboundStream:
        older = self._open.get(origin)
        if older is not None:
            older.replaced = True
            if older.waiting is not None:
                older.waiting.cancel()
        opened = self._open[origin] = _InboundStream()
        return opened

    def close(self, origin: str, opened: _InboundStream) -> None:
        if self._open.get(origin) is opened:
            del self._open[origin]


async def serve_transaction_stream(websocket: WebSocket) -> None:
    """# the transaction stream (`transaction_stream.PATH`, a WebSocket)"""
    services: Services = websocket.app.state.services
    try:
        origin = await authenticate_request(websocket, b"")
    except MatrixError as exc:
        await websocket.send_denial_response(json_response(exc.to_json(), exc.status))
        return
    await websocket.accept()
    log.info("%s opened a transaction stream", origin)
    registry: StreamRegistry = websocket.app.state.transaction_streams
    opened = registry.open(origin)
    try:
        code, reason = await _serve_stream(services, websocket, origin, opened)
    except WebSocketDisconnect:
        return
    finally:
        registry.close(origin, opened)
    await websocket.close(code, reason)


async def _serve_stream(
    services: Services, websocket: WebSocket, origin: str, opened: _InboundStream
) -> tuple[int, str]:
    """Answer `origin`'s transactions in turn until it stops; (close code, reason)."""
    unpacker = stream.Unpacker()
    references = stream.References()  # the PDUs that came on this stream
    # Answers are a few bytes: a small window is plenty.
    packer = stream.Packer(window_bits=10, mem_level=4)
    while True:
        message: Message | None = None
        with trio.CancelScope() as waiting:
            opened.waiting = waiting
            with trio.move_on_after(stream.IDLE_CLOSE_S):
                message = await websocket.receive()
        opened.waiting = None
        if opened.replaced:
            return stream.CLOSE_NORMAL, "replaced by a newer stream"
        if message is None:
            return stream.CLOSE_NORMAL, "idle"
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", stream.CLOSE_NORMAL))
        data = message.get("bytes")
        if data is None:
            log.info("transaction stream from %s sent text; closing it", origin)
            return stream.CLOSE_BAD_DATA, "binary messages only"
        if not data:
            await websocket.send_bytes(b"")  # a keep-alive
            continue
        if not await services.peer_policy.allows(origin):
            log.info("closing the transaction stream of %s: mesh.policy refuses it", origin)
            return stream.CLOSE_POLICY, "not a server this relay federates with"
        try:
            body = unpacker.unpack(data)
        except TooLarge:
            return stream.CLOSE_TOO_BIG, "message too large"
        except stream.BadMessage as exc:
            log.info("closing the transaction stream of %s: %s", origin, exc)
            return stream.CLOSE_BAD_DATA, "bad message"
        answer = await _answer(services, origin, body, references)
        services.federation_client.heard_from(origin)  # alive: our probes to it can wait
        await websocket.send_bytes(packer.pack(answer))


async def _answer(
    services: Services, origin: str, body: dict[str, Any], references: stream.References
) -> dict[str, Any]:
    """One stream message's answer: the PDUs that failed, or why the whole was refused."""
    # First, whatever else is wrong: the sender counted these PDUs on the stream (no more
    # than /send takes: beyond that nothing is restored, and the transaction is refused).
    versions = body.pop("room_versions", None)
    pdus = body.get("pdus")
    if isinstance(pdus, list) and len(pdus) <= MAX_PDUS:
        body["pdus"] = stream.restore(pdus, versions, references)
    txn_id = body.pop("txn_id", None)
    if not isinstance(txn_id, str) or not 0 < len(txn_id) <= MAX_TXN_ID:
        return _refusal(BadJson(f"txn_id must be a string of 1 to {MAX_TXN_ID} characters"))
    try:
        result = await receive_transaction(services, origin, txn_id, body)
    except MatrixError as exc:
        return _refusal(exc)
    return {"pdus": {event_id: r for event_id, r in result.get("pdus", {}).items() if r}}


def _refusal(exc: MatrixError) -> dict[str, Any]:
    return {"status": exc.status} | exc.to_json()
