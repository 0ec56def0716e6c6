"""Three relays on a LAN (network namespaces + bridge): discovery, trust, gossip.

Every relay runs with default settings (TLS verification on) except approvals. One lab for
the module; the tests run in order and build on each other: discovery (within 5 s) -> a
request forging a pending peer's name changes nothing -> approval -> a shared room, a
partition with 300 messages per relay, heal, convergence (within 30 s, every message
exactly once) -> rogues -> a host replaying a trusted kit's key response.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.mesh.conftest import ROOT, Lab, MeshRelay
from tests.support import seconds_until, wait_until

MESSAGES = 300
TIMINGS: dict[str, float] = {}
SHARED: dict[str, object] = {}


@pytest.fixture(scope="module")
def mesh(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, MeshRelay]]:
    base: Path = tmp_path_factory.mktemp("mesh")
    relays = {n: MeshRelay(n, lab, i + 1, base / n, f"{n}.mesh") for i, n in enumerate("abc")}
    for r in relays.values():
        r.init()
    a, b = relays["a"], relays["b"]
    # a and b are provisioned with each other's key; c will be approved by the operators.
    a.pin(b.server_name, b.verify_key)
    b.pin(a.server_name, a.verify_key)
    try:
        for r in relays.values():
            r.start()
        for r in relays.values():
            r.wait_ready()
        yield relays
    finally:
        for r in relays.values():
            r.kill()
        print("mesh timings:", {k: round(v, 2) for k, v in TIMINGS.items()})


def test_discovery_within_5_seconds(mesh: dict[str, MeshRelay]) -> None:
    def everyone_sees_everyone() -> bool:
        for r in mesh.values():
            names = {row["name"] for row in r.peers() if row["reachable"]}
            if names != {o.server_name for o in mesh.values() if o is not r}:
                return False
        return True

    TIMINGS["discovery_s"] = seconds_until(everyone_sees_everyone, 5, "discovery")
    a, b, c = mesh["a"], mesh["b"], mesh["c"]
    # Pinned by config: trusted at once. Unknown key: pending, with its fingerprint shown.
    wait_until(lambda: (a.peer("b.mesh") or {}).get("status") == "trusted", 5, "a trusts b")
    row = a.peer("c.mesh")
    assert row is not None and row["status"] == "pending"
    assert row["address"] == f"{c.address}:8448"
    assert len(row["fingerprint"]) == 64
    assert (b.peer("c.mesh") or {})["status"] == "pending"
    assert all(r["status"] == "pending" for r in c.peers())


def test_forged_request_leaves_a_pending_peer_pending(mesh: dict[str, MeshRelay]) -> None:
    """Anyone can put a pending kit's name in an X-Matrix header; only a request signed with
    the key that kit served may get it rejected (the rogue below is that twin)."""
    a, c = mesh["a"], mesh["c"]
    assert (a.peer("c.mesh") or {})["status"] == "pending"
    port = a.forward(8448)
    key_id = a.peer("c.mesh")["key_id"]
    forged = f'X-Matrix origin="c.mesh",destination="a.mesh",key="{key_id}",sig="{"A" * 86}"'
    response = httpx.put(
        f"https://127.0.0.1:{port}/_matrix/federation/v1/send/forged",
        json={"origin": "c.mesh", "origin_server_ts": 1, "pdus": [], "edus": []},
        headers={"Authorization": forged},
        verify=False,
    )
    assert response.status_code == 401, response.text
    row = a.peer("c.mesh")
    assert row["status"] == "pending", row
    assert c.address in row["address"]


def test_operator_approves_with_the_cli(mesh: dict[str, MeshRelay]) -> None:
    a, b, c = mesh["a"], mesh["b"], mesh["c"]
    out = a.cli("peers", "approve", "c.mesh").stdout
    assert "approved c.mesh" in out
    b.cli("peers", "approve", "c.mesh")
    c.cli("peers", "approve", "a.mesh")
    c.cli("peers", "approve", "b.mesh")
    assert a.cli("peers", "approve", "nobody.mesh", check=False).returncode == 1
    text = a.cli("peers", "list").stdout
    assert "c.mesh" in text and "trusted" in text
    for r in (a, b, c):
        for other in mesh.values():
            if other is not r:
                row = r.peer(other.server_name)
                assert row is not None and row["status"] == "trusted", (r.name, row)


def _write(user, room_id: str, tag: str, errors: list[str]) -> None:
    try:
        for i in range(MESSAGES):
            user.send(room_id, f"{tag}-{i}")
    except Exception as exc:  # surfaced by the test
        errors.append(f"{tag}: {exc!r}")


def test_partition_heal_converge(lab: Lab, mesh: dict[str, MeshRelay]) -> None:
    a, b, c = mesh["a"], mesh["b"], mesh["c"]
    alice, bob, carol = a.user("alice"), b.user("bob"), c.user("carol")
    room_id = alice.create_room(preset="public_chat")
    for user in (bob, carol):
        alice.invite(room_id, user.user_id)
        user.wait_for_invite(room_id, timeout=30)
        user.join(room_id)
    alice.send(room_id, "hello all")
    for user in (bob, carol):
        user.wait_for_bodies(room_id, {"hello all"}, timeout=30)
    SHARED["room"] = room_id
    SHARED["users"] = {"alice": alice, "bob": bob, "carol": carol}

    lab.link("c", up=False)
    cut = time.monotonic()
    errors: list[str] = []
    threads = [
        threading.Thread(target=_write, args=(u, room_id, u.user_id.split(":")[0][1:], errors))
        for u in (alice, bob, carol)
    ]
    for t in threads:
        t.start()
    # While partitioned: a notices c is gone (well within 30 s).
    TIMINGS["dead_peer_leaves_s"] = seconds_until(
        lambda: a.peer("c.mesh")["reachable"] is False, 30, "a to mark c unreachable"
    )
    for t in threads:
        t.join()
    assert errors == []
    TIMINGS["written_while_partitioned_s"] = time.monotonic() - cut

    lab.link("c", up=True)
    healed = time.monotonic()
    TIMINGS["healed_peer_returns_s"] = seconds_until(
        lambda: a.peer("c.mesh")["reachable"] is True, 15, "a to see c again"
    )
    expected = {"hello all"} | {
        f"{who}-{i}" for who in ("alice", "bob", "carol") for i in range(MESSAGES)
    }

    def converged() -> bool:
        return all(expected <= set(u.bodies(room_id)) for u in (alice, bob, carol))

    wait_until(converged, 30, "all three to converge", interval=1.0)
    TIMINGS["converged_after_heal_s"] = time.monotonic() - healed
    for user in (alice, bob, carol):
        counts = Counter(user.bodies(room_id))
        assert set(counts) == expected
        assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1][:5]


def test_rogues_get_nothing_and_change_nothing(
    lab: Lab, mesh: dict[str, MeshRelay], tmp_path_factory: pytest.TempPathFactory
) -> None:
    a, b, c = mesh["a"], mesh["b"], mesh["c"]
    room_id = SHARED["room"]
    users = SHARED["users"]
    base = tmp_path_factory.mktemp("rogues")
    # An unknown relay (its own, unpinned key) that knows a's key and tries to join the
    # room through a; and one announcing b's name from another address with another key.
    rogue = MeshRelay("d", lab, 4, base / "d", "rogue.mesh")
    fake_b = MeshRelay("e", lab, 5, base / "e", "b.mesh")
    rogues = (rogue, fake_b)
    b_before = a.peer("b.mesh", b.address)
    before = {r.name: len(users[u].bodies(room_id)) for r, u in zip((a, b, c), users, strict=True)}
    try:
        for r in rogues:
            r.init()
        rogue.pin(a.server_name, a.verify_key)
        fake_b.pin(a.server_name, a.verify_key)
        for r in rogues:
            r.start()
        for r in rogues:
            r.wait_ready()
        mallory, fake_bob = rogue.user("mallory"), fake_b.user("bob")
        wait_until(lambda: rogue.peer("a.mesh", a.address) is not None, 10, "rogue sees a")
        for intruder in (mallory, fake_bob):
            r = intruder.http.post(
                f"/_matrix/client/v3/join/{room_id}", params={"server_name": "a.mesh"}, json={}
            )
            assert r.status_code >= 400, r.text
        # Both show as rejected on a (and c), and the real b is untouched.
        wait_until(
            lambda: (a.peer("rogue.mesh") or {}).get("status") == "rejected", 15, "rogue rejected"
        )
        for watcher in (a, c):
            wait_until(
                lambda w=watcher: (
                    (w.peer("b.mesh", fake_b.address) or {}).get("status") == "rejected"
                ),
                20,
                f"{watcher.name} to reject the fake b",
            )
        text = a.cli("peers", "list").stdout
        assert "rejected" in text
        b_after = a.peer("b.mesh", b.address)
        assert b_after["status"] == "trusted"
        assert b_after["fingerprint"] == b_before["fingerprint"]
        assert b_after["address"] == b_before["address"]
        # The mesh still works: a new message reaches b and c, and only them.
        users["alice"].send(room_id, "after the rogues")
        for u in ("bob", "carol"):
            users[u].wait_for_bodies(room_id, {"after the rogues"}, timeout=15)
        for intruder in (mallory, fake_bob):
            joined = intruder.call("GET", "/joined_rooms")["joined_rooms"]
            assert joined == []
            r = intruder.http.get(f"/_matrix/client/v3/rooms/{room_id}/messages")
            assert r.status_code in (403, 404)
        after = {
            r.name: len(users[u].bodies(room_id)) for r, u in zip((a, b, c), users, strict=True)
        }
        assert all(after[k] == before[k] + 1 for k in before)
    finally:
        for r in rogues:
            r.kill()


def test_replaying_impostor_is_rejected_and_gets_nothing(
    lab: Lab, mesh: dict[str, MeshRelay], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A LAN host serves b's own (public, validly signed) key response from its address and
    announces b's name, key id and fingerprint. It cannot present b's certificate, which
    b's signed response lists: a and c judge it rejected, b stays trusted at its address,
    and the impostor receives nothing but key fetches and liveness probes."""
    a, b, c = mesh["a"], mesh["b"], mesh["c"]
    users = SHARED["users"]
    room_id = SHARED["room"]
    work = tmp_path_factory.mktemp("impostor")
    ns, address = lab.add_node("f", 6)
    b_before = a.peer("b.mesh", b.address)
    impostor = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-m",
            "tests.mesh.impostor",
            f"https://{b.address}:8448",
            address,
            str(work),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert impostor.stdout is not None
        assert impostor.stdout.readline().strip() == "ready"
        for watcher in (a, c):
            wait_until(
                lambda w=watcher: (w.peer("b.mesh", address) or {}).get("status") == "rejected",
                20,
                f"{watcher.name} to reject the impostor",
            )
            assert "replay" in watcher.peer("b.mesh", address)["reason"]
        b_after = a.peer("b.mesh", b.address)
        assert b_after["status"] == "trusted"
        assert (b_after["address"], b_after["fingerprint"]) == (
            b_before["address"],
            b_before["fingerprint"],
        )
        users["alice"].send(room_id, "while the impostor listens")
        users["carol"].send(room_id, "carol too")
        for u in ("bob", "carol", "alice"):
            users[u].wait_for_bodies(
                room_id, {"while the impostor listens", "carol too"}, timeout=15
            )
        # Three more liveness probes of it (and gossip rounds meanwhile), then: what did
        # the impostor get?
        log_path = work / "requests.log"

        def probes() -> int:
            return log_path.read_text().count("GET /health")

        seen = probes()
        wait_until(lambda: probes() >= seen + 3, 30, "three more probes of the impostor")
        received = (work / "requests.log").read_text().splitlines()
        assert any(line.startswith("GET /_matrix/key/v2/server") for line in received)
        allowed = ("GET /_matrix/key/v2/server unsigned", "GET /health unsigned")
        assert [line for line in received if line not in allowed] == []
    finally:
        impostor.kill()
        impostor.wait()
