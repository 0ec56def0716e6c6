"""State resolution v2 (rooms 2 to 11) and v2.1 (room 12) on hand-built DAGs.

The classic scenarios (ban vs power levels, join rule evasion, off-topic power levels, topic
basic/reset, topic, mainline sort) follow the ones Synapse's tests/state/test_v2.py uses: a
shared room prefix, then a few forks; `Dag.state_at("END")` computes each node's state from
its prev events, resolving wherever two branches meet. The v2.1 scenarios follow Synapse's
tests/state/test_v21.py: explicit auth events and two state maps to merge.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from relay.events.auth import auth_types_for_event
from relay.events.room_versions import KNOWN_ROOM_VERSIONS, V11, V12, RoomVersion
from relay.events.state_res import resolve_state, separate
from relay.events.state_res_graph import (
    auth_difference,
    conflicted_subgraph,
    kahn_sort,
    mainline_order,
)

ALICE = "@alice:example.com"
BOB = "@bob:example.com"
CHARLIE = "@charlie:example.com"
EVELYN = "@evelyn:example.com"
ZARA = "@zara:example.com"

CREATE = ("m.room.create", "")
POWER = ("m.room.power_levels", "")
JOIN_RULES = ("m.room.join_rules", "")
TOPIC = ("m.room.topic", "")

#: Every version resolving with v2 or v2.1 (v2-v12); v1 has its own algorithm (below).
CLASSIC_VERSIONS = pytest.mark.parametrize(
    "rv",
    [v for v in KNOWN_ROOM_VERSIONS.values() if v.state_res != "v1"],
    ids=lambda v: f"v{v.identifier}",
)

# node id -> (sender, type, state_key, content); shared by every classic scenario.
INITIAL = {
    "CREATE": (ALICE, "m.room.create", "", {"creator": ALICE}),
    "IMA": (ALICE, "m.room.member", ALICE, {"membership": "join"}),
    "IPOWER": (ALICE, "m.room.power_levels", "", {"users": {ALICE: 100}}),
    "IJR": (ALICE, "m.room.join_rules", "", {"join_rule": "public"}),
    "IMB": (BOB, "m.room.member", BOB, {"membership": "join"}),
    "IMC": (CHARLIE, "m.room.member", CHARLIE, {"membership": "join"}),
    "IMZ": (ZARA, "m.room.member", ZARA, {"membership": "join"}),
    "START": (ZARA, "m.room.message", None, {}),
    "END": (ZARA, "m.room.message", None, {}),
}
INITIAL_EDGES = ["START", "IMZ", "IMC", "IMB", "IJR", "IPOWER", "IMA", "CREATE"]


def _pairs(chain: list[str]) -> list[tuple[str, str]]:
    return list(itertools.pairwise(chain))


class Dag:
    """Builds a room DAG node by node in (prev-first, then node id) order, as the classic
    harness does, giving each event the auth events the selection picks from its state."""

    def __init__(self, rv: RoomVersion, nodes: dict[str, tuple], edges: list[list[str]]):
        self.rv = rv
        self.room_id = "!CREATE" if rv.room_id_is_create_event_hash else "!room:example.com"
        self.nodes = {**INITIAL, **nodes}
        self.prevs: dict[str, set[str]] = {n: set() for n in self.nodes}
        for chain in [INITIAL_EDGES, *edges]:
            for later, earlier in _pairs(chain):
                self.prevs[later].add(earlier)
        self.events: dict[str, dict[str, Any]] = {}
        self.state_after: dict[str, dict[tuple[str, str], str]] = {}
        order = kahn_sort({n: set(p) for n, p in self.prevs.items()}, key=lambda n: n)
        for ts, node in enumerate(order):
            self._add(node, ts)

    def _content(self, node: str) -> dict[str, Any]:
        _, type_, _, content = self.nodes[node]
        if self.rv.privileged_creators and type_ == "m.room.power_levels":
            # v12 creators have infinite power and may not be listed (MSC4289).
            users = {u: v for u, v in content.get("users", {}).items() if u != ALICE}
            return {**content, "users": users}
        return content

    def _add(self, node: str, ts: int) -> None:
        sender, type_, state_key, _ = self.nodes[node]
        prevs = sorted(self.prevs[node])
        if not prevs:
            before: dict[tuple[str, str], str] = {}
        elif len(prevs) == 1:
            before = dict(self.state_after[prevs[0]])
        else:
            before = resolve_state(self.rv, [self.state_after[p] for p in prevs], self.events)
        event: dict[str, Any] = {
            "event_id": f"${node}",
            "type": type_,
            "sender": sender,
            "content": self._content(node),
            "origin_server_ts": ts,
            "room_id": self.room_id,
            "prev_events": [f"${p}" for p in prevs],
        }
        if state_key is not None:
            event["state_key"] = state_key
        if type_ == "m.room.create" and self.rv.room_id_is_create_event_hash:
            del event["room_id"]
        keys = auth_types_for_event(event, self.rv)
        event["auth_events"] = sorted(before[k] for k in keys if k in before)
        self.events[event["event_id"]] = event
        after = dict(before)
        if state_key is not None:
            after[(type_, state_key)] = event["event_id"]
        self.state_after[node] = after

    def changed_at_end(self, expected_nodes: list[str]) -> tuple[dict, dict]:
        """(expected, actual): the END state limited to keys that changed since START or that
        the expectation names, as the classic harness compares."""
        expected = {}
        for node in expected_nodes:
            _, type_, state_key, _ = self.nodes[node]
            expected[(type_, state_key)] = f"${node}"
        start, end = self.state_after["START"], self.state_after["END"]
        actual = {k: v for k, v in end.items() if k in expected or start.get(k) != v}
        return expected, actual


def check_scenario(rv, nodes: dict[str, tuple], edges: list[list[str]], expected: list[str]):
    expected_state, actual_state = Dag(rv, nodes, edges).changed_at_end(expected)
    assert actual_state == expected_state


# --- the classic scenarios -------------------------------------------------------------------


@CLASSIC_VERSIONS
def test_ban_beats_concurrent_power_levels_of_banned_user(rv: RoomVersion) -> None:
    nodes = {
        "PA": (ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
        "MA": (ALICE, "m.room.member", ALICE, {"membership": "join"}),
        "MB": (ALICE, "m.room.member", BOB, {"membership": "ban"}),
        "PB": (BOB, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
    }
    edges = [["END", "MB", "MA", "PA", "START"], ["END", "PB", "PA"]]
    check_scenario(rv, nodes, edges, ["PA", "MA", "MB"])


@CLASSIC_VERSIONS
def test_join_rule_change_blocks_concurrent_join(rv: RoomVersion) -> None:
    nodes = {
        # "join_rules" (sic) as upstream's scenario: no join_rule, so read as invite.
        "JR": (ALICE, "m.room.join_rules", "", {"join_rules": "private"}),
        "ME": (EVELYN, "m.room.member", EVELYN, {"membership": "join"}),
    }
    edges = [["END", "JR", "START"], ["END", "ME", "START"]]
    check_scenario(rv, nodes, edges, ["JR"])


@CLASSIC_VERSIONS
def test_offtopic_power_levels_chain_keeps_latest(rv: RoomVersion) -> None:
    nodes = {
        "PA": (ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
        "PB": (BOB, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50, CHARLIE: 50}}),
        "PC": (CHARLIE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50, CHARLIE: 0}}),
    }
    edges = [["END", "PC", "PB", "PA", "START"], ["END", "PA"]]
    check_scenario(rv, nodes, edges, ["PC"])


@CLASSIC_VERSIONS
def test_topic_basic_demoted_user_loses_topic(rv: RoomVersion) -> None:
    nodes = {
        "T1": (ALICE, "m.room.topic", "", {}),
        "PA1": (ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
        "T2": (ALICE, "m.room.topic", "", {}),
        "PA2": (ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 0}}),
        "PB": (BOB, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
        "T3": (BOB, "m.room.topic", "", {}),
    }
    edges = [["END", "PA2", "T2", "PA1", "T1", "START"], ["END", "T3", "PB", "PA1"]]
    check_scenario(rv, nodes, edges, ["PA2", "T2"])


@CLASSIC_VERSIONS
def test_topic_reset_after_ban_falls_back_to_earlier_topic(rv: RoomVersion) -> None:
    nodes = {
        "T1": (ALICE, "m.room.topic", "", {}),
        "PA": (ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
        "T2": (BOB, "m.room.topic", "", {}),
        "MB": (ALICE, "m.room.member", BOB, {"membership": "ban"}),
    }
    edges = [["END", "MB", "T2", "PA", "T1", "START"], ["END", "T1"]]
    check_scenario(rv, nodes, edges, ["T1", "MB", "PA"])


@CLASSIC_VERSIONS
def test_topic_after_merge_uses_mainline(rv: RoomVersion) -> None:
    nodes = {
        "T1": (ALICE, "m.room.topic", "", {}),
        "PA1": (ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
        "T2": (ALICE, "m.room.topic", "", {}),
        "PA2": (ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 0}}),
        "PB": (BOB, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
        "T3": (BOB, "m.room.topic", "", {}),
        "MZ1": (ZARA, "m.room.message", None, {}),
        "T4": (ALICE, "m.room.topic", "", {}),
    }
    edges = [
        ["END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"],
        ["END", "MZ1", "T3", "PB", "PA1"],
    ]
    check_scenario(rv, nodes, edges, ["T4", "PA2"])


@CLASSIC_VERSIONS
def test_mainline_sort_prefers_topic_on_newer_power_levels(rv: RoomVersion) -> None:
    nodes = {
        "T1": (ALICE, "m.room.topic", "", {}),
        "PA1": (ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
        "T2": (ALICE, "m.room.topic", "", {}),
        "PA2": (
            ALICE,
            "m.room.power_levels",
            "",
            {"users": {ALICE: 100, BOB: 50}, "events": {"m.room.power_levels": 100}},
        ),
        "PB": (BOB, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
        "T3": (BOB, "m.room.topic", "", {}),
        "T4": (ALICE, "m.room.topic", "", {}),
    }
    # T4 is later than T3, but cites the older power levels, so T3 wins.
    edges = [
        ["END", "T3", "PA2", "T2", "PA1", "T1", "START"],
        ["END", "T4", "PB", "PA1"],
    ]
    check_scenario(rv, nodes, edges, ["T3", "PA2"])


@CLASSIC_VERSIONS
def test_concurrent_joins_merge_into_both_members(rv: RoomVersion) -> None:
    nodes = {
        "MEV": (EVELYN, "m.room.member", EVELYN, {"membership": "join"}),
        "T1": (BOB, "m.room.topic", "", {}),
    }
    edges = [["END", "MEV", "START"], ["END", "START"]]
    expected, actual = Dag(rv, nodes, edges).changed_at_end(["MEV"])
    assert actual == expected


# --- v2.1 (room version 12) ------------------------------------------------------------------


class Events:
    """Hand-made v12 events with explicit auth events (create never cited)."""

    def __init__(self) -> None:
        self.ts = 0
        self.map: dict[str, dict[str, Any]] = {}
        self.room_id = "!create"

    def add(self, name: str, type_: str, state_key: str, sender: str, content: dict, auth=()):
        self.ts += 1
        event = {
            "event_id": f"${name}",
            "type": type_,
            "state_key": state_key,
            "sender": sender,
            "content": content,
            "origin_server_ts": self.ts,
            "auth_events": [f"${a}" for a in auth],
            "prev_events": ["$create"] if name == "ma" else [],
            "room_id": self.room_id,
        }
        if type_ == "m.room.create":
            del event["room_id"]
        self.map[event["event_id"]] = event
        return event["event_id"]

    def state(self, *names: str) -> dict[tuple[str, str], str]:
        return {(self.map[f"${n}"]["type"], self.map[f"${n}"]["state_key"]): f"${n}" for n in names}


def _replay_scenario() -> tuple[Events, list[dict], dict]:
    ev = Events()
    ev.add("create", "m.room.create", "", ALICE, {"room_version": "12"})
    ev.add("ma", "m.room.member", ALICE, ALICE, {"membership": "join"})
    ev.add("power1", "m.room.power_levels", "", ALICE, {"users": {}}, ["ma"])
    ev.add("jr", "m.room.join_rules", "", ALICE, {"join_rule": "public"}, ["ma", "power1"])
    ev.add("mb", "m.room.member", BOB, BOB, {"membership": "join"}, ["power1", "jr"])
    ev.add("mc", "m.room.member", CHARLIE, CHARLIE, {"membership": "join"}, ["power1", "jr"])
    ev.add("power2", "m.room.power_levels", "", ALICE, {"users": {BOB: 50}}, ["ma", "power1"])
    ev.add(
        "power3",
        "m.room.power_levels",
        "",
        BOB,
        {"users": {BOB: 50, CHARLIE: 50}},
        ["mb", "power2"],
    )
    ev.add("me1", "m.room.member", EVELYN, EVELYN, {"membership": "join"}, ["power3", "jr"])
    # Eve renames, citing the *old* power levels directly and the new ones through me1.
    ev.add("me2", "m.room.member", EVELYN, EVELYN, {"membership": "join"}, ["power1", "jr", "me1"])
    ev.add("mz", "m.room.member", ZARA, ZARA, {"membership": "join"}, ["power3", "jr"])
    dodgy = ev.state("create", "ma", "mb", "mc", "me2", "power1", "jr")
    sensible = ev.state("create", "ma", "mb", "mc", "mz", "power3", "jr")
    expected = ev.state("create", "ma", "mb", "mc", "me1", "mz", "power3", "jr")
    return ev, [dodgy, sensible], expected


def test_v12_replays_conflicted_subgraph_against_state_reset() -> None:
    ev, state_sets, expected = _replay_scenario()
    assert resolve_state(V12, state_sets, ev.map) == expected


def test_v12_conflicted_subgraph_spans_paths_between_conflicted_events() -> None:
    ev, state_sets, _ = _replay_scenario()
    _, conflicted = separate(state_sets)
    conflicted_ids = set().union(*conflicted.values())
    subgraph = conflicted_subgraph(conflicted_ids, ev.map, None)
    # power3 -> power2 -> power1, power3 -> mb -> power1, me2 -> jr -> power1 and
    # me2 -> me1 -> power3: all on paths between conflicted events; ma and create are not.
    assert subgraph == {"$power1", "$power2", "$power3", "$mb", "$jr", "$me1", "$me2", "$mz"}
    assert "$create" not in subgraph | auth_difference(state_sets, ev.map, None)


def _join_rules_reset_scenario() -> tuple[Events, list[dict], dict]:
    ev = Events()
    ev.add("create", "m.room.create", "", ALICE, {"room_version": "12"})
    ev.add("ma", "m.room.member", ALICE, ALICE, {"membership": "join"})
    ev.add("power", "m.room.power_levels", "", ALICE, {"users": {BOB: 100}}, ["ma"])
    ev.add("jr1", "m.room.join_rules", "", ALICE, {"join_rule": "public"}, ["ma", "power"])
    ev.add("mb", "m.room.member", BOB, BOB, {"membership": "join"}, ["power", "jr1"])
    ev.add("jr2", "m.room.join_rules", "", ALICE, {"join_rule": "invite"}, ["ma", "power"])
    ev.add("ma2", "m.room.member", ALICE, ALICE, {"membership": "leave"}, ["power", "ma"])
    correct = ev.state("create", "ma2", "mb", "power", "jr2")
    incorrect = ev.state("create", "ma2", "mb", "power", "jr1")
    return ev, [correct, incorrect], correct


def test_v12_starts_from_empty_state_so_join_rules_survive_sender_leaving() -> None:
    ev, state_sets, expected = _join_rules_reset_scenario()
    assert resolve_state(V12, state_sets, ev.map) == expected


def test_v2_loses_join_rules_when_their_sender_has_left() -> None:
    # The reset v2.1 fixes: v2 replays from the unconflicted state, where Alice has left.
    ev, state_sets, _ = _join_rules_reset_scenario()
    for event in ev.map.values():
        if event["type"] != "m.room.create":
            event["auth_events"].append("$create")
        else:
            event["room_id"] = "!r:example.com"
            event["content"]["creator"] = ALICE
        event["room_id"] = "!r:example.com"
    resolved = resolve_state(V11, state_sets, ev.map)
    assert JOIN_RULES not in resolved
    assert resolved[("m.room.member", ALICE)] == "$ma2"


# --- interfaces and pieces -------------------------------------------------------------------


def test_unconflicted_states_resolve_to_themselves() -> None:
    ev, state_sets, _ = _join_rules_reset_scenario()
    assert resolve_state(V12, [state_sets[0], dict(state_sets[0])], ev.map) == state_sets[0]


def test_key_missing_from_one_state_set_is_conflicted() -> None:
    unconflicted, conflicted = separate([{TOPIC: "$a", POWER: "$p"}, {POWER: "$p"}])
    assert unconflicted == {POWER: "$p"}
    assert conflicted == {TOPIC: {"$a"}}


def test_auth_chain_fn_gives_same_result_as_walking_event_map() -> None:
    ev, state_sets, expected = _replay_scenario()
    calls: list[str] = []

    def chain(event_id: str) -> set[str]:
        calls.append(event_id)
        seen: set[str] = set()
        stack = list(ev.map[event_id]["auth_events"])
        while stack:
            auth_id = stack.pop()
            if auth_id not in seen:
                seen.add(auth_id)
                stack.extend(ev.map[auth_id]["auth_events"])
        return seen

    assert resolve_state(V12, state_sets, ev.map, chain) == expected
    assert calls


def test_rejected_conflicted_event_is_not_applied() -> None:
    ev, state_sets, _ = _join_rules_reset_scenario()
    resolved = resolve_state(V12, state_sets, ev.map, rejected={"$jr2"})
    assert resolved[JOIN_RULES] == "$jr1"


def test_kahn_sort_breaks_ties_by_key() -> None:
    graph = {"l": {"o"}, "m": {"n", "o"}, "n": {"o"}, "o": set(), "p": {"o"}}
    assert kahn_sort(graph, key=lambda n: n) == ["o", "l", "n", "m", "p"]


def test_mainline_order_puts_events_on_older_power_levels_first() -> None:
    events = {
        "$p1": {"type": "m.room.power_levels", "state_key": "", "auth_events": []},
        "$p2": {"type": "m.room.power_levels", "state_key": "", "auth_events": ["$p1"]},
        "$a": {"type": "m.room.topic", "auth_events": ["$p2"], "origin_server_ts": 1},
        "$b": {"type": "m.room.topic", "auth_events": ["$p1"], "origin_server_ts": 2},
        "$c": {"type": "m.room.topic", "auth_events": [], "origin_server_ts": 3},
        "$d": {"type": "m.room.topic", "auth_events": ["$p1"], "origin_server_ts": 0},
    }
    assert mainline_order(["$a", "$b", "$c", "$d"], "$p2", events) == ["$c", "$d", "$b", "$a"]


def test_missing_create_key_uses_room_id_in_v12() -> None:
    ev, state_sets, expected = _join_rules_reset_scenario()
    without_create = [{k: v for k, v in s.items() if k != CREATE} for s in state_sets]
    resolved = resolve_state(V12, without_create, ev.map)
    assert resolved == {k: v for k, v in expected.items() if k != CREATE}
