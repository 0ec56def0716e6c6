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


@dataclass
class LinkBudget:
    #: bytes per second; None until a request was answered.
    goodput: float | None = None
    #: the latest sample, of any size: the link's rate now, at least.
    recent: float | None = None
    #: after a cut request: at most this much per request, doubling back with each answer.
    ceiling: int | None = None
    cut_requests: int = 0

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
