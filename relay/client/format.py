"""Events as clients see them (the "client event" format).

Spec: https://spec.matrix.org/v1.16/client-server-api/#room-event-format
"""

from __future__ import annotations

from typing import Any

from relay.events.pdu import Pdu, strip_state_event
from relay.events.redaction import redact
from relay.rooms.reads import EventView
from relay.rooms.relations import Aggregations

# Fields of a PDU that clients never see.


def client_event(
    pdu: Pdu,
    *,
    now_ms: int,
    redacted_because: dict[str, Any] | None = None,
    prev_content: dict[str, Any] | None = None,
    transaction_id: str | None = None,
    include_room_id: bool = True,
    relations: Aggregations | None = None,
) -> dict[str, Any]:
    event = pdu.as_dict()
    if redacted_because is not None:
        event = redact(event, pdu.room_version)
    out: dict[str, Any] = {
        "type": event["type"],
        "content": event.get("content", {}),
        "sender": event["sender"],
        "origin_server_ts": event["origin_server_ts"],
        "event_id": pdu.event_id,
    }
    if include_room_id:
        out["room_id"] = pdu.room_id
    if "state_key" in event:
        out["state_key"] = event["state_key"]
    if pdu.type == "m.room.redaction" and pdu.redacts:
        # Clients read `redacts` from the top level in every version.
        out["redacts"] = pdu.redacts
    unsigned: dict[str, Any] = {"age": max(0, now_ms - event["origin_server_ts"])}
    if redacted_because is not None:
        unsigned["redacted_because"] = redacted_because
    if prev_content is not None:
        unsigned["prev_content"] = prev_content
    if transaction_id is not None:
        unsigned["transaction_id"] = transaction_id
    if relations is not None and not relations.is_empty():
        unsigned["m.relations"] = relations_json(
            relations, now_ms=now_ms, include_room_id=include_room_id
        )
    out["unsigned"] = unsigned
    return out


def relations_json(
    relations: Aggregations, *, now_ms: int, include_room_id: bool = True
) -> dict[str, Any]:
    """`unsigned["m.relations"]`: the newest edit and the thread's latest event as
    client events (the latest with its own edit bundled), references by id."""
    out: dict[str, Any] = {}
    if relations.replace is not None:
        out["m.replace"] = client_event(
            relations.replace, now_ms=now_ms, include_room_id=include_room_id
        )
    if relations.thread is not None:
        thread = relations.thread
        latest_relations = Aggregations(replace=thread.latest_edit)
        out["m.thread"] = {
            "latest_event": client_event(
                thread.latest,
                now_ms=now_ms,
                include_room_id=include_room_id,
                relations=latest_relations,
            ),
            "count": thread.count,
            "current_user_participated": thread.participated,
        }
    if relations.references:
        out["m.reference"] = {"chunk": [{"event_id": i} for i in relations.references]}
    return out


def render_view(view: EventView, *, now_ms: int, include_room_id: bool = True) -> dict[str, Any]:
    """An `EventView` (relay/rooms/reads.py) in the client format: redacted with
    `unsigned.redacted_because`, `prev_content` and `replaces_state` for replaced state,
    the reader's own `transaction_id`, the bundled aggregations (`unsigned.m.relations`).
    The one renderer of /sync, /messages, /context, /event and the state reads."""
    because = None
    if view.redacted_by is not None:
        because = client_event(view.redacted_by, now_ms=now_ms, include_room_id=include_room_id)
    event = client_event(
        view.pdu,
        now_ms=now_ms,
        redacted_because=because,
        prev_content=view.prev_content,
        transaction_id=view.txn_id,
        include_room_id=include_room_id,
        relations=view.relations,
    )
    if view.replaces_state is not None:
        event["unsigned"]["replaces_state"] = view.replaces_state
    return event


__all__ = ["client_event", "relations_json", "render_view", "strip_state_event"]
