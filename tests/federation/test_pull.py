"""Pulls sized to the link (relay/federation/pull.py, link_budget.py's pull books): a relay
behind a slow link asks for pieces the link carries within the request timeout, and a pull
the timeout cut is asked again smaller, never whole for ever.

The link is a stand-in that carries `rate` bytes a second on trio's autojump clock: an
answer that takes longer than the request's timeout is cut (RequestTimedOut), as the real
client cuts it. Counts and sizes are asserted, never times.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from relay.federation.errors import RequestTimedOut
from relay.federation.link_budget import (
    INITIAL_BUDGET_BYTES,
    INITIAL_EVENT_BYTES,
    MAX_EVENT_BYTES,
    LinkBudget,
)
from relay.federation.pull import MAX_ATTEMPTS, listed, pull

HQ = "hq.example"


def _event(size: int) -> dict[str, str]:
    event = {"body": ""}
    event["body"] = "x" * (size - len(json.dumps(event, separators=(",", ":"))))
    return event


class SlowLink:
    """A federation client whose link carries `rate` bytes a second each way."""

    timeout = 30.0

    def __init__(self, rate: float, event_bytes: int) -> None:
        self.rate = rate
        self.event_bytes = event_bytes
        self.budget = LinkBudget()
        self.turn = trio.Lock()
        #: (limit, timeout) of every request made
        self.asked: list[tuple[int, float]] = []

    def pull_turn(self, destination: str) -> trio.Lock:
        return self.turn

    def link_budget(self, destination: str) -> LinkBudget:
        assert destination == HQ
        return self.budget

    async def request(self, limit: int, timeout: float) -> dict[str, Any]:
        self.asked.append((limit, timeout))
        needed = limit * self.event_bytes / self.rate
        if needed > timeout:
            await trio.sleep(timeout)
            raise RequestTimedOut(HQ, timeout)
        await trio.sleep(needed)
        return {"events": [_event(self.event_bytes)] * limit}

    async def pull(self, most: int) -> tuple[dict[str, Any], int]:
        return await pull(self, HQ, self.request, listed("events"), most=most)  # type: ignore[arg-type]


def test_an_unknown_link_is_asked_for_what_the_initial_budget_holds() -> None:
    budget = LinkBudget()
    assert budget.pull_limit(30, 100) == INITIAL_BUDGET_BYTES // INITIAL_EVENT_BYTES
    assert budget.pull_limit(30, 3) == 3  # never more than the caller wants


def test_pull_limit_follows_goodput_and_event_weight() -> None:
    budget = LinkBudget()
    budget.pulled(12_000, 6, 10.0)  # 1200 B/s (9.6 kbit/s), events of 2,000 B
    assert budget.event_bytes == 2000
    assert budget.pull_limit(30, 100) == 12_000 // 2000  # a third of 30 s at 1200 B/s
    assert budget.pull_timeout(6, 30) == 30
    budget.pulled(100_000, 100, 0.1)  # a LAN: small events, fast
    assert budget.pull_limit(30, 100) == 100


def test_a_cut_pull_asks_for_half_or_less_and_a_cut_single_event_waits_longer() -> None:
    budget = LinkBudget()
    budget.pulled(20_000, 10, 0.2)  # measured fast, events of 2,000 B
    limit = budget.pull_limit(30, 20)
    assert limit == 20
    while limit > 1:
        budget.pull_cut(limit, 30.0)
        smaller = budget.pull_limit(30, 20)
        assert smaller <= limit // 2 or smaller == 1
        limit = smaller
    before = budget.pull_timeout(1, 30)
    budget.pull_cut(1, 30.0)
    assert budget.event_weight() == min(MAX_EVENT_BYTES, 4000)
    assert budget.pull_limit(30, 20) == 1
    assert budget.pull_timeout(1, 30) > before


async def test_a_slow_link_is_asked_for_pieces_it_carries_within_the_timeout(
    autojump_clock: Any,
) -> None:
    """9.6 kbit/s (~1,100 B/s of goodput), events of 2,600 B (2,000 characters): the
    first pull of an unknown link fits; after it, each asks for what 10 s carry."""
    link = SlowLink(rate=1100, event_bytes=2600)
    answer, limit = await link.pull(most=20)
    assert limit == len(answer["events"]) == INITIAL_BUDGET_BYTES // INITIAL_EVENT_BYTES
    answer, limit = await link.pull(most=20)
    assert limit == len(answer["events"]) == 1100 * 10 // 2600
    assert all(limit * 2600 / 1100 <= timeout for limit, timeout in link.asked)


async def test_a_pull_cut_by_the_timeout_is_asked_again_smaller_never_whole(
    autojump_clock: Any,
) -> None:
    """The link was a LAN, then became a 9.6 kbit/s radio link: the first pull (20 events,
    52 KB, 47 s of link time) is cut at 30 s; the next asks for half or less (the rate the
    cut request showed), and gets it."""
    link = SlowLink(rate=1100, event_bytes=2600)
    link.budget.pulled(52_000, 20, 0.5)
    answer, limit = await link.pull(most=20)
    limits = [asked for asked, _ in link.asked]
    assert len(limits) == 2 and limits[0] == 20 and limits[1] <= 10  # half, or less
    assert limit == len(answer["events"]) == limits[1]
    assert link.budget.cut_requests == 1


async def test_a_pull_the_link_never_carries_gives_up_after_max_attempts(
    autojump_clock: Any,
) -> None:
    """A dead link: each attempt asks for less (down to one event, then with a longer
    timeout), and after MAX_ATTEMPTS the pull fails instead of repeating for ever."""
    link = SlowLink(rate=0.001, event_bytes=2600)
    link.budget.pulled(52_000, 20, 0.5)
    with pytest.raises(RequestTimedOut):
        await link.pull(most=20)
    limits = [asked for asked, _ in link.asked]
    timeouts = [timeout for _, timeout in link.asked]
    assert len(limits) == MAX_ATTEMPTS
    assert limits == sorted(limits, reverse=True) and limits[0] > limits[-1] == 1
    assert timeouts[-1] > timeouts[0]
