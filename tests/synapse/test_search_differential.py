"""Differential: the same rooms, messages and searches (`POST /search`) on a real Synapse
1.163.2 (SQLite, as the relay) and on a relay, each with its own local users; the answers
must match: status and errcode, the result count, which messages (by body), their order
for `recent`, the pages `next_batch` gives, the highlights. Then, across federation: a
Synapse user's message in a relay's room is found by the relay's user (issue 14)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from tests.integration.matrix_client import V3, MatrixUser
from tests.support import wait_until
from tests.synapse.conftest import Pair

ALPHAS = 12


def _criteria(term: str, **extra: Any) -> dict[str, Any]:
    return {"search_categories": {"room_events": {"search_term": term, **extra}}}


def _recent(term: str, **event_filter: Any) -> dict[str, Any]:
    return _criteria(term, order_by="recent", filter=event_filter)


# (case, who searches, body, follow next_batch)
SEARCHES: list[tuple[str, str, Any, bool]] = [
    ("a word", "alice", _criteria("bravo"), False),
    ("a word, recent", "alice", _criteria("bravo", order_by="recent"), False),
    ("upper case", "alice", _criteria("BRAVO", order_by="recent"), False),
    ("two words", "alice", _criteria("charlie delta", order_by="recent"), False),
    ("a phrase", "alice", _criteria('"delta charlie"', order_by="recent"), False),
    ("an exclusion", "alice", _criteria("charlie -delta", order_by="recent"), False),
    ("or", "alice", _criteria("bravo or echo", order_by="recent"), False),
    ("stop words only", "alice", _criteria("the", order_by="recent"), False),
    ("pages of recent", "alice", _criteria("alpha", order_by="recent", filter={"limit": 5}), True),
    ("rank", "alice", _criteria("alpha", filter={"limit": 5}), False),
    ("a room name", "alice", _criteria("golf", order_by="recent"), False),
    ("a topic", "alice", _criteria("hotel", order_by="recent"), False),
    ("body only", "alice", _criteria("golf", keys=["content.body"]), False),
    ("a redacted message", "alice", _criteria("india", order_by="recent"), False),
    ("an ignored user", "alice", _criteria("juliet", order_by="recent"), False),
    ("not the ignorer", "bob", _criteria("juliet", order_by="recent"), False),
    ("joined history", "bob", _criteria("lima", order_by="recent"), False),
    ("not joined", "carol", _criteria("bravo", order_by="recent"), False),
    ("one room", "alice", _criteria("bravo", order_by="recent", filter={"rooms": ["{b}"]}), False),
    (
        "not a room",
        "alice",
        _criteria("bravo", order_by="recent", filter={"not_rooms": ["{b}"]}),
        False,
    ),
    (
        "a sender",
        "alice",
        _criteria("bravo", order_by="recent", filter={"senders": ["{bob}"]}),
        False,
    ),
    (
        "context",
        "alice",
        _criteria("echo", order_by="recent", event_context={"before_limit": 1, "after_limit": 1}),
        False,
    ),
    ("no categories", "alice", {}, False),
    ("an unknown category", "alice", {"search_categories": {"messages": {}}}, False),
    ("no search term", "alice", {"search_categories": {"room_events": {}}}, False),
    ("an unknown order", "alice", _criteria("bravo", order_by="oldest"), False),
    (
        "an unknown group key",
        "alice",
        _criteria("bravo", groupings={"group_by": [{"key": "type"}]}),
        False,
    ),
]
# Where Synapse 1.163.2 fails with a 500, answers a 404 for a malformed filter or runs
# the search anyway, the relay answers a clear 400 (relay/rooms/search.py):
# case -> (body, Synapse's answer, the relay's).
STRICTER: dict[str, tuple[Any, tuple[int, str | None], tuple[int, str]]] = {
    "a filter that is no object": (
        _criteria("bravo", filter=5),
        (500, "M_UNKNOWN"),
        (400, "M_BAD_JSON"),
    ),
    "filter rooms not a list": (
        _criteria("bravo", filter={"rooms": "!a:b"}),
        (404, "M_NOT_FOUND"),  # it looks up the "rooms" "!", "a", ":", "b"
        (400, "M_BAD_JSON"),
    ),
    "a search term not a string": (_criteria(5), (500, "M_UNKNOWN"), (400, "M_BAD_JSON")),
    "an unknown key": (
        _criteria("bravo", keys=["content.secret"]),
        (200, None),
        (400, "M_INVALID_PARAM"),
    ),
    "context limit not a number": (
        _criteria("bravo", event_context={"before_limit": "x"}),
        (500, "M_UNKNOWN"),
        (400, "M_BAD_JSON"),
    ),
}
BAD_BATCHES = {
    "garbage": "!!!",
    "not a position": base64.b64encode(b"all\n\nnot-a-position").decode(),
}


def _text(event: dict[str, Any]) -> str:
    content = event["content"]
    return str(content.get("body") or content.get("name") or content.get("topic"))


def _answer(user: MatrixUser, body: Any, follow: bool, batch: str | None = None) -> Any:
    params = {"next_batch": batch} if batch else {}
    r = user.http.post(f"{V3}/search", json=body, params=params)
    if r.status_code != 200:
        return (r.status_code, r.json().get("errcode"))
    found = r.json()["search_categories"]["room_events"]
    recent = body["search_categories"]["room_events"].get("order_by") == "recent"
    texts = [_text(x["result"]) for x in found["results"]]
    answer: dict[str, Any] = {
        "count": found["count"],
        "texts": texts if recent else sorted(texts),
        "highlights": sorted({h.lower() for h in found["highlights"]}),
        "context": [
            (
                [_text(e) for e in x["context"].get("events_before", [])],
                [_text(e) for e in x["context"].get("events_after", [])],
            )
            for x in found["results"]
        ],
    }
    if follow:
        pages = [texts]
        while found.get("next_batch") and len(pages) < 10:
            r = user.http.post(
                f"{V3}/search", json=body, params={"next_batch": found["next_batch"]}
            )
            assert r.status_code == 200, r.text
            found = r.json()["search_categories"]["room_events"]
            pages.append([_text(x["result"]) for x in found["results"]])
        answer["pages"] = pages
    return answer


def _scenario(login: Callable[[str], MatrixUser]) -> dict[str, Any]:
    alice, bob, carol, mallory = (login(n) for n in ("alice", "bob", "carol", "mallory"))
    a = alice.create_room(preset="public_chat", name="golf room", topic="hotel topic")
    b = alice.create_room(preset="public_chat")
    late = alice.create_room(preset="public_chat")
    alice.call(
        "PUT",
        f"/rooms/{late}/state/m.room.history_visibility/",
        json={"history_visibility": "joined"},
    )
    for user in (bob, mallory):
        user.join(a)
    bob.join(b)
    for i in range(ALPHAS):
        alice.send(a, f"alpha {i}")
    alice.send(a, "bravo from alice")
    bob.send(a, "bravo from bob")
    alice.send(b, "bravo in b")
    alice.send(a, "charlie delta")
    alice.send(a, "delta charlie")
    alice.send(a, "charlie alone")
    alice.send(a, "before echo")
    alice.send(a, "echo here")
    alice.send(a, "after echo")
    india = alice.send(a, "india secret")
    path = f"/rooms/{a}/redact/{quote(india, safe='')}/r1"
    alice.call("PUT", path, json={})
    mallory.send(a, "juliet from mallory")
    alice.call(
        "PUT",
        f"/user/{quote(alice.user_id)}/account_data/m.ignored_user_list",
        json={"ignored_users": {mallory.user_id: {}}},
    )
    alice.send(late, "lima before bob")
    bob.join(late)
    alice.send(late, "lima after bob")
    users = {"alice": alice, "bob": bob, "carol": carol}
    answers = {}
    for case, who, body, follow in SEARCHES:
        filled = _fill(body, {"{b}": b, "{bob}": bob.user_id})
        answers[case] = _answer(users[who], filled, follow)
    for case, (body, _, _) in STRICTER.items():
        r = alice.http.post(f"{V3}/search", json=body)
        answers[f"stricter: {case}"] = (r.status_code, _errcode(r))
    for case, batch in BAD_BATCHES.items():
        body = _criteria("alpha", order_by="recent")
        answers[f"next_batch {case}"] = _answer(alice, body, False, batch)
    return answers


def _errcode(r: Any) -> str | None:
    try:
        body = r.json()
    except ValueError:
        return None
    return body.get("errcode") if isinstance(body, dict) else None


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


def test_search_answers_as_synapse(pair: Pair) -> None:
    on_synapse = _scenario(pair.synapse_user)
    on_relay = _scenario(pair.relay_user)
    # The one difference by design: the relay drops a redacted event from its index in
    # the redaction's write, so `count` no longer counts it; Synapse's still does.
    assert on_synapse["a redacted message"]["count"] == 1
    assert on_relay["a redacted message"]["count"] == 0
    on_synapse["a redacted message"]["count"] = 0
    for case, (_, theirs, ours) in STRICTER.items():
        assert on_synapse.pop(f"stricter: {case}") == theirs, case
        assert on_relay.pop(f"stricter: {case}") == ours, case
    differences = [
        (case, "synapse", on_synapse[case], "relay", on_relay[case])
        for case in on_synapse
        if on_synapse[case] != on_relay[case]
    ]
    assert differences == [], "\n".join(map(str, differences))
    # The scenario means what it says (on both, then).
    assert on_relay["pages of recent"]["pages"] == [
        [f"alpha {i}" for i in range(ALPHAS - 1, ALPHAS - 6, -1)],
        [f"alpha {i}" for i in range(ALPHAS - 6, ALPHAS - 11, -1)],
        ["alpha 1", "alpha 0"],
    ]
    assert on_relay["a redacted message"]["texts"] == []
    assert on_relay["an ignored user"]["texts"] == []
    assert on_relay["not the ignorer"]["texts"] == ["juliet from mallory"]
    assert on_relay["joined history"]["texts"] == ["lima after bob"]
    assert on_relay["no categories"] == (400, "M_UNKNOWN")


def test_a_federated_message_is_found_until_redacted(pair: Pair) -> None:
    """A Synapse user's message, received over federation, is indexed in the write that
    stores it: the relay's user finds it. Once its sender redacts it (over federation
    too), it is found no more and no longer counted."""
    alice = pair.relay_user("fedalice")
    sam = pair.synapse_user("fedsam")
    room = alice.create_room(preset="public_chat")
    sam.join(room, via=[pair.relay.server_name])
    kilo = sam.send(room, "kilo from synapse")
    body = _criteria("kilo", order_by="recent")

    def found() -> Any:
        return _answer(alice, body, False)

    wait_until(lambda: found()["texts"] == ["kilo from synapse"], timeout=60, what="found")
    sam.call("PUT", f"/rooms/{room}/redact/{quote(kilo, safe='')}/r1", json={})
    wait_until(lambda: found()["count"] == 0, timeout=60, what="the redacted message gone")
    assert found()["texts"] == []
