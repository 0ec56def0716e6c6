"""Push rules through the real app: the spec's defaults, and the user's changes to them."""

from __future__ import annotations

import json

from store import account_data as store_account_data
from tests.client.conftest import SERVER_NAME, ClientApi

V3 = "/_matrix/client/v3"
RULES = f"{V3}/pushrules/global"


def _ids(rules: list[dict]) -> list[str]:
    return [rule["rule_id"] for rule in rules]


async def test_default_ruleset_is_the_specs(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.get(f"{V3}/pushrules/", headers=alice)
    assert r.status_code == 200
    ruleset = r.json()["global"]
    assert set(ruleset) == {"override", "content", "room", "sender", "underride"}
    assert _ids(ruleset["override"]) == [
        ".m.rule.master",
        ".m.rule.suppress_notices",
        ".m.rule.invite_for_me",
        ".m.rule.member_event",
        ".m.rule.is_user_mention",
        ".m.rule.contains_display_name",
        ".m.rule.is_room_mention",
        ".m.rule.roomnotif",
        ".m.rule.tombstone",
        ".m.rule.reaction",
        ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
    ]
    assert _ids(ruleset["underride"]) == [
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ]
    master = ruleset["override"][0]
    assert (master["enabled"], master["default"], master["actions"]) == (False, True, [])
    assert ruleset["content"] == [
        {
            "rule_id": ".m.rule.contains_user_name",
            "default": True,
            "enabled": True,
            "pattern": "alice",
            "actions": [
                "notify",
                {"set_tweak": "sound", "value": "default"},
                {"set_tweak": "highlight"},
            ],
        }
    ]
    invite = ruleset["override"][2]
    assert {"kind": "event_match", "key": "state_key", "pattern": f"@alice:{SERVER_NAME}"} in (
        invite["conditions"]
    )
    r = await api.http.get(f"{RULES}/underride/.m.rule.message", headers=alice)
    assert r.json()["actions"] == ["notify"]


async def test_unknown_rule_is_not_found(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.get(f"{RULES}/override/nope", headers=alice)
    assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")
    r = await api.http.get(f"{RULES}/bogus/nope", headers=alice)
    assert r.status_code == 400


async def test_disable_master_rule_and_change_actions_are_kept(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.put(
        f"{RULES}/override/.m.rule.master/enabled", headers=alice, json={"enabled": True}
    )
    assert r.status_code == 200
    r = await api.http.put(
        f"{RULES}/underride/.m.rule.message/actions", headers=alice, json={"actions": []}
    )
    assert r.status_code == 200
    r = await api.http.get(f"{RULES}/override/.m.rule.master/enabled", headers=alice)
    assert r.json() == {"enabled": True}
    r = await api.http.get(f"{RULES}/underride/.m.rule.message/actions", headers=alice)
    assert r.json() == {"actions": []}
    # The whole ruleset is the user's m.push_rules account data, as /sync delivers it.
    stored = await api.services.database.read(
        store_account_data.get_account_data, f"@alice:{SERVER_NAME}", "m.push_rules"
    )
    assert json.loads(stored)["global"]["override"][0]["enabled"] is True


async def test_user_rules_rank_above_defaults_and_can_be_deleted(api: ClientApi) -> None:
    alice = await api.login("alice")
    rule = {"conditions": [{"kind": "event_match", "key": "type", "pattern": "x"}], "actions": []}
    assert (await api.http.put(f"{RULES}/override/a", headers=alice, json=rule)).status_code == 200
    assert (await api.http.put(f"{RULES}/override/b", headers=alice, json=rule)).status_code == 200
    r = await api.http.put(f"{RULES}/override/c?after=a", headers=alice, json=rule)
    assert r.status_code == 200
    override = (await api.http.get(f"{RULES}/", headers=alice)).json()["override"]
    assert _ids(override)[:5] == [".m.rule.master", "b", "a", "c", ".m.rule.suppress_notices"]
    assert (await api.http.delete(f"{RULES}/override/a", headers=alice)).status_code == 200
    r = await api.http.get(f"{RULES}/override/a", headers=alice)
    assert r.status_code == 404


async def test_server_rules_cannot_be_created_or_deleted(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.put(f"{RULES}/override/.mine", headers=alice, json={"actions": []})
    assert r.status_code == 400
    r = await api.http.delete(f"{RULES}/override/.m.rule.master", headers=alice)
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"
    r = await api.http.put(
        f"{RULES}/content/x?before=.m.rule.contains_user_name",
        headers=alice,
        json={"pattern": "x", "actions": []},
    )
    assert r.status_code == 400
    r = await api.http.put(f"{RULES}/content/x", headers=alice, json={"actions": []})
    assert r.status_code == 400
