"""Event relationships (`content["m.relates_to"]`): which event relates to which, how,
and which edits count.

Rules kept (spec "Forming relationships between events", "Event replacements"):

- A relation is `{"rel_type": str, "event_id": str}` inside `content["m.relates_to"]`;
  anything else there (a bare `m.in_reply_to`, wrong types) is no relation.
- State events and redactions never relate: their `m.relates_to` is ignored.
- An annotation's `key` is its aggregation key (only when a string).
- An edit (`m.replace`) counts only when it has the original's sender and type, and the
  original is not itself an edit; the newest valid one (origin_server_ts, then event_id,
  as Synapse) is the one servers bundle. Clients apply its `m.new_content`; the server
  serves the original unchanged (spec v1.7 on).
- No aggregations are bundled on state events, redacted events, or events that are
  themselves edits or annotations.

Spec: https://spec.matrix.org/v1.16/client-server-api/#forming-relationships-between-events,
https://spec.matrix.org/v1.16/client-server-api/#event-replacements
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REPLACE = "m.replace"
THREAD = "m.thread"
ANNOTATION = "m.annotation"
REFERENCE = "m.reference"

#: Relations whose holder gets no bundled aggregations of its own.
NO_AGGREGATIONS_ON = (REPLACE, ANNOTATION)


@dataclass(frozen=True, slots=True)
class Relation:
    rel_type: str
    parent_id: str
    #: An annotation's key (e.g. the reaction emoji); None for other types.
    key: str | None = None


def relation_of(event: Mapping[str, Any]) -> Relation | None:
    """The relation an event (a PDU or client event as a dict) declares, or None."""
    if "state_key" in event or event.get("type") == "m.room.redaction":
        return None
    content = event.get("content")
    relates = content.get("m.relates_to") if isinstance(content, Mapping) else None
    if not isinstance(relates, Mapping):
        return None
    rel_type, parent_id = relates.get("rel_type"), relates.get("event_id")
    if not isinstance(rel_type, str) or not isinstance(parent_id, str):
        return None
    key = relates.get("key") if rel_type == ANNOTATION else None
    return Relation(rel_type, parent_id, key if isinstance(key, str) else None)


def is_valid_edit(original: Mapping[str, Any], edit: Mapping[str, Any]) -> bool:
    """May `edit` (an `m.replace` of `original`) replace it?"""
    if "state_key" in original or "state_key" in edit:
        return False
    if original.get("sender") != edit.get("sender") or original.get("type") != edit.get("type"):
        return False
    own = relation_of(original)
    return own is None or own.rel_type != REPLACE


def newest_edit_key(edit: Mapping[str, Any], event_id: str) -> tuple[int, str]:
    """Sort key of edits: the greatest is the one that applies."""
    ts = edit.get("origin_server_ts")
    return (ts if isinstance(ts, int) else 0, event_id)


def takes_aggregations(event: Mapping[str, Any]) -> bool:
    """May bundled aggregations be attached to this (unredacted) event?"""
    if "state_key" in event:
        return False
    own = relation_of(event)
    return own is None or own.rel_type not in NO_AGGREGATIONS_ON
