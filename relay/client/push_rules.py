"""Push rules: the `global` ruleset of the spec's defaults plus the user's own rules.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#push-rules-api,
pushrules.yaml):

- A user's ruleset is the server-default rules (default_push_rules.py) merged with
  what the user changed: the enabled flag and actions of a default rule, and rules of
  their own. Within a kind, user rules rank above the defaults, except
  `.m.rule.master`, which always comes first.
- Changes are kept as the user's `m.push_rules` account data holding the whole merged
  ruleset, `{"global": {...}}`: that is also what /sync hands clients, as the spec says.
- Rule ids starting with "." are the server's: they can't be created or deleted, only
  enabled, disabled or given other actions. `/` and `\\` are refused in rule ids.
- Only the `global` scope exists; pushers (which would act on these rules) are not served.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.default_push_rules import KINDS, default_ruleset
from relay.client.route import ClientRoute
from relay.errors import BadJson, InvalidParam, MissingParam, NotFound, Unknown
from relay.runtime.http import json_response, read_json_object
from relay.services import Services
from store import Connection
from store import account_data as store_account_data
from store import events as store_events

ACCOUNT_DATA_TYPE = "m.push_rules"
Ruleset = dict[str, list[dict[str, Any]]]


def merge_rules(user_id: str, stored: Any) -> Ruleset:
    """The defaults for `user_id` overlaid with a stored ruleset (malformed parts ignored)."""
    ruleset = default_ruleset(user_id)
    if not isinstance(stored, dict):
        return ruleset
    for kind in KINDS:
        rules = stored.get(kind)
        if not isinstance(rules, list):
            continue
        rules = [r for r in rules if isinstance(r, dict) and isinstance(r.get("rule_id"), str)]
        by_id = {r["rule_id"]: r for r in rules}
        for rule in ruleset[kind]:
            saved = by_id.get(rule["rule_id"], {})
            if isinstance(saved.get("enabled"), bool):
                rule["enabled"] = saved["enabled"]
            if isinstance(saved.get("actions"), list):
                rule["actions"] = saved["actions"]
        own = [dict(r, default=False) for r in rules if not r["rule_id"].startswith(".")]
        defaults = ruleset[kind]
        if kind == "override" and defaults and defaults[0]["rule_id"] == ".m.rule.master":
            ruleset[kind] = [defaults[0], *own, *defaults[1:]]
        else:
            ruleset[kind] = [*own, *defaults]
    return ruleset


async def load_rules(services: Services, user_id: str) -> Ruleset:
    text = await services.database.read(
        store_account_data.get_account_data, user_id, ACCOUNT_DATA_TYPE
    )
    stored = json.loads(text) if text else None
    return merge_rules(user_id, stored.get("global") if isinstance(stored, dict) else None)


async def save_rules(services: Services, user_id: str, ruleset: Ruleset) -> None:
    content = json.dumps({"global": ruleset}, ensure_ascii=False, separators=(",", ":"))

    def txn(conn: Connection) -> int:
        position = store_events.next_stream_ordering(conn)
        store_account_data.set_account_data(
            conn, user_id=user_id, type=ACCOUNT_DATA_TYPE, content=content, stream_ordering=position
        )
        return position

    services.notifier.on_stream(await services.database.write(txn))


def _kind_and_id(request: Request) -> tuple[str, str]:
    kind, rule_id = request.path_params["kind"], request.path_params["rule_id"]
    if kind not in KINDS:
        raise InvalidParam(f"Unknown push rule kind {kind!r}")
    return kind, rule_id


def _find(ruleset: Ruleset, kind: str, rule_id: str) -> dict[str, Any]:
    for rule in ruleset[kind]:
        if rule["rule_id"] == rule_id:
            return rule
    raise NotFound("The push rule was not found.")


def _new_rule(kind: str, rule_id: str, body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions")
    if actions is None:
        raise MissingParam("actions is required")
    if not isinstance(actions, list) or not all(isinstance(a, str | dict) for a in actions):
        raise BadJson("actions must be a list of strings and objects")
    rule: dict[str, Any] = {"rule_id": rule_id, "default": False, "enabled": True}
    if kind in ("override", "underride"):
        conditions = body.get("conditions", [])
        if not isinstance(conditions, list) or not all(isinstance(c, dict) for c in conditions):
            raise BadJson("conditions must be a list of objects")
        rule["conditions"] = conditions
    elif kind == "content":
        if not isinstance(body.get("pattern"), str):
            raise MissingParam("content rules need a pattern")
        rule["pattern"] = body["pattern"]
    rule["actions"] = actions
    return rule


def _place(rules: list[dict[str, Any]], rule: dict[str, Any], request: Request) -> None:
    """Insert or replace `rule` among the kind's rules, honouring ?before= / ?after=."""
    before, after = request.query_params.get("before"), request.query_params.get("after")
    index = next((i for i, r in enumerate(rules) if r["rule_id"] == rule["rule_id"]), None)
    if index is not None and before is None and after is None:
        rules[index] = rule
        return
    if index is not None:
        del rules[index]
    anchor_id = before or after
    if anchor_id is not None:
        anchor = next(
            (i for i, r in enumerate(rules) if r["rule_id"] == anchor_id and not r["default"]),
            None,
        )
        if anchor is None:
            raise Unknown(f"before/after rule not found: {anchor_id}", status=400)
        rules.insert(anchor if before else anchor + 1, rule)
        return
    # New rules become the most important of the user's rules (after the master rule).
    first_own = next((i for i, r in enumerate(rules) if not r["default"]), None)
    if first_own is None:
        first_own = 1 if rules and rules[0]["rule_id"] == ".m.rule.master" else 0
    rules.insert(first_own, rule)


async def get_push_rules(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/pushrules/`"""
    return json_response({"global": await load_rules(services_of(request), requester.user_id)})


async def get_push_rules_global(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/pushrules/global/`"""
    return json_response(await load_rules(services_of(request), requester.user_id))


async def get_push_rule(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`"""
    kind, rule_id = _kind_and_id(request)
    ruleset = await load_rules(services_of(request), requester.user_id)
    return json_response(_find(ruleset, kind, rule_id))


async def set_push_rule(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`"""
    kind, rule_id = _kind_and_id(request)
    if rule_id.startswith(".") or "/" in rule_id or "\\" in rule_id or not rule_id:
        raise InvalidParam("Rule ids may not start with '.' nor contain '/' or '\\'")
    rule = _new_rule(kind, rule_id, await read_json_object(request))
    services = services_of(request)
    ruleset = await load_rules(services, requester.user_id)
    _place(ruleset[kind], rule, request)
    await save_rules(services, requester.user_id, ruleset)
    return json_response({})


async def delete_push_rule(request: Request, requester: Requester) -> Response:
    """# `DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`"""
    kind, rule_id = _kind_and_id(request)
    services = services_of(request)
    ruleset = await load_rules(services, requester.user_id)
    rule = _find(ruleset, kind, rule_id)
    if rule["default"]:
        raise InvalidParam("Server-default push rules can't be deleted; disable them instead")
    ruleset[kind].remove(rule)
    await save_rules(services, requester.user_id, ruleset)
    return json_response({})


async def is_push_rule_enabled(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled`"""
    kind, rule_id = _kind_and_id(request)
    ruleset = await load_rules(services_of(request), requester.user_id)
    return json_response({"enabled": _find(ruleset, kind, rule_id)["enabled"]})


async def get_push_rule_actions(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions`"""
    kind, rule_id = _kind_and_id(request)
    ruleset = await load_rules(services_of(request), requester.user_id)
    return json_response({"actions": _find(ruleset, kind, rule_id)["actions"]})


async def _update_rule(request: Request, requester: Requester, field: str, value: Any) -> None:
    kind, rule_id = _kind_and_id(request)
    services = services_of(request)
    ruleset = await load_rules(services, requester.user_id)
    _find(ruleset, kind, rule_id)[field] = value
    await save_rules(services, requester.user_id, ruleset)


async def set_push_rule_enabled(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled`"""
    enabled = (await read_json_object(request)).get("enabled")
    if not isinstance(enabled, bool):
        raise MissingParam("enabled must be true or false")
    await _update_rule(request, requester, "enabled", enabled)
    return json_response({})


async def set_push_rule_actions(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions`"""
    actions = (await read_json_object(request)).get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, str | dict) for a in actions):
        raise MissingParam("actions must be a list of strings and objects")
    await _update_rule(request, requester, "actions", actions)
    return json_response({})


RULE = "/pushrules/global/{kind}/{rule_id}"
ROUTES = [
    ClientRoute("/pushrules/", get_push_rules, ("GET",)),
    ClientRoute("/pushrules", get_push_rules, ("GET",)),
    ClientRoute("/pushrules/global/", get_push_rules_global, ("GET",)),
    ClientRoute(RULE, get_push_rule, ("GET",)),
    ClientRoute(RULE, set_push_rule, ("PUT",)),
    ClientRoute(RULE, delete_push_rule, ("DELETE",)),
    ClientRoute(RULE + "/enabled", is_push_rule_enabled, ("GET",)),
    ClientRoute(RULE + "/enabled", set_push_rule_enabled, ("PUT",)),
    ClientRoute(RULE + "/actions", get_push_rule_actions, ("GET",)),
    ClientRoute(RULE + "/actions", set_push_rule_actions, ("PUT",)),
]
