"""Priorities on a slow link (issue 17): a relay sending to another relay over an emulated
9.6 kbit/s, 300 ms link (tools/linkemu, two network namespaces).

While the link is busy with long messages, the field relay's user queues, in this order, a
typing notification, a read receipt and a new message: the message must reach the other
relay before the receipt, and the receipt before the typing notification (sender.py's
`choose_rows`). The receiving relay logs, at DEBUG, each PDU it accepts and each EDU it
handles, in the order they arrive; the test reads that order, never times.
"""

from __future__ import annotations

import random
import string
import uuid
from urllib.parse import quote

from tests.federation.conftest import SlowRelayPair
from tools.linkemu.link import wait_for
from tools.linkemu.profiles import profile

#: the long messages that keep the link busy: ~11 KB, about 10 s at 9.6 kbit/s.
BUSY = 4
BUSY_LONG = 2000


def _arrivals(log: str, marks: dict[str, str]) -> list[str]:
    """The names of `marks` (name -> text of its log line) in the order their first line
    appears in `log`."""
    lines = log.splitlines()
    first = {}
    for name, text in marks.items():
        first[name] = next((i for i, line in enumerate(lines) if text in line), None)
    return [name for name, _ in sorted(
        ((n, i) for n, i in first.items() if i is not None), key=lambda item: item[1]
    )]  # fmt: skip


def test_message_before_receipt_before_typing_over_a_busy_9k6_link(
    slow_relay_pair: SlowRelayPair,
) -> None:
    hq, field, room_id = slow_relay_pair.people_in_a_room()
    read_up_to = hq.send(room_id, "read me")
    wait_for(
        lambda: "read me" in field.recent_bodies(room_id, 5), 60, "a message at the field relay"
    )

    slow_relay_pair.link.shape(profile("9.6k"))
    room = quote(room_id)
    rng = random.Random(17)
    for i in range(BUSY):
        # Random letters: gzip between relays must not shrink them to nothing.
        field.send(room_id, f"busy {i} " + "".join(rng.choices(string.ascii_letters, k=BUSY_LONG)))
    # Queued while the link is busy, lowest priority first.
    field.call("PUT", f"/rooms/{room}/typing/{quote(field.user_id)}", json={"typing": True})
    field.call("POST", f"/rooms/{room}/receipt/m.read/{quote(read_up_to)}", json={})
    message = field.call(
        "PUT",
        f"/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
        json={"msgtype": "m.text", "body": "the new message"},
    )["event_id"]

    marks = {
        "message": f"accepted {message}",
        "receipt": "EDU m.receipt from",
        "typing": "EDU m.typing from",
    }
    wait_for(
        lambda: len(_arrivals(slow_relay_pair.hq.log(), marks)) == 3,
        300,
        "the message, the receipt and the typing notification at the hq relay",
        interval=1.0,
    )
    assert _arrivals(slow_relay_pair.hq.log(), marks) == ["message", "receipt", "typing"]
    assert "Traceback" not in slow_relay_pair.field.log()
