"""Our users joining, leaving and inviting across servers.

- Join a room we are not in: `make_join` on a server that is (from `via`, the
  alias, the invite, the servers we know in it, the room id), sign the template,
  `send_join`, then store the returned auth chain and state and accept our join on
  that state. As Synapse (federation_client.send_join, process_remote_join): an
  event of the answer whose signature fails is dropped, and so is one citing a
  dropped event; the join stands if what is left authorises it. An answer that is
  not a room's state (no create event in its state, another room version, members
  omitted: we never ask for a partial state) is `InvalidAnswer` and the next server
  is tried, as after a 5xx or no answer; a refusal (4xx) reaches the client as the
  remote said it (`errors.join_refusal`). Nothing is stored before the answer checks.
- Invite a user of another server: the invitee's server must sign the invite
  first (`/v2/invite`); then it is stored and sent to the room like any event.
- Knock on a room we are not in: `make_knock` on a server that is (from `via`, the
  alias or the room id), sign the template, `send_knock`; the knock is stored as an
  outlier with the `knock_room_state` the server answered (store/remote_memberships.py),
  for the knocker's /sync. An invite that follows arrives as any remote invite.
- Reject an invite to a room we are not in, or rescind a knock on one:
  `make_leave`/`send_leave` through the inviting server (or the one knocked through);
  when none answers, the membership is dropped locally all the same (as Synapse).

Spec: https://spec.matrix.org/v1.16/server-server-api/#joining-rooms,
https://spec.matrix.org/v1.16/server-server-api/#knocking-upon-a-room,
https://spec.matrix.org/v1.16/server-server-api/#inviting-to-a-room
"""

from __future__ import annotations

import json
import logging
from typing import Any

from relay.errors import Forbidden, MatrixError, NotFound, Unknown, UnsupportedRoomVersion
from relay.events.ids import server_of
from relay.events.pdu import (
    MalformedPdu,
    Pdu,
    finalize_event,
    strip_state_event,
    stripped_from_remote,
)
from relay.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, room_version
from relay.federation.client import ROOM_STATE_RESPONSE_BYTES, segment
from relay.federation.errors import PeerUnreachable, RemoteError, client_error, join_refusal
from relay.federation.ingest import BadPdu, Ingest
from relay.rooms.remote_pdus import MissingEvents, accept_pdu_txn
from relay.rooms.service import remember_remote_membership_txn
from relay.runtime.clock import now_ms
from relay.services import Services
from store import Connection
from store import accounts as store_accounts
from store import events as store_events
from store import remote_memberships as store_remote_memberships
from store import rooms as store_rooms

log = logging.getLogger(__name__)

STRIPPED_TYPES = (
    "m.room.create",
    "m.room.join_rules",
    "m.room.canonical_alias",
    "m.room.avatar",
    "m.room.name",
    "m.room.encryption",
    "m.room.topic",
)


#: How much of why the last server failed a client is told.
MAX_REASON = 300


class InvalidAnswer(RemoteError):
    """`server` answered make_join or send_join with something that is not what was asked
    (Synapse's InvalidResponseError): the join is tried through the next server."""

    def __init__(self, server: str, message: str) -> None:
        super().__init__(server, 502, None, message)
        self.args = (f"{server}: {message}",)


class RemoteMembership:
    def __init__(self, services: Services, ingest: Ingest) -> None:
        self.services = services
        self.ingest = ingest

    @property
    def client(self) -> Any:
        return self.services.federation_client

    # -- aliases ----------------------------------------------------------------------

    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]:
        server = server_of(alias)
        try:
            body = await self.client.get_json(
                server, "/_matrix/federation/v1/query/directory", query={"room_alias": alias}
            )
        except (PeerUnreachable, RemoteError) as exc:
            raise client_error(exc) from None
        room_id = body.get("room_id")
        if not isinstance(room_id, str):
            raise NotFound(f"Room alias {alias} not found")
        servers = [s for s in body.get("servers", []) if isinstance(s, str)]
        return room_id, servers or [server]

    # -- joining ------------------------------------------------------------------------

    async def candidate_servers(self, room_id: str, user_id: str, via: list[str]) -> list[str]:
        servers = list(via)

        def txn(conn: Connection) -> list[str]:
            found = []
            stored = store_remote_memberships.get_remote_membership(conn, room_id, user_id)
            if stored is not None and stored.membership == "invite":
                invite = self.services.rooms.get_pdu_txn(conn, stored.event_id)
                if invite is not None:
                    found.append(server_of(invite.sender))
            found.extend(store_rooms.servers_in_room(conn, room_id))
            return found

        servers += await self.services.database.read(txn)
        if server_of(room_id):
            servers.append(server_of(room_id))
        ours = self.services.server_name
        return [s for s in dict.fromkeys(servers) if s and s != ours]

    async def join(self, user_id: str, room_id: str, via: list[str]) -> str:
        """Join through the candidate servers in order (`via` first), as Synapse's
        `_try_destination_list`: a server that cannot be reached, fails (5xx), answers
        nonsense or says "ask another" is passed over; a refusal of its own reaches the
        client as it said it (`join_refusal`); when none is left, 502."""
        servers = await self.candidate_servers(room_id, user_id, via)
        if not servers:
            raise NotFound("No known servers to join this room through")
        last = ""
        for server in servers:
            try:
                await self._join_via(server, user_id, room_id)
                return room_id
            except (PeerUnreachable, InvalidAnswer) as exc:
                last = str(exc)
            except RemoteError as exc:
                refusal = join_refusal(exc)
                if refusal is not None:
                    raise refusal from None
                # The remote's own words stay in our log: a client gets only the status.
                last = f"{server} answered {exc.status}"
            log.info("joining %s via %s failed: %s", room_id, server, last)
        raise Unknown(
            f"Failed to join the room via any server (last: {last[:MAX_REASON]})", status=502
        )

    async def _join_via(self, server: str, user_id: str, room_id: str) -> None:
        body = await self.client.get_json(
            server,
            f"/_matrix/federation/v1/make_join/{segment(room_id)}/{segment(user_id)}",
            query={"ver": list(KNOWN_ROOM_VERSIONS)},
        )
        rv = room_version(str(body.get("room_version", "")))
        template = body.get("event")
        if rv is None:
            raise UnsupportedRoomVersion(f"Room version {body.get('room_version')} unsupported")
        if not isinstance(template, dict):
            raise InvalidAnswer(server, "make_join answer has no event")
        template = dict(template)
        template["origin_server_ts"] = now_ms()
        template["sender"] = user_id
        template["state_key"] = user_id
        given = template.get("content")
        content = dict(given) if isinstance(given, dict) else {}
        content["membership"] = "join"
        profile = await self.services.database.read(store_accounts.get_profile, user_id)
        if profile is not None:
            if profile[0]:
                content["displayname"] = profile[0]
            if profile[1]:
                content["avatar_url"] = profile[1]
        template["content"] = content
        key = self.services.signing_key
        try:
            join = finalize_event(template, rv, self.services.server_name, key.key_id, key.key)
        except MalformedPdu as exc:
            raise InvalidAnswer(server, f"make_join template: {exc}") from None
        response = await self.client.put_json(
            server,
            f"/_matrix/federation/v2/send_join/{segment(room_id)}/{segment(join.event_id)}",
            json.loads(join.raw),
            max_bytes=ROOM_STATE_RESPONSE_BYTES,
        )
        if isinstance(response.get("event"), dict):
            # A restricted join: the resident server added its signature.
            try:
                signed = await self.ingest.verified_pdu(response["event"], rv)
            except BadPdu as exc:
                raise InvalidAnswer(server, f"send_join returned a bad join: {exc}") from None
            if signed.event_id != join.event_id:
                raise InvalidAnswer(server, "send_join returned another join event")
            join = signed
        joined = await self._verified_join_answer(server, rv, join, response)
        await self._store_join(server, rv, join, *joined)

    async def _verified_join_answer(
        self, server: str, rv: RoomVersion, join: Pdu, response: dict[str, Any]
    ) -> tuple[Pdu, list[Pdu], dict[tuple[str, str], str]]:
        """The create event, the events to store (auth chain and state) and the state before
        our join, from a send_join answer. An event whose signature fails, or that is of
        another room, is dropped (the rest stand: Synapse's `send_join`); an answer that is
        not a room's state (no create event in it, another room version, a second create
        event, members omitted that we did not ask to omit) is refused: InvalidAnswer."""
        if response.get("members_omitted") is True:
            # We never ask for a partial state (omit_members): the memberships are how we
            # learn the room's servers, and what we would have to fetch later.
            raise InvalidAnswer(server, "members_omitted, but we asked for the full state")
        verified: dict[str, Pdu] = {}
        parts: dict[str, list[Pdu]] = {"auth_chain": [], "state": []}
        for part, pdus in parts.items():
            events = response.get(part)
            for event in events if isinstance(events, list) else []:
                try:
                    pdu = await self.ingest.verified_pdu(event, rv)
                except BadPdu as exc:
                    log.info("dropping an event of the join answer from %s: %s", server, exc)
                    continue
                if pdu.room_id != join.room_id:
                    log.info("dropping %s of another room from %s", pdu.event_id, server)
                    continue
                verified.setdefault(pdu.event_id, pdu)
                pdus.append(pdu)
        creates = {p.event_id for p in parts["state"] if p.type == "m.room.create"}
        create = next((p for p in parts["state"] if p.type == "m.room.create"), None)
        if create is None or create.state_key != "" or len(creates) != 1:
            raise InvalidAnswer(server, "send_join answer has no create event in its state")
        if {p.event_id for p in parts["auth_chain"] if p.type == "m.room.create"} - creates:
            raise InvalidAnswer(server, "send_join answer has another create event")
        named = create.content.get("room_version", "1")
        if named != rv.identifier:
            raise InvalidAnswer(server, f"create event names room version {named!r}")
        state_ids = {
            (p.type, p.state_key): p.event_id for p in parts["state"] if p.state_key is not None
        }
        return create, list(verified.values()), state_ids

    async def _store_join(
        self,
        server: str,
        rv: RoomVersion,
        join: Pdu,
        create: Pdu,
        chain: list[Pdu],
        state_ids: dict[tuple[str, str], str],
    ) -> None:
        room_id = join.room_id

        def create_room(conn: Connection) -> None:
            if store_rooms.get_room_version(conn, room_id) is None:
                store_rooms.create_room(
                    conn,
                    room_id=room_id,
                    room_version=rv.identifier,
                    creator=create.sender,
                    now_ms=now_ms(),
                )
            # We are in the room now: the invite or knock, if any, has served its purpose.
            store_remote_memberships.delete_remote_memberships_in_room(conn, room_id)

        # Under the room's lock: a PDU pushed to us between the room's creation and our join
        # would otherwise make a partial current state that our own join soft-fails against.
        async with self.ingest.room_lock(room_id):
            await self.services.database.write(create_room)
            await self.ingest.store_auth_chain(chain)
            rooms = self.services.rooms

            def accept(conn: Connection) -> str:
                # The state is what was stored of it: an event dropped with an auth event
                # it cites (or rejected by the auth rules) is no part of the room's state.
                stored = store_events.have_events(conn, state_ids.values())
                stored -= store_events.rejected_event_ids(conn, stored)
                state = {k: e for k, e in state_ids.items() if e in stored}
                try:
                    outcome = accept_pdu_txn(rooms, conn, join, state_before=state)
                except MissingEvents as exc:
                    # Synapse: "Auth events could not be found" (one was dropped).
                    raise Forbidden(f"Our join cites events we could not verify: {exc}") from None
                if outcome.status not in ("accepted", "duplicate"):
                    raise Forbidden(
                        f"Our join was not accepted: {outcome.reason or outcome.status}"
                    )
                # Everything the join response gave us is the room's current state now.
                return outcome.status

            await self.services.database.write(accept)
        self.services.notifier.on_stream(
            await self.services.database.read(store_events.max_stream_ordering)
        )
        log.info("joined %s via %s", room_id, server)

    # -- inviting ------------------------------------------------------------------------

    async def invite(
        self, sender: str, room_id: str, invitee: str, *, is_direct: bool = False
    ) -> str:
        rooms = self.services.rooms
        destination = server_of(invitee)

        def build(conn: Connection) -> tuple[Pdu, list[dict[str, Any]]]:
            rv = rooms.room_version_txn(conn, room_id)
            pdu, _state = rooms.build_local_event_txn(
                conn,
                rv,
                room_id,
                sender=sender,
                type_="m.room.member",
                content={"membership": "invite", **({"is_direct": True} if is_direct else {})},
                state_key=invitee,
            )
            stripped = []
            for type_ in STRIPPED_TYPES:
                event = rooms.state_event_txn(conn, room_id, type_, "")
                if event is not None:
                    stripped.append(strip_state_event(event))
            return pdu, stripped

        pdu, stripped = await self.services.database.read(build)
        stripped.append(strip_state_event(pdu))
        try:
            body = await self.client.put_json(
                destination,
                f"/_matrix/federation/v2/invite/{segment(room_id)}/{segment(pdu.event_id)}",
                {
                    "room_version": pdu.room_version.identifier,
                    "event": json.loads(pdu.raw),
                    "invite_room_state": stripped,
                },
            )
        except (PeerUnreachable, RemoteError) as exc:
            raise client_error(exc) from None
        try:
            signed = await self.ingest.verified_pdu(body.get("event"), pdu.room_version)
        except BadPdu as exc:
            raise MatrixError(f"{destination} returned a bad invite: {exc}", status=502) from None
        if signed.event_id != pdu.event_id:
            raise MatrixError(f"{destination} changed the invite", status=502)

        def store(conn: Connection) -> None:
            outcome = accept_pdu_txn(rooms, conn, signed)
            if outcome.status not in ("accepted", "duplicate"):
                raise Forbidden(f"Invite not accepted: {outcome.reason or outcome.status}")
            rooms.enqueue_for_peers_txn(conn, signed, exclude=[destination])

        await self.services.database.write(store)
        self.services.notifier.on_stream(
            await self.services.database.read(store_events.max_stream_ordering)
        )
        if rooms.outbox_listener is not None:
            await rooms.outbox_listener()
        return signed.event_id

    # -- knocking ------------------------------------------------------------------------

    async def knock(
        self, user_id: str, room_id: str, via: list[str], *, reason: str | None = None
    ) -> None:
        """Knock on a room of other servers through the first of them that answers.
        Raises NotFound without a server to ask, else the last server's error."""
        servers = await self.candidate_servers(room_id, user_id, via)
        last_error: MatrixError = NotFound("No known servers to knock on this room through")
        for server in servers:
            try:
                await self._knock_via(server, user_id, room_id, reason)
                return
            except (PeerUnreachable, RemoteError) as exc:
                log.info("knocking on %s via %s failed: %s", room_id, server, exc)
                last_error = client_error(exc)
        raise last_error

    async def _knock_via(self, server: str, user_id: str, room_id: str, reason: str | None) -> None:
        body = await self.client.get_json(
            server,
            f"/_matrix/federation/v1/make_knock/{segment(room_id)}/{segment(user_id)}",
            query={"ver": list(KNOWN_ROOM_VERSIONS)},
        )
        rv = room_version(str(body.get("room_version", "")))
        template = body.get("event")
        if rv is None or not isinstance(template, dict):
            raise UnsupportedRoomVersion(f"Room version {body.get('room_version')} unsupported")
        if not rv.knock_join_rule:
            raise Forbidden("This room version does not support knocking")
        template = dict(template)
        template["origin_server_ts"] = now_ms()
        if template.get("sender") != user_id or template.get("state_key") != user_id:
            raise RemoteError(server, 502, "M_UNKNOWN", "make_knock answered another user")
        if template.get("room_id") != room_id:
            raise RemoteError(server, 502, "M_UNKNOWN", "make_knock answered another room")
        content = await self.services.database.read(
            lambda conn: self.services.rooms.member_content_txn(conn, user_id, "knock")
        )
        if reason:
            content["reason"] = reason
        template["content"] = content
        key = self.services.signing_key
        knock = finalize_event(template, rv, self.services.server_name, key.key_id, key.key)
        response = await self.client.put_json(
            server,
            f"/_matrix/federation/v1/send_knock/{segment(room_id)}/{segment(knock.event_id)}",
            json.loads(knock.raw),
        )
        stripped = response.get("knock_room_state") if isinstance(response, dict) else None
        if not isinstance(stripped, list):
            raise RemoteError(server, 502, "M_UNKNOWN", "send_knock answered no knock_room_state")
        state = [e for e in map(stripped_from_remote, stripped) if e is not None]

        def store(conn: Connection) -> None:
            remember_remote_membership_txn(
                conn, knock, user_id, "knock", stripped_state=state, server=server
            )

        await self.services.database.write(store)
        self.services.notifier.on_stream(
            await self.services.database.read(store_events.max_stream_ordering)
        )
        log.info("knocked on %s via %s", room_id, server)

    # -- rejecting an invite, rescinding a knock ----------------------------------------------

    async def reject_invite(self, user_id: str, room_id: str) -> None:
        await self._leave_from_outside(user_id, room_id, [])

    async def rescind_knock(self, user_id: str, room_id: str) -> None:
        stored = await self.services.database.read(
            store_remote_memberships.get_remote_membership, room_id, user_id
        )
        server = stored.server if stored is not None and stored.membership == "knock" else None
        await self._leave_from_outside(user_id, room_id, [server] if server else [])

    async def _leave_from_outside(self, user_id: str, room_id: str, via: list[str]) -> None:
        """Leave a room we are not in (an invite rejected, a knock rescinded) through a
        server that is; whatever they answer, the membership is dropped here."""
        servers = await self.candidate_servers(room_id, user_id, via)
        last: Exception | None = None
        for server in servers:
            try:
                body = await self.client.get_json(
                    server,
                    f"/_matrix/federation/v1/make_leave/{segment(room_id)}/{segment(user_id)}",
                )
                rv = room_version(str(body.get("room_version", "")))
                if rv is None:
                    raise UnsupportedRoomVersion("Unsupported room version")
                template = dict(body["event"])
                template["origin_server_ts"] = now_ms()
                key = self.services.signing_key
                leave = finalize_event(template, rv, self.services.server_name, key.key_id, key.key)
                await self.client.put_json(
                    server,
                    f"/_matrix/federation/v2/send_leave/{segment(room_id)}/{segment(leave.event_id)}",
                    json.loads(leave.raw),
                )
                break
            except (PeerUnreachable, RemoteError, KeyError) as exc:
                last = exc
        else:
            log.info(
                "could not reach any server to leave %s (%s); leaving it locally", room_id, last
            )

        def forget(conn: Connection) -> None:
            store_remote_memberships.delete_remote_membership(conn, room_id, user_id)
            row = store_rooms.get_membership_event(conn, room_id, user_id)
            store_rooms.set_membership(
                conn,
                room_id=room_id,
                user_id=user_id,
                membership="leave",
                event_id=row[1] if row else "",
                stream_ordering=store_events.next_stream_ordering(conn),
            )

        await self.services.database.write(forget)
        self.services.notifier.on_stream(
            await self.services.database.read(store_events.max_stream_ordering)
        )
