"""Differential: one sequence of `/pushers/set` requests (valid ones, deletions, every
missing field, bad http data, an email pusher, an unknown kind, bodies that are no JSON
object) sent to a real Synapse 1.163.2 and to a relay; each answer has the same status and
errcode, and `GET /pushers` lists the same pushers after it (issue 14 item 3).

The relay's own extra bounds (string types, the spec's lengths, the size of `data`, the
number of pushers) are beyond what Synapse checks and are tested in
tests/client/test_pushers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import make_relay
from tests.integration.matrix_client import MatrixUser
from tests.synapse.conftest import fresh_synapse

P = "/_matrix/client/v3/pushers"
URL = "https://push.example.org/_matrix/push/v1/notify"


def _pusher(pushkey: str = "pk1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "http",
        "app_id": "org.example.app",
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "pushkey": pushkey,
        "lang": "en",
        "data": {"url": URL},
    }
    body.update(extra)
    return body


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in _pusher(f"no-{key}").items() if k != key}


# (case, JSON body, or raw bytes)
STEPS: list[tuple[str, Any]] = [
    ("an http pusher", _pusher()),
    ("the same again, updated", _pusher(device_display_name="Tablet")),
    ("a second pushkey", _pusher("pk2", profile_tag="tag")),
    ("plain http with the right path", _pusher("pk3", data={"url": URL.replace("https", "http")})),
    ("extra data kept", _pusher("pk4", data={"url": URL, "format": "event_id_only"})),
    ("append", _pusher("pk5", append=True)),
    ("null lang", _pusher("pk6", lang=None)),
    *[(f"no {key}", _without(key)) for key in ("kind", "app_id", "app_display_name")],
    *[(f"no {key}", _without(key)) for key in ("device_display_name", "pushkey", "lang")],
    ("no data", _without("data")),
    ("http without url", _pusher("bad1", data={})),
    ("http with null data", _pusher("bad2", data=None)),
    ("url not a string", _pusher("bad4", data={"url": ["x"]})),
    ("url with another path", _pusher("bad5", data={"url": "https://push.example.org/"})),
    ("url with a longer path", _pusher("bad6", data={"url": URL + "/x"})),
    ("url with a query", _pusher("pk7", data={"url": URL + "?x=1"})),
    ("an email pusher", _pusher("a@example.org", kind="email", data={})),
    ("an unknown kind", _pusher("pk8", kind="carrier-pigeon", data={})),
    ("delete", {"app_id": "org.example.app", "pushkey": "pk2", "kind": None}),
    ("delete again", {"app_id": "org.example.app", "pushkey": "pk2", "kind": None}),
    ("delete without pushkey", {"app_id": "org.example.app", "kind": None}),
    ("an empty object", {}),
    ("a list", [1]),
    ("not JSON", b"{nope"),
]


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MatrixUser]]:
    tmp: Path = tmp_path_factory.mktemp("pushers-diff")
    synapse = fresh_synapse(tmp)
    relay = make_relay(tmp, "relay")
    relay.init()
    synapse.start()
    relay.start()
    try:
        synapse.register("alice")
        relay.cli("user", "add", "alice", "--password", "pw")
        yield [
            MatrixUser.login(synapse.client_url, "alice"),
            MatrixUser.login(relay.client_url, "alice"),
        ]
    finally:
        relay.kill()
        synapse.kill()


def _answer(user: MatrixUser, body: Any) -> tuple[int, str | None]:
    if isinstance(body, bytes):
        r = user.http.post(P + "/set", content=body)
    else:
        r = user.http.post(P + "/set", json=body)
    try:
        answer = r.json()
    except ValueError:
        return r.status_code, "(not JSON)"
    return r.status_code, answer.get("errcode") if isinstance(answer, dict) else None


def test_http_data_that_is_no_object_is_refused(users: list[MatrixUser]) -> None:
    """Synapse 1.163.2 answers 500 to an http pusher whose `data` is a string (it fails
    after the check for `url`); the relay answers that check's 400 M_MISSING_PARAM and
    stores nothing (only the relay is asked)."""
    relay = users[1]
    assert _answer(relay, _pusher("bad3", data="url")) == (400, "M_MISSING_PARAM")
    assert "bad3" not in [p["pushkey"] for p in relay.http.get(P).json()["pushers"]]


def test_pusher_requests_answer_as_synapse(users: list[MatrixUser]) -> None:
    differences = []
    for case, body in STEPS:
        synapse, relay = (_answer(user, body) for user in users)
        if synapse != relay:
            differences.append((case, "synapse", synapse, "relay", relay))
    assert differences == [], "\n".join(map(str, differences))
    listed = []
    for user in users:
        r = user.http.get(P)
        assert r.status_code == 200, r.text
        listed.append(sorted(r.json()["pushers"], key=lambda p: p["pushkey"]))
    assert listed[0] == listed[1]
    assert [p["pushkey"] for p in listed[1]] == ["pk1", "pk3", "pk4", "pk5", "pk6", "pk7", "pk8"]
