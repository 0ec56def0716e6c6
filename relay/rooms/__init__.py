"""The rooms core: events into and out of the room graph, as one user may see them.

- `service.py`: `RoomService`: build a local event, check it with the auth rules,
  store it, wake sync, queue it for other servers.
- `remote_pdus.py`: accepting events other servers wrote (checks, soft failure,
  state resolution, redactions held until their target is known).
- `reads.py`: reading rooms as one user may: timeline pages, events, context, state,
  members.
- `visibility.py`: history visibility: which events and state a user may read.
- `relations.py`: bundled aggregations (`unsigned["m.relations"]`: edits, threads,
  references) attached to every event a read returns.
- `relation_reads.py`: `/relations` pages and the `/threads` list.
- `directory.py`: room aliases and the published room list.
- `user_directory.py`: finding users by id or display name.
- `filters.py`: event and sync filters, parsed strictly into frozen values, and matched
  by reads and sync alike.

Rules: the Matrix rules themselves (auth, redaction, state resolution, ids) live in
`relay/events/` and are called from here, never restated; SQL lives in `store/`.
The HTTP layers (`relay/client/`, `relay/federation/`) call in; nothing here imports them.
"""
