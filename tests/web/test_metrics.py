"""`/metrics` on its own listener, read with prometheus_client's text parser (Prometheus'
own reading of the format, not ours)."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay.config import ConfigError, config_from_dict, render_config
from relay.node import build_services
from relay.runtime.database import open_database
from relay.runtime.identity import new_signing_key
from relay.web.metrics import scrape
from store import outbox as store_outbox
from store import peers as store_peers
from tests.integration.conftest import make_relay
from tests.integration.matrix_client import MatrixUser
from tests.support import free_port


def _families(text: str) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label items (with the sample's suffix name): value}."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, *sorted(sample.labels.items()))
            out.setdefault(family.name, {})[key] = sample.value
    return out


def _value(families: dict, family: str, sample: str | None = None, **labels: str) -> float:
    return families[family][(sample or family, *sorted(labels.items()))]


def test_metrics_listener_counts_requests_events_and_the_process(tmp_path: Path) -> None:
    relay = make_relay(tmp_path)
    relay.init()
    metrics_port = free_port(relay.host)
    config = relay.data_dir / "relay.toml"
    config.write_text(
        config.read_text().replace('metrics = ""', f'metrics = "{relay.host}:{metrics_port}"')
    )
    relay.start()
    try:
        relay.cli("user", "add", "alice", "--password", "pw")
        alice = MatrixUser.login(relay.client_url, "alice")
        room_id = alice.create_room()
        for n in range(5):
            alice.send(room_id, f"message {n}")
        assert alice.http.get("/_matrix/client/v3/nothing/here").status_code == 404
        assert httpx.get(f"{relay.client_url}/metrics").status_code == 404  # not on the API
        r = httpx.get(f"http://{relay.host}:{metrics_port}/metrics", timeout=30)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        families = _families(r.text)
    finally:
        relay.kill()

    requests = "relay_http_requests"
    assert (
        _value(
            families,
            requests,
            "relay_http_requests_total",
            listener="client",
            endpoint="send_message",
            method="PUT",
            status="200",
        )
        == 5
    )
    assert (
        _value(
            families,
            requests,
            "relay_http_requests_total",
            listener="client",
            endpoint="unmatched",
            method="GET",
            status="404",
        )
        == 2  # /nothing/here and /metrics, which the client listener does not serve
    )
    latency = "relay_http_request_duration_seconds"
    count = _value(
        families, latency, f"{latency}_count", listener="client", endpoint="send_message"
    )
    inf = _value(
        families,
        latency,
        f"{latency}_bucket",
        listener="client",
        endpoint="send_message",
        le="+Inf",
    )
    assert count == inf == 5
    # createRoom writes the room's initial state events; then 5 messages.
    assert _value(families, "relay_events", "relay_events_total", direction="sent") >= 10
    assert _value(families, "relay_database_bytes") > 0
    assert _value(families, "process_resident_memory_bytes") > 10_000_000
    assert _value(families, "process_cpu_seconds", "process_cpu_seconds_total") > 0
    assert {key[1][1] for key in families["relay_mesh_peers"]} == {"trusted", "pending", "rejected"}
    assert _value(families, "relay_pushers_served") == 0


async def test_queue_depth_oldest_age_and_peers_by_status(tmp_path: Path) -> None:
    doc = tomllib.loads(
        render_config(
            server_name="kit.test",
            client_listen="127.0.0.1:8008",
            federation_listen="127.0.0.1:8448",
            upstream=None,
            upstream_url=None,
            ca_file=None,
            verify_tls=True,
        )
    )
    config = config_from_dict(doc, tmp_path)
    now = int(time.time() * 1000)

    def seed(conn) -> None:
        for n, age_s in enumerate((120, 30, 5)):
            store_outbox.enqueue(
                conn,
                destination="hq.example",
                kind="edu",
                payload=b"{}",
                now_ms=now - age_s * 1000 - n,
            )
        store_outbox.enqueue(conn, destination="kit-b.lan", kind="edu", payload=b"{}", now_ms=now)
        for name, status in (("kit-b.lan", "trusted"), ("kit-c.lan", "pending")):
            store_peers.upsert_peer(
                conn,
                server_name=name,
                address="10.0.0.2",
                port=8448,
                key_id=None,
                verify_key=None,
                fingerprint=None,
                status=status,
                version=None,
                reachable=status == "trusted",
                reason=None,
                now_ms=now,
            )

    async with open_database(config.database_path, synchronous="NORMAL") as database:
        services = await build_services(config, database, new_signing_key())
        await database.write(seed)
        metrics = services.metrics
        metrics.transactions.inc("hq.example", "unreachable")
        families = _families(await scrape(services, metrics))
        # Scraping again counts no event twice.
        again = _families(await scrape(services, metrics))

    depth = "relay_federation_queue_depth"
    assert _value(families, depth, destination="hq.example") == 3
    assert _value(families, depth, destination="kit-b.lan") == 1
    age = "relay_federation_queue_oldest_age_seconds"
    assert _value(families, age, destination="hq.example") >= 120
    assert _value(families, age, destination="kit-b.lan") < 120
    peers = "relay_mesh_peers"
    assert [_value(families, peers, status=s) for s in ("trusted", "pending", "rejected")] == [
        1,
        1,
        0,
    ]
    assert _value(families, "relay_mesh_peers_reachable") == 1
    transactions = "relay_federation_transactions"
    assert (
        _value(
            families,
            transactions,
            f"{transactions}_total",
            destination="hq.example",
            result="unreachable",
        )
        == 1
    )
    assert families.get("relay_events") == again.get("relay_events")


@pytest.mark.parametrize("address", ["0.0.0.0:9101", "10.0.0.5:9101", "kit.lan:9101"])
def test_metrics_listener_must_be_loopback(tmp_path: Path, address: str) -> None:
    doc = {"server_name": "kit.test", "listeners": {"metrics": address}}
    with pytest.raises(ConfigError, match=r"listeners\.metrics must be a loopback address"):
        config_from_dict(doc, tmp_path)


def test_metrics_listener_is_off_by_default(tmp_path: Path) -> None:
    config = config_from_dict({"server_name": "kit.test"}, tmp_path)
    assert config.metrics_listen is None
    config = config_from_dict(
        {"server_name": "kit.test", "listeners": {"metrics": "[::1]:9101"}}, tmp_path
    )
    assert config.metrics_listen is not None and config.metrics_listen.port == 9101
