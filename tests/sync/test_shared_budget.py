"""relay/sync/shared.py keeps its entries within a budget of state entries, not of maps:
a few big rooms' state groups cannot hold more memory than many small ones'."""

from __future__ import annotations

from relay.sync.shared import _entries, _Lru


def test_big_entries_push_out_the_least_recently_used_within_the_budget() -> None:
    lru = _Lru(1000, _entries)
    for group in range(10):
        lru.put(group, {("m.room.member", f"@u{i}:x"): f"$e{i}" for i in range(99)})
    assert lru.weight == 1000 and len(lru) == 10
    assert lru.get_or_make(0, dict) is not None  # read: now the most recent
    lru.put("big", {("m.room.member", f"@v{i}:x"): f"$f{i}" for i in range(499)})
    assert lru.weight <= 1000
    assert lru.peek(0) is not None and lru.peek("big") is not None
    assert [lru.peek(group) for group in range(1, 6)] == [None] * 5


def test_one_entry_bigger_than_the_budget_is_still_kept_alone() -> None:
    lru = _Lru(10, _entries)
    lru.put("a", {1: 1})
    lru.put("huge", dict.fromkeys(range(50), 0))
    assert len(lru) == 1 and lru.peek("huge") is not None
