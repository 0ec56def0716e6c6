"""Relays B and C, with no uplink, exchange messages with a real Synapse through relay A.

Synapse runs inside A's namespace on A's loopback: A reaches it, B and C (on the LAN bridge
only) cannot, and Synapse cannot resolve their names. Their events reach Synapse because A
carries them (gossip flooding); Synapse checks their signatures with their keys, which it
gets from A as a notary (its `trusted_key_servers` lists A, the deployment step README
describes). The kits have no `trusted_key_servers` at all, only each other approved with
`relay peers approve`: B and C check Synapse's signatures with the key A vouches for as
their pinned mesh peer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.matrix_client import MatrixUser
from tests.mesh.conftest import ROOT, Lab, MeshRelay
from tests.support import wait_until
from tools.synapse_harness import Synapse, synapse_python

SYNAPSE_CLIENT_PORT, SYNAPSE_FED_PORT = 8010, 8450
#: Messages each of the four users writes while kit C is cut off.
PARTITION_MESSAGES = 10


class NsSynapse(Synapse):
    """Synapse inside a namespace; the test reaches its client API through a forwarder."""

    netns: str = ""
    forwarder: subprocess.Popen[str] | None = None
    local_port: int = 0

    @property
    def client_url(self) -> str:  # type: ignore[override]
        return f"http://127.0.0.1:{self.local_port}"

    def start(self, timeout: float = 60) -> None:
        self.forwarder = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.mesh.nsforward",
                self.netns,
                "127.0.0.1",
                str(self.client_port),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.forwarder.stdout is not None
        self.local_port = int(self.forwarder.stdout.readline())
        out = open(self.directory / "stdout.log", "ab")
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.netns,
                str(synapse_python()),
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(self.directory / "homeserver.yaml"),
            ],
            stdout=out,
            stderr=out,
            cwd=self.directory,
        )
        import httpx

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"synapse exited:\n{self.log()[-3000:]}")
            try:
                return httpx.get(f"{self.client_url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout, "synapse to start")

    def kill(self) -> None:
        super().kill()
        if self.forwarder is not None and self.forwarder.poll() is None:
            self.forwarder.kill()
            self.forwarder.wait()


Kits = tuple[MeshRelay, MeshRelay, MeshRelay, NsSynapse]


def _approve_each_other(kits: list[MeshRelay]) -> None:
    """Every pair approved by its operators, as the issue's three kits are."""
    for kit in kits:
        for other in kits:
            if other is kit:
                continue
            wait_until(
                lambda k=kit, o=other: k.peer(o.server_name), 30, f"{kit.name} sees {other.name}"
            )
            kit.cli("peers", "approve", other.server_name)
    for kit in kits:
        for other in kits:
            if other is not kit:
                wait_until(
                    lambda k=kit, o=other: (k.peer(o.server_name) or {}).get("status") == "trusted",
                    30,
                    f"{kit.name} trusts {other.name}",
                )


@pytest.fixture
def kits(lab: Lab, tmp_path: Path) -> Iterator[Kits]:
    if not synapse_python().exists():
        pytest.skip("no Synapse: run `make synapse`")
    a = MeshRelay("a", lab, 1, tmp_path / "a", "10.77.0.1:8448")
    b = MeshRelay("b", lab, 2, tmp_path / "b", "b.mesh")
    c = MeshRelay("c", lab, 3, tmp_path / "c", "c.mesh")
    synapse = NsSynapse(tmp_path / "synapse", "127.0.0.1", SYNAPSE_CLIENT_PORT, SYNAPSE_FED_PORT)
    synapse.netns = a.netns
    # Kits as the appliance makes them: mesh.policy pinned (B and C reach Synapse only
    # through A), TLS verified: A trusts the upstream's certificate through ca_file.
    a.init("--upstream", synapse.server_name, "--mesh-policy", "pinned")
    b.init("--mesh-policy", "pinned")
    c.init("--mesh-policy", "pinned")
    for kit in (a, b, c):  # the kits list no trusted key server: the mesh is enough
        toml = tomllib.loads((kit.data_dir / "relay.toml").read_text())
        assert toml["federation"]["trusted_key_servers"] == {}
    key_id = json.loads(a.cli("status", "--json").stdout)["key_id"]
    synapse.write_config(
        trusted_key_servers=[{"server_name": a.server_name, "verify_keys": {key_id: a.verify_key}}]
    )
    path = synapse.directory / "homeserver.yaml"
    config = json.loads(path.read_text())
    for key in ("federation_ip_range_blacklist", "ip_range_blacklist"):
        config[key] = [r for r in config[key] if r != "10.0.0.0/8"]
    path.write_text(json.dumps(config, indent=1))
    upstream_ca = synapse.directory / "tls.crt"
    a.edit_config(lambda t: t.replace('ca_file = ""', f'ca_file = "{upstream_ca}"'))
    try:
        synapse.start()
        for r in (a, b, c):
            r.start()
        for r in (a, b, c):
            r.wait_ready()
        _approve_each_other([a, b, c])
        yield a, b, c, synapse
    finally:
        for r in (a, b, c):
            r.kill()
        synapse.kill()


def _timeline(user: MatrixUser, room_id: str) -> dict[str, list[str]]:
    """Each message body the user's view holds, with the event ids it holds it under."""
    ids: dict[str, list[str]] = {}
    for event in user.messages(room_id):
        if event["type"] == "m.room.message" and "body" in event.get("content", {}):
            ids.setdefault(event["content"]["body"], []).append(event["event_id"])
    return ids


def test_kits_without_uplink_or_trusted_key_servers_talk_to_synapse_through_a(
    kits: Kits, lab: Lab, record_property: Callable[[str, object], None]
) -> None:
    a, b, c, synapse = kits
    synapse.register("sam")
    sam = MatrixUser.login(synapse.client_url, "sam")
    alice, bob, carol = a.user("alice"), b.user("bob"), c.user("carol")
    room_id = sam.create_room(preset="public_chat")
    alice.join(room_id, via=[synapse.server_name])
    sam.send(room_id, "before b and c joined")
    bob.join(room_id, via=[a.server_name])
    carol.join(room_id, via=[a.server_name])
    sam.send(room_id, "from synapse")
    bob.send(room_id, "from b")
    carol.send(room_id, "from c")
    alice.send(room_id, "from a")
    from_synapse = {"before b and c joined", "from synapse"}
    bob.wait_for_bodies(room_id, from_synapse | {"from a", "from c"}, timeout=60)
    carol.wait_for_bodies(room_id, from_synapse | {"from a", "from b"}, timeout=60)
    sam.wait_for_bodies(room_id, {"from a", "from b", "from c"}, timeout=60)
    alice.wait_for_bodies(room_id, from_synapse | {"from b", "from c"}, timeout=60)

    # C is cut off; everyone writes; the link heals: every view converges to every message
    # exactly once, under the same event id everywhere.
    lab.link("c", up=False)
    users = {"sam": sam, "alice": alice, "bob": bob, "carol": carol}
    for i in range(PARTITION_MESSAGES):
        for name, user in users.items():
            user.send(room_id, f"{name}-{i}")
    lab.link("c", up=True)
    healed = time.monotonic()
    expected = from_synapse | {"from a", "from b", "from c"}
    expected |= {f"{name}-{i}" for name in users for i in range(PARTITION_MESSAGES)}
    wait_until(
        lambda: all(expected <= set(u.bodies(room_id)) for u in users.values()),
        120,
        "all four views to converge after the heal",
        interval=1.0,
    )
    converged_s = time.monotonic() - healed
    record_property("summary", f"mesh + Synapse: converged {converged_s:.1f} s after heal")
    views = {name: _timeline(user, room_id) for name, user in users.items()}
    for name, view in views.items():
        assert set(view) == expected, name
        assert all(len(ids) == 1 for ids in view.values()), (name, view)
    assert len({json.dumps(view, sort_keys=True) for view in views.values()}) == 1
