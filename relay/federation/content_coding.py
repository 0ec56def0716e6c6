"""Compressed bodies between relays (issue 17), negotiated, plain JSON to anyone else.

A relay announces the request codings it accepts in its `GET /_matrix/federation/v1/version`
answer, under `ANNOUNCE_KEY` (a namespaced key: other servers ignore it). Our client learns
a destination's codings from any version answer it gets (the sender's probes ask for it;
the sender asks once before its first transaction to a destination it knows nothing of),
and compresses a signed federation request's body of `MIN_BYTES` or more only for a
destination that announced the coding. Synapse announces none, so it gets plain JSON.
Answers the same way: our client asks a relay that announced gzip for gzipped answers
(`accept_encoding`), which its federation listener gives (GZipMiddleware), and inflates
them as they arrive within the answer's cap (`Inflater`); it asks nobody else, and refuses
a coded answer it did not ask for.

The X-Matrix signature covers the JSON object, not the bytes on the wire, so a compressed
body verifies the same; PDUs inside it stay byte-exact. Inbound, a coded body is inflated
incrementally and refused with 413 as soon as it passes the plain body cap (no zip bomb);
an unknown coding is refused with 415. Only gzip: the standard library has it, and the
bodies (a few KB of JSON, much of it signatures and hashes) gain little from more.
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any

from relay.errors import MatrixError, TooLarge

ANNOUNCE_KEY = "org.edge_relay.request_encodings"
ACCEPTED = ("gzip",)
MIN_BYTES = 256


class UnsupportedCoding(MatrixError):
    status = 415
    errcode = "M_UNRECOGNIZED"


def announcement() -> dict[str, Any]:
    """What the version answer adds."""
    return {ANNOUNCE_KEY: list(ACCEPTED)}


def announced(version_answer: Any) -> frozenset[str]:
    """The codings a version answer announces that we can produce (none from Synapse)."""
    listed = version_answer.get(ANNOUNCE_KEY) if isinstance(version_answer, dict) else None
    if not isinstance(listed, list):
        return frozenset()
    return frozenset(c for c in listed if isinstance(c, str) and c in ACCEPTED)


def encode(content: bytes, codings: frozenset[str]) -> tuple[bytes, str | None]:
    """(body to send, its Content-Encoding or None): gzip when the peer takes it and the
    body is big enough to gain from it."""
    if "gzip" not in codings or len(content) < MIN_BYTES:
        return content, None
    packed = gzip.compress(content, compresslevel=9, mtime=0)
    return (packed, "gzip") if len(packed) < len(content) else (content, None)


def accept_encoding(codings: frozenset[str]) -> str | None:
    """The Accept-Encoding to send a peer that announced `codings` (None: the client's
    default, identity): a relay gzips its answers, Starlette's GZipMiddleware on its
    federation listener."""
    return "gzip" if "gzip" in codings else None


def inflate_within(inflater: zlib._Decompress, data: bytes, room: int, too_large: str) -> bytes:
    """`data` through `inflater`, at most `room` plain bytes: past that, TooLarge(`too_large`)
    and the rest never inflated (the one zip-bomb rule of every compressed body we read:
    requests, answers, transaction-stream messages). A zlib.error passes through, for the
    caller to name."""
    plain = inflater.decompress(data, room + 1)
    if len(plain) > room or inflater.unconsumed_tail:
        raise TooLarge(too_large)
    return plain


class Inflater:
    """An answer's body, plain, fed as it arrives and never held past a cap."""

    def __init__(self, gzipped: bool) -> None:
        self._inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if gzipped else None
        self._chunks: list[bytes] = []
        self._size = 0

    @property
    def coded(self) -> bool:
        return self._inflate is not None

    @classmethod
    def for_answer(cls, encoding: str, asked: str) -> Inflater | None:
        """The inflater for an answer coded `encoding` to a request that sent
        Accept-Encoding `asked`; None for a coding that was not asked for."""
        if encoding in ("", "identity"):
            return cls(gzipped=False)
        if encoding == "gzip" and "gzip" in asked:
            return cls(gzipped=True)
        return None

    def feed(self, chunk: bytes, limit: int) -> None:
        """Raises TooLarge past `limit` plain bytes; UnsupportedCoding for bad gzip."""
        if self._inflate is not None:
            try:
                chunk = inflate_within(self._inflate, chunk, limit - self._size, "Answer too large")
            except zlib.error:
                raise UnsupportedCoding("Answer is not valid gzip") from None
        self._size += len(chunk)
        if self._size > limit:
            raise TooLarge("Answer too large")
        self._chunks.append(chunk)

    def finish(self, limit: int) -> bytes:
        """The whole plain body (raises as `feed`, and for a gzip stream cut short)."""
        if self._inflate is not None:
            if not self._inflate.eof:
                raise UnsupportedCoding("Answer's gzip stream is cut short")
            self.feed(b"", limit)
        return b"".join(self._chunks)


def decode(body: bytes, coding: str, limit: int) -> bytes:
    """The plain body of `body` sent with Content-Encoding `coding`, at most `limit` bytes.

    Raises:
        UnsupportedCoding: a coding we did not announce.
        TooLarge: the plain body passes `limit`.
    """
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return body
    if coding != "gzip":
        raise UnsupportedCoding(f"Unsupported Content-Encoding {coding!r}")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        plain = inflate_within(inflater, body, limit, "Request body too large")
        plain += inflater.flush()
    except zlib.error:
        raise UnsupportedCoding("Body is not valid gzip") from None
    if len(plain) > limit:
        raise TooLarge("Request body too large")
    return plain
