"""The KeyRing: our own signing key and other servers' verify keys, for checking signatures.

Rules kept here:

- A remote key comes from the server itself (`GET /_matrix/key/v2/server`) or, when that
  fails, from a notary (`POST /_matrix/key/v2/query`): first those in
  `federation.trusted_key_servers`, in order, then the reachable pinned mesh peers
  (`mesh_notaries`, set by the mesh layer), so kits on one LAN vouch for each other's
  view of the upstream with no configuration. A key response counts only if its
  `server_name` is the server we asked about and it is signed by that server with a key
  it lists in `verify_keys` (every such signature must verify); a notary's answer must
  also carry the notary's signature, checked against its pinned keys (the config's, or
  the mesh peer's pinned key), or, for a trusted key server with none pinned, the
  notary's own published keys. Both kinds of notary go through `query_notary`.
- Verified keys are cached in `store/keys.py`: `verify_keys` valid until the response's
  `valid_until_ts`, capped at 7 days from when we fetched it (the spec's "lesser of this
  field and 7 days"); `old_verify_keys` until their `expired_ts`. The whole signed response
  is kept too, so we can serve it as a notary. An older response never replaces a newer one.
- A key is usable for a check that needs it valid until `minimum_valid_until_ts` (now for
  requests, the event's `origin_server_ts` for events). A cached key that is unknown or too
  old is refetched, at most once per `min_refetch_interval_ms` per server, one fetch at a
  time per server, so a burst of requests signed with a bogus key id costs one fetch.
- An object verifies for a server when at least one of that server's signatures on it
  verifies, and none made with a key we hold fails. Events are checked over their redacted
  form, for every server `relay.events.auth.required_signers` names (the sender's server;
  on a restricted join also `join_authorised_via_users_server`'s). Room versions 10-12 have
  no `event_id` in the event, so the v1/v2 rule about the event id's server does not arise.
- Fetches others cause are bounded (`destinations.FetchBudget`, `fetch_budget`): a request
  signed by a server we hold no key of, or a notary query about servers we hold nothing
  for, names its requester (the address it came from); each fetch from a server itself
  takes a token of that requester's budget, and a server that failed is not asked again
  on anyone's behalf for a while (notaries, which are configured or pinned, still are).
  Where to connect at all is the destination policy's (`destinations.py`).
- Failures raise `SignatureError` (relay.events.signing); a missing or expired key is its
  subclass `KeyNotFound`.

Spec: https://spec.matrix.org/v1.16/server-server-api/#retrieving-server-keys
and https://spec.matrix.org/v1.16/server-server-api/#validating-hashes-and-signatures-on-received-events
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

import nacl.signing
import trio

from relay.events.auth import required_signers
from relay.events.canonical import canonical_json
from relay.events.redaction import redact
from relay.events.room_versions import RoomVersion
from relay.events.signing import (
    SignatureError,
    decode_verify_key_base64,
    is_valid_key_id,
    sign_json,
    verify_json_signature,
)
from relay.federation.client import KEY_RESPONSE_BYTES
from relay.federation.destinations import FetchBudget
from relay.federation.errors import PeerUnreachable, RemoteError
from relay.federation.key_server import OwnKeys
from relay.runtime.clock import now_ms
from store import keys as store_keys

if TYPE_CHECKING:
    from relay.federation.client import FederationClient
    from relay.runtime.database import Database

log = logging.getLogger(__name__)

MAX_KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000
MIN_REFETCH_INTERVAL_MS = 30_000
KEY_FETCH_TIMEOUT = 10.0
#: A notary query fetches at most this many servers it has no fresh answer for.
MAX_NOTARY_FETCHES = 20


class KeyNotFound(SignatureError):
    """No key of that id, valid for long enough, could be found for the server."""

    def __init__(self, message: str, server_name: str | None = None) -> None:
        super().__init__(message)
        #: The server whose key is missing (None when not known).
        self.server_name = server_name


class KeyResponseError(ValueError):
    """A key response (or a notary's answer) that is malformed or not properly signed."""


@dataclass(frozen=True, slots=True)
class ServerKey:
    key_id: str
    verify_key: nacl.signing.VerifyKey
    verify_key_base64: str
    #: Until when the key may verify signatures (expired_ts for old keys).
    valid_until_ts: int
    #: Set for keys from `old_verify_keys`.
    expired_ts: int | None = None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_key(key_id: str, data: Any, where: str) -> nacl.signing.VerifyKey | None:
    if not is_valid_key_id(key_id):
        return None  # an algorithm we do not know: ignored, as the spec says
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise KeyResponseError(f"{where}[{key_id}] has no key")
    try:
        return decode_verify_key_base64(data["key"])
    except ValueError as exc:
        raise KeyResponseError(f"{where}[{key_id}]: {exc}") from None


def check_key_response(response: Any, server_name: str, now_ms: int) -> dict[str, ServerKey]:
    """The keys of a `/_matrix/key/v2/server` response for `server_name`, once it checks out.

    Raises:
        KeyResponseError: malformed, about another server, or not validly self-signed.
    """
    if not isinstance(response, dict):
        raise KeyResponseError("key response is not a JSON object")
    if response.get("server_name") != server_name:
        raise KeyResponseError(
            f"key response is for {response.get('server_name')!r}, not {server_name!r}"
        )
    valid_until = response.get("valid_until_ts")
    if not _is_int(valid_until):
        raise KeyResponseError("valid_until_ts is missing or not an integer")
    verify_keys = response.get("verify_keys")
    old_keys = response.get("old_verify_keys", {})
    if not isinstance(verify_keys, dict) or not isinstance(old_keys, dict):
        raise KeyResponseError("verify_keys/old_verify_keys must be objects")
    capped = min(valid_until, now_ms + MAX_KEY_VALIDITY_MS)
    keys: dict[str, ServerKey] = {}
    for key_id, data in verify_keys.items():
        verify_key = _parse_key(key_id, data, "verify_keys")
        if verify_key is not None:
            keys[key_id] = ServerKey(key_id, verify_key, data["key"], capped)

    signatures = response.get("signatures")
    own = signatures.get(server_name) if isinstance(signatures, dict) else None
    signed_with = [k for k in own if k in keys] if isinstance(own, dict) else []
    if not signed_with:
        raise KeyResponseError(f"key response is not signed by {server_name}")
    for key_id in signed_with:
        try:
            verify_json_signature(response, server_name, key_id, keys[key_id].verify_key)
        except SignatureError as exc:
            raise KeyResponseError(f"bad self-signature: {exc}") from None

    for key_id, data in old_keys.items():
        verify_key = _parse_key(key_id, data, "old_verify_keys")
        if verify_key is None or key_id in keys:
            continue
        expired = data.get("expired_ts")
        if not _is_int(expired):
            raise KeyResponseError(f"old_verify_keys[{key_id}] has no expired_ts")
        keys[key_id] = ServerKey(key_id, verify_key, data["key"], expired, expired)
    return keys


def _store_response_txn(
    conn: Any,
    server_name: str,
    response: dict[str, Any],
    keys: Mapping[str, ServerKey],
    from_server: str,
    now_ms: int,
) -> None:
    existing = store_keys.get_server_key_response(conn, server_name)
    newer = existing is None or response["valid_until_ts"] >= existing["valid_until_ts"]
    cached = store_keys.get_server_keys(conn, server_name)
    for key in keys.values():
        if newer or key.key_id not in cached:
            store_keys.put_server_key(
                conn,
                server_name=server_name,
                key_id=key.key_id,
                verify_key=key.verify_key_base64,
                valid_until_ts=key.valid_until_ts,
                expired_ts=key.expired_ts,
                now_ms=now_ms,
            )
    store_keys.put_server_key_response(
        conn,
        server_name=server_name,
        response_json=canonical_json(response).decode("utf-8"),
        valid_until_ts=response["valid_until_ts"],
        from_server=from_server,
        now_ms=now_ms,
    )


class KeyRing:
    """Finds, checks and caches servers' verify keys; verifies signed JSON and events."""

    def __init__(
        self,
        database: Database,
        own_keys: OwnKeys,
        client: FederationClient | None,
        *,
        trusted_key_servers: Mapping[str, Mapping[str, str]] | None = None,
        clock: Callable[[], int] = now_ms,
        min_refetch_interval_ms: int = MIN_REFETCH_INTERVAL_MS,
        fetch_timeout: float = KEY_FETCH_TIMEOUT,
        fetch_budget: FetchBudget | None = None,
    ) -> None:
        self.database = database
        self.own_keys = own_keys
        self.client = client
        self.trusted_key_servers = dict(trusted_key_servers or {})
        self._clock = clock
        self.min_refetch_interval_ms = min_refetch_interval_ms
        self.fetch_timeout = fetch_timeout
        self._locks: dict[str, trio.Lock] = {}
        #: server name -> its pinned verify key (base64) or None; set by the mesh layer:
        #: a fetched key response for a pinned server must hold the pinned key.
        self.key_pin: Callable[[str], str | None] | None = None
        #: Reachable pinned mesh peers, asked as notaries after `trusted_key_servers`:
        #: `{server name: {key_id: pinned verify key (base64)}}`; set by the mesh layer.
        self.mesh_notaries: Callable[[], Mapping[str, Mapping[str, str]]] | None = None
        #: Called with a server's name once keys of it were fetched and cached (the ingest
        #: receives again the PDUs it kept waiting for them).
        self.on_keys_cached: Callable[[str], None] | None = None
        #: (server, via) -> when we last asked; via is the server itself or a notary.
        self._last_attempt: dict[tuple[str, str], int] = {}
        #: What fetches a requester may cause (None: unbounded; the node gives one).
        self.fetch_budget = fetch_budget

    @property
    def server_name(self) -> str:
        return self.own_keys.server_name

    def _lock(self, server_name: str) -> trio.Lock:
        lock = self._locks.get(server_name)
        if lock is None:
            lock = self._locks[server_name] = trio.Lock()
        return lock

    def _may_ask(self, server_name: str, via: str, requester: str | None = None) -> bool:
        """Whether to ask `via` about `server_name` now: not within the refetch interval,
        and, asking the server itself, within `requester`'s fetch budget. Notes the
        attempt when it says yes."""
        now = self._clock()
        last = self._last_attempt.get((server_name, via))
        if last is not None and now - last < self.min_refetch_interval_ms:
            return False
        budget = self.fetch_budget
        if via == server_name and budget is not None and not budget.may_fetch(requester, via):
            return False
        self._last_attempt[(server_name, via)] = now
        return True

    def new_route(self, server_name: str) -> None:
        """A new way to reach `server_name` appeared (the mesh came to trust it at an
        address): forget when asking it last failed, so the next check asks at once
        rather than answering "no key" until the refetch interval has passed, and forget
        the failure the fetch budget remembers (it would refuse other servers' requests
        that need this key for ten minutes)."""
        self._last_attempt.pop((server_name, server_name), None)
        if self.fetch_budget is not None:
            self.fetch_budget.succeeded(server_name)

    async def _cached_key(self, server_name: str, key_id: str) -> dict[str, Any] | None:
        return await self.database.read(store_keys.get_server_key, server_name, key_id)

    # Looking keys up ---------------------------------------------------------------

    async def get_verify_key(
        self,
        server_name: str,
        key_id: str,
        *,
        minimum_valid_until_ts: int,
        requester: str | None = None,
    ) -> nacl.signing.VerifyKey:
        """`server_name`'s key `key_id`, valid until at least `minimum_valid_until_ts`;
        a fetch it needs is charged to `requester` (None: the relay's own need).

        Raises:
            KeyNotFound: not cached and not fetchable, or only known to expire too early.
        """
        return await self._lookup(
            server_name, key_id, minimum_valid_until_ts, use_notaries=True, requester=requester
        )

    async def _lookup(
        self,
        server_name: str,
        key_id: str,
        minimum: int,
        *,
        use_notaries: bool,
        requester: str | None = None,
    ) -> nacl.signing.VerifyKey:
        if server_name == self.server_name:
            own = self.own_keys.signing_key
            if key_id == own.key_id:
                return own.key.verify_key
            raise KeyNotFound(f"we have no key {key_id}", server_name)
        row = await self._cached_key(server_name, key_id)
        if row is None or row["valid_until_ts"] < minimum:
            async with self._lock(server_name):
                row = await self._refresh(server_name, key_id, minimum, use_notaries, requester)
        if row is None:
            raise KeyNotFound(f"no key {key_id} of {server_name} could be found", server_name)
        if row["valid_until_ts"] < minimum:
            raise KeyNotFound(
                f"key {key_id} of {server_name} is valid until {row['valid_until_ts']}, "
                f"needed until {minimum}",
                server_name,
            )
        return decode_verify_key_base64(row["verify_key"])

    async def _refresh(
        self,
        server_name: str,
        key_id: str,
        minimum: int,
        use_notaries: bool,
        requester: str | None = None,
    ) -> dict[str, Any] | None:
        """Fetch until the key is usable; the cached row afterwards (maybe still unusable)."""

        def usable(row: dict[str, Any] | None) -> bool:
            return row is not None and row["valid_until_ts"] >= minimum

        row = await self._cached_key(server_name, key_id)  # another task may have fetched
        if usable(row) or self.client is None:
            return row
        if self._may_ask(server_name, server_name, requester):
            await self._fetch_for(server_name, "could not fetch keys of %s from itself: %s")
            row = await self._cached_key(server_name, key_id)
            if usable(row):
                return row
        if not use_notaries:
            return row
        for notary, pins in self._notaries().items():
            if notary in (server_name, self.server_name) or not self._may_ask(server_name, notary):
                continue
            try:
                await self.query_notary(notary, {server_name: {key_id: minimum}}, pins=pins)
            except (PeerUnreachable, RemoteError, KeyResponseError) as exc:
                log.info("could not fetch keys of %s from %s: %s", server_name, notary, exc)
            row = await self._cached_key(server_name, key_id)
            if usable(row):
                return row
        return row

    async def _fetch_for(self, server_name: str, failure_log: str) -> None:
        """`fetch_server_keys`, its failure logged and remembered by the budget."""
        try:
            await self.fetch_server_keys(server_name)
        except (PeerUnreachable, RemoteError, KeyResponseError) as exc:
            log.info(failure_log, server_name, exc)
            if self.fetch_budget is not None:
                self.fetch_budget.failed(server_name)
        else:
            if self.fetch_budget is not None:
                self.fetch_budget.succeeded(server_name)

    def _notaries(self) -> dict[str, Mapping[str, str]]:
        """Notaries to ask, in order, with their pinned keys: the configured trusted key
        servers, then the reachable pinned mesh peers."""
        notaries: dict[str, Mapping[str, str]] = dict(self.trusted_key_servers)
        mesh = self.mesh_notaries() if self.mesh_notaries is not None else {}
        for name, pins in mesh.items():
            if name not in notaries and pins:
                notaries[name] = dict(pins)
        return notaries

    async def fetch_server_keys(self, server_name: str) -> dict[str, ServerKey]:
        """Fetch, check and cache `server_name`'s keys from the server itself.

        Raises:
            PeerUnreachable, RemoteError: the request failed.
            KeyResponseError: the response is not a validly self-signed key response.
        """
        assert self.client is not None
        response = await self.client.get_json(
            server_name,
            "/_matrix/key/v2/server",
            timeout=self.fetch_timeout,
            max_bytes=KEY_RESPONSE_BYTES,
        )
        now = self._clock()
        keys = check_key_response(response, server_name, now)
        self._check_pin(server_name, keys)
        await self.database.write(
            _store_response_txn, server_name, response, keys, server_name, now
        )
        self._cached(server_name)
        return keys

    def _cached(self, server_name: str) -> None:
        if self.on_keys_cached is not None:
            self.on_keys_cached(server_name)

    def _check_pin(self, server_name: str, keys: Mapping[str, ServerKey]) -> None:
        pin = self.key_pin(server_name) if self.key_pin is not None else None
        if pin is None:
            return
        if not any(k.verify_key_base64.rstrip("=") == pin.rstrip("=") for k in keys.values()):
            raise KeyResponseError(f"keys of {server_name} do not hold its pinned key")

    async def query_notary(
        self,
        notary: str,
        criteria: Mapping[str, Mapping[str, int]],
        *,
        pins: Mapping[str, str] | None = None,
    ) -> dict[str, dict[str, ServerKey]]:
        """Ask `notary` for keys (`{server: {key_id: minimum_valid_until_ts}}`); cache and
        return those whose responses check out (others are logged and skipped).

        `pins` (`{key_id: verify key}`) are the notary's pinned keys, one of which must have
        signed each answer (default: its pins in `_notaries`); empty: the notary's own
        published keys are used instead (only a configured trusted key server has none).

        Raises:
            PeerUnreachable, RemoteError: the request failed.
            KeyResponseError: the answer is not a `server_keys` list.
        """
        assert self.client is not None
        body = {
            "server_keys": {
                server: {key_id: {"minimum_valid_until_ts": ts} for key_id, ts in keys.items()}
                for server, keys in criteria.items()
            }
        }
        answer = await self.client.post_json(
            notary,
            "/_matrix/key/v2/query",
            body,
            timeout=self.fetch_timeout,
            max_bytes=KEY_RESPONSE_BYTES,
        )
        entries = answer.get("server_keys") if isinstance(answer, dict) else None
        if not isinstance(entries, list):
            raise KeyResponseError(f"{notary}: server_keys is not a list")
        pinned = pins if pins is not None else self._notaries().get(notary, {})
        found: dict[str, dict[str, ServerKey]] = {}
        now = self._clock()
        for entry in entries:
            server = entry.get("server_name") if isinstance(entry, dict) else None
            if not isinstance(server, str) or server not in criteria:
                continue
            try:
                await self._check_notary_signature(notary, entry, pinned)
                keys = check_key_response(entry, server, now)
                self._check_pin(server, keys)
            except (KeyResponseError, SignatureError) as exc:
                log.warning("notary %s answered badly for %s: %s", notary, server, exc)
                continue
            await self.database.write(_store_response_txn, server, entry, keys, notary, now)
            self._cached(server)
            found.setdefault(server, {}).update(keys)
        return found

    async def _check_notary_signature(
        self, notary: str, entry: dict[str, Any], pinned: Mapping[str, str]
    ) -> None:
        signatures = entry.get("signatures")
        by_notary = signatures.get(notary) if isinstance(signatures, dict) else None
        if not isinstance(by_notary, dict) or not by_notary:
            raise KeyResponseError(f"not signed by the notary {notary}")
        verified = False
        for key_id in by_notary:
            if pinned:
                if key_id not in pinned:
                    continue
                verify_key = decode_verify_key_base64(pinned[key_id])
            else:
                try:
                    verify_key = await self._lookup(
                        notary, key_id, self._clock(), use_notaries=False
                    )
                except KeyNotFound:
                    continue
            verify_json_signature(entry, notary, key_id, verify_key)
            verified = True
        if not verified:
            raise KeyResponseError(f"not signed with a known key of the notary {notary}")

    # Verifying ---------------------------------------------------------------------

    async def verify_json_for_server(
        self,
        obj: Mapping[str, Any],
        server_name: str,
        *,
        minimum_valid_until_ts: int | None = None,
        requester: str | None = None,
    ) -> None:
        """Check that `server_name` signed `obj` (at least one valid signature, no bad one
        made with a key we hold), with keys valid until `minimum_valid_until_ts` (now);
        fetches are charged to `requester` (the address of the request that named it).

        Raises:
            SignatureError: not signed by `server_name`, or a signature does not verify.
            KeyNotFound: none of its key ids could be found, valid for long enough.
        """
        minimum = self._clock() if minimum_valid_until_ts is None else minimum_valid_until_ts
        signatures = obj.get("signatures")
        by_server = signatures.get(server_name) if isinstance(signatures, Mapping) else None
        if not isinstance(by_server, Mapping) or not by_server:
            raise SignatureError(f"not signed by {server_name}")
        key_ids = [key_id for key_id in by_server if is_valid_key_id(key_id)]
        if not key_ids:
            raise SignatureError(f"{server_name} signed only with unsupported algorithms")
        missing: KeyNotFound | None = None
        verified = False
        for key_id in key_ids:
            try:
                verify_key = await self.get_verify_key(
                    server_name, key_id, minimum_valid_until_ts=minimum, requester=requester
                )
            except KeyNotFound as exc:
                missing = exc
                continue
            verify_json_signature(dict(obj), server_name, key_id, verify_key)
            verified = True
        if not verified:
            assert missing is not None
            raise missing

    async def verify_event_signatures(
        self, event: Mapping[str, Any], room_version: RoomVersion
    ) -> None:
        """Check the signatures a PDU needs: every `required_signers` server's, over the
        redacted event, with keys valid at its `origin_server_ts` (room v5+).

        Raises:
            SignatureError (or KeyNotFound): a required signature is missing or bad.
        """
        redacted = redact(dict(event), room_version)
        ts = event.get("origin_server_ts")
        # Rooms v1-v4 predate key validity periods: any key the server published will do.
        minimum = ts if _is_int(ts) and room_version.enforce_key_validity else 0
        for server in sorted(required_signers(event, room_version)):
            await self.verify_json_for_server(redacted, server, minimum_valid_until_ts=minimum)

    # Serving as a notary -----------------------------------------------------------

    async def notary_responses(
        self,
        criteria: Mapping[str, Mapping[str, int | None]],
        *,
        minimum_valid_until_ts: int | None = None,
        requester: str | None = None,
    ) -> list[dict[str, Any]]:
        """Our answer to `/_matrix/key/v2/query`: for each server asked about that we know
        (ourselves, or a kept response), its key response with our signature added.

        `criteria` is `{server: {key_id: minimum_valid_until_ts or None}}` (no key ids: all);
        `minimum_valid_until_ts` applies to every server (the GET form has no key ids).
        A kept response that is missing or older than asked for is refetched from the server
        first (at most MAX_NOTARY_FETCHES servers per query, each charged to `requester`);
        if that fails, the last response we have is served anyway, so old events can still
        be checked, as the spec says.
        """
        now = self._clock()
        floor = now if minimum_valid_until_ts is None else minimum_valid_until_ts
        found: dict[str, dict[str, Any]] = {}

        async def answer(server: str, keys: Mapping[str, int | None], may_fetch: bool) -> None:
            minimum = max([floor, *(ts if ts is not None else now for ts in keys.values())])
            response = await self._response_for(server, list(keys), minimum, may_fetch, requester)
            if response is not None:
                found[server] = response

        async with trio.open_nursery() as nursery:
            for i, (server, keys) in enumerate(criteria.items()):
                nursery.start_soon(answer, server, keys, i < MAX_NOTARY_FETCHES)
        own = self.own_keys.signing_key
        return [
            sign_json(found[server], self.server_name, own.key_id, own.key)
            for server in criteria
            if server in found
        ]

    async def _response_for(
        self,
        server_name: str,
        key_ids: list[str],
        minimum: int,
        may_fetch: bool,
        requester: str | None,
    ) -> dict[str, Any] | None:
        if server_name == self.server_name:
            return self.own_keys.server_keys(self._clock())

        def fresh(row: dict[str, Any] | None) -> bool:
            if row is None or row["valid_until_ts"] < minimum:
                return False
            response = json.loads(row["response_json"])
            known = {**response.get("verify_keys", {}), **response.get("old_verify_keys", {})}
            return all(key_id in known for key_id in key_ids)

        row = await self.database.read(store_keys.get_server_key_response, server_name)
        if not fresh(row) and may_fetch and self.client is not None:
            async with self._lock(server_name):
                row = await self.database.read(store_keys.get_server_key_response, server_name)
                if not fresh(row) and self._may_ask(server_name, server_name, requester):
                    await self._fetch_for(server_name, "notary: could not fetch keys of %s: %s")
                    row = await self.database.read(store_keys.get_server_key_response, server_name)
        return json.loads(row["response_json"]) if row is not None else None
