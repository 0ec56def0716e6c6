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
- Paths are parsed as the spec's (and Synapse's) trailing-slash rules have them: a
  malformed one is 400 M_UNRECOGNIZED, an unknown rule 404 M_NOT_FOUND; actions are the
  spec's (`notify`, legacy `dont_notify`/`coalesce`, `set_tweak` objects) or 400.
- Only the `global` scope exists; pushers act on these rules (relay/push/).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import (
    BadJson,
    InvalidParam,
    MatrixError,
    MissingParam,
    NotFound,
    Unknown,
    Unrecognized,
)
from relay.events.default_push_rules import KINDS, default_ruleset
from relay.events.push_rules import Ruleset, merge_rules
from relay.runtime.http import json_response, read_json_object
from relay.services import Services
from store import Connection
from store import account_data as store_account_data
from store import events as store_events

ACCOUNT_DATA_TYPE = "m.push_rules"


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


#: The spec's actions; `dont_notify` and `coalesce` are legacy ones, accepted and ignored.
ACTIONS = ("notify", "dont_notify", "coalesce")
#: The attributes of a rule that have their own endpoints.
ATTRIBUTES = ("enabled", "actions")


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """`global/{kind}/{ruleId}[/{attr}]` as parsed from a request path."""

    kind: str
    rule_id: str
    attr: str | None


def _unrecognized(why: str = "") -> Unrecognized:
    # A malformed push-rule path is 400 M_UNRECOGNIZED (spec pushrules.yaml; Synapse).
    return Unrecognized(why or "Unrecognized push rule path", status=400)


def _rule_spec(path: str, unknown_kind: type[MatrixError] = InvalidParam) -> RuleSpec:
    """The rule a PUT/DELETE path names: a missing or unknown scope, a missing kind and a
    missing or empty rule id are 400 M_UNRECOGNIZED; an unknown kind `unknown_kind`
    (a PUT's 400 M_INVALID_PARAM, a DELETE's 404: no such rule, as Synapse answers)."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "global" or not parts[1] or not parts[2]:
        raise _unrecognized()
    kind, rule_id = parts[1], parts[2]
    if kind not in KINDS:
        raise unknown_kind(f"Unknown push rule kind {kind!r}")
    attr = parts[3] if len(parts) > 3 and parts[3] else None
    return RuleSpec(kind, rule_id, attr)


def _find(ruleset: Ruleset, kind: str, rule_id: str) -> dict[str, Any]:
    for rule in ruleset[kind]:
        if rule["rule_id"] == rule_id:
            return rule
    raise NotFound("The push rule was not found.")


def check_actions(actions: Any) -> list[Any]:
    """The spec's actions: `notify`, the legacy `dont_notify`/`coalesce`, or a
    `set_tweak` object; anything else is 400 M_BAD_JSON."""
    if not isinstance(actions, list):
        raise BadJson("actions must be a list")
    for action in actions:
        if not (action in ACTIONS or (isinstance(action, dict) and "set_tweak" in action)):
            raise BadJson(f"Unrecognised action {action!r}")
    return actions


def _new_rule(kind: str, rule_id: str, body: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = {"rule_id": rule_id, "default": False, "enabled": True}
    if kind in ("override", "underride"):
        if "conditions" not in body:
            raise MissingParam(f"{kind} rules need conditions")
        conditions = body["conditions"]
        if not isinstance(conditions, list) or not all(
            isinstance(c, dict) and isinstance(c.get("kind"), str) for c in conditions
        ):
            raise BadJson("conditions must be a list of objects, each with a kind")
        rule["conditions"] = conditions
    elif kind == "content":
        if "pattern" not in body:
            raise MissingParam("content rules need a pattern")
        if not isinstance(body["pattern"], str):
            raise BadJson("pattern must be a string")
        rule["pattern"] = body["pattern"]
    if "actions" not in body:
        raise MissingParam("actions is required")
    rule["actions"] = check_actions(body["actions"])
    return rule


def _place(rules: list[dict[str, Any]], rule: dict[str, Any], request: Request) -> None:
    """Insert or replace `rule` among the kind's rules, honouring ?before= / ?after=."""
    before, after = request.query_params.get("before"), request.query_params.get("after")
    # A rule PUT again is taken out and placed anew: without before/after it becomes the
    # most important of the user's rules of its kind again (as Synapse orders it).
    index = next((i for i, r in enumerate(rules) if r["rule_id"] == rule["rule_id"]), None)
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


def _path(request: Request) -> str:
    return str(request.path_params.get("path", ""))


async def get_push_rules(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/pushrules/` and everything under it: `global/`,
    `global/{kind}/`, `global/{kind}/{ruleId}`, `.../enabled`, `.../actions`.

    A path that stops without its trailing slash (`global`, `global/{kind}`) or names an
    unknown scope, kind or attribute is 400 M_UNRECOGNIZED; an unknown rule 404."""
    ruleset = await load_rules(services_of(request), requester.user_id)
    parts = _path(request).split("/")
    if parts == [""]:
        return json_response({"global": ruleset})
    if parts[0] != "global" or len(parts) == 1:
        raise _unrecognized("Use a trailing slash: /pushrules/global/")
    if parts[1] == "":
        return json_response(ruleset)
    if parts[1] not in KINDS or len(parts) == 2:
        raise _unrecognized()
    if parts[2] == "":
        return json_response(ruleset[parts[1]])
    rule = _find(ruleset, parts[1], parts[2])
    if len(parts) == 3:
        return json_response(rule)
    if parts[3] not in rule or parts[3] not in ATTRIBUTES:
        raise _unrecognized()
    return json_response({parts[3]: rule[parts[3]]})


async def set_push_rule(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}` (and `.../enabled`,
    `.../actions`)"""
    spec = _rule_spec(_path(request))
    if "/" in spec.rule_id or "\\" in spec.rule_id:
        raise InvalidParam("Rule ids may not contain '/' or '\\'")
    body = await read_json_object(request)
    if spec.attr is not None:
        await _set_attribute(request, requester, spec, body)
        return json_response({})
    if spec.rule_id.startswith("."):
        raise InvalidParam("Rule ids starting with '.' are the server's")
    rule = _new_rule(spec.kind, spec.rule_id, body)
    services = services_of(request)
    ruleset = await load_rules(services, requester.user_id)
    _place(ruleset[spec.kind], rule, request)
    await save_rules(services, requester.user_id, ruleset)
    return json_response({})


async def _set_attribute(
    request: Request, requester: Requester, spec: RuleSpec, body: dict[str, Any]
) -> None:
    if spec.attr == "enabled":
        value: Any = body.get("enabled")
        if not isinstance(value, bool):
            raise BadJson("enabled must be true or false")
    elif spec.attr == "actions":
        if "actions" not in body:
            raise MissingParam("actions is required")
        value = check_actions(body["actions"])
    else:
        raise _unrecognized(f"Unknown push rule attribute {spec.attr!r}")
    services = services_of(request)
    ruleset = await load_rules(services, requester.user_id)
    _find(ruleset, spec.kind, spec.rule_id)[spec.attr] = value
    await save_rules(services, requester.user_id, ruleset)


async def delete_push_rule(request: Request, requester: Requester) -> Response:
    """# `DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`

    A user's rule goes. A server-default rule can't go: deleting one whose actions the
    user changed restores its default actions (as Synapse, which keeps those changes as
    a rule of the user's); any other is 404, like an unknown rule."""
    spec = _rule_spec(_path(request), NotFound)
    services = services_of(request)
    ruleset = await load_rules(services, requester.user_id)
    rule = _find(ruleset, spec.kind, spec.rule_id)
    if rule["default"]:
        default = _find(default_ruleset(requester.user_id), spec.kind, spec.rule_id)
        if rule["actions"] == default["actions"]:
            raise NotFound("Server-default push rules can't be deleted; disable them instead")
        rule["actions"] = default["actions"]
    else:
        ruleset[spec.kind].remove(rule)
    await save_rules(services, requester.user_id, ruleset)
    return json_response({})


async def without_trailing_slash(request: Request, requester: Requester) -> Response:
    """`/_matrix/client/v3/pushrules` (no slash) is no endpoint: 404 M_UNRECOGNIZED, as
    Synapse answers, rather than a redirect."""
    raise Unrecognized("Use /pushrules/ with a trailing slash")


ROUTES = [
    ClientRoute("/pushrules", without_trailing_slash, ("GET", "PUT", "DELETE")),
    ClientRoute("/pushrules/{path:path}", get_push_rules, ("GET",)),
    ClientRoute("/pushrules/{path:path}", set_push_rule, ("PUT",)),
    ClientRoute("/pushrules/{path:path}", delete_push_rule, ("DELETE",)),
]
