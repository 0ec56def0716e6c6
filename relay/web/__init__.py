"""What a browser gets from the box, on the client listener beside the API.

- `chat_client`: the Matrix chat client (Hydrogen, built from web/ by `make` into
  `chat_client_build/`) at `/`, configured for this relay: files only, no Matrix logic.
- `admin_page` (+ `admin_html`): the operator page at `/_relay/admin/`, for server admins;
  its actions are `relay.operator.actions`'s and `relay.operator.backup`'s, as the CLI's are.
- `metrics`: `/metrics` (Prometheus text) on the metrics listener, and the middleware that
  counts requests on the others (`relay.runtime.metrics` keeps the counters).

Rules: nothing here is an API a Matrix client needs; every path under `/_matrix/` stays the
API's. Pages load nothing from anywhere but the box (a strict Content-Security-Policy says
so to the browser), so they work with no Internet.
"""
