"""State resolution v1 (room version 1 only).

The state before an event is the resolution of the states after its `prev_events`:

1. `R` is the union of the states, minus conflicts (a key holding different events in two
   sets; a key missing from some sets is not a conflict, as Synapse reads it);
2. conflicted `m.room.power_levels`, then `m.room.join_rules`, then `m.room.member` keys are
   resolved in turn, each against the state so far: the candidates sorted by ascending
   `depth`, then descending `sha1(event_id)`; the first is taken, and each next one replaces
   it while the auth rules allow it (with the previous one in force), else the walk stops;
3. every other conflicted key takes the event of greatest `depth` (then smallest
   `sha1(event_id)`) that the auth rules allow in `R`; if none is allowed, the last tried.

The auth rules run against `R`'s events for the keys the conflicted events need, starting
from the unconflicted state. Rejected events (and events `event_map` lacks) are never
candidates. Known to reset state in some forks: v2 fixed that; we keep v1 for v1 rooms only.

Spec: https://spec.matrix.org/v1.16/rooms/v1/#state-resolution
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Mapping
from typing import Any

from relay.events.auth import (
    JOIN_RULES,
    MEMBER,
    POWER_LEVELS_KEY,
    AuthError,
    auth_types_for_event,
    check_auth,
)
from relay.events.room_versions import RoomVersion
from relay.events.state_res_graph import EventSource

StateMap = dict[tuple[str, str], str]
Event = Mapping[str, Any]
AuthEvents = dict[tuple[str, str], Event]


def resolve_state_v1(
    room_version: RoomVersion,
    state_sets: list[StateMap],
    event_map: EventSource,
    *,
    rejected: Container[str] = frozenset(),
) -> StateMap:
    """The v1 resolution of `state_sets` (see the module docstring)."""
    if len(state_sets) == 1:
        return dict(state_sets[0])
    unconflicted, conflicted_ids = separate_v1(state_sets)
    conflicted: dict[tuple[str, str], list[Event]] = {}
    for key, ids in conflicted_ids.items():
        events = [e for i in sorted(ids) if i not in rejected and (e := event_map.get(i))]
        if len(events) > 1:
            conflicted[key] = events
        elif events:
            unconflicted[key] = events[0]["event_id"]
    auth: AuthEvents = {}
    for events in conflicted.values():
        for event in events:
            for key in auth_types_for_event(event, room_version):
                if key not in auth and key in unconflicted:
                    found = event_map.get(unconflicted[key])
                    if found is not None:
                        auth[key] = found
    resolved = _resolve_conflicts(room_version, conflicted, auth)
    return {**unconflicted, **{key: event["event_id"] for key, event in resolved.items()}}


def separate_v1(
    state_sets: list[StateMap],
) -> tuple[StateMap, dict[tuple[str, str], set[str]]]:
    """The unconflicted state and the conflicts (key -> the distinct event ids)."""
    unconflicted: StateMap = {}
    conflicted: dict[tuple[str, str], set[str]] = {}
    for state_set in state_sets:
        for key, event_id in state_set.items():
            if key in conflicted:
                conflicted[key].add(event_id)
            elif key not in unconflicted:
                unconflicted[key] = event_id
            elif unconflicted[key] != event_id:
                conflicted[key] = {unconflicted.pop(key), event_id}
    return unconflicted, conflicted


def _resolve_conflicts(
    rv: RoomVersion, conflicted: dict[tuple[str, str], list[Event]], auth: AuthEvents
) -> dict[tuple[str, str], Event]:
    resolved: dict[tuple[str, str], Event] = {}
    if POWER_LEVELS_KEY in conflicted:
        resolved[POWER_LEVELS_KEY] = _resolve_auth_events(rv, conflicted[POWER_LEVELS_KEY], auth)
    auth.update(resolved)
    for event_type in (JOIN_RULES, MEMBER):
        for key, events in conflicted.items():
            if key[0] == event_type:
                resolved[key] = _resolve_auth_events(rv, events, auth)
        auth.update(resolved)
    for key, events in conflicted.items():
        if key not in resolved:
            resolved[key] = _resolve_normal_events(rv, events, auth)
    return resolved


def _ordered(events: list[Event]) -> list[Event]:
    """Greatest depth first, then smallest sha1(event_id)."""

    def key(event: Event) -> tuple[int, str]:
        depth = event.get("depth")
        sha1 = hashlib.sha1(str(event.get("event_id")).encode("utf-8")).hexdigest()
        return (-(depth if isinstance(depth, int) else 0), sha1)

    return sorted(events, key=key)


def _resolve_auth_events(rv: RoomVersion, events: list[Event], auth: AuthEvents) -> Event:
    ascending = list(reversed(_ordered(events)))
    keys = {key for event in events for key in auth_types_for_event(event, rv)}
    state: AuthEvents = {key: auth[key] for key in keys if key in auth}
    previous = ascending[0]
    for event in ascending[1:]:
        state[(previous.get("type", ""), previous.get("state_key", ""))] = previous
        try:
            check_auth(event, state, rv)
        except AuthError:
            return previous
        previous = event
    return previous


def _resolve_normal_events(rv: RoomVersion, events: list[Event], auth: AuthEvents) -> Event:
    ordered = _ordered(events)
    for event in ordered:
        try:
            check_auth(event, auth, rv)
        except AuthError:
            continue
        return event
    return ordered[-1]
