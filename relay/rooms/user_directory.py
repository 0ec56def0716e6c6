"""The user directory: finding users by id or display name.

Rules kept (spec minimum, as Synapse's default `search_all_users = false`):

- A searcher finds users joined to a room the searcher is joined to, and users joined
  to rooms with a `public` join rule or `world_readable` history; nobody else.
  Deactivated local users are left out.
- Matching is a case-insensitive substring of the user id or display name. Local
  users show their global profile; remote users the profile of their member event.
- Ranking: exact id localpart or display name first, then prefix matches, then the
  rest; users with a display name before those without; then by user id.

Spec: https://spec.matrix.org/v1.16/client-server-api/#user-directory (users.yaml)
"""

from __future__ import annotations

from typing import Any

from relay.events.ids import localpart_of, server_of
from relay.rooms.service import RoomService
from relay.rooms.visibility import HISTORY_VISIBILITY, content_of
from store import Connection
from store import accounts as store_accounts
from store import rooms as store_rooms
from store import state as store_state

DEFAULT_LIMIT = 10
MAX_LIMIT = 100


def _is_open_room(conn: Connection, rooms: RoomService, room_id: str) -> bool:
    state = store_state.get_current_state(conn, room_id)
    join_rule = content_of(conn, rooms, state.get(("m.room.join_rules", ""))).get("join_rule")
    history = content_of(conn, rooms, state.get(HISTORY_VISIBILITY)).get("history_visibility")
    return join_rule == "public" or history == "world_readable"


def _candidates_txn(
    conn: Connection, rooms: RoomService, searcher: str
) -> dict[str, dict[str, Any]]:
    """`{user_id: profile}` of everyone the searcher may find."""
    mine = set(store_rooms.rooms_for_user(conn, searcher, "join"))
    found: dict[str, dict[str, Any]] = {}
    for room_id in store_rooms.all_room_ids(conn):
        if room_id not in mine and not _is_open_room(conn, rooms, room_id):
            continue
        for user_id in store_rooms.joined_users(conn, room_id):
            if user_id in found:
                continue
            profile = _profile_txn(conn, rooms, room_id, user_id)
            if profile is not None:
                found[user_id] = profile
    return found


def _profile_txn(
    conn: Connection, rooms: RoomService, room_id: str, user_id: str
) -> dict[str, Any] | None:
    if server_of(user_id) == rooms.server_name:
        user = store_accounts.get_user(conn, user_id)
        if user is None or user["deactivated"]:
            return None
        displayname, avatar_url = user["displayname"], user["avatar_url"]
    else:
        event_id = store_state.get_current_state_event_id(conn, room_id, "m.room.member", user_id)
        content = content_of(conn, rooms, event_id)
        displayname, avatar_url = content.get("displayname"), content.get("avatar_url")
    profile: dict[str, Any] = {"user_id": user_id}
    if isinstance(displayname, str) and displayname:
        profile["display_name"] = displayname
    if isinstance(avatar_url, str) and avatar_url:
        profile["avatar_url"] = avatar_url
    return profile


def _rank(profile: dict[str, Any], needle: str) -> tuple[int, int, str]:
    localpart = localpart_of(profile["user_id"]).casefold()
    name = profile.get("display_name", "").casefold()
    if needle in (localpart, name):
        closeness = 0
    elif localpart.startswith(needle) or any(w.startswith(needle) for w in name.split()):
        closeness = 1
    else:
        closeness = 2
    return (closeness, 0 if name else 1, profile["user_id"])


async def search_users(
    rooms: RoomService, searcher: str, term: str, limit: int = DEFAULT_LIMIT
) -> dict[str, Any]:
    """`{results, limited}` for `term`, at most `limit` results."""
    needle = term.strip().casefold()
    candidates = await rooms.database.read(_candidates_txn, rooms, searcher)
    matches = [
        profile
        for user_id, profile in candidates.items()
        if needle in user_id.casefold() or needle in profile.get("display_name", "").casefold()
    ]
    matches.sort(key=lambda p: _rank(p, needle))
    return {"results": matches[:limit], "limited": len(matches) > limit}
