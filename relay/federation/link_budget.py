"""How much one request to a destination may carry, from what its link has shown it can do.

A slow link (a 9.6 kbit/s satellite or HF radio) carries about 1 KB/s. A transaction larger
than what the link moves within the request timeout can never be delivered, however often it
is retried, so the sender sizes each transaction to the measured goodput of its destination:

- goodput: body bytes over seconds of an answered request. A faster sample is believed at
  once (the link carried at least that), and so is any sample of a request big enough for
  the round trip not to dominate it (`TRUSTED_SAMPLE_BYTES`): the link may have slowed.
- a small request's sample mostly measures the round trip, so it only caps the rate the
  budget assumes, at `SMALL_SAMPLE_FACTOR` times itself: a link that was fast (a LAN) and
  became a 9.6 kbit/s radio link shows in its first small request, before a big one
  overruns the timeout (measured: 700 B taking 2.3 s).
- budget: what a request may carry so that, at that rate, it takes at most a third of the
  request timeout; 16 KiB while nothing is known (about 14 s at 9.6 kbit/s). Never under
  `MIN_BUDGET_BYTES`; a sender always sends at least one row, however big.
- a request cut by the timeout halves the budget (a ceiling that doubles back with each
  answered request) and caps the goodput at what the cut request showed: the rest is sent
  in smaller pieces, never the same request whole again.
- the timeout of a request larger than its budget (one big event) stretches to three times
  what it should take, up to `MAX_TIMEOUT_S`.

Pulling (the other direction: /get_missing_events, /backfill, /state_ids, /event from a
destination; `pull.py` runs them) keeps the same books per destination, measured on the
answers' bytes: a pull asks for as many events as its budget holds at the weight events
from that destination were seen to have (`event_bytes`, `INITIAL_EVENT_BYTES` until an
answer shows it), at least one. A pull the timeout cut is cut in the books like a send (the
next piece is half as big), and a single event cut doubles the weight assumed for it, which
stretches its next timeout (`pull_cut`).

Pure bookkeeping: no I/O, no clock (callers pass durations).
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_BUDGET_BYTES = 16 * 1024
MIN_BUDGET_BYTES = 2 * 1024
#: a sample slower than the estimate counts only from requests at least this big.
TRUSTED_SAMPLE_BYTES = 4 * 1024
#: a small request's sample caps the assumed rate at this many times itself.
SMALL_SAMPLE_FACTOR = 4
#: a request should take at most this share of the timeout at the measured goodput.
TIMEOUT_SHARE = 1 / 3
MAX_TIMEOUT_S = 300.0
MAX_CEILING_BYTES = 1024 * 1024
#: what one pulled event is assumed to weigh until an answer shows it (a PDU with a
#: 1,000-character body is about 1.7 KB with its hashes and signatures).
INITIAL_EVENT_BYTES = 2 * 1024
#: the most a single event may weigh (relay.events.limits: 64 KiB).
MAX_EVENT_BYTES = 64 * 1024


@dataclass
class LinkBudget:
    #: bytes per second; None until a request was answered.
    goodput: float | None = None
    #: the latest sample, of any size: the link's rate now, at least.
    recent: float | None = None
    #: after a cut request: at most this much per request, doubling back with each answer.
    ceiling: int | None = None
    cut_requests: int = 0
    #: bytes per event of the latest pull answer; None until one came.
    event_bytes: float | None = None

    def rate(self) -> float | None:
        """The bytes per second a request is sized for; None while nothing is known."""
        if self.goodput is None or self.recent is None:
            return self.goodput
        return min(self.goodput, self.recent * SMALL_SAMPLE_FACTOR)

    def budget(self, timeout: float) -> int:
        """The body bytes one request may carry under `timeout`."""
        rate = self.rate()
        if rate is None:
            limit = INITIAL_BUDGET_BYTES
        else:
            limit = int(rate * timeout * TIMEOUT_SHARE)
        if self.ceiling is not None:
            limit = min(limit, self.ceiling)
        return max(MIN_BUDGET_BYTES, limit)

    def timeout_for(self, size: int, timeout: float) -> float:
        """The timeout for a request of `size` body bytes: `timeout`, stretched for a body
        the measured goodput cannot carry in its share of it."""
        rate = self.rate()
        if rate is None or rate <= 0:
            return timeout
        needed = size / rate / TIMEOUT_SHARE
        return min(MAX_TIMEOUT_S, max(timeout, needed))

    def answered(self, size: int, seconds: float) -> None:
        """A request of `size` body bytes was answered after `seconds`."""
        sample = size / max(seconds, 1e-3)
        self.recent = sample
        if self.goodput is None or sample > self.goodput or size >= TRUSTED_SAMPLE_BYTES:
            self.goodput = sample
        if self.ceiling is not None:
            self.ceiling *= 2
            if self.ceiling > MAX_CEILING_BYTES:
                self.ceiling = None

    def cut(self, size: int, seconds: float) -> None:
        """A request of `size` body bytes got no answer within `seconds`."""
        self.cut_requests += 1
        self.ceiling = max(MIN_BUDGET_BYTES, size // 2)
        shown = size / max(seconds, 1e-3)
        self.goodput = shown if self.goodput is None else min(self.goodput, shown)
        self.recent = shown if self.recent is None else min(self.recent, shown)

    # -- pulls (answers carry the bytes) ----------------------------------------------------

    def event_weight(self) -> float:
        """The bytes one pulled event is assumed to weigh."""
        return INITIAL_EVENT_BYTES if self.event_bytes is None else self.event_bytes

    def pull_limit(self, timeout: float, most: int) -> int:
        """How many events one pull may ask for under `timeout`: what the budget holds at
        the events' weight, at least 1, at most `most`."""
        fits = int(self.budget(timeout) // max(1.0, self.event_weight()))
        return max(1, min(most, fits))

    def pull_timeout(self, limit: int, timeout: float) -> float:
        """The timeout for a pull of `limit` events (stretched as `timeout_for`)."""
        return self.timeout_for(int(limit * self.event_weight()), timeout)

    def pulled(self, size: int, events: int, seconds: float) -> None:
        """A pull was answered with `events` events in `size` bytes after `seconds`."""
        self.answered(size, seconds)
        if events > 0:
            self.event_bytes = min(MAX_EVENT_BYTES, max(1.0, size / events))

    def pull_cut(self, limit: int, seconds: float) -> None:
        """A pull of `limit` events got no answer within `seconds`: the next one asks for
        half as many; a single event was heavier than assumed, so its weight doubles."""
        self.cut(int(limit * self.event_weight()), seconds)
        if limit <= 1:
            self.event_bytes = min(MAX_EVENT_BYTES, 2 * self.event_weight())
