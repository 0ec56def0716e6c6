"""Limits on PDUs: 65536 bytes for the whole event, 255 bytes for ids, and at most
20 prev events and 10 auth events.

The whole event, as sent over federation with its signatures, encoded as
canonical JSON, must not exceed ``MAX_PDU_SIZE`` bytes. ``sender``,
``room_id``, ``state_key``, ``type`` and ``event_id`` must not exceed 255
UTF-8 bytes each. Only string fields are measured: shape checks live elsewhere.

The spec sets no count on ``prev_events`` and ``auth_events``; Synapse refuses a
received event with more than 20 prev events or 10 auth events (an early sanity check
against a huge state resolution or a cascade of fetches), and builds its own with at
most 10 prev events. We refuse the same: ``check_pdu_limits`` is the one rule every
inbound PDU passes (``relay.federation.ingest.parse_pdu``), and local events are built
within it (``MAX_PREV_EVENTS`` caps the tips a local event names).

Spec: https://spec.matrix.org/v1.16/client-server-api/#size-limits
"""

from __future__ import annotations

from typing import Any

from relay.events.canonical import canonical_json

MAX_PDU_SIZE = 65536
MAX_FIELD_BYTES = 255
LIMITED_FIELDS = ("sender", "room_id", "state_key", "type", "event_id")
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10


def pdu_size(event: dict[str, Any]) -> int:
    """Bytes of the canonical JSON of ``event`` as given (signatures included)."""
    return len(canonical_json(event))


def pdu_too_large(event: dict[str, Any]) -> bool:
    """Whether the canonical JSON of the signed ``event`` exceeds ``MAX_PDU_SIZE``."""
    return pdu_size(event) > MAX_PDU_SIZE


def oversized_fields(event: dict[str, Any]) -> list[str]:
    """The names of the limited fields whose value exceeds 255 UTF-8 bytes."""
    return [
        name
        for name in LIMITED_FIELDS
        if isinstance(event.get(name), str)
        and len(event[name].encode("utf-8", "surrogatepass")) > MAX_FIELD_BYTES
    ]


def check_size_limits(event: dict[str, Any]) -> str | None:
    """``None`` if ``event`` fits every limit, else a reason to reject it."""
    fields = oversized_fields(event)
    if fields:
        return f"fields longer than {MAX_FIELD_BYTES} bytes: {', '.join(fields)}"
    if pdu_too_large(event):
        return f"event larger than {MAX_PDU_SIZE} bytes"
    return None


def too_many_references(event: dict[str, Any]) -> str | None:
    """``None`` unless ``event`` names more than ``MAX_PREV_EVENTS`` prev events or more
    than ``MAX_AUTH_EVENTS`` auth events; then the reason. Non-list values are left to
    the shape checks."""
    for name, cap in (("prev_events", MAX_PREV_EVENTS), ("auth_events", MAX_AUTH_EVENTS)):
        refs = event.get(name)
        if isinstance(refs, list) and len(refs) > cap:
            return f"too many {name}: {len(refs)} (at most {cap})"
    return None


def check_pdu_limits(event: dict[str, Any]) -> str | None:
    """``None`` if the PDU ``event`` (as received, without ``unsigned``) fits every limit
    here (field lengths, whole size, prev and auth event counts), else a reason to refuse
    it. Counts are checked first: they are the cheapest."""
    return too_many_references(event) or check_size_limits(event)
