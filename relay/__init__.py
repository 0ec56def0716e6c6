"""edge-relay: a small Matrix homeserver for a box in the field.

The map, bottom to top (a package imports only packages above it in this list, and
`store/`, which imports nothing of `relay`):

- `events/`: the pure Matrix event model (canonical JSON, ids, hashes, signing, redaction,
  room versions, auth rules, state resolution, server ACLs). No I/O.
- `errors.py`, `config/`: Matrix errors (one exception per errcode); the configuration
  (one table of settings, `config/table.py`, drives parsing, `relay init` and the README).
- `runtime/`: plumbing: database access from trio, the HTTP edge, identity on disk,
  notifier, rate limits, metrics counters, housekeeping, systemd notifications.
- `services.py`: the type of the services handed to the HTTP layers (one field per
  service). At run time it imports only the two lines above; the classes of its fields,
  which live higher up, only under `TYPE_CHECKING`.
- `rooms/`: the rooms core: local and remote events into the graph, reads, visibility,
  directories.
- `e2ee/`: device keys, device lists, to-device messages, key backup.
- `sync/`: what clients learn by syncing: the builder and its sections (typing, presence,
  receipts, account data, devices: the last reads `e2ee/`).
- `accounts.py`: accounts, devices and access tokens.
- `media/`: the content repository.
- `federation/`: the Server-Server API: inbound routes and checks, outbound client and
  sender, keys.
- `push/`: pushers and the delivery of notifications to push gateways (reads `rooms/`
  and `sync/`, connects through `federation/`'s destination policy).
- `mesh/`: LAN peers: discovery, trust, gossip.
- `operator/`: what the person who runs the box does (users, tokens, peers, status,
  backup and restore), written once for the CLI, the operator page and the admin API.
- `web/`: the box's web face: the chat client served at `/`, the operator page, the
  metrics listener.
- `client/`: the Client-Server API routes (its listener also serves `web/`'s pages, and
  the Synapse admin API calls `operator/`).
- `node.py`, `cli.py`: the process that builds and wires the services (the composition
  root), and the `relay` command.

All SQL is in `store/`: only `runtime/database.py` imports `sqlite3`; the rest name the
connection `store.Connection`. tests/test_layers.py enforces these rules
(`LAYER_ORDER` is this list).
"""

__version__ = "0.1.0"
