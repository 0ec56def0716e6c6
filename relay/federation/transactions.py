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

Spec: https://spec.matrix.org/v1.16/server-server-api/#put_matrixfederationv1sendtxnid
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.e2ee.to_device import EDU_TYPE as TO_DEVICE_EDU
from relay.errors import BadJson, Forbidden
from relay.events.room_versions import RoomVersion, room_version
from relay.federation.acl import DENIED, origin_allowed_txn
from relay.federation.edus import handle_edu
from relay.federation.ingest import BadPdu, parse_pdu
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response, read_json_object
from relay.services import Services
from store import fed_txns as store_fed_txns
from store import rooms as store_rooms

log = logging.getLogger(__name__)

MAX_PDUS = 50
MAX_EDUS = 100


async def send_transaction(request: Request, origin: str) -> Response:
    """# `PUT /_matrix/federation/v1/send/{txnId}`"""
    services: Services = request.app.state.services
    txn_id = request.path_params["txn_id"]
    body = await read_json_object(request)
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
        return json_response(json.loads(earlier))

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
    return json_response(response)


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
