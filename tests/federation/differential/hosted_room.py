"""A room the fake remote hosts, for the outbound rows: a target's user joins it through the
remote, which answers `make_join` and `send_join` as a resident server would, or as a scenario
says (an event with a bad signature, no create event, a refusal of its own).

The events are built and signed by the remote (`FakeRemote.event`, which also serves them on
`/event`). `damage` rewrites one of them the way a broken or hostile server would, and the
damaged copy is what the remote serves from then on: a target that fetches it again (Synapse
does, when a signature fails) gets the same bad event."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relay.events.auth import auth_types_for_event
from relay.events.ids import room_id_of_create
from relay.events.pdu import Pdu
from relay.events.room_versions import room_version
from tests.federation.differential.fake_remote import FakeRemote, now_ms

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"
#: A signature no key made (an ed25519 signature is 64 bytes, unpadded base64 86 characters).
FORGED_SIGNATURE = "A" * 86


def event_id_of(event: dict[str, Any], version: str) -> str:
    rv = room_version(version)
    assert rv is not None
    return Pdu.from_dict(event, rv).event_id


@dataclass
class HostedRoom:
    remote: FakeRemote
    version: str
    creator: str
    room_id: str = ""
    #: (type, state_key) -> event id: the room's current state.
    state: dict[tuple[str, str], str] = field(default_factory=dict)
    tip: list[str] = field(default_factory=list)
    depth: int = 0
    #: The send_join answer passes through this before it goes out (a scenario's change).
    answer_send_join: Callable[[dict[str, Any]], tuple[int, Any]] = lambda body: (200, body)
    #: make_join's answer when set: (status, body), instead of a template.
    make_join_refusal: tuple[int, Any] | None = None
    #: The joins the room was sent (each target's signed join event, as received).
    joins: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def create(
        cls, remote: FakeRemote, version: str, name: str, *, create_version: str | None = None
    ) -> HostedRoom:
        """A public room made by the remote's `creator`: create (naming `create_version`,
        by default the room's version), join, power levels (the creator at 100; from v12
        creators are above power levels and never listed), join rules (public), history
        visibility (shared). `name` is in the room id, where the version has one there."""
        rv = room_version(version)
        assert rv is not None
        room = cls(remote, version, remote.user("creator"))
        content: dict[str, Any] = {"room_version": create_version or version}
        if not rv.implicit_room_creator:
            content["creator"] = room.creator
        if rv.room_id_is_create_event_hash:
            create = room.add("m.room.create", content, "")
            room.room_id = room_id_of_create(event_id_of(create, version))
        else:
            room.room_id = f"!{name}-{uuid.uuid4().hex[:8]}:{remote.name}"
            room.add("m.room.create", content, "")
        room.add("m.room.member", {"membership": "join"}, room.creator)
        users = {} if rv.privileged_creators else {room.creator: 100}
        room.add(
            "m.room.power_levels",
            {
                "users": users,
                "users_default": 0,
                "events_default": 0,
                "state_default": 50,
                "ban": 50,
                "kick": 50,
                "redact": 50,
                "invite": 0,
                "events": {},
            },
            "",
        )
        room.add("m.room.join_rules", {"join_rule": "public"}, "")
        room.add("m.room.history_visibility", {"history_visibility": "shared"}, "")
        return room

    def add(
        self,
        type_: str,
        content: dict[str, Any],
        state_key: str | None = None,
        *,
        sender: str | None = None,
        by: FakeRemote | None = None,
    ) -> dict[str, Any]:
        """A new event on the room's tip, signed by `by` (a user's own server; by default
        the remote)."""
        signer = by or self.remote
        event = signer.event(
            self.version,
            room_id=self.room_id or None,
            sender=sender or self.creator,
            type_=type_,
            content=content,
            state=self.state,
            prev_events=self.tip,
            depth=self.depth + 1,
            state_key=state_key,
        )
        event_id = event_id_of(event, self.version)
        # The remote serves every event of its room, whoever signed it.
        self.remote.events.setdefault(event_id, event)
        self.tip = [event_id]
        self.depth += 1
        if state_key is not None:
            self.state[(type_, state_key)] = event_id
        return event

    def damage(self, event_id: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Change one of the room's events after it was signed; the remote serves the
        changed copy from now on (its id stays the reference hash of the original)."""
        event = copy.deepcopy(self.remote.events[event_id])
        change(event)
        self.remote.events[event_id] = event

    def forge_signature(self, event_id: str) -> None:
        self.damage(
            event_id,
            lambda e: e.update(
                signatures={self.remote.name: {self.remote.key.key_id: FORGED_SIGNATURE}}
            ),
        )

    # -- what the remote answers -------------------------------------------------------

    def template(self, user_id: str) -> dict[str, Any]:
        rv = room_version(self.version)
        assert rv is not None
        template: dict[str, Any] = {
            "room_id": self.room_id,
            "sender": user_id,
            "type": "m.room.member",
            "state_key": user_id,
            "content": {"membership": "join"},
            "origin_server_ts": now_ms(),
            "prev_events": list(self.tip),
            "depth": self.depth + 1,
        }
        if not rv.updated_redaction_rules:
            template["origin"] = self.remote.name
        template["auth_events"] = sorted(
            self.state[k] for k in auth_types_for_event(template, rv) if k in self.state
        )
        return template

    def auth_chain(self, event_ids: list[str]) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        todo = list(event_ids)
        while todo:
            event = self.remote.events.get(todo.pop())
            if event is None:
                continue
            for auth_id in event.get("auth_events", []):
                if auth_id not in seen and auth_id in self.remote.events:
                    seen[auth_id] = self.remote.events[auth_id]
                    todo.append(auth_id)
        return list(seen.values())

    def send_join_body(self) -> dict[str, Any]:
        state_ids = list(self.state.values())
        return {
            "origin": self.remote.name,
            "state": [self.remote.events[e] for e in state_ids],
            "auth_chain": self.auth_chain(state_ids),
        }

    def host(self) -> HostedRoom:
        """The remote answers make_join and (v2) send_join for this room."""
        room = re.escape(self.room_id)

        def make_join(match: Any, body: Any) -> tuple[int, Any]:
            if self.make_join_refusal is not None:
                return self.make_join_refusal
            return 200, {"room_version": self.version, "event": self.template(match[1])}

        def send_join(match: Any, body: Any) -> tuple[int, Any]:
            if isinstance(body, dict):
                self.joins.append(body)
            return self.answer_send_join(self.send_join_body())

        self.remote.scripts += [
            ("GET", f"{V1}/make_join/{room}/([^/]+)", make_join),
            ("PUT", f"{V2}/send_join/{room}/[^/]+", send_join),
        ]
        return self
