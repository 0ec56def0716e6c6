"""The federation listener's route table."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Route, WebSocketRoute

from relay.federation import (
    content_repository,
    hierarchy,
    membership,
    notary,
    openid,
    query,
    room_events,
    transaction_stream,
    transactions,
    user_keys,
    version,
)
from relay.federation.inbound_auth import with_origin
from relay.runtime.http import RawPathRoute, make_app
from relay.services import Services

ROUTES = [
    Route("/health", version.health, methods=["GET"]),
    Route("/_matrix/federation/v1/version", version.get_version, methods=["GET"]),
    Route("/_matrix/key/v2/server", version.get_server_keys, methods=["GET"]),
    # The key id is deprecated and ignored: every key we have, as Synapse answers.
    Route("/_matrix/key/v2/server/{key_id}", version.get_server_keys, methods=["GET"]),
    Route("/_matrix/key/v2/query/{server_name}", notary.perspectives_key_query, methods=["GET"]),
    Route("/_matrix/key/v2/query", notary.bulk_perspectives_key_query, methods=["POST"]),
    # Asked by third parties with a user's OpenID token, not by servers: no X-Matrix.
    Route("/_matrix/federation/v1/openid/userinfo", openid.userinfo, methods=["GET"]),
    # Ours, between relays: transactions on one compressed WebSocket (signed upgrade).
    WebSocketRoute(transaction_stream.PATH, transactions.serve_transaction_stream),
    # Signed requests (X-Matrix): the handler receives the origin.
]

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"

# Signed requests (X-Matrix): the handler receives the origin.
SIGNED_ROUTES = [
    (f"{V1}/query/profile", query.query_profile, "GET"),
    (f"{V1}/query/directory", query.query_directory, "GET"),
    (f"{V1}/send/{{txn_id}}", transactions.send_transaction, "PUT"),
    (f"{V1}/event/{{event_id}}", room_events.get_event, "GET"),
    (f"{V1}/state/{{room_id}}", room_events.get_room_state, "GET"),
    (f"{V1}/state_ids/{{room_id}}", room_events.get_room_state_ids, "GET"),
    (f"{V1}/event_auth/{{room_id}}/{{event_id}}", room_events.get_event_auth, "GET"),
    (f"{V1}/backfill/{{room_id}}", room_events.backfill, "GET"),
    (f"{V1}/get_missing_events/{{room_id}}", room_events.get_missing_events, "POST"),
    (f"{V1}/timestamp_to_event/{{room_id}}", room_events.timestamp_to_event, "GET"),
    (f"{V1}/make_join/{{room_id}}/{{user_id}}", membership.make_join, "GET"),
    (f"{V1}/send_join/{{room_id}}/{{event_id}}", membership.send_join_v1, "PUT"),
    (f"{V2}/send_join/{{room_id}}/{{event_id}}", membership.send_join, "PUT"),
    (f"{V1}/make_knock/{{room_id}}/{{user_id}}", membership.make_knock, "GET"),
    (f"{V1}/send_knock/{{room_id}}/{{event_id}}", membership.send_knock, "PUT"),
    (f"{V1}/make_leave/{{room_id}}/{{user_id}}", membership.make_leave, "GET"),
    (f"{V1}/send_leave/{{room_id}}/{{event_id}}", membership.send_leave_v1, "PUT"),
    (f"{V2}/send_leave/{{room_id}}/{{event_id}}", membership.send_leave, "PUT"),
    (f"{V1}/invite/{{room_id}}/{{event_id}}", membership.invite_v1, "PUT"),
    (f"{V2}/invite/{{room_id}}/{{event_id}}", membership.invite, "PUT"),
    (f"{V1}/user/devices/{{user_id}}", user_keys.user_devices, "GET"),
    (f"{V1}/user/keys/query", user_keys.query_user_keys, "POST"),
    (f"{V1}/user/keys/claim", user_keys.claim_user_keys, "POST"),
    (f"{V1}/hierarchy/{{room_id}}", hierarchy.get_hierarchy, "GET"),
    (f"{V1}/publicRooms", query.public_rooms, "GET"),
    (f"{V1}/publicRooms", query.public_rooms, "POST"),
    (f"{V1}/media/download/{{media_id}}", content_repository.get_content, "GET"),
    (f"{V1}/media/thumbnail/{{media_id}}", content_repository.get_content_thumbnail, "GET"),
    # Ours: LAN gossip compares forward extremities (relay/mesh/gossip.py).
    (
        "/_matrix/federation/unstable/org.edge_relay.mesh/extremities/{room_id}",
        room_events.get_extremities,
        "GET",
    ),
]
# Matched on the raw path: an event id of a v3 room holds `/` (sent as `%2F`).
ROUTES += [
    RawPathRoute(path, with_origin(handler), methods=[method])
    for path, handler, method in SIGNED_ROUTES
]


def federation_app(services: Services) -> Starlette:
    app = make_app(ROUTES)
    app.state.services = services
    app.state.transaction_streams = transactions.StreamRegistry()
    # Answers of 1 KB or more gzipped for a peer that asks (a relay: content_coding.py);
    # level 6: most of 9's gain for a fraction of its CPU on a small box.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    return app
