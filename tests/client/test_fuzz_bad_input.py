"""Random JSON at the endpoints that parse client input: never a 500.

Hypothesis draws the bodies (any JSON value, and objects with the endpoint's own keys
holding any JSON value); one in-process app takes all of them, so the examples are
collected first (`_draw`) and then sent in a loop from the async test. A failure
names the body that caused it.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import strategies as st

from tests.client.conftest import SERVER_NAME, ClientApi
from tests.support import draw_examples

V3 = "/_matrix/client/v3"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["", "m.text", "@alice:" + SERVER_NAME, "!x:y", "$e", "public", "12"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


def objects(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Any JSON value, or an object with some of `keys` holding their strategies."""
    return json_values | st.fixed_dictionaries({}, optional=keys)


def _any(*names: str) -> dict[str, st.SearchStrategy[Any]]:
    return {name: json_values for name in names}


POWER_KEYS = _any(
    "ban", "kick", "redact", "invite", "events_default", "state_default", "users_default"
) | {
    "users": st.dictionaries(st.text(max_size=12) | st.just("@bob:" + SERVER_NAME), json_values),
    "events": st.dictionaries(st.text(max_size=12), json_values) | json_values,
    "notifications": json_values,
}
STATE_EVENT = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["m.room.name", "m.room.power_levels", "m.x"]) | json_values,
        "state_key": json_values,
        "content": objects(_any("name", "topic", "join_rule") | POWER_KEYS),
    },
)
CREATE_ROOM = objects(
    _any("name", "topic", "preset", "visibility", "room_version", "room_alias_name")
    | _any("is_direct", "creation_content", "invite", "invite_3pid")
    | {
        "initial_state": st.lists(STATE_EVENT, max_size=3) | json_values,
        "power_level_content_override": objects(POWER_KEYS),
    }
)
MESSAGE = objects(_any("msgtype", "body", "format", "formatted_body", "m.relates_to", "redacts"))
STATE_CONTENT = objects(
    _any("name", "topic", "join_rule", "history_visibility", "alias", "alt_aliases", "url")
    | POWER_KEYS
)
LOGIN = objects(
    _any("password", "device_id", "initial_device_display_name", "refresh_token", "user")
    | {
        "type": st.just("m.login.password") | json_values,
        "identifier": objects({"type": st.just("m.id.user") | json_values, "user": json_values}),
    }
)
EVENT_FILTER = objects(
    _any("limit", "types", "not_types", "senders", "not_senders", "lazy_load_members")
    | _any("rooms", "not_rooms", "contains_url", "include_redundant_members")
)
FILTER = objects(
    _any("event_fields", "event_format", "presence", "account_data")
    | {
        "room": objects(
            _any("rooms", "not_rooms", "include_leave")
            | {k: EVENT_FILTER for k in ("timeline", "state", "ephemeral", "account_data")}
        )
    }
)


# Query parameters: tokens, numbers (some in exotic digits, some huge) and JSON filters.
query_values = (
    st.sampled_from(["s\u00b2", "\u00b2", "s1_\u0663", "9" * 25, "s" + "9" * 25, "-1", "s-1"])
    | st.text(max_size=12)
    | st.from_regex(r"\As\d{1,25}(_\d{1,25})?\Z")
    | st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | json_values.map(json.dumps)
)
SYNC_QUERY = st.fixed_dictionaries(
    {}, optional={k: query_values for k in ("since", "timeout", "filter", "full_state")}
)
MESSAGES_QUERY = st.fixed_dictionaries(
    {}, optional={k: query_values for k in ("from", "to", "dir", "limit", "filter")}
)


def _draw(strategy: st.SearchStrategy[Any], n: int = EXAMPLES) -> list[Any]:
    return draw_examples(strategy, n)


def _encode(value: Any) -> bytes:
    """JSON text of the value; NaN and infinities come out as Python writes them
    (`NaN`), which the relay must refuse as not JSON, not choke on."""
    return json.dumps(value, allow_nan=True).encode()


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


async def _throw(api: ClientApi, method: str, path: str, body: Any, headers: dict) -> int:
    r = await api.http.request(
        method,
        V3 + path,
        content=_encode(body),
        headers={**headers, "Content-Type": "application/json"},
    )
    what = f"{method} {path} with {_encode(body)[:300]!r}"
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text}"
    if r.status_code != 200:
        err = r.json()
        assert isinstance(err.get("errcode"), str) and err["errcode"].startswith("M_"), what
    if _has_non_finite(body):
        assert r.status_code == 400 and r.json()["errcode"] == "M_NOT_JSON", what
    return r.status_code


NO_LIMITS = {
    "limits.login_per_second": 0,
    "limits.send_per_second": 0,
}


@pytest.mark.config(NO_LIMITS)
async def test_random_json_never_breaks_the_relay(api: ClientApi) -> None:
    alice = await api.login("alice")
    await api.login("bob")
    r = await api.http.post(f"{V3}/createRoom", headers=alice, json={"name": "fuzz"})
    room_id = r.json()["room_id"]
    me = f"@alice:{SERVER_NAME}"
    statuses: dict[str, set[int]] = {}

    def note(name: str, status: int) -> None:
        statuses.setdefault(name, set()).add(status)

    for body in _draw(CREATE_ROOM):
        note("createRoom", await _throw(api, "POST", "/createRoom", body, alice))
    for n, body in enumerate(_draw(MESSAGE)):
        event_type = ("m.room.message", "m.room.redaction", "m.reaction", "m.x")[n % 4]
        path = f"/rooms/{room_id}/send/{event_type}/fuzz{n}"
        note("send", await _throw(api, "PUT", path, body, alice))
    state_types = ["m.room.name", "m.room.topic", "m.room.power_levels", "m.room.join_rules"]
    state_types += ["m.room.history_visibility", "m.room.canonical_alias", "org.example.x"]
    for n, body in enumerate(_draw(STATE_CONTENT)):
        path = f"/rooms/{room_id}/state/{state_types[n % len(state_types)]}/"
        note("state", await _throw(api, "PUT", path, body, alice))
    for body in _draw(LOGIN):
        note("login", await _throw(api, "POST", "/login", body, {}))
    for body in _draw(FILTER):
        note("filter", await _throw(api, "POST", f"/user/{me}/filter", body, alice))

    for params in _draw(SYNC_QUERY):
        params["timeout"] = "0" if params.get("timeout", "0").isdigit() else params["timeout"]
        r = await api.http.get(f"{V3}/sync", headers=alice, params=params)
        assert r.status_code < 500, f"/sync?{params}: {r.status_code} {r.text}"
    for params in _draw(MESSAGES_QUERY):
        r = await api.http.get(f"{V3}/rooms/{room_id}/messages", headers=alice, params=params)
        assert r.status_code < 500, f"/messages?{params}: {r.status_code} {r.text}"

    # Every endpoint saw both refusals and successes, and the room still works.
    for name in ("createRoom", "send", "state", "filter"):
        assert 200 in statuses[name] and 400 in statuses[name], (name, statuses[name])
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/after",
        headers=alice,
        json={"msgtype": "m.text", "body": "still here"},
    )
    assert r.status_code == 200, r.text
    r = await api.http.get(f"{V3}/sync", headers=alice, params={"timeout": 0})
    assert r.status_code == 200, r.text


# -- control characters and over-long transaction ids -------------------------------------

CONTROLS = ["\x00", "\x01", "\n", "\x1b", "\x7f", "\x85"]


@pytest.mark.parametrize("ch", CONTROLS, ids=repr)
async def test_control_characters_in_ids_are_400(api: ClientApi, ch: str) -> None:
    """NUL and other control characters in a room id, user id, event type, state key or
    transaction id: 400 M_INVALID_PARAM naming the field, before anything is stored."""
    alice = await api.login("alice")
    r = await api.http.post(f"{V3}/createRoom", json={}, headers=alice)
    room = quote(r.json()["room_id"], safe="")
    bad = quote(f"x{ch}y", safe="")
    bad_room = quote(f"!a{ch}b:{SERVER_NAME}", safe="")
    bad_user = f"@a{ch}b:{SERVER_NAME}"
    cases: list[tuple[str, str, Any]] = [
        ("PUT", f"/rooms/{bad_room}/send/m.room.message/t1", {"body": "x"}),
        ("PUT", f"/rooms/{room}/send/m.{bad}/t2", {"body": "x"}),
        ("PUT", f"/rooms/{room}/send/m.room.message/{bad}", {"body": "x"}),
        ("PUT", f"/rooms/{room}/state/org.example.{bad}/k", {}),
        ("PUT", f"/rooms/{room}/state/org.example.x/{bad}", {}),
        ("GET", f"/rooms/{bad_room}/state", None),
        ("POST", f"/join/{bad_room}", {}),
        ("POST", f"/rooms/{room}/invite", {"user_id": bad_user}),
        ("POST", f"/rooms/{room}/ban", {"user_id": bad_user}),
        ("GET", f"/profile/{quote(bad_user, safe='')}", None),
        ("PUT", f"/sendToDevice/m.{bad}/t3", {"messages": {}}),
        ("PUT", f"/sendToDevice/m.x/{bad}", {"messages": {}}),
        ("POST", "/createRoom", {"invite": [bad_user]}),
        ("POST", "/createRoom", {"initial_state": [{"type": f"m.{ch}", "content": {}}]}),
        (
            "POST",
            "/createRoom",
            {"initial_state": [{"type": "m.x", "state_key": ch, "content": {}}]},
        ),
    ]
    for method, path, body in cases:
        r = await api.http.request(method, V3 + path, json=body, headers=alice)
        assert r.status_code == 400, f"{method} {path}: {r.status_code} {r.text}"
        assert r.json()["errcode"] == "M_INVALID_PARAM", f"{method} {path}: {r.text}"


async def test_transaction_id_over_255_bytes_is_400(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.post(f"{V3}/createRoom", json={}, headers=alice)
    room = quote(r.json()["room_id"], safe="")
    for txn in ["t" * 256, "é" * 128]:
        for path in [
            f"/rooms/{room}/send/m.room.message/{txn}",
            f"/sendToDevice/m.x/{txn}",
        ]:
            r = await api.http.put(V3 + path, json={"body": "x", "messages": {}}, headers=alice)
            assert r.status_code == 400, f"{path}: {r.status_code} {r.text}"
            assert r.json()["errcode"] == "M_INVALID_PARAM", r.text
    r = await api.http.put(
        f"{V3}/rooms/{room}/send/m.room.message/{'t' * 255}", json={"body": "x"}, headers=alice
    )
    assert r.status_code == 200, r.text
