"""Content hashes and reference hashes, computed independently with hashlib + json."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

from hypothesis import given

from relay.events.hashes import add_content_hash, check_content_hash, content_hash, reference_hash
from relay.events.room_versions import V10, V11, V12
from tests.events.helpers import ROOM_VERSIONS, events, json_values, load_vector


def _sha256_of_json(obj: Any) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).digest()


MESSAGE = {
    "type": "m.room.message",
    "room_id": "!r:example.org",
    "sender": "@u:example.org",
    "origin": "example.org",
    "origin_server_ts": 1000,
    "depth": 2,
    "prev_events": ["$p"],
    "auth_events": ["$a"],
    "content": {"body": "hello", "msgtype": "m.text"},
    "hashes": {"sha256": "old"},
    "signatures": {"example.org": {"ed25519:1": "sig"}},
    "unsigned": {"age_ts": 5},
}


def test_content_hash_covers_everything_but_unsigned_signatures_hashes() -> None:
    expected = {k: v for k, v in MESSAGE.items() if k not in ("unsigned", "signatures", "hashes")}
    assert content_hash(MESSAGE) == _sha256_of_json(expected)


def test_content_hash_matches_spec_vectors() -> None:
    for name in ("event_signing_minimal.json", "event_signing_redactable.json"):
        vector = load_vector(name)
        expected = vector["signed"]["hashes"]["sha256"]
        assert add_content_hash(vector["input"])["hashes"]["sha256"] == expected


def test_add_content_hash_is_unpadded_standard_base64_and_keeps_other_hashes() -> None:
    event = {**MESSAGE, "hashes": {"sha512": "x"}}
    hashed = add_content_hash(event)
    encoded = hashed["hashes"]["sha256"]
    assert "=" not in encoded
    assert base64.b64decode(encoded + "=") == content_hash(MESSAGE)
    assert hashed["hashes"]["sha512"] == "x"
    assert event["hashes"] == {"sha512": "x"}


def test_check_content_hash_accepts_fresh_hash_and_padded_form() -> None:
    hashed = add_content_hash(MESSAGE)
    assert check_content_hash(hashed)
    padded = {**hashed, "hashes": {"sha256": hashed["hashes"]["sha256"] + "="}}
    assert check_content_hash(padded)


def test_check_content_hash_rejects_changed_content() -> None:
    hashed = add_content_hash(MESSAGE)
    assert not check_content_hash({**hashed, "content": {"body": "forged"}})


def test_check_content_hash_ignores_unsigned_and_signatures() -> None:
    hashed = add_content_hash(MESSAGE)
    assert check_content_hash({**hashed, "unsigned": {"x": 1}, "signatures": {}})


def test_check_content_hash_rejects_malformed_hashes() -> None:
    for hashes in (None, "x", {}, {"sha256": 5}, {"sha256": "!!"}, {"sha512": "AAAA"}):
        assert not check_content_hash({**MESSAGE, "hashes": hashes})


def test_reference_hash_v10_is_sha256_of_redacted_form_by_hand() -> None:
    redacted_by_hand = {
        "type": "m.room.message",
        "room_id": "!r:example.org",
        "sender": "@u:example.org",
        "origin": "example.org",
        "origin_server_ts": 1000,
        "depth": 2,
        "prev_events": ["$p"],
        "auth_events": ["$a"],
        "content": {},
        "hashes": {"sha256": "old"},
    }
    assert reference_hash(MESSAGE, V10) == _sha256_of_json(redacted_by_hand)


def test_reference_hash_v11_drops_origin() -> None:
    redacted_by_hand = {
        "type": "m.room.message",
        "room_id": "!r:example.org",
        "sender": "@u:example.org",
        "origin_server_ts": 1000,
        "depth": 2,
        "prev_events": ["$p"],
        "auth_events": ["$a"],
        "content": {},
        "hashes": {"sha256": "old"},
    }
    assert reference_hash(MESSAGE, V11) == _sha256_of_json(redacted_by_hand)
    assert reference_hash(MESSAGE, V12) == _sha256_of_json(redacted_by_hand)


@given(events(), json_values, json_values)
def test_reference_hash_ignores_unsigned_and_signatures(
    event: dict[str, Any], unsigned: object, signatures: object
) -> None:
    changed = {**event, "unsigned": unsigned, "signatures": signatures}
    for version in ROOM_VERSIONS:
        assert reference_hash(changed, version) == reference_hash(event, version)


@given(events())
def test_hashing_never_mutates_input(event: dict[str, Any]) -> None:
    before = copy.deepcopy(event)
    content_hash(event)
    add_content_hash(event)
    check_content_hash(event)
    for version in ROOM_VERSIONS:
        reference_hash(event, version)
    assert event == before


def test_check_content_hash_is_false_for_unencodable_event() -> None:
    hashed = add_content_hash(MESSAGE)
    assert not check_content_hash({**hashed, "content": {"body": "\ud800"}})
