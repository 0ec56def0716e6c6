"""Bundled aggregations: what a client gets in `unsigned["m.relations"]` of an event
(the newest valid edit, the thread summary, the references), read in the caller's
store snapshot.

Rules kept:

- What a relation is and which edit counts is relay/events/relations.py's; which
  events relate to which is the `event_relations` index (store/relations.py), filled
  by `insert_pdu_txn` on every path that stores an event.
- Only timeline events count (hidden ones never do), only up to the reader's bound
  (`until`: a user who left sees relations up to their leave), and never a redacted
  one: a redaction that applies (`RoomService.redacted_by_txn`) removes the relation,
  as Synapse drops its row. A redacted, state, edit or annotation event gets no
  aggregations.
- `m.replace`: the newest valid edit (same sender, same type, original not an edit),
  served whole; clients apply `m.new_content`, the original is served unchanged.
- `m.thread`: `latest_event` (the deepest reply, ties by stream order; with its own
  newest edit bundled), `count` of replies, `current_user_participated` (the reader
  sent the root or a reply).
- `m.reference`: `{"chunk": [{"event_id": ...}]}` in topological order.
- `m.annotation` is not bundled (Synapse stopped in 1.80; clients page /relations).

Spec: https://spec.matrix.org/v1.16/client-server-api/#aggregations-of-child-events
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.events.pdu import Pdu
from relay.events.relations import (
    REFERENCE,
    REPLACE,
    THREAD,
    is_valid_edit,
    newest_edit_key,
    takes_aggregations,
)
from relay.rooms.service import RoomService
from relay.rooms.visibility import Viewer, visible_txn
from store import Connection
from store import relations as store_relations


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    latest: Pdu
    #: The newest valid edit of `latest`, bundled in its own `unsigned`.
    latest_edit: Pdu | None
    count: int
    participated: bool


@dataclass(frozen=True, slots=True)
class Aggregations:
    """An event's `unsigned["m.relations"]`, as Pdus (the client layer formats them)."""

    replace: Pdu | None = None
    thread: ThreadSummary | None = None
    references: tuple[str, ...] = field(default=())

    def is_empty(self) -> bool:
        return self.replace is None and self.thread is None and not self.references


def _live_children(
    conn: Connection,
    rooms: RoomService,
    room_id: str,
    parent_ids: Iterable[str],
    rel_type: str,
    until: int | None,
) -> list[dict[str, Any]]:
    rows = store_relations.relation_children(conn, room_id, parent_ids, rel_type, max_stream=until)
    return [
        row
        for row in rows
        if not row["redaction_claimed"] or rooms.redacted_by_txn(conn, row["event_id"]) is None
    ]


def _newest_edits_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    originals: Sequence[Pdu],
) -> dict[str, Pdu]:
    """`{original id: its newest valid edit}` for those of `originals` that have one."""
    if not originals:
        return {}
    by_id = {pdu.event_id: pdu for pdu in originals}
    rows = _live_children(conn, rooms, viewer.room_id, by_id, REPLACE, viewer.until)
    edits = rooms.get_pdus_txn(conn, [row["event_id"] for row in rows])
    visible = {p.event_id: p for p in visible_txn(conn, rooms, viewer, list(edits.values()))}
    newest: dict[str, Pdu] = {}
    for row in rows:
        edit = visible.get(row["event_id"])
        original = by_id[row["parent_id"]]
        if edit is None:
            continue
        if not is_valid_edit(original.as_dict(), edit.as_dict()):
            continue
        best = newest.get(original.event_id)
        if best is None or newest_edit_key(edit.as_dict(), edit.event_id) > newest_edit_key(
            best.as_dict(), best.event_id
        ):
            newest[original.event_id] = edit
    return newest


def aggregations_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    pdus: Iterable[Pdu],
) -> dict[str, Aggregations]:
    """`{event_id: Aggregations}` for those of `pdus` (all of `viewer`'s room) that have
    any, as `viewer` may see them."""
    eligible = [
        pdu
        for pdu in dict((p.event_id, p) for p in pdus).values()
        if pdu.room_id == viewer.room_id
        and takes_aggregations(pdu.as_dict())
        and rooms.redacted_by_txn(conn, pdu.event_id) is None
    ]
    if not eligible:
        return {}
    ids = [pdu.event_id for pdu in eligible]
    edits = _newest_edits_txn(conn, rooms, viewer, eligible)
    threads = _thread_summaries_txn(conn, rooms, viewer, eligible)
    references: dict[str, list[str]] = {}
    for row in _live_children(conn, rooms, viewer.room_id, ids, REFERENCE, viewer.until):
        references.setdefault(row["parent_id"], []).append(row["event_id"])
    out = {}
    for event_id in ids:
        found = Aggregations(
            edits.get(event_id), threads.get(event_id), tuple(references.get(event_id, ()))
        )
        if not found.is_empty():
            out[event_id] = found
    return out


def _thread_summaries_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    roots: Sequence[Pdu],
) -> dict[str, ThreadSummary]:
    by_id = {pdu.event_id: pdu for pdu in roots}
    replies: dict[str, list[dict[str, Any]]] = {}
    for row in _live_children(conn, rooms, viewer.room_id, by_id, THREAD, viewer.until):
        replies.setdefault(row["parent_id"], []).append(row)
    latest_ids = {root: rows[-1]["event_id"] for root, rows in replies.items()}
    found = rooms.get_pdus_txn(conn, latest_ids.values())
    # As the reader may see them (an erased sender's reply pruned).
    latest = {p.event_id: p for p in visible_txn(conn, rooms, viewer, list(found.values()))}
    latest_edits = _newest_edits_txn(conn, rooms, viewer, list(latest.values()))
    out = {}
    for root_id, rows in replies.items():
        newest = latest.get(latest_ids[root_id])
        if newest is None:
            continue
        participated = by_id[root_id].sender == viewer.user_id or any(
            row["sender"] == viewer.user_id for row in rows
        )
        out[root_id] = ThreadSummary(
            newest, latest_edits.get(newest.event_id), len(rows), participated
        )
    return out
