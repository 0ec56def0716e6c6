"""Pulling events from another server in pieces its link can carry (issue 17).

A relay behind a 9.6 kbit/s link that asks an upstream for 20 long events in one
`/get_missing_events` gets an answer the link cannot carry within the request timeout: the
request is cut, and asking again the same way is cut again, for ever. So every pull of
events (`/get_missing_events`, `/backfill`, `/state_ids`, `/event`) goes through `pull`:

- it asks for as many events as the destination's link budget holds (`LinkBudget.pull_limit`:
  a third of the timeout at the measured goodput, at the weight events from there have),
  with the timeout stretched for what it asks (`pull_timeout`);
- an answer teaches the budget the goodput and the events' weight (`pulled`), the same
  books the sender keeps for that destination (`FederationClient.link_budget`);
- pulls from one destination take turns (`FederationClient.pull_turn`): each is sized for
  the whole link;
- a pull cut by the timeout is asked again for half as many events (`pull_cut`), a single
  event with a longer timeout, at most `MAX_ATTEMPTS` times in all: never the same whole
  request for ever.

The caller builds the request for a given limit and reads the events out of the answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from relay.federation.client import FederationClient
from relay.federation.errors import RequestTimedOut

log = logging.getLogger(__name__)

#: requests one pull may make: the first and the smaller ones after cuts.
MAX_ATTEMPTS = 5

#: (limit, timeout) -> the answer's JSON object
Request = Callable[[int, float], Awaitable[dict[str, Any]]]
#: the answer -> the events in it
Events = Callable[[dict[str, Any]], list[Any]]


def listed(key: str) -> Events:
    """The events of an answer that lists them under `key` (none if it is no list)."""

    def events(answer: dict[str, Any]) -> list[Any]:
        value = answer.get(key)
        return value if isinstance(value, list) else []

    return events


async def pull(
    client: FederationClient,
    destination: str,
    request: Request,
    events: Events,
    *,
    most: int,
    timeout: float | None = None,
) -> tuple[dict[str, Any], int]:
    """The answer to `request` at a limit `destination`'s link carries (at most `most`),
    and the limit it was asked with.

    Raises:
        RequestTimedOut: the last of `MAX_ATTEMPTS` requests was cut too.
        PeerUnreachable, RemoteError: as the client raises them, at once.
    """
    async with client.pull_turn(destination):
        return await _pull(client, destination, request, events, most, timeout)


async def _pull(
    client: FederationClient,
    destination: str,
    request: Request,
    events: Events,
    most: int,
    timeout: float | None,
) -> tuple[dict[str, Any], int]:
    budget = client.link_budget(destination)
    base = client.timeout if timeout is None else timeout
    limit = budget.pull_limit(base, most)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        wait = budget.pull_timeout(limit, base)
        started = trio.current_time()
        try:
            answer = await request(limit, wait)
        except RequestTimedOut as exc:
            budget.pull_cut(limit, exc.seconds)
            if attempt == MAX_ATTEMPTS:
                raise
            smaller = budget.pull_limit(base, most)
            log.warning(
                "a pull of %d events from %s got no answer within %g s; asking for %d",
                limit,
                destination,
                exc.seconds,
                smaller,
            )
            limit = smaller
            continue
        got = events(answer)
        size = len(json.dumps(got, separators=(",", ":"), ensure_ascii=False).encode())
        budget.pulled(size, len(got), trio.current_time() - started)
        return answer, limit
    raise AssertionError("unreachable")  # the loop returns or raises
