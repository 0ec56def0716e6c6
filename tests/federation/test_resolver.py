"""Server name resolution: overrides first, then the spec's discovery steps.

.well-known is served by a small HTTP server on a fresh loopback address (the resolver's
`well_known_url` points at it); SRV answers come from a fake dnspython resolver object.
No test touches real DNS.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import pytest

from relay.config import Config, config_from_dict
from relay.federation.resolver import (
    ResolutionError,
    ResolvedServer,
    ServerResolver,
    SrvRecord,
    order_srv_records,
)
from tests.support import free_port, fresh_loopback


class WellKnownServer:
    """Answers `GET /<hostname>/.well-known/matrix/server` from a table; counts requests."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: dict[str, int] = {}
        host = fresh_loopback()
        routes, hits = self.routes, self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.split("/")[1]
                hits[name] = hits.get(name, 0) + 1
                status, headers, body = routes.get(name, (404, {}, b"{}"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, free_port(host)), Handler)
        self.base = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def delegate(self, hostname: str, m_server: Any, cache_control: str | None = None) -> None:
        headers = {"Content-Type": "application/json"}
        if cache_control:
            headers["Cache-Control"] = cache_control
        self.routes[hostname] = (200, headers, json.dumps({"m.server": m_server}).encode())

    def url(self, hostname: str) -> str:
        return f"{self.base}/{hostname}/.well-known/matrix/server"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeAnswer(list):
    def __init__(self, records: list[Any], ttl: int) -> None:
        super().__init__(records)
        self.rrset = type("RRset", (), {"ttl": ttl})()


class FakeDns:
    """A dnspython-shaped resolver: `resolve(qname, "SRV", lifetime=...)` from a table."""

    def __init__(self, records: dict[str, list[str]] | None = None) -> None:
        self.records = records or {}
        self.queries: list[str] = []

    def resolve(self, qname: str, rdtype: str, lifetime: float | None = None) -> FakeAnswer:
        assert rdtype == "SRV"
        self.queries.append(qname)
        if qname not in self.records:
            raise dns.resolver.NXDOMAIN()
        return FakeAnswer(
            [
                dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SRV, text)
                for text in self.records[qname]
            ],
            ttl=300,
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def well_known() -> Iterator[WellKnownServer]:
    server = WellKnownServer()
    try:
        yield server
    finally:
        server.close()


def _config(tmp_path: Path, **federation: Any) -> Config:
    # The stand-in .well-known servers listen on loopback, here an ordinary remote address.
    federation.setdefault("ip_range_allowlist", ["127.0.0.0/8"])
    return config_from_dict({"server_name": "me.example", "federation": federation}, tmp_path)


_OPEN: list[ServerResolver] = []


@pytest.fixture(autouse=True)
async def _close_resolvers() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


def _resolver(
    tmp_path: Path,
    well_known: WellKnownServer | None = None,
    dns_records: dict[str, list[str]] | None = None,
    clock: Clock | None = None,
    **federation: Any,
) -> tuple[ServerResolver, FakeDns]:
    fake_dns = FakeDns(dns_records)
    resolver = ServerResolver(
        _config(tmp_path, **federation),
        well_known_url=well_known.url if well_known else (lambda h: "http://127.0.0.1:1/"),
        dns_resolver=fake_dns,
        clock=clock or Clock(),
    )
    _OPEN.append(resolver)
    return resolver, fake_dns


async def test_ip_literal_without_port_uses_8448(tmp_path: Path) -> None:
    resolver, fake_dns = _resolver(tmp_path)
    assert await resolver.resolve("127.0.0.5") == ResolvedServer(
        "https://127.0.0.5:8448", "127.0.0.5", "127.0.0.5"
    )
    assert fake_dns.queries == []


async def test_ip_literal_with_port_keeps_the_port_in_host(tmp_path: Path) -> None:
    resolver, _ = _resolver(tmp_path)
    assert await resolver.resolve("127.0.0.5:1234") == ResolvedServer(
        "https://127.0.0.5:1234", "127.0.0.5:1234", "127.0.0.5"
    )
    assert await resolver.resolve("[::1]:1234") == ResolvedServer(
        "https://[::1]:1234", "[::1]:1234", "::1"
    )


async def test_hostname_with_port_skips_well_known_and_srv(
    tmp_path: Path, well_known: WellKnownServer
) -> None:
    resolver, fake_dns = _resolver(tmp_path, well_known)
    assert await resolver.resolve("h.example:1234") == ResolvedServer(
        "https://h.example:1234", "h.example:1234", "h.example"
    )
    assert well_known.hits == {} and fake_dns.queries == []


async def test_static_map_wins_over_discovery(tmp_path: Path) -> None:
    resolver, _ = _resolver(tmp_path, servers={"hq.example": "https://10.0.0.5:8448/"})
    assert await resolver.resolve("hq.example") == ResolvedServer(
        "https://10.0.0.5:8448", "10.0.0.5:8448", "10.0.0.5"
    )


async def test_upstream_url_overrides_the_static_map(tmp_path: Path) -> None:
    resolver, _ = _resolver(
        tmp_path,
        upstream="hq.example",
        upstream_url="https://proxy.example",
        servers={"hq.example": "https://10.0.0.5:8448"},
    )
    assert await resolver.resolve("hq.example") == ResolvedServer(
        "https://proxy.example", "proxy.example", "proxy.example"
    )


async def test_mesh_hook_is_asked_first_and_may_pass(tmp_path: Path) -> None:
    lan = ResolvedServer("https://192.168.1.7:8448", "192.168.1.7:8448", "192.168.1.7")
    resolver, _ = _resolver(tmp_path, upstream="hq.example", upstream_url="https://proxy.example")
    resolver.mesh_hook = lambda name: lan if name == "hq.example" else None
    assert await resolver.resolve("hq.example") == lan
    assert (await resolver.resolve("127.0.0.9")).base_url == "https://127.0.0.9:8448"


async def test_invalid_server_name_is_a_resolution_error(tmp_path: Path) -> None:
    resolver, _ = _resolver(tmp_path)
    with pytest.raises(ResolutionError):
        await resolver.resolve("not a name")


async def test_well_known_delegation_to_ip_and_port(
    tmp_path: Path, well_known: WellKnownServer
) -> None:
    well_known.delegate("wk.example", "127.0.0.7:9000")
    resolver, fake_dns = _resolver(tmp_path, well_known)
    assert await resolver.resolve("wk.example") == ResolvedServer(
        "https://127.0.0.7:9000", "127.0.0.7:9000", "127.0.0.7"
    )
    assert fake_dns.queries == []


async def test_well_known_delegation_to_hostname_with_port(
    tmp_path: Path, well_known: WellKnownServer
) -> None:
    well_known.delegate("wk.example", "matrix.wk.example:443")
    resolver, _ = _resolver(tmp_path, well_known)
    assert await resolver.resolve("wk.example") == ResolvedServer(
        "https://matrix.wk.example:443", "matrix.wk.example:443", "matrix.wk.example"
    )


async def test_well_known_delegation_without_port_uses_srv_of_the_delegate(
    tmp_path: Path, well_known: WellKnownServer
) -> None:
    well_known.delegate("wk.example", "matrix.wk.example")
    resolver, fake_dns = _resolver(
        tmp_path,
        well_known,
        {"_matrix-fed._tcp.matrix.wk.example": ["10 5 8555 fed1.wk.example."]},
    )
    assert await resolver.resolve("wk.example") == ResolvedServer(
        "https://fed1.wk.example:8555", "matrix.wk.example", "matrix.wk.example"
    )
    assert fake_dns.queries == ["_matrix-fed._tcp.matrix.wk.example"]


async def test_well_known_delegation_without_port_or_srv_uses_8448(
    tmp_path: Path, well_known: WellKnownServer
) -> None:
    well_known.delegate("wk.example", "matrix.wk.example")
    resolver, fake_dns = _resolver(tmp_path, well_known)
    assert await resolver.resolve("wk.example") == ResolvedServer(
        "https://matrix.wk.example:8448", "matrix.wk.example", "matrix.wk.example"
    )
    assert fake_dns.queries == [
        "_matrix-fed._tcp.matrix.wk.example",
        "_matrix._tcp.matrix.wk.example",
    ]


async def test_well_known_is_cached_per_cache_control(
    tmp_path: Path, well_known: WellKnownServer
) -> None:
    clock = Clock()
    well_known.delegate("wk.example", "127.0.0.7:9000", cache_control="public, max-age=600")
    resolver, _ = _resolver(tmp_path, well_known, clock=clock)
    await resolver.resolve("wk.example")
    clock.now += 599
    await resolver.resolve("wk.example")
    assert well_known.hits["wk.example"] == 1
    clock.now += 2
    await resolver.resolve("wk.example")
    assert well_known.hits["wk.example"] == 2


async def test_well_known_without_cache_control_is_cached_a_day(
    tmp_path: Path, well_known: WellKnownServer
) -> None:
    clock = Clock()
    well_known.delegate("wk.example", "127.0.0.7:9000")
    resolver, _ = _resolver(tmp_path, well_known, clock=clock)
    await resolver.resolve("wk.example")
    clock.now += 24 * 3600 - 1
    await resolver.resolve("wk.example")
    assert well_known.hits["wk.example"] == 1
    clock.now += 2
    await resolver.resolve("wk.example")
    assert well_known.hits["wk.example"] == 2


async def test_well_known_error_is_cached_an_hour_then_srv_is_used(
    tmp_path: Path, well_known: WellKnownServer
) -> None:
    clock = Clock()
    resolver, _ = _resolver(
        tmp_path,
        well_known,
        {"_matrix-fed._tcp.nowk.example": ["10 0 8443 host.nowk.example."]},
        clock=clock,
    )
    expected = ResolvedServer("https://host.nowk.example:8443", "nowk.example", "nowk.example")
    assert await resolver.resolve("nowk.example") == expected
    clock.now += 3599
    assert await resolver.resolve("nowk.example") == expected
    assert well_known.hits["nowk.example"] == 1
    clock.now += 2
    await resolver.resolve("nowk.example")
    assert well_known.hits["nowk.example"] == 2


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"m.server": 5}', b'{"m.server": "a b"}'])
async def test_invalid_well_known_falls_through_to_srv(
    tmp_path: Path, well_known: WellKnownServer, body: bytes
) -> None:
    well_known.routes["bad.example"] = (200, {}, body)
    resolver, _ = _resolver(tmp_path, well_known)
    assert await resolver.resolve("bad.example") == ResolvedServer(
        "https://bad.example:8448", "bad.example", "bad.example"
    )


async def test_legacy_matrix_srv_is_used_when_matrix_fed_is_missing(
    tmp_path: Path, well_known: WellKnownServer
) -> None:
    resolver, fake_dns = _resolver(
        tmp_path, well_known, {"_matrix._tcp.old.example": ["0 0 8449 legacy.old.example."]}
    )
    assert await resolver.resolve("old.example") == ResolvedServer(
        "https://legacy.old.example:8449", "old.example", "old.example"
    )
    assert fake_dns.queries == ["_matrix-fed._tcp.old.example", "_matrix._tcp.old.example"]


async def test_matrix_fed_srv_wins_over_legacy(tmp_path: Path, well_known: WellKnownServer) -> None:
    resolver, fake_dns = _resolver(
        tmp_path,
        well_known,
        {
            "_matrix-fed._tcp.both.example": ["0 0 8450 new.both.example."],
            "_matrix._tcp.both.example": ["0 0 8449 old.both.example."],
        },
    )
    assert (await resolver.resolve("both.example")).base_url == "https://new.both.example:8450"
    assert fake_dns.queries == ["_matrix-fed._tcp.both.example"]


async def test_srv_answers_are_cached(tmp_path: Path, well_known: WellKnownServer) -> None:
    resolver, fake_dns = _resolver(
        tmp_path, well_known, {"_matrix-fed._tcp.c.example": ["0 0 1 t.c.example."]}
    )
    await resolver.resolve("c.example")
    await resolver.resolve("c.example")
    assert fake_dns.queries == ["_matrix-fed._tcp.c.example"]


async def test_srv_records_order_by_priority_then_weight() -> None:
    records = [
        SrvRecord(20, 0, 1, "low.example"),
        SrvRecord(10, 0, 2, "zero-weight.example"),
        SrvRecord(10, 100, 3, "heavy.example"),
        SrvRecord(5, 0, 4, "."),
    ]
    ordered = order_srv_records(records, random.Random(1))
    assert [r.target for r in ordered][-1] == "low.example"
    assert {r.target for r in ordered[:2]} == {"zero-weight.example", "heavy.example"}
    assert "." not in [r.target for r in ordered]
    heavy_first = sum(
        order_srv_records(records, random.Random(seed))[0].target == "heavy.example"
        for seed in range(50)
    )
    assert heavy_first == 50  # weight 0 is chosen only when nothing else is left
