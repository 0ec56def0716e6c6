"""Differential: bad numbers, oversized events and bad filters sent to a real Synapse
1.163.2 and to a relay, answered with the same status and errcode (issue 14 item 8).

Both servers create their rooms in room version 10 (strict canonical JSON); the raw
bodies carry what Python's json module would refuse to write (NaN, Infinity, big ints).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.matrix_client import MatrixUser
from tests.synapse.conftest import side_by_side

V3 = "/_matrix/client/v3"
BIG = "x" * 70_000  # an event over 65536 bytes

# (case, method, path with {room} and {user}, raw JSON body)
CASES: list[tuple[str, str, str, str]] = [
    (
        "send an integer above 2**53",
        "PUT",
        "/rooms/{room}/send/m.test/t1",
        '{"n": 9007199254740992}',
    ),
    (
        "send an integer below -2**53",
        "PUT",
        "/rooms/{room}/send/m.test/t2",
        '{"n": -9007199254740992}',
    ),
    ("send the largest integer", "PUT", "/rooms/{room}/send/m.test/t3", '{"n": 9007199254740991}'),
    ("send a float", "PUT", "/rooms/{room}/send/m.test/t4", '{"n": 1.5}'),
    ("send an integral float", "PUT", "/rooms/{room}/send/m.test/t5", '{"n": 1.0}'),
    ("send an exponent", "PUT", "/rooms/{room}/send/m.test/t6", '{"n": 1e3}'),
    ("send NaN", "PUT", "/rooms/{room}/send/m.test/t7", '{"n": NaN}'),
    ("send Infinity", "PUT", "/rooms/{room}/send/m.test/t8", '{"n": Infinity}'),
    ("send -Infinity", "PUT", "/rooms/{room}/send/m.test/t9", '{"n": -Infinity}'),
    ("send a huge integer", "PUT", "/rooms/{room}/send/m.test/t10", '{"n": 1' + "0" * 400 + "}"),
    ("state with a float", "PUT", "/rooms/{room}/state/m.test/k", '{"n": 0.5}'),
    ("state with a big integer", "PUT", "/rooms/{room}/state/m.test/k", '{"n": 9007199254740993}'),
    ("send too large", "PUT", "/rooms/{room}/send/m.test/t11", '{"body": "' + BIG + '"}'),
    ("state too large", "PUT", "/rooms/{room}/state/m.test/big", '{"body": "' + BIG + '"}'),
    (
        "invite with a huge reason",
        "POST",
        "/rooms/{room}/invite",
        '{"user_id": "{bob}", "reason": "' + BIG + '"}',
    ),
    (
        "redact with a huge reason",
        "PUT",
        "/rooms/{room}/redact/{event}/r1",
        '{"reason": "' + BIG + '"}',
    ),
    ("redact with a float", "PUT", "/rooms/{room}/redact/{event}/r2", '{"reason": "x", "n": 0.5}'),
    (
        "huge display name",
        "PUT",
        "/profile/{user}/displayname",
        '{"displayname": "' + "d" * 300 + '"}',
    ),
    (
        "huge avatar url",
        "PUT",
        "/profile/{user}/avatar_url",
        '{"avatar_url": "mxc://a/' + "b" * 1100 + '"}',
    ),
    (
        "filter with a bad limit",
        "POST",
        "/user/{user}/filter",
        '{"room": {"timeline": {"limit": "ten"}}}',
    ),
    ("filter with a bad event_fields", "POST", "/user/{user}/filter", '{"event_fields": "x"}'),
    ("filter with a bad event_format", "POST", "/user/{user}/filter", '{"event_format": "x"}'),
    (
        "filter with a bad types list",
        "POST",
        "/user/{user}/filter",
        '{"room": {"timeline": {"types": "m.x"}}}',
    ),
    (
        "filter with a bad rooms entry",
        "POST",
        "/user/{user}/filter",
        '{"room": {"rooms": ["notaroom"]}}',
    ),
    (
        "filter with a bad senders entry",
        "POST",
        "/user/{user}/filter",
        '{"presence": {"senders": ["bob"]}}',
    ),
    (
        "filter with a float limit",
        "POST",
        "/user/{user}/filter",
        '{"room": {"timeline": {"limit": 1.5}}}',
    ),
    ("filter with unknown keys", "POST", "/user/{user}/filter", '{"what": 1}'),
    (
        "createRoom with a float in creation_content",
        "POST",
        "/createRoom",
        '{"creation_content": {"n": 0.5}}',
    ),
    (
        "createRoom with a float in initial_state",
        "POST",
        "/createRoom",
        '{"initial_state": [{"type": "m.x", "state_key": "", "content": {"n": 0.5}}]}',
    ),
]


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    tmp: Path = tmp_path_factory.mktemp("limits-diff")
    with side_by_side(tmp, room_version="10") as pair:
        pair.synapse.register("alice")
        pair.synapse.register("bob")
        pair.relay.cli("user", "add", "alice", "--password", "pw")
        pair.relay.cli("user", "add", "bob", "--password", "pw")
        sides = []
        for url in (pair.synapse.client_url, pair.relay.client_url):
            alice = MatrixUser.login(url, "alice")
            bob = MatrixUser.login(url, "bob")
            room = alice.create_room(room_version="10")
            event = alice.send(room, "to redact")
            sides.append({"alice": alice, "bob": bob.user_id, "room": room, "event": event})
        yield sides


def _answer(side: dict[str, Any], method: str, path: str, raw: str) -> tuple[int, str | None]:
    alice: MatrixUser = side["alice"]
    values = {"{room}": side["room"], "{user}": alice.user_id, "{event}": side["event"]}
    for name, value in values.items():
        path = path.replace(name, value)
    raw = raw.replace("{bob}", side["bob"])
    r = alice.http.request(
        method, f"{V3}{path}", content=raw.encode(), headers={"Content-Type": "application/json"}
    )
    body = r.json()
    return r.status_code, body.get("errcode") if r.status_code != 200 else None


#: Where the spec decides against Synapse 1.163.2: a filter `limit` is an integer
#: (Synapse's schema takes any number); a 500 is a Synapse bug, not a model.
SPEC_OVER_SYNAPSE = {
    "filter with a float limit": (400, "M_BAD_JSON"),
    "filter with a bad limit": (400, "M_BAD_JSON"),
}


def _same(synapse: tuple[int, str | None], relay: tuple[int, str | None]) -> bool:
    """The same answer; a 400 M_UNKNOWN of Synapse (it names no code) matches any 400
    with the spec's code for the case (M_BAD_JSON, M_INVALID_PARAM)."""
    if synapse == (400, "M_UNKNOWN"):
        return relay[0] == 400
    return synapse == relay


def test_limits_answer_as_synapse(users: list[dict[str, Any]]) -> None:
    differences = []
    for case, method, path, raw in CASES:
        synapse, relay = (_answer(side, method, path, raw) for side in users)
        if case in SPEC_OVER_SYNAPSE:
            assert relay == SPEC_OVER_SYNAPSE[case], (case, relay)
        elif not _same(synapse, relay):
            differences.append((case, "synapse", synapse, "relay", relay))
    assert differences == [], "\n".join(map(str, differences))


def test_numbers_per_room_version_answer_as_synapse(users: list[dict[str, Any]]) -> None:
    """v1-v5 take floats and big integers (no strict canonical JSON), v6+ refuse them."""
    differences = []
    for version in ("1", "3", "5", "6", "11"):
        rooms = [side["alice"].create_room(room_version=version) for side in users]
        for n, raw in enumerate(('{"n": 1.5}', '{"n": 9007199254740992}', '{"n": -Infinity}')):
            answers = []
            for side, room in zip(users, rooms, strict=True):
                answers.append(
                    _answer({**side, "room": room}, "PUT", f"/rooms/{{room}}/send/m.t/v{n}", raw)
                )
            if answers[0] != answers[1]:
                differences.append((version, raw, "synapse", answers[0], "relay", answers[1]))
    assert differences == [], "\n".join(map(str, differences))
