"""One target homeserver (a real Synapse or a real relay) seen from the fake remote: the room
its local user Alice made, what the remote knows of it, and the scenario rows run against it.

A row is one request (or a short script ending in one) plus what to compare of the answer.
`run_row` gives the comparable outcome: status, errcode and the row's own `view` of the body,
with every target-specific string (server name, room id, event ids) replaced by a symbol."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from relay.events.pdu import Pdu
from relay.events.room_versions import RoomVersion, room_version
from tests.federation.differential.fake_remote import FakeRemote
from tests.integration.matrix_client import V3, MatrixUser

#: The room versions every row runs in (one room per version on the same two servers).
VERSIONS = ("10", "11", "12")
V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


def q(value: str) -> str:
    return quote(value, safe="")


@dataclass
class Request:
    method: str
    path: str
    query: Mapping[str, str | Sequence[str]] | None = None
    body: Any = None
    signed: bool = True


@dataclass
class Conversation:
    kind: str  # "synapse" or "relay"
    version: str  # the room version of Alice's room and of every event the remote builds
    server_name: str
    federation_url: str
    alice: MatrixUser
    remote: FakeRemote
    #: A second server of the tests (Zoe's), for server ACL rows: denied while the remote is not.
    other: FakeRemote
    http: httpx.Client = field(init=False)
    room_id: str = ""
    alias: str = ""
    #: (type, state_key) -> event id of the room's current state as the remote knows it.
    state: dict[str, Any] = field(default_factory=dict)
    tip: list[str] = field(default_factory=list)
    depth: int = 0
    #: scenario name -> event id, for later rows and for the symbols in views.
    named: dict[str, str] = field(default_factory=dict)
    last: str = ""

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.federation_url, verify=False, timeout=60)

    @property
    def rules(self) -> RoomVersion:
        rv = room_version(self.version)
        assert rv is not None
        return rv

    # -- requests ------------------------------------------------------------------------

    def send(self, request: Request, remote: FakeRemote | None = None) -> httpx.Response:
        """`request` from our remote (or from `remote`, another server of the tests)."""
        return (remote or self.remote).request(
            self.http,
            self.server_name,
            request.method,
            request.path,
            query=request.query,
            body=request.body,
            signed=request.signed,
        )

    def client(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.alice.http.request(method, f"{V3}{path}", **kw)

    # -- building on the room ------------------------------------------------------------

    def pdu(
        self,
        localpart: str,
        type_: str,
        content: dict[str, Any],
        *,
        state_key: str | None = None,
        prev_events: Sequence[str] | None = None,
        state: Mapping[Any, str] | None = None,
        room_id: str | None = None,
        remote: FakeRemote | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        remote = remote or self.remote
        return remote.event(
            self.version,
            room_id=room_id or self.room_id,
            sender=remote.user(localpart),
            type_=type_,
            content=content,
            state=state if state is not None else self.state,
            prev_events=prev_events or self.tip,
            depth=self.depth + 1,
            state_key=state_key,
            **extra,
        )

    def advance(self, name: str, event: dict[str, Any]) -> None:
        """The remote now builds on `event` (accepted by the target)."""
        event_id = self.event_id(event)
        self.named[name] = event_id
        self.tip = [event_id]
        self.depth = max(self.depth, event["depth"])
        if "state_key" in event:
            self.state[(event["type"], event["state_key"])] = event_id

    def learn(self, name: str, event_id: str) -> None:
        """The remote builds on `event_id`, an event the target made (fetched over /event)."""
        r = self.send(Request("GET", f"{V1}/event/{q(event_id)}"))
        assert r.status_code == 200, r.text
        self.advance(name, r.json()["pdus"][0])

    def event_id(self, event: dict[str, Any]) -> str:
        return self.remote_id(event)

    def txn(
        self,
        pdus: list[dict[str, Any]],
        edus: list[dict[str, Any]] | None = None,
        remote: FakeRemote | None = None,
    ) -> Request:
        """A /send transaction from our remote (or from `remote`: send it with that one)."""
        body: dict[str, Any] = {
            "origin": (remote or self.remote).name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": pdus,
        }
        if edus is not None:
            body["edus"] = edus
        return Request("PUT", f"{V1}/send/{uuid.uuid4().hex}", body=body)

    def join(
        self, localpart: str, *, v1: bool = False, remote: FakeRemote | None = None
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """make_join then send_join as `localpart` of the remote (or of `remote`); the room
        state is learnt."""
        remote = remote or self.remote
        user = remote.user(localpart)
        made = self.send(
            Request(
                "GET",
                f"{V1}/make_join/{q(self.room_id)}/{q(user)}",
                query={"ver": self.version},
            ),
            remote,
        )
        assert made.status_code == 200, made.text
        event = remote.signed_template(self.version, made.json()["event"])
        event_id = self.event_id(event)
        path = f"{V1 if v1 else V2}/send_join/{q(self.room_id)}/{q(event_id)}"
        r = self.send(Request("PUT", path, body=event), remote)
        if r.status_code == 200:
            body = r.json()[1] if v1 else r.json()
            for ev in body.get("state", []):
                self.state[(ev["type"], ev["state_key"])] = self.remote_id(ev)
                self.depth = max(self.depth, ev["depth"])
            self.advance(f"join_{localpart}", event)
        return r, event

    def remote_id(self, event: dict[str, Any]) -> str:
        """The id of an event the target built (versions 3+: the reference hash)."""
        return Pdu.from_dict(event, self.rules).event_id

    # -- comparing -----------------------------------------------------------------------

    def symbols(self) -> dict[str, str]:
        table = {eid: f"${name}" for name, eid in self.named.items()}
        table[self.room_id] = "$ROOM"
        if self.alias:
            table[self.alias] = "$ALIAS"
        table[self.server_name] = "$T"
        table[self.remote.name] = "$F"
        table[self.other.name] = "$O"
        return table

    def normalize(self, value: Any) -> Any:
        table = sorted(self.symbols().items(), key=lambda kv: -len(kv[0]))

        def walk(v: Any) -> Any:
            if isinstance(v, str):
                for concrete, symbol in table:
                    if concrete:
                        v = v.replace(concrete, symbol)
                return v
            if isinstance(v, (list, tuple)):
                return [walk(x) for x in v]
            if isinstance(v, dict):
                return {walk(k): walk(x) for k, x in v.items()}
            return v

        return walk(value)


#: A row's act: it makes the request (maybe after others) and returns the answer.
Act = Callable[[Conversation], httpx.Response]
View = Callable[[Conversation, httpx.Response], Any]


def no_view(conv: Conversation, r: httpx.Response) -> Any:
    return None


@dataclass
class Row:
    """One scenario: `act` makes the request (it may first script others) and returns the
    answer; `view` says what of a 2xx body must match. `known` is a difference we keep, with
    its reason (README "Differences from Synapse we keep")."""

    name: str
    act: Act
    view: View = no_view
    known: str | None = None


def outcome(conv: Conversation, row: Row) -> tuple[int, str | None, Any]:
    """(status, errcode, view); the whole answer goes to `conv.last` for failure messages."""
    r = row.act(conv)
    conv.last = f"{r.status_code} {r.text[:300]}"
    try:
        body = r.json()
    except ValueError:
        body = None
    errcode = body.get("errcode") if isinstance(body, dict) else None
    view = conv.normalize(row.view(conv, r)) if 200 <= r.status_code < 300 else None
    return r.status_code, errcode, view


def request_row(
    name: str,
    make: Callable[[Conversation], Request],
    view: View = no_view,
    known: str | None = None,
) -> Row:
    return Row(name, lambda conv: conv.send(make(conv)), view, known)


def wait_until(predicate: Callable[[], Any], timeout: float = 20) -> Any:
    """The predicate's first truthy value, or its last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(0.2)
        value = predicate()
    return value
