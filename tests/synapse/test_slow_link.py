"""The relay sending to a real Synapse over an emulated 9.6 kbit/s, 300 ms link (issue 17).

Synapse sits in one network namespace, the relay in the other (tools/linkemu). The room is
made and joined while the link is a bare veth, and one message crosses it at that speed, so
the relay's estimate of the link is fast; then the link drops to 9.6 kbit/s and the relay's
user sends 50 messages of 1,000 characters (~80 KB of PDUs, more than the link carries
within a request timeout). Then the link fades out (every packet dropped) until the relay
has cut a transaction in flight, and comes back: the relay resumes in smaller transactions,
and every message reaches Synapse once, in order. No timing is asserted: waits are generous.

The other way (pulling): the relay is down while Synapse's user sends long messages, and
Synapse restarts too, so it only catches the relay up with the newest one; the relay pulls
the gap before it (`/get_missing_events`) over the 9.6 kbit/s link, in pieces the link
carries within the request timeout (relay/federation/pull.py). Asked for in one request, as
before, the gap's answer (40 KB) could never cross the link in time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.linkemu.link import LinkUnavailable, wait_for
from tools.linkemu.pair import SeatPair, open_seat_pair, relay_seat, synapse_seat
from tools.linkemu.profiles import profile
from tools.linkemu.seats import RelaySeat, SynapseSeat
from tools.synapse_harness import synapse_python

BURST = 50
LONG = 1000
#: the gap the relay pulls: 16 messages of 2,000 characters (~2.7 KB each as PDUs).
GAP = 16
GAP_LONG = 2000


#: Synapse (stock retries shortened) at hq, the relay in the field with Synapse upstream.
SlowPair = SeatPair[SynapseSeat, RelaySeat]


@pytest.fixture
def slow_pair(tmp_path: Path) -> Iterator[SlowPair]:
    if not synapse_python().exists():
        pytest.skip("no Synapse: run `make synapse`")
    try:
        with open_seat_pair(
            "sl",
            tmp_path,
            synapse_seat(tmp_path / "synapse", fast_retry=True),
            relay_seat(tmp_path / "relay"),
        ) as pair:
            yield pair
    except LinkUnavailable as exc:
        pytest.skip(str(exc))


def _long_message(i: int) -> str:
    head = f"long {i:02d} "
    return head + "abcdefghij"[i % 10] * (LONG - len(head))


def test_burst_of_long_messages_crosses_a_9k6_link_once_each_in_order(
    slow_pair: SlowPair,
) -> None:
    hq, field, room_id = slow_pair.people_in_a_room()
    field.send(room_id, "over the fast link")
    hq.wait_for_bodies(room_id, ["over the fast link"], timeout=60)

    slow_pair.link.shape(profile("9.6k"))
    sent = [_long_message(i) for i in range(BURST)]
    for body in sent:
        field.send(room_id, body)
    slow_pair.link.blackhole(True)
    wait_for(
        lambda: "got no answer within" in slow_pair.field.log(), 120, "a transaction to be cut"
    )
    slow_pair.link.blackhole(False)

    seen = hq.wait_for_bodies(room_id, sent, timeout=600)
    burst = [b for b in seen if b.startswith("long ")]
    assert burst == sent  # each once, in order
    log = slow_pair.field.log()
    assert "sending at most" in log  # the cut one was split
    assert "Traceback" not in log
    # Plain federation to Synapse: JSON transactions on PUT /send (Synapse offers no
    # transaction stream; relay to relay: tests/federation/test_stream_over_slow_link.py).
    assert '200 "PUT /_matrix/federation/v1/send/' in slow_pair.hq.log()


def _gap_message(i: int) -> str:
    head = f"gap {i:02d} "
    return head + "klmnopqrst"[i % 10] * (GAP_LONG - len(head))


def test_relay_pulls_a_gap_of_long_messages_over_a_9k6_link_after_an_outage(
    slow_pair: SlowPair,
) -> None:
    hq, field, room_id = slow_pair.people_in_a_room()
    hq.send(room_id, "before the outage")

    def has(bodies: list[str]) -> bool:
        return set(bodies) <= set(field.recent_bodies(room_id, GAP + 10))

    wait_for(lambda: has(["before the outage"]), 60, "a message before the outage")

    slow_pair.link.shape(profile("9.6k"))
    slow_pair.field.stop()  # the field kit loses power...
    sent = [_gap_message(i) for i in range(GAP)]
    for body in sent:
        hq.send(room_id, body)
    # ...and HQ restarts: Synapse then catches the relay up with the newest event only.
    slow_pair.hq.stop()
    slow_pair.hq.start()
    slow_pair.field.start()

    wait_for(lambda: has(sent), 600, f"the {GAP} messages of the gap at the relay")
    seen = field.recent_bodies(room_id, GAP + 10)
    assert [b for b in seen if b.startswith("gap ")] == sent  # each once, in order
    assert "Catching up destination" in slow_pair.hq.log()  # pulled, not pushed
    log = slow_pair.field.log()
    assert "get_missing_events from" not in log  # no pull failed or over-ran its limit
    assert "Traceback" not in log
