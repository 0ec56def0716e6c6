"""The federation media response, `multipart/mixed` with exactly two parts: a JSON object
(metadata, `{}` today), then the file's bytes, or a `Location` header to fetch them from.

`render_head`/`render_tail` build ours around a streamed file; `MultipartReader` reads a
peer's as the bytes arrive, so the file goes to disk, never whole into memory.

Spec: https://spec.matrix.org/v1.16/server-server-api/#content-repository
RFC 2046 §5.1: https://datatracker.ietf.org/doc/html/rfc2046#section-5.1
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from relay.events.canonical import parse_json_strict

#: Headers of one part, and the JSON part, are small; anything bigger is not a peer.
MAX_HEAD_BYTES = 64 * 1024


class MultipartError(Exception):
    """The body is not the two-part multipart/mixed the spec asks for."""


def new_boundary() -> str:
    return secrets.token_hex(16)


def render_head(boundary: str, part_headers: dict[str, str], metadata: dict | None = None) -> bytes:
    """Everything before the file's bytes."""
    lines = [
        f"--{boundary}",
        "Content-Type: application/json",
        "",
        json.dumps(metadata or {}, separators=(",", ":")),
        f"--{boundary}",
        *(f"{name}: {value}" for name, value in part_headers.items()),
        "",
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


def render_tail(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode("ascii")


def boundary_of(content_type: str | None) -> str:
    """The boundary parameter of a `multipart/mixed` Content-Type header."""
    if not content_type or content_type.split(";", 1)[0].strip().lower() != "multipart/mixed":
        raise MultipartError(f"not multipart/mixed: {content_type!r}")
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "boundary":
            value = value.strip()
            if value.startswith('"') and value.endswith('"'):
                value = value[1:-1]
            if value:
                return value
    raise MultipartError("multipart/mixed without a boundary")


@dataclass
class MultipartReader:
    """Feed it the body's chunks; it returns the file part's bytes as they can be known
    to belong to it. After `headers` is set, the caller looks for `location` there."""

    boundary: str
    metadata: dict | None = None
    headers: dict[str, str] | None = None
    done: bool = False
    _buffer: bytes = b""
    _state: str = "preamble"
    _delimiter: bytes = field(init=False)

    def __post_init__(self) -> None:
        self._delimiter = b"\r\n--" + self.boundary.encode("ascii")

    def feed(self, chunk: bytes) -> bytes:
        """The file bytes now certain (possibly b"")."""
        self._buffer += chunk
        out = b""
        while True:
            if self._state == "preamble":
                # The first delimiter may start the body without its leading CRLF.
                start = b"--" + self.boundary.encode("ascii") + b"\r\n"
                index = (b"\r\n" + self._buffer).find(b"\r\n" + start)
                if index < 0:
                    self._check_head_size()
                    return out
                self._buffer = self._buffer[index + len(start) :]
                self._state = "json_head"
            elif self._state in ("json_head", "file_head"):
                end = self._buffer.find(b"\r\n\r\n")
                if self._buffer.startswith(b"\r\n"):
                    end, skip = 0, 2
                else:
                    skip = 4
                if end < 0:
                    self._check_head_size()
                    return out
                headers = _parse_headers(self._buffer[:end])
                self._buffer = self._buffer[end + skip :]
                if self._state == "json_head":
                    self._state = "json_body"
                else:
                    self.headers = headers
                    self._state = "file_body"
            elif self._state == "json_body":
                index = self._buffer.find(self._delimiter + b"\r\n")
                if index < 0:
                    self._check_head_size()
                    return out
                try:
                    metadata = parse_json_strict(self._buffer[:index] or b"{}")
                except ValueError:
                    raise MultipartError("the first part is not JSON") from None
                if not isinstance(metadata, dict):
                    raise MultipartError("the first part is not a JSON object")
                self.metadata = metadata
                self._buffer = self._buffer[index + len(self._delimiter) + 2 :]
                self._state = "file_head"
            elif self._state == "file_body":
                index = self._buffer.find(self._delimiter)
                if index >= 0:
                    out += self._buffer[:index]
                    self._buffer = b""
                    self._state = "epilogue"
                    self.done = True
                    return out
                keep = len(self._delimiter) - 1
                if len(self._buffer) > keep:
                    out += self._buffer[:-keep]
                    self._buffer = self._buffer[-keep:]
                return out
            else:
                self._buffer = b""
                return out

    def _check_head_size(self) -> None:
        if len(self._buffer) > MAX_HEAD_BYTES:
            raise MultipartError("multipart headers too long")

    def finish(self) -> None:
        if not self.done:
            raise MultipartError("the body ended before the file part did")


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise MultipartError(f"bad part header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return headers
