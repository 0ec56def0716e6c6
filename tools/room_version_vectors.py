"""Write tests/events/vectors/room_vN.json (and a broken twin each): per room version, what the
real Synapse (the tie-breaker where the spec has no numeric vectors) computes for a set of
events covering every rule that differs between versions: the redacted form, the event id,
the signature with the spec's appendix key, and the auth-rules verdict of scenarios.

Run with Synapse's own interpreter (`make synapse` installs it), from the repository root:

    .synapse-venv/bin/python -m tools.room_version_vectors

The relay never imports this; tests/events/test_room_versions.py reads the files it writes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from signedjson.key import decode_signing_key_base64
from synapse.api.errors import AuthError, SynapseError
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
from synapse.crypto.event_signing import add_hashes_and_signatures
from synapse.event_auth import check_state_dependent_auth_rules
from synapse.events import make_event_from_dict
from synapse.events.utils import prune_event

OUT = Path(__file__).resolve().parent.parent / "tests" / "events" / "vectors"
SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
SERVER = "domain"
KEY_ID = "ed25519:1"
SPEC = "https://spec.matrix.org/v1.16/rooms/"
VERSIONS = [str(v) for v in range(1, 13)]

ALICE, BOB, KNOCKER = "@a:domain", "@b:domain", "@k:other"


def _v1_format(version: str) -> bool:
    return version in ("1", "2")


def _refs(version: str, ids: list[str]) -> list[Any]:
    if _v1_format(version):
        return [[i, {"sha256": "aGFzaA"}] for i in ids]
    return list(ids)


def _base(version: str, n: int, event_type: str, content: dict[str, Any], **extra: Any) -> dict:
    event: dict[str, Any] = {
        "room_id": "!r:domain",
        "sender": ALICE,
        "origin": SERVER,
        "origin_server_ts": 1000000 + n,
        "type": event_type,
        "content": content,
        "prev_events": _refs(version, [f"$prev{n}:domain"]),
        "auth_events": _refs(version, [f"$auth{n}:domain"]),
        "depth": 3 + n,
        "hashes": {},
        "signatures": {},
        "unsigned": {"age_ts": 1000000},
        **extra,
    }
    if _v1_format(version):
        event["event_id"] = f"$e{n}:domain"
    if version == "12" and event_type == "m.room.create":
        del event["room_id"]  # v12: the room id is derived from the create event
    return event


def redaction_inputs(version: str) -> list[dict[str, Any]]:
    """Events of every type whose content the redaction algorithms treat specially, each with
    keys some version keeps and some drops, and the top-level keys v11 dropped."""
    third_party = {"signed": {"mxid": ALICE, "token": "t", "signatures": {}}, "display_name": "x"}
    create = {"creator": ALICE, "room_version": version, "m.federate": True, "extra": 1}
    levels = {
        "ban": 50,
        "events": {"m.room.name": 50},
        "events_default": 0,
        "kick": 50,
        "redact": 50,
        "state_default": 50,
        "users": {ALICE: 100},
        "users_default": 0,
        "invite": 0,
        "notifications": {"room": 50},
        "extra": 1,
    }
    specs: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        (
            "m.room.member",
            {
                "membership": "join",
                "join_authorised_via_users_server": BOB,
                "third_party_invite": third_party,
                "displayname": "A",
            },
            {"state_key": ALICE, "membership": "join", "prev_state": []},
        ),
        ("m.room.create", create, {"state_key": ""}),
        (
            "m.room.join_rules",
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "extra": 1},
            {"state_key": ""},
        ),
        ("m.room.power_levels", levels, {"state_key": ""}),
        ("m.room.aliases", {"aliases": ["#x:domain"], "extra": 1}, {"state_key": SERVER}),
        (
            "m.room.history_visibility",
            {"history_visibility": "shared", "extra": 1},
            {"state_key": ""},
        ),
        (
            "m.room.redaction",
            {"redacts": "$gone:domain", "reason": "r"},
            {"redacts": "$gone:domain"},
        ),
        ("m.room.message", {"msgtype": "m.text", "body": "hi"}, {}),
    ]
    return [_base(version, n, t, c, **x) for n, (t, c, x) in enumerate(specs)]


def _synapse_event(event: dict[str, Any], version: str) -> Any:
    return make_event_from_dict(copy.deepcopy(event), KNOWN_ROOM_VERSIONS[version])


def event_vectors(version: str) -> list[dict[str, Any]]:
    key = decode_signing_key_base64("ed25519", "1", SEED)
    vectors = []
    for event in redaction_inputs(version):
        room_version = KNOWN_ROOM_VERSIONS[version]
        signed = copy.deepcopy(event)
        signed.pop("unsigned")
        add_hashes_and_signatures(room_version, signed, SERVER, key)
        synapse_event = _synapse_event(signed, version)
        pruned = prune_event(synapse_event).get_pdu_json()
        pruned.pop("unsigned", None)
        vectors.append(
            {
                "input": event,
                "redacted": pruned,
                "hashes": signed["hashes"],
                "signatures": signed["signatures"],
                "event_id": synapse_event.event_id,
            }
        )
    return vectors


# --- auth scenarios ----------------------------------------------------------------------


def _state_event(version: str, n: int, event_type: str, state_key: str, content: dict, **kw: Any):
    event = _base(version, 100 + n, event_type, content, state_key=state_key, **kw)
    event.pop("unsigned")
    return event


def _room_state(version: str, join_rule: str, levels: dict[str, Any]) -> list[dict[str, Any]]:
    create = {"creator": ALICE, "room_version": version}
    return [
        _state_event(version, 0, "m.room.create", "", create),
        _state_event(version, 1, "m.room.member", ALICE, {"membership": "join"}),
        _state_event(version, 2, "m.room.power_levels", "", levels),
        _state_event(version, 3, "m.room.join_rules", "", {"join_rule": join_rule}),
        _state_event(version, 4, "m.room.member", BOB, {"membership": "join"}, sender=BOB),
    ]


LEVELS = {"users": {ALICE: 100, BOB: 60}, "notifications": {"room": 100}}


def scenarios(version: str) -> list[dict[str, Any]]:
    """(name, state, event) cases whose verdict differs between some versions."""

    def event(n: int, event_type: str, content: dict, **kw: Any) -> dict[str, Any]:
        built = _base(version, 200 + n, event_type, content, **kw)
        built.pop("unsigned")
        return built

    def case(name: str, join_rule: str, ev: dict, levels: dict | None = None, extra=()) -> dict:
        state = _room_state(version, join_rule, levels or LEVELS) + list(extra)
        return {"name": name, "state": state, "event": ev}

    knocked = _state_event(version, 5, "m.room.member", KNOCKER, {"membership": "knock"})
    knocked["sender"] = KNOCKER
    return [
        case(
            "knock on a knock room",
            "knock",
            event(0, "m.room.member", {"membership": "knock"}, state_key=KNOCKER, sender=KNOCKER),
        ),
        case(
            "leave after knocking",
            "knock",
            event(1, "m.room.member", {"membership": "leave"}, state_key=KNOCKER, sender=KNOCKER),
            extra=[knocked],
        ),
        case(
            "restricted join authorised by a member who may invite",
            "restricted",
            event(
                2,
                "m.room.member",
                content={"membership": "join", "join_authorised_via_users_server": ALICE},
                state_key=KNOCKER,
                sender=KNOCKER,
            ),
        ),
        case(
            "knock_restricted join authorised by a member who may invite",
            "knock_restricted",
            event(
                3,
                "m.room.member",
                content={"membership": "join", "join_authorised_via_users_server": ALICE},
                state_key=KNOCKER,
                sender=KNOCKER,
            ),
        ),
        case(
            "knock on a knock_restricted room",
            "knock_restricted",
            event(4, "m.room.member", {"membership": "knock"}, state_key=KNOCKER, sender=KNOCKER),
        ),
        case(
            "power levels with a string user level",
            "invite",
            event(5, "m.room.power_levels", {"users": {ALICE: 100, BOB: "60"}}, state_key=""),
        ),
        case(
            "power levels with a string ban level",
            "invite",
            event(6, "m.room.power_levels", {**LEVELS, "ban": "50"}, state_key=""),
        ),
        case(
            "aliases from a server that is not in the room",
            "invite",
            event(7, "m.room.aliases", {"aliases": []}, state_key="other", sender=KNOCKER),
        ),
        case(
            "aliases whose state key is not the sender's server",
            "invite",
            event(8, "m.room.aliases", {"aliases": []}, state_key="other"),
        ),
        case(
            "lowering a notifications level above the sender's",
            "invite",
            event(
                9,
                "m.room.power_levels",
                {**LEVELS, "notifications": {"room": 50}},
                state_key="",
                sender=BOB,
            ),
        ),
        case(
            "redaction without the redact level of another server's event",
            "invite",
            event(10, "m.room.redaction", {"redacts": "$x:else"}, redacts="$x:else", sender=BOB),
            levels={"users": {ALICE: 100}, "redact": 50},
        ),
        case(
            "redaction without the redact level of an event of the same server",
            "invite",
            event(
                11, "m.room.redaction", {"redacts": "$x:domain"}, redacts="$x:domain", sender=BOB
            ),
            levels={"users": {ALICE: 100}, "redact": 50},
        ),
        case(
            "join to a public room",
            "public",
            event(12, "m.room.member", {"membership": "join"}, state_key=KNOCKER, sender=KNOCKER),
        ),
    ]


def _with_ids(events: list[dict[str, Any]], version: str) -> list[Any]:
    return [_synapse_event(e, version) for e in events]


def verdict(scenario: dict[str, Any], version: str) -> tuple[bool, str]:
    state = _with_ids(scenario["state"], version)
    [event] = _with_ids([scenario["event"]], version)
    try:
        check_state_dependent_auth_rules(event, state)
    except (AuthError, SynapseError) as exc:
        return False, str(exc.msg)
    return True, ""


def auth_vectors(version: str) -> list[dict[str, Any]]:
    found = []
    for scenario in scenarios(version):
        allowed, reason = verdict(scenario, version)
        found.append({**scenario, "allowed": allowed, "synapse_reason": reason})
    return found


# --- state resolution v1 -----------------------------------------------------------------

CAROL = "@c:domain"
BASE = [
    ("CREATE", ALICE, "m.room.create", "", {"creator": ALICE}, 1),
    ("IMA", ALICE, "m.room.member", ALICE, {"membership": "join"}, 2),
    ("IPOWER", ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}, 3),
    ("IJR", ALICE, "m.room.join_rules", "", {"join_rule": "public"}, 4),
    ("IMB", BOB, "m.room.member", BOB, {"membership": "join"}, 5),
    ("IMC", CAROL, "m.room.member", CAROL, {"membership": "join"}, 6),
]
PL_BOB_0 = {"users": {ALICE: 100, BOB: 0}}
#: name -> (extra events (id, sender, type, state_key, content, depth), the state sets as
#: lists of event ids on top of BASE).
V1_SCENARIOS: dict[str, tuple[list[tuple], list[list[str]]]] = {
    "later power levels allowed in R win": (
        [
            (
                "PA",
                ALICE,
                "m.room.power_levels",
                "",
                {"users": {ALICE: 100, BOB: 50, CAROL: 10}},
                7,
            ),
            ("PB", ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 40}}, 8),
        ],
        [["PA"], ["PB"]],
    ),
    "later power levels refused in R lose": (
        [
            ("PA", ALICE, "m.room.power_levels", "", PL_BOB_0, 7),
            ("PB", BOB, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}, "ban": 40}, 9),
        ],
        [["PA"], ["PB"]],
    ),
    "ban beats an earlier join, unconflicted topic of the banned user survives": (
        [
            ("BAN", ALICE, "m.room.member", CAROL, {"membership": "ban"}, 7),
            ("TOPIC", CAROL, "m.room.topic", "", {"topic": "mine"}, 8),
        ],
        [["BAN"], ["TOPIC"]],
    ),
    "the deepest message-like state that passes auth wins": (
        [
            ("T1", ALICE, "m.room.topic", "", {"topic": "a"}, 7),
            ("T2", CAROL, "m.room.name", "", {"name": "c"}, 8),
            ("T3", CAROL, "m.room.topic", "", {"topic": "c"}, 9),
        ],
        [["T1"], ["T2", "T3"]],
    ),
    "equal depths are ordered by sha1 of the event id": (
        [
            ("TA", ALICE, "m.room.topic", "", {"topic": "a"}, 7),
            ("TB", ALICE, "m.room.topic", "", {"topic": "b"}, 7),
            ("TC", ALICE, "m.room.topic", "", {"topic": "c"}, 7),
        ],
        [["TA"], ["TB"], ["TC"]],
    ),
    "join rules then members resolve against the resolved power levels": (
        [
            ("PA", ALICE, "m.room.power_levels", "", PL_BOB_0, 7),
            ("JR", BOB, "m.room.join_rules", "", {"join_rule": "invite"}, 8),
            ("KICK", BOB, "m.room.member", CAROL, {"membership": "leave"}, 9),
        ],
        [["PA"], ["JR", "KICK"]],
    ),
    "a state set that lacks a key does not conflict with one that has it": (
        [("T1", ALICE, "m.room.topic", "", {"topic": "a"}, 7)],
        [["T1"], [], []],
    ),
}


def _v1_event(node: tuple) -> dict[str, Any]:
    name, sender, event_type, state_key, content, depth = node
    return {
        "event_id": f"${name}:domain",
        "room_id": "!r:domain",
        "sender": sender,
        "type": event_type,
        "state_key": state_key,
        "content": content,
        "depth": depth,
        "origin_server_ts": 1000 + depth,
        "prev_events": [],
        "auth_events": [],
        "hashes": {},
        "signatures": {},
    }


def _run(coroutine: Any) -> Any:
    """Drive a coroutine that never really waits (every event is handed over up front)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("state resolution waited on I/O")


def state_res_v1_vectors() -> list[dict[str, Any]]:
    from synapse.state.v1 import resolve_events_with_store

    async def nothing(_ids: Any) -> dict:
        return {}

    found = []
    for name, (extra, sets) in V1_SCENARIOS.items():
        events = [_v1_event(node) for node in BASE + extra]
        by_id = {e["event_id"]: _synapse_event(e, "1") for e in events}
        key_of = {e["event_id"]: f"{e['type']}|{e['state_key']}" for e in events}
        base = [f"${node[0]}:domain" for node in BASE]
        state_sets = []
        for chosen in sets:
            state: dict[str, str] = {}
            for event_id in base + [f"${n}:domain" for n in chosen]:
                state[key_of[event_id]] = event_id
            state_sets.append(state)
        synapse_sets = [{tuple(k.split("|", 1)): v for k, v in s.items()} for s in state_sets]
        resolved = _run(
            resolve_events_with_store(
                "!r:domain", KNOWN_ROOM_VERSIONS["1"], synapse_sets, by_id, nothing
            )
        )
        expected = {f"{t}|{k}": v for (t, k), v in resolved.items()}
        found.append(
            {"name": name, "events": events, "state_sets": state_sets, "resolved": expected}
        )
    return found


def main() -> None:
    for version in VERSIONS:
        good = {
            "spec": f"{SPEC}v{version}",
            "oracle": "Synapse (tools/room_version_vectors.py)",
            "room_version": version,
            "seed": SEED,
            "server_name": SERVER,
            "key_id": KEY_ID,
            "events": event_vectors(version),
            "auth": auth_vectors(version) if version != "12" else [],
        }
        broken = _break(good)
        for name, data in (
            (f"room_v{version}.json", good),
            (f"room_v{version}.broken.json", broken),
        ):
            (OUT / name).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"room version {version}: {len(good['events'])} events, {len(good['auth'])} cases")
    scenarios_v1 = state_res_v1_vectors()
    good_v1 = {
        "spec": f"{SPEC}v1/#state-resolution",
        "oracle": "Synapse's synapse.state.v1 (tools/room_version_vectors.py)",
        "scenarios": scenarios_v1,
    }
    broken_v1 = copy.deepcopy(good_v1)
    broken_v1["description"] = "broken twin: each resolution names another candidate"
    for scenario in broken_v1["scenarios"]:
        _break_resolution(scenario)
    for suffix, data in ((".json", good_v1), (".broken.json", broken_v1)):
        (OUT / f"state_res_v1{suffix}").write_text(
            json.dumps(data, indent=1, sort_keys=True) + "\n"
        )
    print(f"state resolution v1: {len(scenarios_v1)} scenarios")


def _break_resolution(scenario: dict[str, Any]) -> None:
    """Swap a conflicted key's winner for another candidate (or drop a resolved key)."""
    sets = scenario["state_sets"]
    resolved = scenario["resolved"]
    for key in sorted(resolved):
        others = {s[key] for s in sets if key in s} - {resolved[key]}
        if others:
            resolved[key] = sorted(others)[0]
            return
    del resolved[sorted(resolved)[-1]]


def _break(good: dict[str, Any]) -> dict[str, Any]:
    """The broken twin: every expectation wrong in one way the tests must notice."""
    broken = copy.deepcopy(good)
    broken["description"] = "broken twin: every expected value altered"
    for vector in broken["events"]:
        content = vector["redacted"]["content"]
        if content:
            content.pop(sorted(content)[0])
        else:
            content["kept"] = True
        vector["event_id"] = vector["event_id"][:-2] + (
            "AA" if vector["event_id"][-2:] != "AA" else "BB"
        )
        signature = vector["signatures"][SERVER][KEY_ID]
        vector["signatures"][SERVER][KEY_ID] = ("B" if signature[0] == "A" else "A") + signature[1:]
    for case in broken["auth"]:
        case["allowed"] = not case["allowed"]
    return broken


if __name__ == "__main__":
    main()
