"""The rules of `m.room.canonical_alias` content a local user sends, and what deleting an
alias does to it.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#mroomcanonical_alias), as
Synapse where the spec leaves it open:

- `alias` is a string or absent/null; `alt_aliases` a list of strings; each a well-formed
  room alias (else 400 M_INVALID_PARAM).
- Every alias that is new in this event (not in the state it replaces) must exist and point
  at this room, else 400 M_BAD_ALIAS. An alias of ours is checked in our directory; one of
  another server can't be (we send no outbound directory query): it is taken as sent.
- Deleting an alias removes it from the room's canonical alias event (`without_alias`),
  sent by whoever deleted it when they may send it, else left as is (as Synapse).
"""

from __future__ import annotations

from typing import Any

from relay.errors import BadAlias, InvalidParam
from relay.events.ids import is_valid_room_alias, server_of
from store import Connection
from store import rooms as store_rooms

CANONICAL_ALIAS = "m.room.canonical_alias"


def aliases_of(content: dict[str, Any]) -> tuple[str | None, list[str]]:
    """(alias, alt_aliases) of the content; 400 M_INVALID_PARAM when malformed."""
    alias = content.get("alias")
    if alias is not None and (not isinstance(alias, str) or not is_valid_room_alias(alias)):
        raise InvalidParam("alias must be a room alias")
    alt = content.get("alt_aliases", [])
    if not isinstance(alt, list) or not all(
        isinstance(a, str) and is_valid_room_alias(a) for a in alt
    ):
        raise InvalidParam("alt_aliases must be a list of room aliases")
    return alias, alt


def _lenient_aliases(content: dict[str, Any] | None) -> set[str]:
    """Every alias named in earlier content, however malformed the rest of it."""
    content = content or {}
    found = {content["alias"]} if isinstance(content.get("alias"), str) else set()
    alt = content.get("alt_aliases")
    if isinstance(alt, list):
        found.update(a for a in alt if isinstance(a, str))
    return found


def check_canonical_alias_txn(
    conn: Connection,
    server_name: str,
    room_id: str,
    content: dict[str, Any],
    previous: dict[str, Any] | None,
) -> None:
    """Refuse content naming a new alias of ours that does not point at `room_id`."""
    alias, alt = aliases_of(content)
    new = ({alias} if alias else set()) | set(alt)
    new -= _lenient_aliases(previous)
    for name in sorted(new):
        if server_of(name) != server_name:
            continue
        found = store_rooms.get_alias(conn, name)
        if found is None or found[0] != room_id:
            raise BadAlias(f"Room alias {name} does not point to the room")


def without_alias(content: dict[str, Any], alias: str) -> dict[str, Any] | None:
    """The content with `alias` removed from `alias` and `alt_aliases`; None when it
    names it nowhere."""
    changed = dict(content)
    if changed.get("alias") == alias:
        del changed["alias"]
    alt = changed.get("alt_aliases")
    if isinstance(alt, list) and alias in alt:
        remaining = [a for a in alt if a != alias]
        if remaining:
            changed["alt_aliases"] = remaining
        else:
            del changed["alt_aliases"]  # an emptied list goes, as Synapse does
    return changed if changed != content else None
