"""Relay to relay over an emulated 9.6 kbit/s, 300 ms link (tools/linkemu, issue 17): the
field relay pushes its transactions on hq's transaction stream
(relay/federation/transaction_stream.py), negotiated from hq's version answer.

Steady messages all go on the one stream, warm, with no send or probe cut and no flapping.
A burst of 50 long messages of made-up words (which the stream's compression cannot shrink
to nothing: ~30 KB on the wire) is sent; the link then fades out (every packet dropped)
until the field relay has cut a transaction in flight, and comes back. The cut closes the
stream; the field relay opens a new one and resumes in smaller transactions: every message
reaches hq once, in order. No timing is asserted: waits are generous.
"""

from __future__ import annotations

import random

from tests.federation.conftest import SlowRelayPair
from tools.linkemu.link import wait_for
from tools.linkemu.profiles import profile

STEADY = 5
BURST = 50
LONG = 1000
WORDS = (
    "water tent radio north convoy fuel bridge clinic road team batch night map sector "
    "supply camp river signal medic stores truck power well hill shelter"
).split()


def _long_message(i: int) -> str:
    words = random.Random(i)
    text = f"long {i:02d}"
    while len(text) < LONG:
        text += " " + words.choice(WORDS) + str(words.randrange(1000))
    return text[:LONG]


def test_long_burst_between_relays_rides_the_stream_through_a_cut_once_each_in_order(
    slow_relay_pair: SlowRelayPair,
) -> None:
    hq, field, room_id = slow_relay_pair.people_in_a_room()
    field.send(room_id, "over the fast link")
    hq.wait_for_bodies(room_id, ["over the fast link"], timeout=60)
    field_name = slow_relay_pair.field.server_name
    opened = f"{field_name} opened a transaction stream"
    assert opened in slow_relay_pair.hq.log()  # negotiated: the field relay uses the stream
    streams_before = slow_relay_pair.hq.log().count(opened)

    flaps_before = slow_relay_pair.field.log().count("unreachable")
    slow_relay_pair.link.shape(profile("9.6k"))
    # Steady messages over the slow link: all on the one stream, no probe or send cut, no
    # flapping between reachable and unreachable.
    for i in range(STEADY):
        field.send(room_id, f"steady {i}")
        hq.wait_for_bodies(room_id, [f"steady {i}"], timeout=120)
    assert slow_relay_pair.hq.log().count(opened) == streams_before
    assert slow_relay_pair.field.log().count("unreachable") == flaps_before

    sent = [_long_message(i) for i in range(BURST)]
    for body in sent:
        field.send(room_id, body)
    slow_relay_pair.link.blackhole(True)
    wait_for(
        lambda: "got no answer within" in slow_relay_pair.field.log(),
        180,
        "a transaction to be cut",
    )
    slow_relay_pair.link.blackhole(False)

    seen = hq.wait_for_bodies(room_id, sent, timeout=600)
    assert [b for b in seen if b.startswith("long ")] == sent  # each once, in order
    field_log = slow_relay_pair.field.log()
    assert "sending at most" in field_log  # the cut one was split
    assert "refused a transaction stream" not in field_log  # never fell back to /send
    # The cut closed the stream; the rest went on a new one.
    assert slow_relay_pair.hq.log().count(opened) > streams_before
    assert "Traceback" not in field_log
    assert "Traceback" not in slow_relay_pair.hq.log()
