"""Transactions sized to the link (relay/federation/link_budget.py and the sender's cut):
a request the link cannot carry within the timeout is split, never sent whole again; one
big event still goes, with a longer timeout."""

from __future__ import annotations

import json
from typing import Any

from relay.federation.link_budget import (
    INITIAL_BUDGET_BYTES,
    MAX_TIMEOUT_S,
    MIN_BUDGET_BYTES,
    LinkBudget,
)
from relay.federation.sender import TXN_OVERHEAD_BYTES, within_budget


def _rows(*sizes: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "kind": "pdu", "payload": json.dumps({"b": "x" * size}).encode()}
        for i, size in enumerate(sizes, 1)
    ]


def test_unknown_link_gets_the_initial_budget_and_the_plain_timeout() -> None:
    budget = LinkBudget()
    assert budget.budget(30) == INITIAL_BUDGET_BYTES
    assert budget.timeout_for(10**6, 30) == 30


def test_measured_goodput_sizes_requests_to_a_third_of_the_timeout() -> None:
    budget = LinkBudget()
    budget.answered(12_000, 10.0)  # 1200 B/s: a 9.6 kbit/s link
    assert budget.budget(30) == 12_000
    budget.answered(100_000, 1.0)  # a faster sample is believed at once
    assert budget.budget(30) == 1_000_000
    budget.answered(50_000, 5.0)  # so is a big slower one: the link slowed down
    assert budget.goodput == 10_000
    assert budget.budget(30) == 100_000


def test_a_small_slow_request_caps_the_rate_a_fast_past_suggested() -> None:
    """The link was a LAN, then became a 9.6 kbit/s radio link: the first small request
    over it (700 B in 2.3 s) keeps the next transaction from overrunning the timeout."""
    budget = LinkBudget()
    budget.answered(669, 0.06)  # over the LAN: ~11 KB/s
    assert budget.budget(30) > 100_000
    budget.answered(702, 2.3)
    assert budget.goodput == 669 / 0.06  # a small sample does not lower the estimate...
    assert budget.budget(30) < 13_000  # ...but caps what a request may carry
    assert budget.timeout_for(24_000, 30) > 30  # and stretches a big row's timeout


def test_a_cut_request_halves_what_the_next_one_may_carry() -> None:
    budget = LinkBudget()
    budget.cut(80_000, 30.0)
    assert budget.cut_requests == 1
    assert budget.budget(30) <= 40_000
    first = budget.budget(30)
    budget.cut(first, 30.0)
    assert budget.budget(30) < first
    for _ in range(20):
        budget.cut(budget.budget(30), 30.0)
    assert budget.budget(30) == MIN_BUDGET_BYTES
    # Answers let it grow back.
    budget.answered(MIN_BUDGET_BYTES, 0.5)
    assert budget.budget(30) > MIN_BUDGET_BYTES


def test_an_event_bigger_than_the_budget_gets_a_longer_timeout() -> None:
    budget = LinkBudget()
    budget.answered(12_000, 10.0)
    assert budget.timeout_for(60_000, 30) == 150.0
    assert budget.timeout_for(10**9, 30) == MAX_TIMEOUT_S
    assert budget.timeout_for(1000, 30) == 30


def test_within_budget_keeps_a_prefix_and_always_one_row() -> None:
    rows = _rows(1000, 1000, 1000, 1000)
    one = len(rows[0]["payload"]) + 1
    assert [r["id"] for r in within_budget(rows, TXN_OVERHEAD_BYTES + 2 * one)] == [1, 2]
    assert [r["id"] for r in within_budget(rows, 10**6)] == [1, 2, 3, 4]
    assert [r["id"] for r in within_budget(_rows(70_000, 10), 2048)] == [1]
