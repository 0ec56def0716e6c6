"""What a browser gets from the box, on the client listener beside the API.

- `chat_client`: the Matrix chat client (Hydrogen, built from web/ by `make` into
  `chat_client_build/`) at `/`, configured for this relay: files only, no Matrix logic.

Rules: nothing here is an API a Matrix client needs; every path under `/_matrix/` stays the
API's. Pages load nothing from anywhere but the box (a strict Content-Security-Policy says
so to the browser), so they work with no Internet.
"""
