"""X-Matrix request authentication: the signed `Authorization` header, out and in.

Rules kept here (no I/O; checking the signature against the origin's key is the KeyRing's):

- The signed object is `{method, uri, origin, destination, content?}`: `uri` is the request
  target exactly as sent (path from `/_matrix/...` plus `?query` if any), server names are
  the ones before delegation, and `content` is present only when the request has a body.
- We send one header per signature, in the spec's own form
  `X-Matrix origin="o",destination="d",key="ed25519:k",sig="..."` (one space, lower-case
  names, no spaces around commas, no backslashes), and always include `destination`.
- Inbound we parse RFC 9110 credentials leniently, as the spec asks: the scheme is
  case-insensitive; names are case-insensitive, in any order; spaces/tabs around commas;
  values quoted (backslash escapes undone) or bare, and a bare value may hold colons
  (`key=ed25519:k`). Unknown parameters are ignored; a repeated one is an error.
- Several `Authorization: X-Matrix` headers may come (one per key); all must name the same
  origin. A header that is not X-Matrix is ignored.
- Errors are `M_UNAUTHORIZED`: 400 for a header we cannot parse (Synapse does the same),
  401 for none at all, for mixed origins and for a `destination` that is not us. A request
  without `destination` is accepted (older servers); we sign for ourselves regardless.

Spec: https://spec.matrix.org/v1.16/server-server-api/#request-authentication
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from relay.errors import Unauthorized
from relay.events.ids import is_valid_server_name
from relay.events.signing import sign_json
from relay.runtime.identity import SigningKey

SCHEME = "X-Matrix"

#: RFC 9110 `token` characters (tchar).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A bare value: anything but whitespace, comma, quote, backslash (allows `ed25519:k`).
_BARE_VALUE = re.compile(r"[^\s,\"\\]+")
_OWS = re.compile(r"[ \t]*")
_SCHEME_SEP = re.compile(r"[ ]+")


class MalformedAuthorization(ValueError):
    """An `Authorization: X-Matrix` header that does not parse."""


@dataclass(frozen=True, slots=True)
class XMatrixCredentials:
    """One parsed `X-Matrix` header."""

    origin: str
    key_id: str
    signature: str
    #: None when the sender did not say (servers before spec v1.3).
    destination: str | None


def request_json(
    method: str,
    uri: str,
    origin: str,
    destination: str,
    content: Any = None,
    *,
    has_content: bool = False,
) -> dict[str, Any]:
    """The object an X-Matrix signature covers (without `signatures`).

    `content` is included when `has_content` is true or it is not None, so an explicit JSON
    `null` body can still be signed.
    """
    obj: dict[str, Any] = {
        "method": method.upper(),
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if has_content or content is not None:
        obj["content"] = content
    return obj


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization_headers(
    *,
    method: str,
    uri: str,
    origin: str,
    destination: str,
    signing_key: SigningKey,
    content: Any = None,
    has_content: bool = False,
) -> list[str]:
    """The `Authorization` header value(s) for a request we send (one per signing key)."""
    signed = sign_json(
        request_json(method, uri, origin, destination, content, has_content=has_content),
        origin,
        signing_key.key_id,
        signing_key.key,
    )
    return [
        f"{SCHEME} origin={_quote(origin)},destination={_quote(destination)},"
        f"key={_quote(key_id)},sig={_quote(sig)}"
        for key_id, sig in signed["signatures"][origin].items()
    ]


def _parse_quoted(text: str, i: int) -> tuple[str, int]:
    """The quoted-string starting at `text[i] == '"'`, unescaped, and the index after it."""
    out: list[str] = []
    i += 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text):
                break
            out.append(text[i + 1])
            i += 2
        elif ch == '"':
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise MalformedAuthorization("unterminated quoted value")


def _parse_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    i = 0
    while True:
        i = _OWS.match(text, i).end()  # type: ignore[union-attr]
        name_match = _TOKEN.match(text, i)
        if name_match is None:
            raise MalformedAuthorization(f"expected a parameter name at {i}")
        name = name_match.group().lower()
        i = _OWS.match(text, name_match.end()).end()  # type: ignore[union-attr]
        if i >= len(text) or text[i] != "=":
            raise MalformedAuthorization(f"expected '=' after {name}")
        i = _OWS.match(text, i + 1).end()  # type: ignore[union-attr]
        if i < len(text) and text[i] == '"':
            value, i = _parse_quoted(text, i)
        else:
            value_match = _BARE_VALUE.match(text, i)
            if value_match is None:
                raise MalformedAuthorization(f"expected a value for {name}")
            value, i = value_match.group(), value_match.end()
        if name in params:
            raise MalformedAuthorization(f"parameter {name} given twice")
        params[name] = value
        i = _OWS.match(text, i).end()  # type: ignore[union-attr]
        if i == len(text):
            return params
        if text[i] != ",":
            raise MalformedAuthorization(f"expected ',' at {i}")
        i += 1


def is_x_matrix(header: str) -> bool:
    """Whether an `Authorization` header value uses the X-Matrix scheme."""
    scheme, _, _ = header.strip().partition(" ")
    return scheme.lower() == SCHEME.lower()


def parse_authorization_header(header: str) -> XMatrixCredentials:
    """Parse one `Authorization: X-Matrix ...` value.

    Raises:
        MalformedAuthorization: not X-Matrix, bad syntax, a missing `origin`/`key`/`sig`,
            or an origin that is not a server name.
    """
    header = header.strip()
    scheme_match = re.match(r"[^ ]+", header)
    if scheme_match is None or scheme_match.group().lower() != SCHEME.lower():
        raise MalformedAuthorization("not an X-Matrix header")
    sep = _SCHEME_SEP.match(header, scheme_match.end())
    if sep is None:
        raise MalformedAuthorization("no parameters after X-Matrix")
    params = _parse_params(header[sep.end() :])
    missing = [name for name in ("origin", "key", "sig") if not params.get(name)]
    if missing:
        raise MalformedAuthorization(f"missing {', '.join(missing)}")
    if not is_valid_server_name(params["origin"]):
        raise MalformedAuthorization(f"origin {params['origin']!r} is not a server name")
    return XMatrixCredentials(
        origin=params["origin"],
        key_id=params["key"],
        signature=params["sig"],
        destination=params.get("destination"),
    )


def signed_request_from_headers(
    headers: Iterable[str],
    *,
    method: str,
    uri: str,
    our_server_name: str,
    content: Any = None,
    has_content: bool = False,
) -> tuple[str, dict[str, Any]]:
    """The origin of an inbound request and the signed object to check its signatures on.

    Raises:
        Unauthorized: 401 when there is no X-Matrix header, origins differ or a destination
            is not `our_server_name`; 400 when a header does not parse.
    """
    credentials: list[XMatrixCredentials] = []
    for header in headers:
        if not is_x_matrix(header):
            continue
        try:
            credentials.append(parse_authorization_header(header))
        except MalformedAuthorization as exc:
            raise Unauthorized(f"Malformed Authorization header: {exc}", status=400) from None
    if not credentials:
        raise Unauthorized("Missing Authorization headers")
    origins = {c.origin for c in credentials}
    if len(origins) > 1:
        raise Unauthorized("Authorization headers name different origins")
    for c in credentials:
        if c.destination is not None and c.destination != our_server_name:
            raise Unauthorized(f"Destination mismatch in auth header: {c.destination!r}")
    (origin,) = origins
    obj = request_json(method, uri, origin, our_server_name, content, has_content=has_content)
    obj["signatures"] = {origin: {c.key_id: c.signature for c in credentials}}
    return origin, obj
