"""Server ACLs: whether a server may take part in a room, by its `m.room.server_acl` content.

The one rule, in the spec's order:

1. no ACL in the room's state: allowed;
2. the name is an IP literal (v4, or v6 in brackets) and `allow_ip_literals` is `false`:
   denied;
3. the name matches a `deny` glob: denied;
4. the name matches an `allow` glob: allowed;
5. otherwise denied (a missing `allow` denies everyone).

The port is never considered (`evil.example:8448` is `evil.example`). Globs are `*`
(zero or more characters) and `?` (exactly one), matched against the whole name,
case-insensitively. Malformed content is read as Synapse reads it: a non-boolean
`allow_ip_literals` is `true`, a non-list `allow`/`deny` is empty, non-string entries
are skipped.

The ACL applies to the server that makes a request (the origin of a federation request
or transaction), never to an event's sender.

Spec: https://spec.matrix.org/v1.16/server-server-api/#server-access-control-lists-acls,
https://spec.matrix.org/v1.16/client-server-api/#mroomserver_acl
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Any

#: The state event (state key "") that holds a room's server ACL.
SERVER_ACL = "m.room.server_acl"


def host_of(server_name: str) -> str:
    """The server name without its port: `[::1]:8448` -> `[::1]`, `a.example:80` ->
    `a.example`."""
    if server_name.startswith("["):
        end = server_name.find("]")
        return server_name[: end + 1] if end != -1 else server_name
    return server_name.rsplit(":", 1)[0] if ":" in server_name else server_name


def _is_ip_literal(host: str) -> bool:
    if host.startswith("["):
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _globs(content: dict[str, Any], key: str) -> list[str]:
    value = content.get(key, [])
    if not isinstance(value, list):
        return []
    return [p for p in value if isinstance(p, str)]


def server_allowed(acl_content: dict[str, Any] | None, server_name: str) -> bool:
    """Whether `server_name` (port or not) may take part in a room whose current
    `m.room.server_acl` has `acl_content` (`None`: the room has no ACL)."""
    if acl_content is None:
        return True
    host = host_of(server_name)
    allow_ip_literals = acl_content.get("allow_ip_literals", True)
    if not isinstance(allow_ip_literals, bool):
        allow_ip_literals = True
    if not allow_ip_literals and _is_ip_literal(host):
        return False
    if any(_glob(p).fullmatch(host) for p in _globs(acl_content, "deny")):
        return False
    return any(_glob(p).fullmatch(host) for p in _globs(acl_content, "allow"))
