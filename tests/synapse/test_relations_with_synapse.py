"""Differential: one relations scenario (edits, a thread, reactions, a reference, a
redacted edit, refusals) against a real Synapse and against the relay, each with its own
local users; the shapes of what each answers (bundled aggregations on /event, /messages,
/context and /sync, /relations pages, /threads) must be the same. Then across
federation: a Synapse user edits and threads in a room the relay shares, and the relay's
user sees the same aggregations (the federation ingest path fills the index), and
history from before the relay joined, fetched by backfill, is indexed too."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from tests.integration.matrix_client import V3, MatrixUser
from tests.synapse.conftest import Pair

V1 = "/_matrix/client/v1"
_TXN = itertools.count()


def _put(user: MatrixUser, room: str, type_: str, content: dict[str, Any]) -> tuple[int, Any]:
    r = user.http.put(f"{V3}/rooms/{room}/send/{type_}/d{next(_TXN)}", json=content)
    return r.status_code, r.json()


def _send(user: MatrixUser, room: str, type_: str, content: dict[str, Any]) -> str:
    status, body = _put(user, room, type_, content)
    assert status == 200, body
    return body["event_id"]


def _rel(rel_type: str, parent: str, **extra: Any) -> dict[str, Any]:
    return {"rel_type": rel_type, "event_id": parent, **extra}


def _msg(body: str, relates: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body, **extra}
    if relates is not None:
        content["m.relates_to"] = relates
    return content


def _get(user: MatrixUser, path: str, **params: Any) -> tuple[int, Any]:
    r = user.http.get(path, params=params)
    return r.status_code, r.json()


class Labels:
    """Event ids and user ids replaced by stable names, so two servers' answers compare."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def name(self, value: str, label: str) -> str:
        self.names[value] = label
        return value

    def shape(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: self.shape(v)
                for k, v in value.items()
                if k
                not in ("age", "origin_server_ts", "room_id", "user_id", "next_batch", "prev_batch")
                and not (k == "unsigned" and not self._relations_only(v))
                # Synapse's MSC4115 `membership` and the sender's transaction_id are
                # not this test's subject.
                and k not in ("membership", "transaction_id")
            } | self._batches(value)
        if isinstance(value, list):
            return [self.shape(v) for v in value]
        if isinstance(value, str):
            for raw, label in self.names.items():
                value = value.replace(raw, label)
            return value
        return value

    @staticmethod
    def _relations_only(unsigned: Any) -> bool:
        return isinstance(unsigned, dict) and "m.relations" in unsigned

    @staticmethod
    def _batches(value: dict[str, Any]) -> dict[str, Any]:
        return {k: "<token>" for k in ("next_batch", "prev_batch") if k in value}


def _event_shape(labels: Labels, event: dict[str, Any]) -> dict[str, Any]:
    out = labels.shape(event)
    unsigned = event.get("unsigned", {})
    out["unsigned"] = {"m.relations": labels.shape(unsigned.get("m.relations"))}
    return out


def _scenario(login: Callable[[str], MatrixUser]) -> dict[str, Any]:
    alice, bob = login("alice"), login("bob")
    labels = Labels()
    labels.name(alice.user_id, "@alice")
    labels.name(bob.user_id, "@bob")
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    root = labels.name(alice.send(room, "root"), "$root")
    edits = [
        labels.name(
            _send(
                alice,
                room,
                "m.room.message",
                _msg(
                    f"* e{i}",
                    _rel("m.replace", root),
                    **{"m.new_content": {"msgtype": "m.text", "body": f"e{i}"}},
                ),
            ),
            f"$edit{i}",
        )
        for i in range(3)
    ]
    bob_edit = labels.name(
        _send(
            bob,
            room,
            "m.room.message",
            _msg(
                "* bob",
                _rel("m.replace", root),
                **{"m.new_content": {"msgtype": "m.text", "body": "bob"}},
            ),
        ),
        "$bobedit",
    )
    assert bob_edit
    alice.http.put(f"{V3}/rooms/{room}/redact/{edits[2]}/x{next(_TXN)}", json={})
    replies = [
        labels.name(
            _send(bob, room, "m.room.message", _msg(f"r{i}", _rel("m.thread", root))), f"$r{i}"
        )
        for i in range(6)
    ]
    labels.name(
        _send(bob, room, "m.reaction", {"m.relates_to": _rel("m.annotation", root, key="👍")}),
        "$like",
    )
    labels.name(
        _send(alice, room, "m.room.message", _msg("see", _rel("m.reference", root))), "$ref"
    )
    second = labels.name(alice.send(room, "second root"), "$root2")
    labels.name(_send(alice, room, "m.room.message", _msg("t", _rel("m.thread", second))), "$t2")
    answers: dict[str, Any] = {}
    answers["duplicate reaction"] = _put(
        bob, room, "m.reaction", {"m.relates_to": _rel("m.annotation", root, key="👍")}
    )[1].get("errcode")
    answers["thread from a reply"] = _put(
        bob, room, "m.room.message", _msg("x", _rel("m.thread", replies[0]))
    )[1].get("errcode")
    answers["unknown parent"] = _put(
        bob, room, "m.room.message", _msg("x", _rel("m.reference", "$" + "x" * 43))
    )[1].get("errcode")
    status, body = _get(bob, f"{V1}/rooms/{room}/relations/{'$' + 'y' * 43}")
    answers["relations of an unknown event"] = (status, body.get("errcode"))
    status, body = _get(bob, f"{V1}/rooms/{room}/relations/{root}", dir="x")
    answers["bad dir"] = (status, body.get("errcode"))

    reads: dict[str, Any] = {}
    _, event = _get(bob, f"{V3}/rooms/{room}/event/{root}")
    reads["event"] = _event_shape(labels, event)
    _, context = _get(bob, f"{V3}/rooms/{room}/context/{root}", limit=0)
    reads["context"] = _event_shape(labels, context["event"])
    _, page = _get(bob, f"{V3}/rooms/{room}/messages", dir="b", limit=50)
    reads["messages"] = [_event_shape(labels, e) for e in page["chunk"] if e["event_id"] == root]
    # /sync bundles only on a limited timeline (or a newly joined room), as Synapse does.
    sync = bob.call("GET", "/sync", params={"filter": '{"room":{"timeline":{"limit":50}}}'})
    timeline = sync["rooms"]["join"][room]["timeline"]["events"]
    reads["sync, unlimited"] = [_event_shape(labels, e) for e in timeline if e["event_id"] == root]
    from_root = len(timeline) - [e["event_id"] for e in timeline].index(root)
    limit = json.dumps({"room": {"timeline": {"limit": from_root}}})
    sync = bob.call("GET", "/sync", params={"filter": limit})
    timeline = sync["rooms"]["join"][room]["timeline"]["events"]
    assert sync["rooms"]["join"][room]["timeline"]["limited"]
    reads["sync, limited"] = [_event_shape(labels, e) for e in timeline if e["event_id"] == root]

    pages: dict[str, Any] = {}
    _, first = _get(bob, f"{V1}/rooms/{room}/relations/{root}")
    pages["all, first page"] = labels.shape(first)
    _, more = _get(bob, f"{V1}/rooms/{room}/relations/{root}", **{"from": first["next_batch"]})
    pages["all, second page"] = labels.shape(more)
    _, pages["threads forwards"] = _get(
        bob, f"{V1}/rooms/{room}/relations/{root}/m.thread", dir="f", limit=3
    )
    pages["threads forwards"] = labels.shape(pages["threads forwards"])
    _, annotations = _get(bob, f"{V1}/rooms/{room}/relations/{root}/m.annotation/m.reaction")
    pages["reactions"] = labels.shape(annotations)
    _, recursed = _get(bob, f"{V1}/rooms/{room}/relations/{second}", recurse="true")
    pages["recursed"] = labels.shape(recursed)
    _, threads = _get(bob, f"{V1}/rooms/{room}/threads")
    pages["threads"] = labels.shape(threads)
    _, mine = _get(alice, f"{V1}/rooms/{room}/threads", include="participated", limit=1)
    pages["alice's threads, 1"] = labels.shape(mine)
    # Notification counts per thread: edits and reactions never notify; alice's own
    # events don't count for her; bob's thread replies count in their thread.
    threaded = json.dumps({"room": {"timeline": {"limit": 1, "unread_thread_notifications": True}}})
    entry = alice.call("GET", "/sync", params={"filter": threaded})["rooms"]["join"][room]
    reads["counts"] = {
        "main": entry["unread_notifications"],
        "threads": {
            labels.shape(root): counts
            for root, counts in entry.get("unread_thread_notifications", {}).items()
        },
    }
    return {"answers": answers, "reads": reads, "pages": pages}


def test_relations_answers_match_synapse(pair: Pair) -> None:
    on_synapse = _scenario(pair.synapse_user)
    on_relay = _scenario(pair.relay_user)
    assert on_relay["answers"] == on_synapse["answers"]
    for name in on_synapse["reads"]:
        assert on_relay["reads"][name] == on_synapse["reads"][name], name
    for name in on_synapse["pages"]:
        assert on_relay["pages"][name] == on_synapse["pages"][name], name
    # The scenario itself proves something: the redacted edit fell back to the one before.
    assert on_relay["reads"]["event"]["unsigned"]["m.relations"]["m.replace"]["event_id"] == (
        "$edit1"
    )
    assert on_relay["reads"]["event"]["unsigned"]["m.relations"]["m.thread"]["count"] == 6
    assert on_relay["reads"]["counts"]["threads"] == {
        "$root": {"notification_count": 6, "highlight_count": 0}
    }


def test_relations_sent_on_synapse_are_aggregated_on_the_relay(pair: Pair) -> None:
    carol = pair.synapse_user("carol")
    dave = pair.relay_user("dave")
    room = carol.create_room(preset="public_chat")
    # History from before dave's server joined: it reaches the relay by backfill.
    old_root = carol.send(room, "old root")
    old_reply = _send(carol, room, "m.room.message", _msg("old reply", _rel("m.thread", old_root)))
    dave.join(room, via=[pair.synapse.server_name])
    root = carol.send(room, "root")
    edit = _send(
        carol,
        room,
        "m.room.message",
        _msg(
            "* fixed",
            _rel("m.replace", root),
            **{"m.new_content": {"msgtype": "m.text", "body": "fixed"}},
        ),
    )
    reply = _send(carol, room, "m.room.message", _msg("in thread", _rel("m.thread", root)))
    dave.wait_for_bodies(room, {"in thread"})
    status, event = _get(dave, f"{V3}/rooms/{room}/event/{root}")
    assert status == 200, event
    relations = event["unsigned"]["m.relations"]
    assert relations["m.replace"]["event_id"] == edit
    assert relations["m.thread"]["latest_event"]["event_id"] == reply
    assert relations["m.thread"]["count"] == 1
    assert relations["m.thread"]["current_user_participated"] is False
    assert "old root" in dave.bodies(room)  # paged back: /backfill stored it
    status, page = _get(dave, f"{V1}/rooms/{room}/relations/{old_root}")
    assert status == 200, page
    assert [e["event_id"] for e in page["chunk"]] == [old_reply]
    _, threads = _get(dave, f"{V1}/rooms/{room}/threads")
    assert [e["event_id"] for e in threads["chunk"]] == [root, old_root]
