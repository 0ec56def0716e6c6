"""State resolution: v2 (room versions 2 to 11) and v2.1 (room version 12, MSC4297); room
version 1 goes to `state_res_v1`.

`resolve_state(room_version, state_sets, event_map)` merges the states after each of an
event's `prev_events` into the state before it:

1. split the state sets into the unconflicted state map and the conflicted state set (a key
   missing from some set is conflicted);
2. the full conflicted set = conflicted set ∪ auth difference (∪ conflicted state subgraph
   in v2.1);
3. power events of the full conflicted set, with their auth ancestors in it, in reverse
   topological power ordering, go through the iterative auth checks starting from the
   unconflicted state map (v2) or from an empty map (v2.1);
4. the other events, in mainline ordering based on the resulting power levels, go through the
   iterative auth checks from there;
5. the unconflicted state map is laid over the result.

Inputs are plain: state sets map `(type, state_key)` to event ids; `event_map` is anything
with `.get(event_id) -> dict | None` (a dict, or a store-backed `EventSource`) holding every
event in the state sets and their auth chains, each dict with its `"event_id"`. An optional
`auth_chain_fn(event_id) -> set of ids` (excluding the event itself) lets a store answer auth
chains from an index instead of walking `event_map`. `rejected` names events that were
rejected: they are never used as auth events, and are skipped by the iterative auth checks
(as Synapse does). Everything here is synchronous and does no I/O of its own.

Spec: https://spec.matrix.org/v1.16/rooms/v2/#state-resolution,
https://spec.matrix.org/v1.16/rooms/v12/#state-resolution.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import Any

from relay.events.auth import (
    CREATE,
    POWER_LEVELS_KEY,
    AuthError,
    auth_types_for_event,
    check_auth,
)
from relay.events.ids import create_event_id_of
from relay.events.room_versions import RoomVersion
from relay.events.state_res_graph import (
    AuthChainFn,
    EventSource,
    auth_difference,
    auth_event_ids,
    conflicted_subgraph,
    is_power_event,
    mainline_order,
    reverse_topological_power_order,
    state_key_of,
)
from relay.events.state_res_v1 import resolve_state_v1

StateMap = dict[tuple[str, str], str]

__all__ = ["AuthChainFn", "EventSource", "StateMap", "resolve_state", "separate"]


def resolve_state(
    room_version: RoomVersion,
    state_sets: list[StateMap],
    event_map: EventSource,
    auth_chain_fn: AuthChainFn | None = None,
    *,
    rejected: Container[str] = frozenset(),
) -> StateMap:
    """The resolution of `state_sets` (see the module docstring)."""
    if room_version.state_res == "v1":
        return resolve_state_v1(room_version, state_sets, event_map, rejected=rejected)
    unconflicted, conflicted = separate(state_sets)
    if not conflicted:
        return unconflicted
    conflicted_ids = {event_id for ids in conflicted.values() for event_id in ids}
    full = conflicted_ids | auth_difference(state_sets, event_map, auth_chain_fn)
    v21 = room_version.state_res == "v2.1"
    if v21:
        full |= conflicted_subgraph(conflicted_ids, event_map, auth_chain_fn)
    full = {event_id for event_id in full if event_map.get(event_id) is not None}
    create_event = _create_event(room_version, state_sets, event_map)

    power_events = [e for e in full if is_power_event(event_map.get(e) or {})]
    ordered = reverse_topological_power_order(
        power_events, full, event_map, room_version, create_event
    )
    base: StateMap = {} if v21 else dict(unconflicted)
    # v10/v11 events cite the create event; only v12 needs it handed to the auth rules.
    if not room_version.room_id_is_create_event_hash:
        create_event = None
    resolved = iterative_auth_checks(
        room_version, ordered, base, event_map, rejected=rejected, create_event=create_event
    )

    picked = set(ordered)
    rest = mainline_order(
        (e for e in full if e not in picked), resolved.get(POWER_LEVELS_KEY), event_map
    )
    resolved = iterative_auth_checks(
        room_version, rest, resolved, event_map, rejected=rejected, create_event=create_event
    )
    resolved.update(unconflicted)
    return resolved


def separate(state_sets: list[StateMap]) -> tuple[StateMap, dict[tuple[str, str], set[str]]]:
    """The unconflicted state map (same event under a key in every set) and the conflicted
    state set, as key -> the distinct event ids found under it."""
    unconflicted: StateMap = {}
    conflicted: dict[tuple[str, str], set[str]] = {}
    keys = {key for state_set in state_sets for key in state_set}
    for key in keys:
        values = [state_set.get(key) for state_set in state_sets]
        if all(v is not None and v == values[0] for v in values):
            unconflicted[key] = values[0]  # type: ignore[assignment]
        else:
            conflicted[key] = {v for v in values if v is not None}
    return unconflicted, conflicted


def iterative_auth_checks(
    room_version: RoomVersion,
    event_ids: Iterable[str],
    base_state: StateMap,
    event_map: EventSource,
    *,
    rejected: Container[str] = frozenset(),
    create_event: Mapping[str, Any] | None = None,
) -> StateMap:
    """Apply each event in order to the state if the auth rules allow it against that state,
    falling back to the event's own (non-rejected) auth events for keys the state lacks."""
    state = dict(base_state)
    for event_id in event_ids:
        event = event_map.get(event_id)
        key = state_key_of(event) if event is not None else None
        if event is None or key is None or event_id in rejected:
            continue
        auth_state: dict[tuple[str, str], Mapping[str, Any]] = {}
        for auth_id in auth_event_ids(event):
            auth_event = event_map.get(auth_id)
            auth_key = state_key_of(auth_event) if auth_event is not None else None
            if auth_key is not None and auth_id not in rejected:
                auth_state[auth_key] = auth_event  # type: ignore[assignment]
        for auth_key in auth_types_for_event(event, room_version):
            state_id = state.get(auth_key)
            state_event = event_map.get(state_id) if state_id is not None else None
            if state_event is not None and state_id not in rejected:
                auth_state[auth_key] = state_event
        try:
            check_auth(event, auth_state, room_version, create_event=create_event)
        except AuthError:
            continue
        state[key] = event_id
    return state


def _create_event(
    room_version: RoomVersion, state_sets: list[StateMap], event_map: EventSource
) -> Mapping[str, Any] | None:
    """The room's create event, which v12 events do not cite: named by any state set, else
    derived from a v12 room id (`!hash` -> `$hash`)."""
    for state_set in state_sets:
        create_id = state_set.get((CREATE, ""))
        create = event_map.get(create_id) if create_id is not None else None
        if create is not None:
            return create
    if room_version.room_id_is_create_event_hash:
        for state_set in state_sets:
            for event_id in state_set.values():
                room_id = (event_map.get(event_id) or {}).get("room_id")
                if isinstance(room_id, str) and room_id.startswith("!"):
                    return event_map.get(create_event_id_of(room_id))
    return None
