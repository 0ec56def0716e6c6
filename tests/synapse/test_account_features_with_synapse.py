"""Differential: issue 14's account features, state/alias rules and room upgrades, one
scenario run against a real Synapse and against the relay. Every step must answer the same
status and errcode; successful answers must have Synapse's shapes; and the facts the
scenario records (is a repeated state event the same event? what does the tombstone say?)
must be the same."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.integration.matrix_client import MatrixUser
from tests.synapse.conftest import side_by_side
from tests.synapse.test_admin_api_with_synapse import _same_shape, _shape

V3 = "/_matrix/client/v3"


class Server:
    def __init__(self, base: str, server_name: str, tokens: dict[str, str]) -> None:
        self.server_name = server_name
        self.as_user = {
            name: httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            for name, token in tokens.items()
        }
        self.anonymous = httpx.Client(base_url=base, timeout=30)

    def uid(self, name: str) -> str:
        return f"@{name}:{self.server_name}"

    def run(self) -> tuple[dict[str, httpx.Response], dict[str, Any]]:
        """The scenario: each step's response by name, and the facts it found."""
        alice, bob, carol = (self.as_user[n] for n in ("alice", "bob", "carol"))
        out: dict[str, httpx.Response] = {}
        facts: dict[str, Any] = {}
        room = alice.post(
            f"{V3}/createRoom", json={"preset": "public_chat", "room_version": "10"}
        ).json()["room_id"]
        assert bob.post(f"{V3}/rooms/{room}/join", json={}).status_code == 200
        tags = f"{V3}/user/{quote(self.uid('alice'))}/rooms/{room}/tags"
        out["tag_put"] = alice.put(f"{tags}/m.favourite", json={"order": 0.5})
        out["tag_get"] = alice.get(tags)
        facts["tags"] = out["tag_get"].json()
        out["tag_too_long"] = alice.put(f"{tags}/{'x' * 256}", json={})
        out["tag_other_user"] = bob.put(f"{tags}/m.favourite", json={})
        out["tag_not_member"] = carol.put(
            f"{V3}/user/{quote(self.uid('carol'))}/rooms/{room}/tags/u.x", json={}
        )
        out["tag_not_object"] = alice.put(f"{tags}/u.x", json=[1])
        out["tag_delete_missing"] = alice.delete(f"{tags}/u.none")

        presence = f"{V3}/presence/{{}}/status"
        out["presence_own_unset"] = carol.get(presence.format(quote(self.uid("carol"))))
        facts["presence_own_unset"] = out["presence_own_unset"].json().get("presence")
        out["presence_stranger"] = carol.get(presence.format(quote(self.uid("alice"))))
        out["presence_bad_id"] = carol.get(presence.format("not-a-user"))

        topic = f"{V3}/rooms/{room}/state/m.room.topic/"
        first = alice.put(topic, json={"topic": "t"}).json()["event_id"]
        out["state_again"] = alice.put(topic, json={"topic": "t"})
        facts["state_again_same_event"] = out["state_again"].json()["event_id"] == first
        join1 = bob.post(f"{V3}/rooms/{room}/join", json={}).json()
        out["join_again"] = bob.post(f"{V3}/rooms/{room}/join", json={})
        member = bob.get(f"{V3}/rooms/{room}/state/m.room.member/{quote(self.uid('bob'))}")
        facts["join_again_same_room"] = out["join_again"].json() == join1
        facts["member"] = member.json()["membership"]

        canonical = f"{V3}/rooms/{room}/state/m.room.canonical_alias/"
        out["alias_missing"] = alice.put(canonical, json={"alias": f"#missing:{self.server_name}"})
        out["alias_alt_missing"] = alice.put(
            canonical, json={"alt_aliases": [f"#missing:{self.server_name}"]}
        )
        out["alias_alt_not_list"] = alice.put(canonical, json={"alt_aliases": "#a:b"})
        alias = f"#diff-{room[1:6].lower()}:{self.server_name}"
        out["alias_create"] = alice.put(
            f"{V3}/directory/room/{quote(alias)}", json={"room_id": room}
        )
        out["alias_set"] = alice.put(canonical, json={"alias": alias, "alt_aliases": [alias]})
        out["alias_delete"] = alice.delete(f"{V3}/directory/room/{quote(alias)}")
        facts["canonical_after_delete"] = alice.get(canonical).json()

        upgrade = f"{V3}/rooms/{room}/upgrade"
        out["upgrade_no_version"] = alice.post(upgrade, json={})
        out["upgrade_bad_version"] = alice.post(upgrade, json={"new_version": "999"})
        out["upgrade_no_room"] = alice.post(
            f"{V3}/rooms/!nope:{self.server_name}/upgrade", json={"new_version": "11"}
        )
        out["upgrade_no_power"] = bob.post(upgrade, json={"new_version": "11"})
        out["upgrade"] = alice.post(upgrade, json={"new_version": "11"})
        new_room = out["upgrade"].json()["replacement_room"]
        tomb = alice.get(f"{V3}/rooms/{room}/state/m.room.tombstone/").json()
        create = alice.get(f"{V3}/rooms/{new_room}/state/m.room.create/").json()
        facts["tombstone_points_at_new_room"] = tomb.get("replacement_room") == new_room
        facts["predecessor_room"] = create["predecessor"]["room_id"] == room
        facts["new_room_tags"] = alice.get(
            f"{V3}/user/{quote(self.uid('alice'))}/rooms/{new_room}/tags"
        ).json()
        old_levels = alice.get(f"{V3}/rooms/{room}/state/m.room.power_levels/").json()
        facts["old_room_restricted"] = (old_levels["events_default"], old_levels["invite"])

        out["openid"] = alice.post(
            f"{V3}/user/{quote(self.uid('alice'))}/openid/request_token", json={}
        )
        out["openid_other"] = alice.post(
            f"{V3}/user/{quote(self.uid('bob'))}/openid/request_token", json={}
        )

        deactivate = f"{V3}/account/deactivate"
        out["deactivate_bad_erase"] = carol.post(deactivate, json={"erase": "yes"})
        out["deactivate_no_auth"] = carol.post(deactivate, json={})
        session = out["deactivate_no_auth"].json()["session"]
        auth = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "carol"},
            "password": "pw",
            "session": session,
        }
        out["deactivate_wrong_password"] = carol.post(
            deactivate, json={"auth": {**auth, "password": "nope"}}
        )
        out["deactivate"] = carol.post(deactivate, json={"auth": auth})
        out["login_deactivated"] = self.anonymous.post(
            f"{V3}/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "carol"},
                "password": "pw",
            },
        )
        return out, facts


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    names = ("alice", "bob", "carol")
    with side_by_side(tmp_path) as pair:
        for name in names:
            pair.synapse.register(name, "pw")
            pair.relay.cli("user", "add", name, "--password", "pw")

        def server(url: str, server_name: str) -> Server:
            tokens = {n: MatrixUser.login(url, n).http.headers["Authorization"][7:] for n in names}
            return Server(url, server_name, tokens)

        yield (
            server(pair.relay.client_url, pair.relay.server_name),
            server(pair.synapse.client_url, pair.synapse.server_name),
        )


def test_account_features_answer_as_synapse(servers: tuple[Server, Server]) -> None:
    ours_server, theirs_server = servers
    (ours, our_facts), (theirs, their_facts) = ours_server.run(), theirs_server.run()
    problems = []
    for step in theirs:
        a, b = ours[step], theirs[step]
        if a.status_code != b.status_code:
            problems.append(
                f"{step}: status {a.status_code} vs {b.status_code}: {a.text} / {b.text}"
            )
            continue
        if b.status_code >= 400:
            if a.json().get("errcode") != b.json().get("errcode"):
                problems.append(f"{step}: {a.json()} vs {b.json()}")
            continue
        problems += [f"{step}{p}" for p in _same_shape(_shape(a.json()), _shape(b.json()))]
    assert problems == []
    assert our_facts == their_facts
