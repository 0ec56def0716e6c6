"""What the person who runs the box does: the operator's actions, each written once.

- `actions.py`: users, registration tokens, LAN peers and status: the CLI (`relay user|
  token|peers|status`), the operator page (relay/web/) and Synapse's admin API
  (relay/client/synapse_admin_*) all call these.
- `backup.py`: `relay backup` / `relay restore` and the page's backup download: one
  archive (database by SQLite's online backup API, keys, certificate, config, media) with
  a manifest of checksums.

Rules: an action that writes is a `*_txn(conn, ...)` function that never commits; SQL
lives in `store/`; problems are `MatrixError`s.
"""
