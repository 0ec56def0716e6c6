"""The Server-Server API, both directions.

Inbound (other servers calling us):
- `routes.py` the route table; `inbound_auth.py` the X-Matrix check of every request;
  `acl.py` server ACLs on what others ask.
- `transactions.py` (`/send`, and the transaction stream another relay pushes on),
  `ingest.py` (checking PDUs and filling gaps), `edus.py`;
- `membership.py` (make/send join, leave, knock, invite), `room_events.py` (event, state,
  backfill, missing events), `query.py`, `user_keys.py`, `content_repository.py`;
- `version.py`, `key_server.py`, `notary.py` (our keys and keys we vouch for).

Outbound (us calling others):
- `client.py` the signed HTTPS client; `resolver.py` server name to address;
  `destinations.py` where we may connect at all (the one destination policy) and the
  key-fetch budget per requester; `request_auth.py` signing and checking X-Matrix headers;
- `sender.py` one task per destination draining its outbox; `catch_up.py`;
- `transaction_stream.py` the relay-to-relay transport of transactions (one compressed
  WebSocket, negotiated; `content_coding.py` gzips other bodies between relays);
- `link_budget.py` what a destination's link carries per request (kept per destination by
  the client), by which the sender sizes transactions and `pull.py` sizes every pull of
  events (`/get_missing_events`, `/backfill`, `/state_ids`, `/event_auth`, `/event`);
- `remote_membership.py` our users joining elsewhere; `backfill.py`; `media_fetch.py`;
- `server_keys.py` the KeyRing: fetching and caching other servers' verify keys.

Both ways:
- `peer_policy.py` whom we federate with (`mesh.policy`): an origin or destination it
  refuses gets 403 inbound and nothing outbound.

Rules: every inbound PDU goes through `relay.events.pdu.parse_pdu` and the rooms core's
checks; every outbound request goes through `client.py`, which asks `peer_policy.py` first
(may we talk to this server at all?) and connects over `destinations.guarded_client` (may
we connect to this address?); every signed inbound request goes through `inbound_auth.py`,
which asks `peer_policy.py` before checking the signature; SQL lives in `store/`.

Spec: https://spec.matrix.org/v1.16/server-server-api/
"""
