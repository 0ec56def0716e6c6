"""The outbound batch: a to-device EDU (a room key) goes in a transaction before any
PDU queued after it, so a destination that handles a transaction's PDUs and EDUs
concurrently (Synapse) still has the key before the event it decrypts."""

from __future__ import annotations

import json
from typing import Any

from relay.federation.sender import keys_first


def _row(row_id: int, kind: str, edu_type: str | None = None) -> dict[str, Any]:
    payload = {"edu_type": edu_type, "content": {}} if kind == "edu" else {"type": "m.room.x"}
    return {"id": row_id, "kind": kind, "payload": json.dumps(payload).encode()}


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


def test_a_pdu_after_a_to_device_edu_waits_for_the_next_transaction() -> None:
    rows = [
        _row(1, "pdu"),
        _row(2, "edu", "m.receipt"),
        _row(3, "edu", "m.direct_to_device"),
        _row(4, "edu", "m.device_list_update"),
        _row(5, "pdu"),
        _row(6, "pdu"),
    ]
    assert _ids(keys_first(rows)) == [1, 2, 3, 4]
    assert _ids(keys_first(rows[4:])) == [5, 6]


def test_batches_without_a_key_before_a_pdu_go_whole() -> None:
    rows = [_row(1, "pdu"), _row(2, "edu", "m.typing"), _row(3, "pdu")]
    assert _ids(keys_first(rows)) == [1, 2, 3]
    keys = [_row(1, "pdu"), _row(2, "edu", "m.direct_to_device"), _row(3, "edu", "m.receipt")]
    assert _ids(keys_first(keys)) == [1, 2, 3]
