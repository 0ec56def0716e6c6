"""The auth-graph pieces of state resolution v2/v2.1: auth chains, the auth difference, the
conflicted state subgraph, and the two orderings (reverse topological power, mainline).

All of it walks `auth_events` edges of plain event dicts fetched through an `EventSource`
(anything with `.get(event_id) -> dict | None`, a dict included). Walks are iterative, so a
long room does not hit Python's recursion limit. An event the source lacks is treated as
absent, as Synapse does.

Spec: https://spec.matrix.org/v1.16/rooms/v2/#definitions and
https://spec.matrix.org/v1.16/rooms/v12/#definitions (conflicted state subgraph, MSC4297).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Set
from typing import Any, Protocol

from relay.events.auth import (
    CREATE,
    MEMBER,
    POWER_LEVELS_KEY,
    membership,
    user_power_level,
)
from relay.events.ids import referenced_ids
from relay.events.room_versions import RoomVersion


class EventSource(Protocol):
    """Where state resolution reads events: a dict of event id -> event dict works, and so
    does a store-backed object with the same `get`."""

    def get(self, event_id: str, /) -> Mapping[str, Any] | None: ...


AuthChainFn = Callable[[str], Set[str]]


def auth_event_ids(event: Mapping[str, Any]) -> list[str]:
    """The ids in an event's `auth_events` (plain ids, or v1/v2 `[id, hashes]` pairs)."""
    return referenced_ids(event.get("auth_events"))


def state_key_of(event: Mapping[str, Any]) -> tuple[str, str] | None:
    state_key = event.get("state_key")
    return (event.get("type", ""), state_key) if isinstance(state_key, str) else None


def is_power_event(event: Mapping[str, Any]) -> bool:
    """A *power event*: power levels, join rules (and, as Synapse counts it, the create
    event), or a leave/ban member event whose sender is not its target."""
    key = state_key_of(event)
    if key in (POWER_LEVELS_KEY, ("m.room.join_rules", ""), (CREATE, "")):
        return True
    if key is not None and key[0] == MEMBER and membership(event) in ("leave", "ban"):
        return event.get("sender") != key[1]
    return False


def closure(seeds: Iterable[str], events: EventSource) -> set[str]:
    """The seeds plus everything reachable from them along `auth_events` edges."""
    seen: set[str] = set()
    stack = list(seeds)
    while stack:
        event_id = stack.pop()
        if event_id in seen:
            continue
        seen.add(event_id)
        event = events.get(event_id)
        if event is not None:
            stack.extend(a for a in auth_event_ids(event) if a not in seen)
    return seen


def auth_difference(
    state_sets: list[dict[tuple[str, str], str]],
    events: EventSource,
    auth_chain_fn: AuthChainFn | None,
) -> set[str]:
    """∪Cᵢ − ∩Cᵢ, where Cᵢ is the full auth chain of state set i. As in Synapse, Cᵢ counts the
    state events themselves as well as their auth chains."""
    chains: list[set[str]] = []
    for state_set in state_sets:
        seeds = set(state_set.values())
        if auth_chain_fn is None:
            chains.append(closure(seeds, events))
        else:
            chain = set(seeds)
            for event_id in seeds:
                chain |= auth_chain_fn(event_id)
            chains.append(chain)
    if not chains:
        return set()
    return set[str]().union(*chains) - chains[0].intersection(*chains[1:])


def conflicted_subgraph(
    conflicted: set[str], events: EventSource, auth_chain_fn: AuthChainFn | None
) -> set[str]:
    """Every event on an `auth_events` path between two conflicted events, endpoints
    included (v2.1, MSC4297): reachable from a conflicted event, and reaching one."""
    if auth_chain_fn is None:
        reachable = closure(conflicted, events)
    else:
        reachable = set(conflicted)
        for event_id in conflicted:
            reachable |= auth_chain_fn(event_id)
    citers: dict[str, set[str]] = {}
    for event_id in reachable:
        event = events.get(event_id)
        for auth_id in auth_event_ids(event) if event is not None else ():
            if auth_id in reachable:
                citers.setdefault(auth_id, set()).add(event_id)
    reaches = set()
    stack = list(conflicted & reachable)
    while stack:
        event_id = stack.pop()
        if event_id in reaches:
            continue
        reaches.add(event_id)
        stack.extend(citers.get(event_id, ()))
    return reachable & reaches


def sender_power(
    event: Mapping[str, Any],
    events: EventSource,
    room_version: RoomVersion,
    create_event: Mapping[str, Any] | None,
) -> int | float:
    """The sender's power level read from the event's own auth events (the power ordering
    compares senders "when looking at their respective auth_events")."""
    auth_state: dict[tuple[str, str], Mapping[str, Any]] = {}
    for auth_id in auth_event_ids(event):
        auth_event = events.get(auth_id)
        if auth_event is None:
            continue
        key = state_key_of(auth_event)
        if key in (POWER_LEVELS_KEY, (CREATE, "")):
            auth_state[key] = auth_event
    create = auth_state.get((CREATE, ""), create_event)
    if event.get("type") == CREATE:
        create = event
    return user_power_level(event.get("sender", ""), auth_state, room_version, create)


def reverse_topological_power_order(
    event_ids: Iterable[str],
    full_conflicted: set[str],
    events: EventSource,
    room_version: RoomVersion,
    create_event: Mapping[str, Any] | None,
) -> list[str]:
    """The given events plus their auth ancestors within the full conflicted set, sorted by
    Kahn's algorithm taking, among the ready events, the greatest sender power first, then
    the smallest `origin_server_ts`, then the smallest event id.

    The ancestor walk follows only edges whose ends are both in the full conflicted set, as
    Synapse (and ruma) build the graph.
    """
    graph: dict[str, set[str]] = {}
    stack = [e for e in event_ids if events.get(e) is not None]
    while stack:
        event_id = stack.pop()
        if event_id in graph:
            continue
        parents = {
            a
            for a in auth_event_ids(events.get(event_id) or {})
            if a in full_conflicted and events.get(a) is not None
        }
        graph[event_id] = parents
        stack.extend(p for p in parents if p not in graph)

    def order(event_id: str) -> tuple[float, int, str]:
        event = events.get(event_id) or {}
        power = sender_power(event, events, room_version, create_event)
        return (-power, _ts(event), event_id)

    return kahn_sort(graph, order)


def kahn_sort(graph: dict[str, set[str]], key: Callable[[str], Any]) -> list[str]:
    """Topological order of `graph` (node -> nodes it points to; pointed-to nodes first),
    choosing the smallest `key` among ready nodes at each step."""
    pending = {node: len(edges) for node, edges in graph.items()}
    citers: dict[str, list[str]] = {node: [] for node in graph}
    for node, edges in graph.items():
        for target in edges:
            citers[target].append(node)
    ready = [(key(node), node) for node, count in pending.items() if count == 0]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        _, node = heapq.heappop(ready)
        result.append(node)
        for citer in citers[node]:
            pending[citer] -= 1
            if pending[citer] == 0:
                heapq.heappush(ready, (key(citer), citer))
    return result


def _power_levels_parent(event: Mapping[str, Any], events: EventSource) -> str | None:
    for auth_id in auth_event_ids(event):
        auth_event = events.get(auth_id)
        if auth_event is not None and state_key_of(auth_event) == POWER_LEVELS_KEY:
            return auth_id
    return None


def mainline_order(
    event_ids: Iterable[str], power_levels_id: str | None, events: EventSource
) -> list[str]:
    """The events sorted by mainline ordering based on `power_levels_id`: the earlier in the
    mainline their nearest power-levels ancestor sits (none at all: earliest), then by
    `origin_server_ts`, then by event id."""
    mainline: dict[str, int] = {}
    current = power_levels_id
    while current is not None and current not in mainline:
        mainline[current] = len(mainline)
        event = events.get(current)
        current = _power_levels_parent(event, events) if event is not None else None

    def position(event_id: str) -> float:
        seen: set[str] = set()
        event = events.get(event_id)
        parent = _power_levels_parent(event, events) if event is not None else None
        while parent is not None and parent not in seen:
            if parent in mainline:
                return mainline[parent]
            seen.add(parent)
            parent_event = events.get(parent)
            parent = _power_levels_parent(parent_event, events) if parent_event else None
        return float("inf")

    def order(event_id: str) -> tuple[float, int, str]:
        return (-position(event_id), _ts(events.get(event_id) or {}), event_id)

    return sorted(event_ids, key=order)


def _ts(event: Mapping[str, Any]) -> int:
    ts = event.get("origin_server_ts")
    return ts if isinstance(ts, int) else 0
