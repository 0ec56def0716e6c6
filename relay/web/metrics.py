"""`/metrics` in Prometheus' text format, on a listener of its own (`listeners.metrics`,
off by default; a loopback address when on: the figures name the servers the box
talks to).

What it shows: the counters the relay keeps while it runs (`relay.runtime.metrics.Metrics`:
requests by endpoint and status, their latency, outbound transaction results) and what
is read at scrape time, in one read transaction: events stored (sent by local users,
received from other servers; counted incrementally from the stream orderings already
seen), the federation queue per destination (depth, age of the oldest entry, up or
not), LAN peers by status, push notifications by outcome and the pushers served, the
database's size on disk, and the process's resident memory, CPU time and start time.

`RequestMetrics` wraps the client and federation apps: it labels a request with the
name of the route handler that answered it (a bounded set; "unmatched" for 404s), so a
hostile client cannot create time series.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay.events.ids import server_of
from relay.runtime import clock
from relay.runtime.metrics import CONTENT_TYPE, Counter, Gauge, Metrics, render
from relay.services import Services
from store import Connection
from store import events as store_events
from store import outbox as store_outbox
from store import peers as store_peers

PEER_STATUSES = ("trusted", "pending", "rejected")


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request of one listener."""

    def __init__(self, app: ASGIApp, metrics: Metrics, listener: str) -> None:
        self.app = app
        self.metrics = metrics
        self.listener = listener

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            endpoint = scope.get("endpoint")
            name = getattr(endpoint, "__name__", None) or "unmatched"
            self.metrics.requests.inc(self.listener, name, scope["method"], str(status[0]))
            self.metrics.request_seconds.observe(time.monotonic() - started, self.listener, name)


def _count_events(metrics: Metrics, rows: list[tuple[str, int]], server_name: str) -> None:
    seen = metrics.events_seen
    low, high = seen if seen is not None else (0, 0)
    for sender, stream in rows:
        metrics.events.inc("sent" if server_of(sender) == server_name else "received")
        low, high = min(low, stream), max(high, stream)
    metrics.events_seen = (low, high)


def _file_bytes(path: Path) -> int:
    total = 0
    for name in (str(path), f"{path}-wal"):
        try:
            total += os.stat(name).st_size
        except FileNotFoundError:
            pass
    return total


def _rss_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(frozen=True, slots=True)
class _Snapshot:
    new_events: list[tuple[str, int]]
    queues: dict[str, tuple[int, int]]
    destinations: list[dict[str, Any]]
    peers: list[dict[str, Any]]


def _scrape_txn(conn: Connection, low: int, high: int) -> _Snapshot:
    """What a scrape reads, in one read transaction."""
    return _Snapshot(
        new_events=store_events.senders_outside(conn, low, high),
        queues=store_outbox.queue_summary(conn),
        destinations=store_outbox.destination_status(conn),
        peers=store_peers.all_peers(conn),
    )


async def scrape(services: Services, metrics: Metrics) -> str:
    """The whole exposition: kept counters plus what is read now."""
    seen = metrics.events_seen
    low, high = seen if seen is not None else (0, -1)
    snap = await services.database.read(_scrape_txn, low, high)
    _count_events(metrics, snap.new_events, services.server_name)
    now = clock.now_ms() / 1000
    depth = Gauge(
        "relay_federation_queue_depth",
        "PDUs and EDUs queued for a destination.",
        ("destination",),
    )
    oldest = Gauge(
        "relay_federation_queue_oldest_age_seconds",
        "Age of the oldest entry queued for a destination.",
        ("destination",),
    )
    for destination, (count, created_ts) in snap.queues.items():
        depth.set(count, destination)
        oldest.set(max(0.0, now - created_ts / 1000), destination)
    up = Gauge(
        "relay_federation_destination_up",
        "1 if the last request to the destination succeeded, else 0.",
        ("destination",),
    )
    for row in snap.destinations:
        up.set(1 if row["reachable"] else 0, row["destination"])
    peers = Gauge("relay_mesh_peers", "LAN peers by status.", ("status",))
    for status in PEER_STATUSES:
        peers.set(sum(1 for p in snap.peers if p["status"] == status), status)
    reachable = Gauge("relay_mesh_peers_reachable", "LAN peers answering now.")
    reachable.set(sum(1 for p in snap.peers if p["reachable"]))
    push = services.push_delivery.statistics()
    pushes = Counter(
        "relay_push_notifications_total",
        "Notifications posted to push gateways by outcome (pushed; retried: the gateway was"
        " unreachable or overloaded; dropped: refused by the destination policy or answered"
        " otherwise).",
        ("outcome",),
    )
    for outcome in ("pushed", "retried", "dropped"):
        pushes.inc(outcome, by=push[outcome])
    pushers = Gauge("relay_pushers_served", "HTTP pushers the push delivery serves now.")
    pushers.set(push["pushers"])
    database = Gauge("relay_database_bytes", "Size of the SQLite database and its WAL.")
    database.set(await trio.to_thread.run_sync(_file_bytes, services.config.database_path))
    rss = Gauge("process_resident_memory_bytes", "Resident memory of the relay process.")
    rss.set(_rss_bytes())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = Counter("process_cpu_seconds_total", "CPU time (user and system) of the relay process.")
    cpu.inc(by=usage.ru_utime + usage.ru_stime)
    started = Gauge("process_start_time_seconds", "When the relay process started (Unix time).")
    started.set(services.started_ms / 1000)
    return render(
        [
            metrics.requests,
            metrics.request_seconds,
            metrics.events,
            metrics.transactions,
            depth,
            oldest,
            up,
            peers,
            reachable,
            pushes,
            pushers,
            database,
            rss,
            cpu,
            started,
        ]
    )


def metrics_app(services: Services, metrics: Metrics) -> Starlette:
    """The metrics listener: `GET /metrics`, nothing else."""

    async def get_metrics(request: Request) -> Response:
        return Response(await scrape(services, metrics), media_type=CONTENT_TYPE)

    return Starlette(routes=[Route("/metrics", get_metrics, methods=["GET"])])
