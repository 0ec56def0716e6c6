"""Two seats across one `EmulatedLink`: a hq seat in `ns_a`, a field seat in `ns_b` whose
upstream is the hq seat, started in that order and stopped in the reverse order.

```python
with open_seat_pair(
    "rr", tmp_path, relay_seat(tmp_path / "hq", log_level="DEBUG"), relay_seat(tmp_path / "field")
) as pair:
    pair.link.shape(profile("9.6k"))
    hq, field, room_id = pair.people_in_a_room()
```

Rules: the link is made before either seat and removed after both have stopped, whatever
fails in between; a seat's constructor (`relay init`, Synapse's config) runs with the link
up. `LinkUnavailable` (not root, a command missing) comes out of `open_seat_pair` before
anything is made: a test turns it into a skip, tools never import pytest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from tools.linkemu.link import EmulatedLink
from tools.linkemu.seats import RelaySeat, Seat, SeatUser, SynapseSeat, shared_room

S = TypeVar("S", bound=Seat)
H = TypeVar("H", bound=Seat)
F = TypeVar("F", bound=Seat)

#: Makes a seat, not yet started, from (namespace, address, upstream server name); the
#: upstream is None for the hq seat and the hq seat's server name for the field seat.
MakeSeat = Callable[[str, str, str | None], S]


@dataclass(frozen=True)
class SeatPair(Generic[H, F]):
    """The link and its two started seats."""

    link: EmulatedLink
    hq: H  #: in `link.ns_a` at `link.ADDRESS_A`
    field: F  #: in `link.ns_b` at `link.ADDRESS_B`, its upstream `hq`

    def people_in_a_room(self, field_name: str = "field") -> tuple[SeatUser, SeatUser, str]:
        """(user "hq" on the hq seat, user `field_name` on the field seat, a room the first
        made and the second joined): where every scenario across the link starts."""
        hq, field = self.hq.add_user("hq"), self.field.add_user(field_name)
        return hq, field, shared_room(hq, field)


def relay_seat(directory: Path, *extra_init: str, log_level: str = "INFO") -> MakeSeat[RelaySeat]:
    """A relay in `directory` (`relay init ... *extra_init`); as the field seat it is also
    given `--upstream` the hq seat."""

    def make(ns: str, address: str, upstream: str | None) -> RelaySeat:
        to_upstream = ("--upstream", upstream) if upstream is not None else ()
        return RelaySeat(directory, ns, address, *extra_init, *to_upstream, log_level=log_level)

    return make


def synapse_seat(directory: Path, *, fast_retry: bool) -> MakeSeat[SynapseSeat]:
    """A real Synapse in `directory`. It has no upstream setting: as the field seat it
    federates with the hq seat once a room they share says so."""

    def make(ns: str, address: str, upstream: str | None) -> SynapseSeat:
        return SynapseSeat(directory, ns, address, fast_retry=fast_retry)

    return make


@contextlib.contextmanager
def open_seat_pair(
    tag: str, stats_dir: Path, make_hq: MakeSeat[H], make_field: MakeSeat[F]
) -> Iterator[SeatPair[H, F]]:
    """`EmulatedLink(tag, stats_dir=stats_dir)` with the hq seat in `ns_a` and the field seat
    in `ns_b`, both started, for the block; the field seat stops first, then hq, then the
    link goes.

    Raises:
        LinkUnavailable: the kernel or the tools cannot make the link (nothing was made).
    """
    with EmulatedLink(tag, stats_dir=stats_dir) as link:
        hq = make_hq(link.ns_a, link.ADDRESS_A, None)
        field = make_field(link.ns_b, link.ADDRESS_B, hq.server_name)
        try:
            hq.start()
            field.start()
            yield SeatPair(link, hq, field)
        finally:
            field.stop()
            hq.stop()
