"""Outages between the relay and a real Synapse: nothing written offline is lost,
duplicated or reordered, and a relay killed during the outage loses nothing queued.

Both federation links run through fault proxies (tools/faultproxy.py): Synapse
reaches the relay at the relay's server name, which is a proxy's address; the
relay reaches Synapse through `federation.upstream_url`, another proxy.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import RelayProcess, make_relay
from tests.integration.matrix_client import MatrixUser
from tests.support import free_port, fresh_loopback
from tests.synapse.conftest import fresh_synapse
from tools.faultproxy import FaultProxy
from tools.synapse_harness import Synapse


@dataclass
class Link:
    relay: RelayProcess
    synapse: Synapse
    to_relay: FaultProxy
    to_synapse: FaultProxy

    def cut(self) -> None:
        self.to_relay.cut()
        self.to_synapse.cut()

    def heal(self) -> None:
        self.to_relay.heal()
        self.to_synapse.heal()


def start_link(tmp_path: Path, *, fast_retry: bool) -> Link:
    synapse = fresh_synapse(tmp_path, fast_retry=fast_retry)
    relay = make_relay(tmp_path, "relay")
    public = fresh_loopback()
    to_relay = FaultProxy(public, free_port(public), relay.host, relay.federation_port).start()
    relay.public_address = f"{public}:{to_relay.listen_port}"
    out = fresh_loopback()
    to_synapse = FaultProxy(out, free_port(out), synapse.host, synapse.federation_port).start()
    relay.init(
        "--no-verify-tls",
        "--upstream",
        synapse.server_name,
        "--upstream-url",
        f"https://{out}:{to_synapse.listen_port}",
    )
    text = (relay.data_dir / "relay.toml").read_text()
    for key in ("send_per_second", "login_per_second"):
        text = text.replace(f"{key} = ", f"{key} = 0 #", 1)
    (relay.data_dir / "relay.toml").write_text(text)
    synapse.start()
    relay.start()
    return Link(relay, synapse, to_relay, to_synapse)


@pytest.fixture
def link(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Link]:
    link = start_link(tmp_path, fast_retry=getattr(request, "param", True))
    try:
        yield link
    finally:
        link.relay.kill()
        link.synapse.kill()
        link.to_relay.stop()
        link.to_synapse.stop()


def _shared_room(link: Link) -> tuple[str, MatrixUser, MatrixUser]:
    link.synapse.register("hq")
    hq = MatrixUser.login(link.synapse.client_url, "hq")
    link.relay.cli("user", "add", "field", "--password", "pw")
    field = MatrixUser.login(link.relay.client_url, "field")
    room_id = hq.create_room(name="outage drill", preset="private_chat")
    hq.invite(room_id, field.user_id)
    field.wait_for_invite(room_id)
    field.join(room_id)
    hq.send(room_id, "before the cut")
    field.wait_for_bodies(room_id, {"before the cut"})
    return room_id, hq, field


def _write_during_outage(room_id: str, hq: MatrixUser, field: MatrixUser, n: int) -> None:
    """Both sides write n messages each, concurrently; every send must be accepted."""
    errors: list[BaseException] = []

    def write(user: MatrixUser, prefix: str) -> None:
        try:
            for i in range(n):
                user.send(room_id, f"{prefix} {i:04d}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(hq, "hq")),
        threading.Thread(target=write, args=(field, "field")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _assert_converged(room_id: str, users: list[MatrixUser], n: int, timeout: float) -> None:
    expected = {f"hq {i:04d}" for i in range(n)} | {f"field {i:04d}" for i in range(n)}
    for user in users:
        seen = user.wait_for_bodies(room_id, expected, timeout=timeout)
        drill = [b for b in seen if b.startswith(("hq ", "field "))]
        assert len(drill) == len(set(drill)) == 2 * n, f"{user.user_id}: duplicates"
        for prefix in ("hq", "field"):
            mine = [b for b in drill if b.startswith(prefix + " ")]
            assert mine == sorted(mine), f"{user.user_id} sees {prefix}'s messages out of order"


@pytest.mark.parametrize("link", [True, False], ids=["fast-retry", "stock-retry"], indirect=True)
def test_outage_500_each_side_converges(link: Link) -> None:
    room_id, hq, field = _shared_room(link)
    link.cut()
    _write_during_outage(room_id, hq, field, 500)
    link.heal()
    _assert_converged(room_id, [hq, field], 500, timeout=120)


def test_relay_killed_during_outage_loses_nothing_queued(link: Link) -> None:
    room_id, hq, field = _shared_room(link)
    link.cut()
    _write_during_outage(room_id, hq, field, 100)
    status = _status_when(link, lambda d: not d["reachable"] and d["queue_depth"] >= 100)
    assert status["since_ts"]  # unreachable since when
    text = link.relay.cli("status").stdout
    assert f"{link.synapse.server_name}: UNREACHABLE since" in text
    link.relay.kill()  # SIGKILL with 100 events queued for Synapse
    link.relay.start()
    link.heal()
    field = MatrixUser.login(link.relay.client_url, "field")
    _assert_converged(room_id, [hq, field], 100, timeout=60)
    status = _status_when(link, lambda d: d["reachable"] and d["queue_depth"] == 0)
    assert "reachable since" in link.relay.cli("status").stdout


def _status_when(link: Link, predicate: Any, timeout: float = 30) -> dict[str, Any]:
    """The upstream's row of `relay status --json`, once `predicate` holds for it."""
    deadline = time.monotonic() + timeout
    while True:
        info = json.loads(link.relay.cli("status", "--json").stdout)
        dest = info["federation"].get(link.synapse.server_name, {"queue_depth": 0})
        if predicate(dest) or time.monotonic() > deadline:
            assert predicate(dest), dest
            return dest
        time.sleep(0.5)
