"""The rooms core: events into and out of the room graph, as one user may see them.

- `service.py`: `RoomService`: build a local event, check it with the auth rules,
  store it, wake sync, queue it for other servers.
- `create.py`: creating a room (`createRoom`): presets, power levels, initial state.
- `pdu_cache.py`: stored events by id, filled only once their write has committed.
- `remote_pdus.py`: accepting events other servers wrote (checks, soft failure,
  state resolution, redactions held until their target is known).
- `reads.py`: reading rooms as one user may: timeline pages, events, context, state,
  members.
- `visibility.py`: history visibility: which events and state a user (or a server) may
  read, and in what form (an erased sender's events pruned for those who came later).
- `relations.py`: bundled aggregations (`unsigned["m.relations"]`: edits, threads,
  references) attached to every event a read returns.
- `relation_reads.py`: `/relations` pages and the `/threads` list.
- `directory.py`: room aliases and the published room list.
- `user_directory.py`: finding users by id or display name.
- `hierarchy.py`: a room's entry in a space hierarchy or room summary, its ordered
  children, and who (a user, a server) may see it.
- `restricted_joins.py`: restricted rooms (Element's "Space members"): who may join
  because they belong to an allowed room, and which of our users vouches for them.
- `upgrade.py`: room upgrades (tombstone, new room, what carries over).
- `search.py`: server-side search (`POST /search`): the request, the words as an FTS5
  query, the hits as the user may see them; `search_index.py`: what of an event the
  index keeps, filled when it is stored and dropped when a redaction applies.
- `filters.py`: event and sync filters, parsed strictly into frozen values, and matched
  by reads and sync alike.

Rules: the Matrix rules themselves (auth, redaction, state resolution, ids) live in
`relay/events/` and are called from here, never restated; SQL lives in `store/`.
The HTTP layers (`relay/client/`, `relay/federation/`) call in; nothing here imports them.
"""
