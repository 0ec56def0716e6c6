"""The outbound batch: a to-device EDU (a room key) goes in a transaction before any
PDU queued after it, so a destination that handles a transaction's PDUs and EDUs
concurrently (Synapse) still has the key before the event it decrypts."""

from __future__ import annotations

import json
from typing import Any

from relay.federation.sender import (
    TXN_OVERHEAD_BYTES,
    choose_rows,
    keys_first,
    refused_pdus,
)


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


def _aged(row_id: int, kind: str, edu_type: str | None = None, ts: int = 0) -> dict[str, Any]:
    return _row(row_id, kind, edu_type) | {"created_ts": ts}


def test_messages_go_before_receipts_before_typing_when_the_budget_is_short() -> None:
    rows = [
        _aged(1, "edu", "m.typing"),
        _aged(2, "edu", "m.receipt"),
        _aged(3, "pdu"),
        _aged(4, "edu", "m.device_list_update"),
        _aged(5, "pdu"),
    ]
    cost = {r["id"]: len(r["payload"]) + 1 for r in rows}
    budget = TXN_OVERHEAD_BYTES + cost[3] + cost[4] + cost[5] + cost[2]
    chosen, stale = choose_rows(rows, budget, now=1000)
    assert _ids(chosen) == [3, 4, 5, 2] and stale == []  # typing waits
    chosen, _ = choose_rows(rows, budget - cost[2], now=1000)
    assert _ids(chosen) == [3, 4, 5]  # receipts wait too
    chosen, _ = choose_rows(rows, 10**6, now=1000)
    assert _ids(chosen) == [3, 4, 5, 2, 1]  # room for all: still tier by tier
    # Priority 0 stays a prefix in queue order: a PDU that does not fit stops the rest.
    chosen, _ = choose_rows(rows, TXN_OVERHEAD_BYTES + cost[3] + 1, now=1000)
    assert _ids(chosen) == [3]


def test_stale_typing_is_dropped_never_sent_and_something_always_goes() -> None:
    rows = [_aged(1, "edu", "m.typing", ts=0), _aged(2, "edu", "m.typing", ts=50_000)]
    chosen, stale = choose_rows(rows, 1, now=60_000)
    assert _ids(stale) == [1]
    assert _ids(chosen) == [2]  # over the budget, but the only live row
    chosen, stale = choose_rows([_aged(1, "pdu")], 1, now=10**9)
    assert _ids(chosen) == [1] and stale == []  # PDUs never go stale


def test_only_a_well_formed_answer_refuses_pdus_and_no_answer_breaks_the_sender() -> None:
    answer = {"pdus": {"$a": {"error": "bad signature"}, "$b": {}, "$c": "junk"}}
    assert refused_pdus(answer) == {"$a": {"error": "bad signature"}}
    # A hostile or broken peer's answer (this raised AttributeError, ending the sender).
    for hostile in ({"pdus": []}, {"pdus": "x"}, {"pdus": None}, {}, None, [], "x"):
        assert refused_pdus(hostile) == {}
