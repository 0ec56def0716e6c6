"""relay.runtime.http at the ASGI level, driven as hypercorn drives it (asgi spec 2.1, one
memory channel of request messages) with a clock that never moves by itself: whether
the response starts is decided by the order of messages, never by how long anything
takes.

The race these pin down: a streaming or file response listens for `http.disconnect`
with its own `receive` while it sends; the drain of an unread body (`DrainUnreadBody`)
also read `receive` when the response started. When the listener took the end of the
body, the drain waited for a message that only a disconnect would bring, so the
response waited DRAIN_SECONDS (half of all media downloads stalled 5.0 s)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from relay.runtime.http import DRAIN_SECONDS, RawPathRoute, json_response, make_app, read_json_body

END_OF_BODY = {"type": "http.request", "body": b"", "more_body": False}


async def _chunks() -> AsyncIterator[bytes]:
    yield b"file "
    yield b"bytes"


async def stream(request: Request) -> Response:
    return StreamingResponse(_chunks(), media_type="application/octet-stream")


async def answer_early(request: Request) -> Response:
    return json_response({"errcode": "M_FORBIDDEN", "error": "no"}, 403)


async def echo_params(request: Request) -> Response:
    return json_response(dict(request.path_params))


async def read_json(request: Request) -> Response:
    return json_response(await read_json_body(request))


APP = make_app(
    [
        Route("/stream", stream, methods=["GET", "POST"]),
        Route("/early", answer_early, methods=["POST"]),
        Route("/json", read_json, methods=["PUT"]),
        Route("/m/{server}/{media_id}", echo_params, methods=["GET"]),
        RawPathRoute("/m/{server}/{media_id}/{file_name}", echo_params, methods=["GET"]),
    ]
)


class Exchange:
    """One request to APP: `put` delivers request messages, `sent` is what it sent."""

    def __init__(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"relay.test"), *headers],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8008),
        }
        self.to_app, self._from_server = trio.open_memory_channel[dict[str, Any]](10)
        self.sent: list[dict[str, Any]] = []

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def run(self) -> None:
        await APP(self.scope, self._from_server.receive, self._send)

    def started(self) -> bool:
        return any(m["type"] == "http.response.start" for m in self.sent)

    def complete(self) -> bool:
        return any(
            m["type"] == "http.response.body" and not m.get("more_body", False) for m in self.sent
        )


@pytest.fixture
def still_clock() -> trio.testing.MockClock:
    """Virtual time that moves only when a test jumps it."""
    return trio.testing.MockClock()


@pytest.mark.parametrize(
    ("method", "headers", "body"),
    [
        ("GET", [], [END_OF_BODY]),
        (
            "POST",
            [(b"content-length", b"4")],
            [{"type": "http.request", "body": b"data", "more_body": False}],
        ),
        (
            "POST",
            [(b"transfer-encoding", b"chunked")],
            [{"type": "http.request", "body": b"da", "more_body": True}, END_OF_BODY],
        ),
    ],
    ids=["get", "post-unread-body", "post-chunked-unread-body"],
)
async def test_streamed_response_never_waits_on_the_drain(
    still_clock: trio.testing.MockClock,
    method: str,
    headers: list[tuple[bytes, bytes]],
    body: list[dict[str, Any]],
) -> None:
    # The end of the body arrives once the response's disconnect listener waits: it
    # takes it, and the response must go out with no time passing at all.
    exchange = Exchange(method, "/stream", headers)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exchange.run)
        await trio.testing.wait_all_tasks_blocked()
        for message in body:
            await exchange.to_app.send(message)
        await trio.testing.wait_all_tasks_blocked()
        assert exchange.complete(), exchange.sent
        assert trio.current_time() == 0
        await exchange.to_app.send({"type": "http.disconnect"})
    body_bytes = b"".join(m.get("body", b"") for m in exchange.sent[1:])
    assert body_bytes == b"file bytes"


async def test_an_early_answer_still_waits_for_the_unread_body(
    still_clock: trio.testing.MockClock,
) -> None:
    # What the drain is for: a 403 given before the body is read goes out only after
    # the whole body went by (so the client can reuse the connection).
    exchange = Exchange("POST", "/early", [(b"content-length", b"8")])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exchange.run)
        await exchange.to_app.send({"type": "http.request", "body": b"abcd", "more_body": True})
        await trio.testing.wait_all_tasks_blocked()
        assert not exchange.started()
        await exchange.to_app.send({"type": "http.request", "body": b"efgh", "more_body": False})
        await trio.testing.wait_all_tasks_blocked()
        assert exchange.complete()
    assert exchange.sent[0]["status"] == 403
    assert trio.current_time() == 0


async def test_a_body_that_never_comes_is_given_up_after_drain_seconds(
    still_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    exchange = Exchange("POST", "/early", [(b"content-length", b"8")])
    with caplog.at_level(logging.WARNING, logger="relay.runtime.http"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(exchange.run)
            await trio.testing.wait_all_tasks_blocked()
            still_clock.jump(DRAIN_SECONDS - 0.5)
            await trio.testing.wait_all_tasks_blocked()
            assert not exchange.started()
            still_clock.jump(1)
            await trio.testing.wait_all_tasks_blocked()
            assert exchange.complete()
    assert "gave up draining the unread body of POST /early" in caplog.text


async def test_a_disconnect_the_drain_reads_is_kept_for_the_app(
    still_clock: trio.testing.MockClock,
) -> None:
    # The client went away mid-body: the drain ends, and the response's own listener
    # still hears of the disconnect (the drain used to swallow it).
    exchange = Exchange("POST", "/stream", [(b"content-length", b"8")])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exchange.run)
        await exchange.to_app.send({"type": "http.request", "body": b"abcd", "more_body": True})
        await trio.testing.wait_all_tasks_blocked()
        await exchange.to_app.send({"type": "http.disconnect"})
        await trio.testing.wait_all_tasks_blocked()
        assert exchange.started()
    assert trio.current_time() == 0


@pytest.mark.parametrize(
    ("raw_path", "file_name"),
    [
        ("/m/relay.test/abc/mc%2Fdl%2Fimg.enc", "mc/dl/img.enc"),
        ("/m/relay.test/abc/plain.png", "plain.png"),
        ("/m/relay.test/abc/caf%C3%A9%20menu.pdf", "café menu.pdf"),
    ],
)
async def test_raw_path_route_keeps_an_encoded_slash_in_its_segment(
    raw_path: str, file_name: str
) -> None:
    from urllib.parse import unquote

    exchange = Exchange("GET", unquote(raw_path), [])
    exchange.scope["raw_path"] = raw_path.encode()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exchange.run)
        await exchange.to_app.send(END_OF_BODY)
    assert exchange.sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in exchange.sent[1:])
    assert body.decode() == (
        '{"server":"relay.test","media_id":"abc","file_name":"' + file_name + '"}'
    )


async def test_raw_path_route_does_not_take_real_slashes() -> None:
    # A literal "/" still separates segments, as on Synapse: no route, 404.
    exchange = Exchange("GET", "/m/relay.test/abc/mc/dl/img.enc", [])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exchange.run)
        await exchange.to_app.send(END_OF_BODY)
    assert exchange.sent[0]["status"] == 404


async def test_a_client_that_hangs_up_mid_body_is_an_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Phones on bad Wi-Fi hang up all the time: that is no server error, and no
    traceback goes to the operator's log."""
    exchange = Exchange("PUT", "/json", [(b"content-length", b"100")])
    await exchange.to_app.send({"type": "http.request", "body": b'{"a": ', "more_body": True})
    await exchange.to_app.send({"type": "http.disconnect"})
    with caplog.at_level(logging.DEBUG):
        await exchange.run()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    gone = [r for r in caplog.records if "hung up" in r.getMessage()]
    assert [r.levelno for r in gone] == [logging.INFO]
    assert gone[0].exc_info is None
