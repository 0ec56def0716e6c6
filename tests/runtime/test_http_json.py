"""JSON bodies from the network, at the HTTP edge: one strict parser
(`relay.events.canonical.parse_json_strict`) for client and federation bodies alike, and
no input, however deep, that turns into a 500."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay.federation.inbound_auth import with_origin
from relay.runtime.http import json_response, make_app, read_json_body


async def echo(request: Request) -> Response:
    return json_response({"body": await read_json_body(request)})


async def echo_origin(request: Request, origin: str) -> Response:
    return json_response({"origin": origin})


APP = make_app(
    [
        Route("/_matrix/client/v3/echo", echo, methods=["PUT"]),
        Route("/_matrix/federation/v1/send/{txn}", with_origin(echo_origin), methods=["PUT"]),
    ]
)
APP.state.services = SimpleNamespace(server_name="me.example", keyring=None)

BAD_X_MATRIX = {"Authorization": 'X-Matrix origin="a.example",key="ed25519:x"'}
DEEP = b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"


async def _put(path: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(APP, raise_app_exceptions=False), base_url="http://t"
    ) as http:
        return await http.put(path, content=body, headers=headers or {})


@pytest.mark.parametrize(
    "path", ["/_matrix/client/v3/echo", "/_matrix/federation/v1/send/t1"], ids=repr
)
async def test_ten_thousand_deep_body_is_400_not_json(path: str) -> None:
    """Synapse answers any body its parser refuses (a RecursionError included) with
    400 M_NOT_JSON; before, a federation request with a bad X-Matrix header and a deep
    body was a 500 with a traceback."""
    r = await _put(path, DEEP, BAD_X_MATRIX)
    assert r.status_code == 400, r.text
    assert r.json()["errcode"] == "M_NOT_JSON"


STRICT_REFUSES = [
    b'{"a": 1, "a": 2}',
    b'\xef\xbb\xbf{"a": 1}',
    b'{"n": NaN}',
    b'{"n": -Infinity}',
    b'{"s": "\xff"}',
]


@pytest.mark.parametrize("body", STRICT_REFUSES, ids=repr)
@pytest.mark.parametrize(
    "path", ["/_matrix/client/v3/echo", "/_matrix/federation/v1/send/t1"], ids=repr
)
async def test_bodies_are_parsed_strictly(path: str, body: bytes) -> None:
    r = await _put(path, body, BAD_X_MATRIX)
    assert r.status_code == 400, r.text
    assert r.json()["errcode"] == "M_NOT_JSON"


async def test_a_strict_body_still_parses() -> None:
    r = await _put("/_matrix/client/v3/echo", '{"a": [1, "ü"], "b": {"c": null}}'.encode())
    assert r.status_code == 200, r.text
    assert r.json() == {"body": {"a": [1, "ü"], "b": {"c": None}}}
