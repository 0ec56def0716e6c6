"""Small helpers every kind of test shares: free ports, fresh loopback addresses, waiting.

One of each idea, here; harnesses (tests/integration/conftest.py for relay processes,
tests/mesh/conftest.py for namespaces, tests/synapse/ for a real Synapse) import them.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at `host` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def fresh_loopback() -> str:
    """A random 127.0.x.y address: relays of one test get addresses of their own."""
    return f"127.0.{random.randint(1, 254)}.{random.randint(2, 254)}"


def wait_until(
    predicate: Callable[[], T], timeout: float = 30.0, what: str = "", interval: float = 0.1
) -> T:
    """Poll `predicate()` until it is truthy and return its value; AssertionError naming
    `what` once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def seconds_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2
) -> float:
    """`wait_until`, returning how long it took (a figure a test reports, never asserts)."""
    start = time.monotonic()
    wait_until(predicate, timeout, what, interval)
    return time.monotonic() - start


def draw_examples(strategy: Any, n: int) -> list[Any]:
    """`n` examples of a Hypothesis `strategy`, generated (not shrunk), for tests that
    drive a server with each in turn inside one fixture rather than one test per example."""
    from hypothesis import HealthCheck, Phase, given, settings

    drawn: list[Any] = []

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    return drawn
