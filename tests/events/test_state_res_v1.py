"""State resolution v1 (room version 1) against Synapse's own v1 algorithm: scenarios in
tests/events/vectors/state_res_v1.json (written by tools/room_version_vectors.py), each with
a broken twin whose expected resolution names another candidate, plus the rules one by one."""

from __future__ import annotations

from typing import Any

import pytest

from relay.events.room_versions import V1, V2
from relay.events.state_res import resolve_state
from relay.events.state_res_v1 import separate_v1
from tests.events.helpers import load_vector

GOOD = load_vector("state_res_v1.json")["scenarios"]
BROKEN = load_vector("state_res_v1.broken.json")["scenarios"]


def _resolve(scenario: dict[str, Any], rv: Any = V1) -> dict[str, str]:
    events = {e["event_id"]: e for e in scenario["events"]}
    sets = [{tuple(k.split("|", 1)): v for k, v in s.items()} for s in scenario["state_sets"]]
    resolved = resolve_state(rv, sets, events)  # type: ignore[arg-type]
    return {f"{t}|{k}": v for (t, k), v in resolved.items()}


@pytest.mark.parametrize("scenario", GOOD, ids=lambda s: s["name"])
def test_v1_resolution_matches_synapse(scenario: dict[str, Any]) -> None:
    assert _resolve(scenario) == scenario["resolved"]


@pytest.mark.parametrize("scenario", BROKEN, ids=lambda s: s["name"])
def test_broken_twin_differs(scenario: dict[str, Any]) -> None:
    assert _resolve(scenario) != scenario["resolved"]


def test_v1_and_v2_differ_on_a_banned_users_topic() -> None:
    """v1 keeps the topic a user set on a branch where the ban is unknown (the key is
    missing from the other set, so unconflicted); v2 resolves it away with the ban."""
    [scenario] = [s for s in GOOD if s["name"].startswith("ban beats")]
    assert _resolve(scenario, V1)["m.room.topic|"] == "$TOPIC:domain"
    assert "m.room.topic|" not in _resolve(scenario, V2)


def test_separate_v1_conflicts_only_differing_values() -> None:
    a, b = ("t", ""), ("m", "")
    unconflicted, conflicted = separate_v1([{a: "$1", b: "$2"}, {a: "$3"}, {a: "$1"}])
    assert unconflicted == {b: "$2"}
    assert conflicted == {a: {"$1", "$3"}}


def test_single_state_set_resolves_to_itself() -> None:
    state = {("m.room.create", ""): "$c:x"}
    assert resolve_state(V1, [state], {}) == state
