"""relay/client/routes.py puts `/sync` first in the route table (Starlette tries routes
in order and every client polls it); that is safe only while no other route matches
its path, which this checks for every prefix."""

from __future__ import annotations

from starlette.routing import Match

from relay.client.routes import _api_routes, build_routes


def test_sync_is_tried_first_and_no_other_route_matches_it() -> None:
    routes = build_routes(_api_routes())
    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        path = f"{prefix}/sync"
        scope = {"type": "http", "path": path, "raw_path": path.encode(), "method": "GET"}
        matching = [i for i, r in enumerate(routes) if r.matches(scope)[0] is not Match.NONE]
        assert len(matching) == 1, (path, matching)
        assert matching[0] < 8, (path, matching)
