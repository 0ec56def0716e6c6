"""The relay's counters and histograms, kept in memory, and the Prometheus text format.

Services count what happens (`Metrics.requests`, `.transactions`, ...); the metrics
listener (relay/web/metrics.py) adds what it reads at scrape time (queues, peers,
database size, memory) and renders everything with `render`.

Rules kept:

- Label values come from bounded sets (route handler names, status codes, destination
  names the relay federates with): a request can never mint a new time series.
- Counters only go up and start at zero with the process, as Prometheus expects.
- Text format 0.0.4: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Request latency buckets (seconds); long-polls (/sync) land in the top ones.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{name}="{_escape(str(value))}"' for name, value in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


@dataclass
class Counter:
    name: str
    help: str
    label_names: Labels = ()
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, *labels: str, by: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + by

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for labels, value in sorted(self.values.items()):
            lines.append(f"{self.name}{_labels(self.label_names, labels)} {_number(value)}")
        return lines


@dataclass
class Histogram:
    name: str
    help: str
    label_names: Labels = ()
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    #: labels -> (count per bucket, cumulative at render), sum, count
    series: dict[Labels, tuple[list[int], list[float]]] = field(default_factory=dict)

    def observe(self, value: float, *labels: str) -> None:
        counts, totals = self.series.setdefault(labels, ([0] * len(self.buckets), [0.0, 0.0]))
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                counts[index] += 1
                break
        totals[0] += value
        totals[1] += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for labels, (counts, (total, count)) in sorted(self.series.items()):
            running = 0
            for bound, n in zip(self.buckets, counts, strict=True):
                running += n
                le = f'le="{_number(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, labels, le)} {running}")
            inf = _labels(self.label_names, labels, 'le="+Inf"')
            lines.append(f"{self.name}_bucket{inf} {int(count)}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, labels)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(self.label_names, labels)} {int(count)}")
        return lines


@dataclass
class Gauge:
    """A value read at scrape time (not kept between scrapes)."""

    name: str
    help: str
    label_names: Labels = ()
    values: dict[Labels, float] = field(default_factory=dict)

    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        for labels, value in sorted(self.values.items()):
            lines.append(f"{self.name}{_labels(self.label_names, labels)} {_number(value)}")
        return lines


class Metrics:
    """What the relay's services count while they run (one per relay process)."""

    def __init__(self) -> None:
        self.requests = Counter(
            "relay_http_requests_total",
            "HTTP requests answered, by listener, endpoint (route handler), method and status.",
            ("listener", "endpoint", "method", "status"),
        )
        self.request_seconds = Histogram(
            "relay_http_request_duration_seconds",
            "Time to answer an HTTP request, by listener and endpoint (long-polls included).",
            ("listener", "endpoint"),
        )
        self.transactions = Counter(
            "relay_federation_transactions_total",
            "Outbound federation transactions by destination and result"
            " (ok, refused_pdus: some PDUs refused, unreachable, error: an error answer).",
            ("destination", "result"),
        )
        self.events = Counter(
            "relay_events_total",
            "Events in the database: sent (written by this server's users) and"
            " received (from other servers).",
            ("direction",),
        )
        # The range of stream orderings already counted into `events`.
        self.events_seen: tuple[int, int] | None = None


def render(families: Iterable[Counter | Histogram | Gauge]) -> str:
    lines: list[str] = []
    for family in families:
        lines.extend(family.render())
    return "\n".join(lines) + "\n"
