"""The transaction stream between relays (issue 17): `/send` without its per-request cost.

Over a 9.6 kbit/s link a short message sent as `PUT /send` is mostly overhead: HTTP
headers both ways, an X-Matrix header, the answer listing the event id, and a PDU whose
room id, sender, auth events and key names repeat in every transaction; gzip of one body
alone cannot see the repeats. Both ends of a relay-to-relay link are ours, so relays
negotiate a cheaper transport, and keep plain federation for everyone else:

- A relay announces the stream in its `GET /_matrix/federation/v1/version` answer under
  `ANNOUNCE_KEY` (other servers ignore the key; Synapse announces nothing, so it always
  gets `PUT /send`). The client learns it from any version answer (client.py).
- The sender opens `PATH` as a WebSocket with one signed `GET` (X-Matrix, as any federation
  request: inbound_auth.py checks it once), over the destination's usual TLS rules, and
  keeps it open like a pooled connection. On it, each transaction is one binary message
  and its answer one binary message back, strictly in turn.
- Each direction is one raw deflate stream (`Packer`/`Unpacker`), flushed at the end of
  every message (the `permessage-deflate` idea of RFC 7692, done in the messages because
  both sides are ours): everything already sent on the stream is the dictionary for the
  next message, so a room id, a sender, the auth events and even the previous event's
  fields cost a few bytes after the first time. The PDUs inside are the same JSON objects
  `/send` carries, so every signature and hash still verifies: nothing is re-encoded that
  a receiver checks.
- Compaction (`compact`, undone by `restore` before anything else sees the PDU, so the
  PDU checked is byte for byte the one signed):
  - a PDU whose `hashes` is exactly its own content hash goes without it;
  - a prev or auth event that is one of the last `MAX_REFERENCES` PDUs on the stream goes
    as `^k` (the k-th newest): a room's next message names the one before. Both ends
    compute those PDUs' event ids the same way (`References`), from the PDU and the room
    version the message names for it (`room_versions`, one per PDU), so the receiver
    needs nothing of its own (not even the room) to resolve them.
  Nothing can be forged this way: the origin's signature covers `hashes` and the
  references, so a PDU restored to anything but what was signed (a lie about a room
  version, a reference to the wrong event) fails its signature check as it would on
  `/send`. The 32 random bytes of a hash, and of a previous event's id, are what a short
  message's PDU is mostly made of.
- A transaction message is `{"txn_id", "origin_server_ts", "pdus", "room_versions",
  "edus"}` (the origin is the stream's signer); its answer is `{"pdus"}` listing only the
  PDUs that failed (the sender only acts on those), or `{"status", "errcode", "error"}`
  for a transaction refused whole; answers come in the order of the transactions, one
  each. Transaction ids are `/send`'s: a transaction retried after a broken stream, on a
  new stream or over `/send`, is answered from the same cache and changes nothing.
- An empty message is a keep-alive, answered by an empty message: the sender's idle probe
  on an open stream (~100 B on the wire instead of a signed version request's ~1.2 KB).
- Bounds: a message inflates to at most `MAX_MESSAGE_BYTES` (the plain `/send` body cap),
  checked while inflating (no zip bomb); a stream idle for `IDLE_CLOSE_S` is closed by the
  receiver; one stream per origin (a new one closes the old); the origin's `mesh.policy`
  is asked again for every transaction. Anything malformed closes the stream with a
  WebSocket close code (1007 bad data, 1008 policy, 1009 too big); the sender then goes on
  over a new stream or `/send`.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from relay.errors import TooLarge
from relay.events.canonical import JsonParseError, canonical_json, parse_json_strict
from relay.events.hashes import add_content_hash, content_hash
from relay.events.ids import event_id
from relay.events.room_versions import room_version
from relay.events.unpadded_base64 import encode_base64
from relay.federation.content_coding import inflate_within
from relay.runtime.http import MAX_REQUEST_BODY

if TYPE_CHECKING:
    import httpx

ANNOUNCE_KEY = "org.edge_relay.transaction_stream"
VERSION = "v1"
PATH = "/_matrix/federation/unstable/org.edge_relay.stream/v1/transactions"
MAX_MESSAGE_BYTES = MAX_REQUEST_BODY
#: an open stream with no message for this long is closed by the receiver (the sender's
#: keep-alives come every IDLE_PROBE_S, 120 s, while it keeps the stream).
IDLE_CLOSE_S = 600.0
#: the end of every sync-flushed deflate block, left off the wire (RFC 7692 7.2.1).
_TAIL = b"\x00\x00\xff\xff"
#: how many of the stream's latest PDUs a reference may name.
MAX_REFERENCES = 64
#: a reference: "^1" is the newest PDU on the stream (no event id starts with it).
REFERENCE = "^"
_REFERENCE_KEYS = ("prev_events", "auth_events")
#: WebSocket close codes (RFC 6455 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_BAD_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
#: the most an answer may inflate to (a transaction's answer names at most 50 PDUs).
MAX_ANSWER_BYTES = 1024 * 1024
_READ_BYTES = 64 * 1024


class BadMessage(ValueError):
    """A stream message that does not inflate, or is not a JSON object."""


def announcement() -> dict[str, Any]:
    """What the version answer adds."""
    return {ANNOUNCE_KEY: VERSION}


def offered(version_answer: Any) -> bool:
    """Whether a version answer announces a stream we speak (never Synapse's)."""
    return isinstance(version_answer, dict) and version_answer.get(ANNOUNCE_KEY) == VERSION


class References:
    """The event ids of one direction's latest PDUs on a stream (newest last), as both
    ends compute them: from the PDU as signed and the room version the message names."""

    def __init__(self) -> None:
        self._ids: deque[str | None] = deque(maxlen=MAX_REFERENCES)

    def note(self, pdu: Any, version: Any) -> None:
        """`pdu` went (or came) on the stream."""
        rv = room_version(version) if isinstance(version, str) else None
        found: str | None = None
        if rv is not None and isinstance(pdu, dict):
            try:
                found = event_id(pdu, rv) or None
            except (TypeError, ValueError):  # not encodable: no id, nothing refers to it
                found = None
        self._ids.append(found)

    def shorten(self, value: Any) -> Any:
        """`value` (an event id) as a reference when it is one of the latest."""
        for age, known in enumerate(reversed(self._ids), start=1):
            if known is not None and known == value:
                return f"{REFERENCE}{age}"
        return value

    def expand(self, value: Any) -> Any:
        """The event id a reference names (anything else as it is)."""
        if not isinstance(value, str) or not value.startswith(REFERENCE):
            return value
        age = value[len(REFERENCE) :]
        if not age.isdigit() or not 1 <= int(age) <= len(self._ids):
            return value  # names nothing: the PDU then fails its checks as it is
        found = self._ids[-int(age)]
        return value if found is None else found


def _map_references(pdu: dict[str, Any], change: Any) -> dict[str, Any]:
    """`pdu` with each prev/auth event id (plain, or first of a v1/v2 pair) changed."""
    out = dict(pdu)
    for key in _REFERENCE_KEYS:
        value = pdu.get(key)
        if not isinstance(value, list):
            continue
        out[key] = [
            [change(entry[0]), *entry[1:]] if isinstance(entry, list) and entry else change(entry)
            for entry in value
        ]
    return out


def _versions(versions: Any, count: int) -> list[Any]:
    """One room version (or None) per PDU: what the message says, if it says it right."""
    if isinstance(versions, list) and len(versions) == count:
        return versions
    return [None] * count


def compact(pdus: list[Any], versions: Any, references: References) -> list[Any]:
    """`pdus` with each content hash `restore` can recompute left out, and each prev or
    auth event among the stream's latest PDUs as a reference; `references` learn them."""
    out: list[Any] = []
    for pdu, version in zip(pdus, _versions(versions, len(pdus)), strict=True):
        sent = pdu
        if isinstance(pdu, dict):
            if pdu.get("hashes") == {"sha256": _hash(pdu)}:
                sent = {k: v for k, v in pdu.items() if k != "hashes"}
            sent = _map_references(sent, references.shorten)
        out.append(sent)
        references.note(pdu, version)
    return out


def restore(pdus: list[Any], versions: Any, references: References) -> list[Any]:
    """`pdus` as they were before `compact`: references expanded, and each PDU without
    `hashes` given its content hash back (a PDU that never had one gets a hash its origin
    never signed, and fails its signature check like any other altered PDU)."""
    out: list[Any] = []
    for pdu, version in zip(pdus, _versions(versions, len(pdus)), strict=True):
        if isinstance(pdu, dict):
            pdu = _map_references(pdu, references.expand)
            if "hashes" not in pdu:
                try:
                    pdu = add_content_hash(pdu)
                except (TypeError, ValueError):  # not encodable: ingest refuses it as it is
                    pass
        out.append(pdu)
        references.note(pdu, version)
    return out


def _hash(pdu: dict[str, Any]) -> str | None:
    try:
        return encode_base64(content_hash(pdu))
    except (TypeError, ValueError):
        return None


class Packer:
    """One direction's deflate stream: each `pack` is one message, flushed to a byte
    boundary so the peer can inflate it alone, with the stream so far as its dictionary.
    `window_bits` trades memory for reach: the sender of transactions keeps 32 KB of
    history (~260 KB of zlib state); answers are small and need little."""

    def __init__(self, window_bits: int = 15, mem_level: int = 8) -> None:
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, -window_bits, mem_level)

    def pack(self, value: Any) -> bytes:
        packed = self._deflate.compress(canonical_json(value))
        packed += self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return packed[: -len(_TAIL)] if packed.endswith(_TAIL) else packed


class Unpacker:
    """The other end of a `Packer`: messages must be unpacked in the order they were packed."""

    def __init__(self, limit: int = MAX_MESSAGE_BYTES) -> None:
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self.limit = limit

    def unpack(self, message: bytes) -> dict[str, Any]:
        """The JSON object in `message`.

        Raises:
            TooLarge: it inflates past `limit` (the stream is unusable after this).
            BadMessage: not deflate data, or not a JSON object.
        """
        try:
            plain = inflate_within(
                self._inflate, message + _TAIL, self.limit, "Stream message too large"
            )
        except zlib.error as exc:
            raise BadMessage(f"not deflate data: {exc}") from None
        try:
            value = parse_json_strict(plain)
        except JsonParseError as exc:
            raise BadMessage(f"not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise BadMessage("not a JSON object")
        return value


class StreamBroken(Exception):
    """The stream ended or broke (closed by the peer, a network error, a bad frame)."""


class OpenStream:
    """Our end of an open transaction stream (client.py opens it): one exchange at a time,
    on the upgraded connection of `response`. Not safe to use again once an exchange
    raised or was cancelled: close it."""

    def __init__(self, response: httpx.Response) -> None:
        import wsproto

        self._response = response
        self._network = response.extensions["network_stream"]
        self._ws = wsproto.connection.Connection(wsproto.ConnectionType.CLIENT)
        self._packer = Packer()
        self._unpacker = Unpacker(limit=MAX_ANSWER_BYTES)
        #: the PDUs sent on this stream, which later ones may refer to (`compact`).
        self.references = References()
        self.last_used = trio.current_time()

    def looks_open(self) -> bool:
        """False when the idle connection has something to read: the peer closed it or
        reset it (an idle stream's peer sends nothing unasked)."""
        try:
            return not self._network.get_extra_info("is_readable")
        except Exception:  # the socket is gone already
            return False

    async def exchange(self, message: dict[str, Any] | None) -> dict[str, Any] | None:
        """Send `message` (None: a keep-alive; its PDUs compacted against this stream)
        and wait for its answer.

        Raises:
            StreamBroken: the stream cannot carry it (then close the stream).
        """
        from wsproto.events import BytesMessage

        if message is not None and isinstance(message.get("pdus"), list):
            pdus = compact(message["pdus"], message.get("room_versions"), self.references)
            message = message | {"pdus": pdus}
        data = b"" if message is None else self._packer.pack(message)
        await self._write(self._ws.send(BytesMessage(data=data)))
        answer = await self._read_message()
        self.last_used = trio.current_time()
        if not answer:
            return None
        try:
            return self._unpacker.unpack(answer)
        except (TooLarge, BadMessage) as exc:
            raise StreamBroken(f"bad answer: {exc}") from None

    async def _read_message(self) -> bytes:
        from wsproto.events import BytesMessage, CloseConnection, Ping

        parts: list[bytes] = []
        size = 0
        while True:
            for event in self._ws.events():
                if isinstance(event, Ping):
                    await self._write(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    raise StreamBroken(f"closed by the peer: {event.code} {event.reason}")
                elif isinstance(event, BytesMessage):
                    size += len(event.data)
                    if size > MAX_ANSWER_BYTES:
                        raise StreamBroken("answer too large")
                    parts.append(bytes(event.data))
                    if event.message_finished:
                        return b"".join(parts)
                else:
                    raise StreamBroken(f"unexpected {type(event).__name__}")
            try:
                chunk = await self._network.read(_READ_BYTES)
            except Exception as exc:  # httpcore's, ssl's or the socket's: all mean broken
                raise StreamBroken(f"{type(exc).__name__}: {exc}") from None
            if not chunk:
                raise StreamBroken("connection closed")
            try:
                self._ws.receive_data(chunk)
            except Exception as exc:  # wsproto's RemoteProtocolError
                raise StreamBroken(f"bad frame: {exc}") from None

    async def _write(self, data: bytes) -> None:
        try:
            await self._network.write(data)
        except Exception as exc:  # httpcore's, ssl's or the socket's: all mean broken
            raise StreamBroken(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        """Close the connection, politely when it is quick, at once otherwise."""
        from wsproto.events import CloseConnection

        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            try:
                await self._network.write(self._ws.send(CloseConnection(code=CLOSE_NORMAL)))
            except Exception:  # already broken: nothing to say goodbye on
                pass
        # trio closes a stream whose aclose was cut short all the same.
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            try:
                await self._network.aclose()
                await self._response.aclose()
            except Exception:  # closing a broken connection
                pass
