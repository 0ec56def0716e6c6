"""Size limits on PDUs: 65536 bytes for the whole event, 255 bytes for ids.

The whole event, as sent over federation with its signatures, encoded as
canonical JSON, must not exceed ``MAX_PDU_SIZE`` bytes. ``sender``,
``room_id``, ``state_key``, ``type`` and ``event_id`` must not exceed 255
UTF-8 bytes each. Only string fields are measured: shape checks live elsewhere.

Spec: https://spec.matrix.org/v1.16/client-server-api/#size-limits
"""

from __future__ import annotations

from typing import Any

from relay.events.canonical import canonical_json

MAX_PDU_SIZE = 65536
MAX_FIELD_BYTES = 255
LIMITED_FIELDS = ("sender", "room_id", "state_key", "type", "event_id")


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
