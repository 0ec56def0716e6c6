"""The push rules API to the letter (issue 14 item 3): PUT/DELETE in every kind,
before/after, the enabled and actions endpoints, the trailing-slash rules and every
validation error, each error changing nothing. tests/synapse/test_push_rules_differential.py
sends the same requests to Synapse 1.163.2."""

from __future__ import annotations

from typing import Any

import pytest

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, uid

P = f"{V3}/pushrules"
MATCH = [{"kind": "event_match", "key": "type", "pattern": "m.x"}]


async def _put(api: ClientApi, h: dict[str, str], path: str, body: Any) -> Any:
    return await api.http.put(f"{P}/global/{path}", json=body, headers=h)


async def test_a_rule_in_every_kind_is_created_read_and_deleted(api: ClientApi) -> None:
    h = await api.login("alice")
    room = "!room:relay.test"
    bodies = {
        "override/o": {"actions": ["notify"], "conditions": MATCH},
        "underride/u": {"actions": ["notify"], "conditions": []},
        "content/c": {"actions": ["notify"], "pattern": "cake"},
        f"room/{room}": {"actions": ["dont_notify"]},
        f"sender/{uid('bob')}": {"actions": [{"set_tweak": "sound", "value": "x"}]},
    }
    for path, body in bodies.items():
        r = await _put(api, h, path, body)
        assert r.status_code == 200 and r.json() == {}, (path, r.text)
        got = (await api.http.get(f"{P}/global/{path}", headers=h)).json()
        assert got["actions"] == body["actions"] and got["enabled"] is True
        assert got["default"] is False and got["rule_id"] == path.split("/")[1]
    assert (await api.http.get(f"{P}/global/override/o", headers=h)).json()["conditions"] == MATCH
    assert (await api.http.get(f"{P}/global/content/c", headers=h)).json()["pattern"] == "cake"
    for path in bodies:
        assert (await api.http.delete(f"{P}/global/{path}", headers=h)).status_code == 200
        r = await api.http.get(f"{P}/global/{path}", headers=h)
        assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"


async def test_before_after_and_put_again_order_the_users_rules(api: ClientApi) -> None:
    h = await api.login("alice")
    rule = {"actions": [], "conditions": MATCH}
    for path in ("a", "b", "c?before=a", "d?after=a"):
        assert (await _put(api, h, f"override/{path}", rule)).status_code == 200
    ids = [r["rule_id"] for r in (await api.http.get(f"{P}/global/override/", headers=h)).json()]
    assert ids[:5] == [".m.rule.master", "b", "c", "a", "d"]
    assert (await _put(api, h, "override/d", rule)).status_code == 200
    ids = [r["rule_id"] for r in (await api.http.get(f"{P}/global/override/", headers=h)).json()]
    assert ids[:5] == [".m.rule.master", "d", "b", "c", "a"]


async def test_enabled_and_actions_endpoints(api: ClientApi) -> None:
    h = await api.login("alice")
    for rule in ("override/.m.rule.master", "underride/.m.rule.message"):
        r = await api.http.put(f"{P}/global/{rule}/enabled", json={"enabled": True}, headers=h)
        assert r.status_code == 200 and r.json() == {}
        r = await api.http.get(f"{P}/global/{rule}/enabled", headers=h)
        assert r.json() == {"enabled": True}
        r = await api.http.put(f"{P}/global/{rule}/actions", json={"actions": []}, headers=h)
        assert r.status_code == 200
        assert (await api.http.get(f"{P}/global/{rule}/actions", headers=h)).json() == {
            "actions": []
        }
    # Deleting a server rule whose actions were changed restores its default actions.
    rule = "underride/.m.rule.message"
    assert (await api.http.delete(f"{P}/global/{rule}", headers=h)).status_code == 200
    r = await api.http.get(f"{P}/global/{rule}/actions", headers=h)
    assert r.json() == {"actions": ["notify"]}


ERRORS: list[tuple[str, str, str, Any, int, str]] = [
    ("no scope", "PUT", "/", {"actions": []}, 400, "M_UNRECOGNIZED"),
    ("no kind", "PUT", "/global/", {"actions": []}, 400, "M_UNRECOGNIZED"),
    ("a bad scope", "PUT", "/device/override/x", {"actions": []}, 400, "M_UNRECOGNIZED"),
    ("an empty rule id", "PUT", "/global/override/", {"actions": []}, 400, "M_UNRECOGNIZED"),
    ("a missing rule id", "PUT", "/global/override", {"actions": []}, 400, "M_UNRECOGNIZED"),
    ("an unknown kind", "PUT", "/global/bogus/x", {"actions": []}, 400, "M_INVALID_PARAM"),
    ("a slash in the id", "PUT", "/global/override/a%2Fb", {"actions": []}, 400, "M_UNRECOGNIZED"),
    ("a backslash in the id", "PUT", "/global/room/a%5Cb", {"actions": []}, 400, "M_INVALID_PARAM"),
    (
        "a server rule id",
        "PUT",
        "/global/override/.x",
        {"actions": [], "conditions": []},
        400,
        "M_INVALID_PARAM",
    ),
    ("no actions", "PUT", "/global/room/!r:x", {}, 400, "M_MISSING_PARAM"),
    ("an unknown action", "PUT", "/global/room/!r:x", {"actions": ["boom"]}, 400, "M_BAD_JSON"),
    (
        "an action object without set_tweak",
        "PUT",
        "/global/room/!r:x",
        {"actions": [{}]},
        400,
        "M_BAD_JSON",
    ),
    ("no conditions", "PUT", "/global/override/x", {"actions": []}, 400, "M_MISSING_PARAM"),
    (
        "conditions an object",
        "PUT",
        "/global/underride/x",
        {"actions": [], "conditions": {}},
        400,
        "M_BAD_JSON",
    ),
    (
        "a condition without kind",
        "PUT",
        "/global/override/x",
        {"actions": [], "conditions": [{}]},
        400,
        "M_BAD_JSON",
    ),
    ("no pattern", "PUT", "/global/content/x", {"actions": []}, 400, "M_MISSING_PARAM"),
    (
        "a pattern not a string",
        "PUT",
        "/global/content/x",
        {"actions": [], "pattern": 1},
        400,
        "M_BAD_JSON",
    ),
    (
        "before an unknown rule",
        "PUT",
        "/global/room/!r:x?before=nope",
        {"actions": []},
        400,
        "M_UNKNOWN",
    ),
    (
        "after a server rule",
        "PUT",
        "/global/override/x?after=.m.rule.master",
        {"actions": [], "conditions": []},
        400,
        "M_UNKNOWN",
    ),
    (
        "enabled not a boolean",
        "PUT",
        "/global/override/.m.rule.master/enabled",
        {"enabled": 1},
        400,
        "M_BAD_JSON",
    ),
    (
        "enabled of an unknown rule",
        "PUT",
        "/global/override/nope/enabled",
        {"enabled": True},
        404,
        "M_NOT_FOUND",
    ),
    (
        "bad actions",
        "PUT",
        "/global/override/.m.rule.master/actions",
        {"actions": "x"},
        400,
        "M_BAD_JSON",
    ),
    (
        "no actions to set",
        "PUT",
        "/global/override/.m.rule.master/actions",
        {},
        400,
        "M_MISSING_PARAM",
    ),
    (
        "an unknown attribute",
        "PUT",
        "/global/override/.m.rule.master/colour",
        {},
        400,
        "M_UNRECOGNIZED",
    ),
    (
        "get an unknown attribute",
        "GET",
        "/global/override/.m.rule.master/colour",
        None,
        400,
        "M_UNRECOGNIZED",
    ),
    ("get global without slash", "GET", "/global", None, 400, "M_UNRECOGNIZED"),
    ("get a kind without slash", "GET", "/global/override", None, 400, "M_UNRECOGNIZED"),
    ("get an unknown kind", "GET", "/global/bogus/", None, 400, "M_UNRECOGNIZED"),
    ("get a bad scope", "GET", "/device/", None, 400, "M_UNRECOGNIZED"),
    ("get without any slash", "GET", "", None, 404, "M_UNRECOGNIZED"),
    ("get an unknown rule", "GET", "/global/room/nope", None, 404, "M_NOT_FOUND"),
    ("delete an unknown rule", "DELETE", "/global/room/nope", None, 404, "M_NOT_FOUND"),
    ("delete in an unknown kind", "DELETE", "/global/bogus/x", None, 404, "M_NOT_FOUND"),
    (
        "delete an unchanged server rule",
        "DELETE",
        "/global/override/.m.rule.master",
        None,
        404,
        "M_NOT_FOUND",
    ),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "status", "errcode"), ERRORS, ids=[e[0] for e in ERRORS]
)
async def test_push_rule_errors_change_nothing(
    api: ClientApi, case: str, method: str, path: str, body: Any, status: int, errcode: str
) -> None:
    h = await api.login("alice")
    before = (await api.http.get(f"{P}/", headers=h)).json()
    r = await api.http.request(method, P + path, json=body, headers=h)
    assert (r.status_code, r.json()["errcode"]) == (status, errcode), (case, r.text)
    assert isinstance(r.json()["error"], str)
    assert (await api.http.get(f"{P}/", headers=h)).json() == before


async def test_the_listing_paths(api: ClientApi) -> None:
    h = await api.login("alice")
    everything = (await api.http.get(f"{P}/", headers=h)).json()
    assert set(everything) == {"global"}
    assert set(everything["global"]) == {"override", "content", "room", "sender", "underride"}
    assert (await api.http.get(f"{P}/global/", headers=h)).json() == everything["global"]
    for kind, rules in everything["global"].items():
        assert (await api.http.get(f"{P}/global/{kind}/", headers=h)).json() == rules
