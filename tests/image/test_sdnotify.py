"""relay/runtime/sdnotify.py speaks systemd's notify protocol (what relay.service's Type=notify and
WatchdogSec= rely on) and is a no-op outside systemd."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import trio

from relay.runtime import sdnotify


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> socket.socket:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    return sock


def received(sock: socket.socket) -> list[str]:
    got = []
    while True:
        try:
            got.append(sock.recv(4096).decode())
        except BlockingIOError:
            return got


def test_no_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False


def test_notify_sends_datagram(notify_socket: socket.socket) -> None:
    assert sdnotify.notify("READY=1") is True
    assert received(notify_socket) == ["READY=1"]


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # another process's watchdog
    assert sdnotify.watchdog_interval() is None


async def test_ready_then_watchdog_until_shutdown(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # ping every 50 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sdnotify.ready_and_watchdog, shutdown)
        await trio.sleep(0.3)
        shutdown.set()
    got = received(notify_socket)
    assert got[0] == "READY=1"
    assert got[-1] == "STOPPING=1"
    assert got.count("WATCHDOG=1") >= 3
