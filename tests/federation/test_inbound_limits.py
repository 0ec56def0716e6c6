"""Every inbound PDU passes `parse_pdu`, and `parse_pdu` refuses PDUs over the limits of
`relay.events.limits` (whole size, field lengths, prev and auth event counts) before it
looks at hashes, so an oversized event cannot get in redacted either."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from relay.events.hashes import add_content_hash
from relay.events.limits import MAX_AUTH_EVENTS, MAX_PDU_SIZE, MAX_PREV_EVENTS, pdu_size
from relay.events.room_versions import room_version
from relay.events.signing import sign_event
from relay.federation.ingest import BadPdu, parse_pdu
from relay.runtime.identity import new_signing_key

RV = room_version("10")
KEY = new_signing_key()
ROOT = Path(__file__).resolve().parents[2]


def _event(**fields: Any) -> dict[str, Any]:
    event = {
        "type": "m.room.message",
        "room_id": "!r:remote.example",
        "sender": "@u:remote.example",
        "content": {"body": "hi"},
        "origin_server_ts": 1,
        "depth": 5,
        "prev_events": ["$p0"],
        "auth_events": ["$a0"],
        **fields,
    }
    return sign_event(add_content_hash(event), RV, "remote.example", KEY.key_id, KEY.key)


def _refs(prefix: str, count: int) -> list[str]:
    return [f"${prefix}{i}" for i in range(count)]


def test_a_pdu_within_the_limits_parses() -> None:
    event = _event(prev_events=_refs("p", MAX_PREV_EVENTS), auth_events=_refs("a", MAX_AUTH_EVENTS))
    assert parse_pdu(event, RV).prev_event_ids == tuple(_refs("p", MAX_PREV_EVENTS))


@pytest.mark.parametrize(
    "fields",
    [
        {"prev_events": _refs("p", MAX_PREV_EVENTS + 1)},
        {"auth_events": _refs("a", MAX_AUTH_EVENTS + 1)},
        {"type": "t" * 256},
        {"state_key": "s" * 256},
        {"sender": "@" + "u" * 255 + ":remote.example"},
        {"room_id": "!" + "r" * 255 + ":remote.example"},
        {"content": {"body": "x" * MAX_PDU_SIZE}},
    ],
    ids=["prev_events", "auth_events", "type", "state_key", "sender", "room_id", "size"],
)
def test_a_pdu_over_a_limit_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(BadPdu, match="limits"):
        parse_pdu(_event(**fields), RV)


def test_an_oversized_pdu_failing_its_hash_is_refused_not_redacted() -> None:
    event = _event(content={"body": "x" * MAX_PDU_SIZE})
    event["content"] = {"body": "y" * MAX_PDU_SIZE}  # hash now fails: would redact small
    assert pdu_size(event) > MAX_PDU_SIZE
    with pytest.raises(BadPdu, match="limits"):
        parse_pdu(event, RV)


def test_unsigned_does_not_count_towards_the_size() -> None:
    event = _event()
    event["unsigned"] = {"invite_room_state": [{"x": "y" * MAX_PDU_SIZE}]}
    assert parse_pdu(event, RV).event_id


def test_only_parse_pdu_turns_received_dicts_into_pdus() -> None:
    """The federation package builds a Pdu from a dict only in `ingest.parse_pdu`, so no
    inbound path (/send, send_join and invite answers, backfill, get_missing_events,
    state, event_auth) skips the limits."""
    offenders = []
    for path in sorted((ROOT / "relay" / "federation").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "from_dict"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "Pdu"
                and path.name != "ingest.py"
            ):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
