"""PDU size limits: 65536 bytes whole, 255 bytes for ids and type."""

from __future__ import annotations

import pytest

from relay.events.canonical import canonical_json
from relay.events.limits import (
    LIMITED_FIELDS,
    MAX_AUTH_EVENTS,
    MAX_PDU_SIZE,
    MAX_PREV_EVENTS,
    check_pdu_limits,
    check_size_limits,
    oversized_fields,
    pdu_size,
    pdu_too_large,
    too_many_references,
)

EVENT = {
    "type": "m.room.message",
    "room_id": "!r:example.org",
    "sender": "@u:example.org",
    "content": {"body": ""},
    "signatures": {"example.org": {"ed25519:1": "c2ln"}},
}


def _with_size(size: int) -> dict[str, object]:
    padding = size - pdu_size(EVENT)
    return {**EVENT, "content": {"body": "x" * padding}}


def test_max_pdu_size_is_65536() -> None:
    assert MAX_PDU_SIZE == 65536


def test_pdu_of_exactly_max_size_is_allowed() -> None:
    event = _with_size(MAX_PDU_SIZE)
    assert len(canonical_json(event)) == MAX_PDU_SIZE
    assert not pdu_too_large(event)
    assert check_size_limits(event) is None


def test_pdu_one_byte_over_max_size_is_too_large() -> None:
    event = _with_size(MAX_PDU_SIZE + 1)
    assert pdu_too_large(event)
    assert check_size_limits(event) is not None


def test_pdu_size_counts_utf8_bytes_and_signatures() -> None:
    assert pdu_size({"a": "é"}) == len('{"a":"é"}'.encode())
    assert pdu_size(EVENT) > pdu_size({k: v for k, v in EVENT.items() if k != "signatures"})


@pytest.mark.parametrize("field", LIMITED_FIELDS)
def test_field_of_255_bytes_is_allowed_and_256_is_not(field: str) -> None:
    assert oversized_fields({**EVENT, field: "a" * 255}) == []
    assert oversized_fields({**EVENT, field: "a" * 256}) == [field]


def test_field_limit_counts_bytes_not_characters() -> None:
    assert oversized_fields({**EVENT, "state_key": "é" * 128}) == ["state_key"]


def test_field_limit_ignores_non_string_values() -> None:
    assert oversized_fields({**EVENT, "state_key": ["a" * 300]}) == []


def _refs(count: int) -> list[str]:
    return [f"$e{i}" for i in range(count)]


def test_twenty_prev_events_are_allowed_and_twenty_one_are_not() -> None:
    assert MAX_PREV_EVENTS == 20
    assert too_many_references({**EVENT, "prev_events": _refs(20)}) is None
    reason = too_many_references({**EVENT, "prev_events": _refs(21)})
    assert reason is not None and "prev_events" in reason


def test_ten_auth_events_are_allowed_and_eleven_are_not() -> None:
    assert MAX_AUTH_EVENTS == 10
    assert too_many_references({**EVENT, "auth_events": _refs(10)}) is None
    reason = too_many_references({**EVENT, "auth_events": _refs(11)})
    assert reason is not None and "auth_events" in reason


def test_check_pdu_limits_covers_sizes_fields_and_references() -> None:
    assert check_pdu_limits({**EVENT, "prev_events": _refs(20), "auth_events": _refs(10)}) is None
    assert check_pdu_limits({**EVENT, "prev_events": _refs(21)}) is not None
    assert check_pdu_limits({**EVENT, "auth_events": _refs(11)}) is not None
    assert check_pdu_limits({**EVENT, "type": "t" * 256}) is not None
    assert check_pdu_limits(_with_size(MAX_PDU_SIZE + 1)) is not None
