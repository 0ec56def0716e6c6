"""Room state: the current state, and the state before/after each event
(tables ``current_state``, ``state_groups``, ``event_state``).

A state is a map ``{(type, state_key): event_id}``.

Design of "state at an event" (chosen for a small box, documented in the migration):

- A *state group* is a stored state map. It is either a full map (``prev_group`` NULL)
  or a delta over ``prev_group``: a JSON list of ``[type, state_key, event_id]`` triples
  (``event_id`` null = key removed). ``store_state_group`` writes a full map once a
  delta chain reaches ``MAX_CHAIN`` links, so loading never walks more than
  ``MAX_CHAIN + 1`` rows; and it returns ``prev_group`` itself when nothing changed, so
  a run of message events shares one group.
- ``event_state`` gives each event two groups: the state *before* it (what it is
  authorised against; what ``/state/{roomId}?event_id=`` answers) and *after* it
  (before + the event itself if it is a state event; the prev state of its children).

Rules kept: the store does no state resolution and no auth; it records what the
caller decided. Functions take the connection first and never commit.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

__all__ = [
    "MAX_CHAIN",
    "StateMap",
    "get_current_state",
    "get_current_state_event_id",
    "get_event_state_groups",
    "get_state_after",
    "get_state_before",
    "load_state_group",
    "record_event_state",
    "remove_current_state",
    "replace_current_state",
    "set_current_state",
    "set_event_state",
    "store_state_group",
]

StateMap = dict[tuple[str, str], str]
MAX_CHAIN = 32


# Current state ---------------------------------------------------------------------------


def set_current_state(
    conn: sqlite3.Connection, room_id: str, type: str, state_key: str, event_id: str
) -> None:
    """Make ``event_id`` the room's current ``(type, state_key)`` state."""
    conn.execute(
        "INSERT INTO current_state (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
        (room_id, type, state_key, event_id),
    )


def remove_current_state(conn: sqlite3.Connection, room_id: str, type: str, state_key: str) -> None:
    """Drop one key from the room's current state."""
    conn.execute(
        "DELETE FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?",
        (room_id, type, state_key),
    )


def replace_current_state(
    conn: sqlite3.Connection, room_id: str, state: Mapping[tuple[str, str], str]
) -> None:
    """Replace the room's whole current state (after a state resolution)."""
    conn.execute("DELETE FROM current_state WHERE room_id = ?", (room_id,))
    conn.executemany(
        "INSERT INTO current_state (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?)",
        [(room_id, type_, key, event_id) for (type_, key), event_id in state.items()],
    )


def get_current_state(conn: sqlite3.Connection, room_id: str) -> StateMap:
    """The room's current state (empty if we know nothing of the room)."""
    rows = conn.execute(
        "SELECT type, state_key, event_id FROM current_state WHERE room_id = ?", (room_id,)
    )
    return {(row[0], row[1]): row[2] for row in rows}


def current_state_of_type(conn: sqlite3.Connection, room_id: str, type: str) -> dict[str, str]:
    """``{state_key: event_id}`` of the room's current state events of one type."""
    rows = conn.execute(
        "SELECT state_key, event_id FROM current_state WHERE room_id = ? AND type = ?",
        (room_id, type),
    )
    return {row[0]: row[1] for row in rows}


def get_current_state_event_id(
    conn: sqlite3.Connection, room_id: str, type: str, state_key: str
) -> str | None:
    """The event_id of one current state entry, or None."""
    row = conn.execute(
        "SELECT event_id FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?",
        (room_id, type, state_key),
    ).fetchone()
    return row[0] if row is not None else None


# State groups ----------------------------------------------------------------------------


def store_state_group(
    conn: sqlite3.Connection,
    *,
    room_id: str,
    state: Mapping[tuple[str, str], str],
    prev_group: int | None = None,
) -> int:
    """Store ``state`` and return its group id.

    With ``prev_group`` (typically the state after one of the event's prev_events) only
    the difference is written; if there is none, ``prev_group`` is returned as is.
    """
    if prev_group is not None:
        prev_state = load_state_group(conn, prev_group)
        delta = _diff(prev_state, state)
        if not delta:
            return prev_group
        row = conn.execute(
            "SELECT chain_length FROM state_groups WHERE id = ?", (prev_group,)
        ).fetchone()
        chain_length = int(row[0]) + 1
        if chain_length <= MAX_CHAIN:
            return _insert_group(conn, room_id, prev_group, chain_length, delta)
    full = [[type_, key, event_id] for (type_, key), event_id in sorted(state.items())]
    return _insert_group(conn, room_id, None, 0, full)


def load_state_group(conn: sqlite3.Connection, group: int) -> StateMap:
    """The full state map of a group.

    Raises:
        KeyError: no such group.
    """
    deltas: list[list[list[str | None]]] = []
    current: int | None = group
    while current is not None:
        row = conn.execute(
            "SELECT prev_group, delta FROM state_groups WHERE id = ?", (current,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no state group {current}")
        deltas.append(json.loads(row[1]))
        current = row[0]
    state: StateMap = {}
    for delta in reversed(deltas):
        for type_, key, event_id in delta:
            if event_id is None:
                state.pop((str(type_), str(key)), None)
            else:
                state[(str(type_), str(key))] = event_id
    return state


def set_event_state(
    conn: sqlite3.Connection, event_id: str, *, before_group: int, after_group: int
) -> None:
    """Record the state groups before and after ``event_id`` (replacing any)."""
    conn.execute(
        "INSERT INTO event_state (event_id, state_before, state_after) VALUES (?, ?, ?)"
        " ON CONFLICT (event_id) DO UPDATE SET"
        " state_before = excluded.state_before, state_after = excluded.state_after",
        (event_id, before_group, after_group),
    )


def record_event_state(
    conn: sqlite3.Connection,
    *,
    room_id: str,
    event_id: str,
    prev_event_ids: Sequence[str],
    state_before: Mapping[tuple[str, str], str],
    state_key: tuple[str, str] | None,
) -> tuple[int, int]:
    """Store the state before and after ``event_id`` and record both for it; return the
    (before, after) groups. Every path that stores an event (local, remote, backfilled)
    calls this one: the state before is written as a delta over the state after the first
    prev event that has one, the state after (a state event: ``state_key`` is its
    ``(type, state_key)``) as a delta over the state before.
    """
    prev_group = None
    for prev in prev_event_ids:
        groups = get_event_state_groups(conn, prev)
        if groups is not None:
            prev_group = groups[1]
            break
    before = store_state_group(conn, room_id=room_id, state=state_before, prev_group=prev_group)
    after = before
    if state_key is not None:
        after = store_state_group(
            conn, room_id=room_id, state={**state_before, state_key: event_id}, prev_group=before
        )
    set_event_state(conn, event_id, before_group=before, after_group=after)
    return before, after


def get_event_state_groups(conn: sqlite3.Connection, event_id: str) -> tuple[int, int] | None:
    """``(before_group, after_group)`` for the event, or None if not recorded."""
    row = conn.execute(
        "SELECT state_before, state_after FROM event_state WHERE event_id = ?", (event_id,)
    ).fetchone()
    return (int(row[0]), int(row[1])) if row is not None else None


def get_state_before(conn: sqlite3.Connection, event_id: str) -> StateMap | None:
    """The room state before the event, or None if not recorded."""
    groups = get_event_state_groups(conn, event_id)
    return load_state_group(conn, groups[0]) if groups is not None else None


def get_state_after(conn: sqlite3.Connection, event_id: str) -> StateMap | None:
    """The room state after the event, or None if not recorded."""
    groups = get_event_state_groups(conn, event_id)
    return load_state_group(conn, groups[1]) if groups is not None else None


def _diff(
    old: Mapping[tuple[str, str], str], new: Mapping[tuple[str, str], str]
) -> list[list[str | None]]:
    changed: list[list[str | None]] = [
        [type_, key, event_id]
        for (type_, key), event_id in sorted(new.items())
        if old.get((type_, key)) != event_id
    ]
    removed: list[list[str | None]] = [
        [type_, key, None] for (type_, key) in sorted(old) if (type_, key) not in new
    ]
    return changed + removed


def _insert_group(
    conn: sqlite3.Connection,
    room_id: str,
    prev_group: int | None,
    chain_length: int,
    delta: list[list[str | None]] | list[list[str]],
) -> int:
    cur = conn.execute(
        "INSERT INTO state_groups (room_id, prev_group, chain_length, delta) VALUES (?, ?, ?, ?)",
        (room_id, prev_group, chain_length, json.dumps(delta, separators=(",", ":"))),
    )
    assert cur.lastrowid is not None
    return int(cur.lastrowid)
