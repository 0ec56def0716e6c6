"""Every room version, 1 to 12, against vectors the real Synapse computed
(tools/room_version_vectors.py writes tests/events/vectors/room_vN.json and a broken twin
each): the redacted form, the event id and the signature of events of every specially
redacted type, and the auth-rules verdict of scenarios whose answer changes between
versions (knocking v7, restricted joins v8, knock_restricted and integer power levels v10,
the aliases rule v1-v5, notifications levels v6, the redact level as an auth rule v1-v2).
A broken twin must fail every check its good vector passes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from relay.events.auth import AuthError, check_auth
from relay.events.hashes import add_content_hash
from relay.events.ids import event_id, is_valid_event_id
from relay.events.redaction import redact
from relay.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, room_version
from relay.events.signing import decode_signing_key_seed, sign_event
from tests.events.helpers import load_vector, vector_names

VERSIONS = [str(v) for v in range(1, 13)]
GOOD = [f"room_v{v}.json" for v in VERSIONS]
BROKEN = [f"room_v{v}.broken.json" for v in VERSIONS]


def _rv(vector: dict[str, Any]) -> RoomVersion:
    rv = room_version(vector["room_version"])
    assert rv is not None
    return rv


def _signed(vector: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The event hashed and signed with the vector's key (the spec's appendix key)."""
    unsigned = {k: v for k, v in event.items() if k != "unsigned"}
    key = decode_signing_key_seed(vector["seed"])
    hashed = add_content_hash(unsigned)
    return sign_event(hashed, _rv(vector), vector["server_name"], vector["key_id"], key)


def _event_checks(vector: dict[str, Any]) -> list[bool]:
    """One bool per (event, property): does ours equal the vector's?"""
    rv = _rv(vector)
    results = []
    for case in vector["events"]:
        signed = _signed(vector, case["input"])
        results.append(signed["hashes"] == case["hashes"])
        results.append(signed["signatures"] == case["signatures"])
        results.append(event_id(signed, rv) == case["event_id"])
        results.append(redact(signed, rv) == case["redacted"])
    return results


def _with_id(event: dict[str, Any], rv: RoomVersion) -> dict[str, Any]:
    return {**event, "event_id": event_id(event, rv)} if not rv.event_id_in_event else event


def _allowed(case: dict[str, Any], rv: RoomVersion) -> bool:
    state = {(e["type"], e["state_key"]): _with_id(e, rv) for e in case["state"]}
    try:
        check_auth(_with_id(case["event"], rv), state, rv)
    except AuthError:
        return False
    return True


def test_every_version_has_a_vector_and_a_broken_twin() -> None:
    assert sorted(GOOD + BROKEN) == vector_names("room_v*.json")
    assert set(KNOWN_ROOM_VERSIONS) == set(VERSIONS)


@pytest.mark.parametrize("name", GOOD)
def test_events_match_synapse(name: str) -> None:
    vector = load_vector(name)
    assert len(vector["events"]) == 8
    assert all(_event_checks(vector))


@pytest.mark.parametrize("name", BROKEN)
def test_broken_twin_events_fail_every_check(name: str) -> None:
    vector = load_vector(name)
    # The twin alters the id, signature and redacted form of each event (hashes stay).
    checks = _event_checks(vector)
    assert not any(ok for i, ok in enumerate(checks) if i % 4 != 0)


@pytest.mark.parametrize("name", GOOD)
def test_auth_verdicts_match_synapse(name: str) -> None:
    vector = load_vector(name)
    rv = _rv(vector)
    verdicts = {case["name"]: _allowed(case, rv) for case in vector["auth"]}
    assert verdicts == {case["name"]: case["allowed"] for case in vector["auth"]}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_twin_auth_verdicts_all_differ(name: str) -> None:
    vector = load_vector(name)
    rv = _rv(vector)
    assert not any(_allowed(case, rv) == case["allowed"] for case in vector["auth"])


@pytest.mark.parametrize("version", VERSIONS)
def test_event_id_form_per_version(version: str) -> None:
    """v1/v2 carry `$opaque:domain`; v3 is standard base64 (may hold / and +), v4+ URL-safe."""
    vector = load_vector(f"room_v{version}.json")
    rv = _rv(vector)
    ids = [case["event_id"] for case in vector["events"]]
    assert all(is_valid_event_id(i, rv) for i in ids)
    if rv.event_id_in_event:
        assert all(i.endswith(":domain") for i in ids)
    else:
        assert all(len(i) == 44 and ":" not in i for i in ids)
        other = "3" if rv.urlsafe_event_ids else "4"
        alphabet = set("+/") if rv.urlsafe_event_ids else set("-_")
        shown = [i for i in ids if set(i) & alphabet]
        assert all(not is_valid_event_id(i, room_version(other)) for i in shown)


def test_redaction_rules_differ_exactly_where_the_spec_changed_them() -> None:
    """What each version keeps of the specially treated content, from the vectors."""
    kept: dict[str, dict[str, list[str]]] = {}
    for version in VERSIONS:
        vector = load_vector(f"room_v{version}.json")
        kept[version] = {
            c["input"]["type"]: sorted(c["redacted"]["content"]) for c in vector["events"]
        }
    assert "aliases" in kept["5"]["m.room.aliases"] and not kept["6"]["m.room.aliases"]
    assert "allow" not in kept["7"]["m.room.join_rules"]
    assert "allow" in kept["8"]["m.room.join_rules"]
    member = "join_authorised_via_users_server"
    assert member not in kept["8"]["m.room.member"] and member in kept["9"]["m.room.member"]
    assert kept["10"]["m.room.create"] == ["creator"]
    assert "extra" in kept["11"]["m.room.create"]
    assert kept["10"]["m.room.redaction"] == [] and kept["11"]["m.room.redaction"] == ["redacts"]


def test_v1_events_sign_their_own_event_id() -> None:
    """In v1/v2 the event id is inside the signed (redacted) event: changing it breaks the
    signature, and the id's server must sign too (`required_signers`)."""
    from relay.events.auth import required_signers

    vector = load_vector("room_v1.json")
    rv = _rv(vector)
    case = vector["events"][-1]
    signed = _signed(vector, case["input"])
    moved = copy.deepcopy(case["input"])
    moved["event_id"] = "$e7:elsewhere"
    assert _signed(vector, moved)["signatures"] != signed["signatures"]
    assert required_signers(moved, rv) == {"domain", "elsewhere"}
