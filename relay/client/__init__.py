"""The Client-Server API: one module per group of endpoints, as the spec groups them.

`routes.py` is the table of every path, method and handler; `route.py` its row type;
`auth.py` who is calling (access tokens); `params.py` what ids and values a client may
name; `format.py` events as clients see them; `tokens.py` the opaque tokens handed out.
Every other module is the thin HTTP side of one area (login, registration, rooms,
sync, keys, media, ...): it parses and checks the request, calls a service from
`relay/rooms`, `relay/sync`, `relay/e2ee`, `relay/accounts.py` or `relay/media`, and
renders the answer.

Rules: handlers hold no state and run no SQL; they reach services through
`request.app.state.services`. Errors are raised as `relay.errors` exceptions and become
JSON at the HTTP edge.

Spec: https://spec.matrix.org/v1.16/client-server-api/
"""
