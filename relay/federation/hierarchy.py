"""Space hierarchies between servers: `GET /_matrix/federation/v1/hierarchy/{roomId}`.

- Serving: the room's entry with its children's events, the entries of the children we
  hold and may show the asking server, and the ids of the children we hold but may not
  show it (`inaccessible_children`). A room we do not hold, or may not show, is 404
  `M_NOT_FOUND`, as Synapse answers. Server ACLs do not apply (the spec does not list
  this endpoint, and Synapse does not check it). At most `MAX_CHILDREN` children.
- Asking: `fetch_hierarchy` asks the `via` servers in turn (at most `MAX_VIA`) and
  returns the first answer that parses; every field of another server's answer is
  checked before it is used (a malformed child or entry is dropped, not passed on).

Spec: https://spec.matrix.org/v1.16/server-server-api/#get_matrixfederationv1hierarchyroomid
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from relay.errors import NotFound
from relay.federation.client import FederationClient
from relay.federation.errors import PeerUnreachable, RemoteError
from relay.rooms.hierarchy import (
    MAX_CHILDREN,
    SPACE,
    SPACE_CHILD,
    accessible_txn,
    child_order,
    children_txn,
    holds_room_txn,
    is_valid_child,
    room_entry_txn,
)
from relay.runtime.http import json_response
from relay.services import Services
from store import Connection

log = logging.getLogger(__name__)

#: Servers asked about one room at the most (Synapse's MAX_SERVERS_PER_SPACE).
MAX_VIA = 3
#: An answer is a few rooms' summaries: 1 MiB is plenty.
MAX_ANSWER_BYTES = 1 << 20


def _flag(value: str | None) -> bool:
    return value == "true"


async def get_hierarchy(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/hierarchy/{roomId}`"""
    services: Services = request.app.state.services
    rooms = services.rooms
    room_id = request.path_params["room_id"]
    suggested_only = _flag(request.query_params.get("suggested_only"))

    def txn(conn: Connection) -> dict[str, Any] | None:
        if not holds_room_txn(conn, rooms, room_id) or not accessible_txn(
            conn, rooms, room_id, origin=origin
        ):
            return None
        entry = room_entry_txn(conn, rooms, room_id)
        entry["children_state"] = (
            children_txn(conn, rooms, room_id, suggested_only=suggested_only)
            if entry.get("room_type") == SPACE
            else []
        )
        children, inaccessible = [], []
        for child in entry["children_state"][:MAX_CHILDREN]:
            child_id = child["state_key"]
            if not holds_room_txn(conn, rooms, child_id):
                continue
            if accessible_txn(conn, rooms, child_id, origin=origin):
                children.append(room_entry_txn(conn, rooms, child_id))
            else:
                inaccessible.append(child_id)
        return {"room": entry, "children": children, "inaccessible_children": inaccessible}

    answer = await rooms.database.read(txn)
    if answer is None:
        raise NotFound(f"Unknown room: {room_id}")
    return json_response(answer)


@dataclass
class RemoteHierarchy:
    """Another server's answer about one room, checked."""

    room: dict[str, Any]
    children_state: list[dict[str, Any]]
    #: entries of the children it holds, by room id
    children: dict[str, dict[str, Any]] = field(default_factory=dict)
    inaccessible: frozenset[str] = frozenset()


async def fetch_hierarchy(
    client: FederationClient, via: Iterable[str], room_id: str, *, suggested_only: bool
) -> RemoteHierarchy | None:
    """Ask the `via` servers about `room_id` in turn; the first usable answer, or None."""
    path = f"/_matrix/federation/v1/hierarchy/{quote(room_id, safe='')}"
    query = {"suggested_only": "true" if suggested_only else "false"}
    tried = 0
    for server in dict.fromkeys(via):
        if server == client.server_name:
            continue
        if tried == MAX_VIA:
            break
        tried += 1
        try:
            answer = await client.get_json(server, path, query, max_bytes=MAX_ANSWER_BYTES)
        except (PeerUnreachable, RemoteError) as exc:
            log.info("hierarchy of %s from %s: %s", room_id, server, exc)
            continue
        parsed = parse_answer(answer, room_id)
        if parsed is not None:
            return parsed
        log.info("hierarchy of %s from %s: a malformed answer, ignored", room_id, server)
    return None


def parse_answer(answer: Any, room_id: str) -> RemoteHierarchy | None:
    """A remote `/hierarchy` answer, checked; None when the room's own entry is unusable."""
    if not isinstance(answer, dict):
        return None
    room = parse_entry(answer.get("room"))
    if room is None or room["room_id"] != room_id:
        return None
    given = answer.get("room", {}).get("children_state")
    children_state = sorted(
        (
            {k: c[k] for k in ("type", "state_key", "content", "sender", "origin_server_ts")}
            for c in (given if isinstance(given, list) else [])
            if _is_child_event(c)
        ),
        key=child_order,
    )[:MAX_CHILDREN]
    entries = answer.get("children")
    children = {}
    for raw in entries if isinstance(entries, list) else []:
        entry = parse_entry(raw)
        if entry is not None:
            children[entry["room_id"]] = entry
    inaccessible = answer.get("inaccessible_children")
    return RemoteHierarchy(
        room=room,
        children_state=children_state,
        children=children,
        inaccessible=frozenset(
            r
            for r in (inaccessible if isinstance(inaccessible, list) else [])
            if isinstance(r, str)
        ),
    )


#: Fields of a room entry and the type each must have to be passed on.
_ENTRY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "room_id": str,
    "name": str,
    "topic": str,
    "canonical_alias": str,
    "avatar_url": str,
    "join_rule": str,
    "room_type": str,
    "room_version": str,
    "encryption": str,
    "num_joined_members": int,
    "world_readable": bool,
    "guest_can_join": bool,
    "allowed_room_ids": list,
}


def parse_entry(raw: Any) -> dict[str, Any] | None:
    """A room entry from another server with only well-typed known fields; None without
    a room id (the counts and flags the spec requires default to 0 and false)."""
    if not isinstance(raw, dict):
        return None
    entry: dict[str, Any] = {}
    for key, kind in _ENTRY_FIELDS.items():
        value = raw.get(key)
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            entry[key] = value
    if "allowed_room_ids" in entry:
        entry["allowed_room_ids"] = [r for r in entry["allowed_room_ids"] if isinstance(r, str)]
    room_id = entry.get("room_id")
    if not isinstance(room_id, str) or not room_id.startswith("!"):
        return None
    for required, default in (
        ("num_joined_members", 0),
        ("world_readable", False),
        ("guest_can_join", False),
    ):
        entry.setdefault(required, default)
    return entry


def _is_child_event(raw: Any) -> bool:
    return (
        isinstance(raw, dict)
        and raw.get("type") == SPACE_CHILD
        and isinstance(raw.get("state_key"), str)
        and raw["state_key"].startswith("!")
        and isinstance(raw.get("sender"), str)
        and isinstance(raw.get("origin_server_ts"), int)
        and is_valid_child(raw.get("content"))
    )
