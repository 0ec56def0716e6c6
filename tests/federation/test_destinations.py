"""The destination policy (relay/federation/destinations.py): each rule with its allowed
twin, on the pure rules, then on real connections to loopback servers (which the policy
treats as remote only when `federation.ip_range_allowlist` says so)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import pytest
import trio

from relay.config import Listen, config_from_dict
from relay.federation.client import FederationClient
from relay.federation.destinations import (
    AddressRefused,
    DestinationPolicy,
    FetchBudget,
    guarded_client,
)
from relay.federation.resolver import ServerResolver
from relay.runtime.identity import new_signing_key


def policy(*allowed: str, listeners: tuple[Listen, ...] = ()) -> DestinationPolicy:
    return DestinationPolicy(
        own_listeners=listeners,
        allowed_ranges=[ipaddress.ip_network(a, strict=False) for a in allowed],
    )


@pytest.mark.parametrize(
    ("refused", "allowed"),
    [
        ("127.0.0.1", "93.184.216.34"),  # loopback
        ("::1", "2606:4700::1111"),
        ("10.1.2.3", "11.1.2.3"),  # private
        ("172.16.0.9", "172.32.0.9"),
        ("192.168.1.1", "192.169.1.1"),
        ("100.64.0.1", "100.128.0.1"),  # carrier-grade NAT
        ("fd00::5", "2001:4860::5"),  # unique local
        ("169.254.169.254", "169.255.169.254"),  # link-local (cloud metadata)
        ("fe80::1", "2001:4860::1"),
        ("224.0.0.251", "223.255.255.1"),  # multicast
        ("ff02::fb", "2001:4860::fb"),
        ("0.0.0.0", "1.0.0.1"),  # unspecified
        ("::", "2001:4860::"),
        ("::ffff:127.0.0.1", "::ffff:8.8.8.8"),  # IPv4 inside IPv6
        ("2002:7f00:1::", "2002:808:808::"),  # 6to4 of 127.0.0.1 / of 8.8.8.8
    ],
)
def test_refused_range_and_its_allowed_twin(refused: str, allowed: str) -> None:
    rules = policy()
    assert rules.refusal(refused, 443) is not None
    assert rules.refusal(allowed, 443) is None


def test_allowlisted_address_counts_as_remote_and_nothing_else_does() -> None:
    rules = policy("127.0.0.5")
    assert rules.refusal("127.0.0.5", 8448) is None
    assert rules.refusal("127.0.0.6", 8448) is not None
    assert rules.refusal("::ffff:127.0.0.5", 8448) is None


def test_own_listener_is_refused_even_when_allowlisted_other_port_is_not() -> None:
    rules = policy("127.0.0.0/8", listeners=(Listen("127.0.0.5", 8448),))
    assert "own listener" in (rules.refusal("127.0.0.5", 8448) or "")
    assert rules.refusal("127.0.0.5", 8449) is None
    assert rules.refusal("127.0.0.6", 8448) is None


def test_wildcard_listener_is_refused_on_every_local_address() -> None:
    rules = policy("127.0.0.0/8", listeners=(Listen("0.0.0.0", 8448),))
    assert rules.refusal("127.0.0.1", 8448) is not None
    assert rules.refusal("127.3.4.5", 8448) is not None
    assert rules.refusal("127.3.4.5", 8008) is None
    assert rules.refusal("93.184.216.34", 8448) is None  # not one of ours


def test_named_listener_is_refused_at_the_addresses_its_name_has() -> None:
    rules = policy("127.0.0.0/8", listeners=(Listen("localhost", 8448),))
    assert rules.refusal("127.0.0.1", 8448) is not None
    assert rules.refusal("127.0.0.1", 8449) is None
    assert rules.refusal("93.184.216.34", 8448) is None  # other servers on that port


def test_only_https_urls_unless_a_trusted_route() -> None:
    rules = DestinationPolicy(trusted_urls=["http://hq.example:8008"])
    rules.check_url(httpx.URL("https://cdn.example/x"))
    with pytest.raises(AddressRefused):
        rules.check_url(httpx.URL("http://cdn.example/x"))
    with pytest.raises(AddressRefused):
        rules.check_url(httpx.URL("ftp://cdn.example/x"))
    rules.check_url(httpx.URL("http://hq.example:8008/_matrix/x"))


async def test_hostnames_are_checked_by_the_address_they_resolve_to() -> None:
    with pytest.raises(AddressRefused):
        await policy().addresses("localhost", 8448)
    assert "127.0.0.1" in await policy("127.0.0.1", "::1").addresses("localhost", 8448)


async def test_a_trusted_route_may_go_anywhere() -> None:
    rules = policy()
    rules.trust_route("hq.example", "localhost", 8448)
    assert "127.0.0.1" in await rules.addresses("localhost", 8448)
    with pytest.raises(AddressRefused):
        await rules.addresses("localhost", 8449)
    rules.trust_route("hq.example", "127.0.0.9", 8448)  # it moved: the old route is gone
    with pytest.raises(AddressRefused):
        await rules.addresses("localhost", 8448)


def _config(tmp_path: Path, **federation: object):
    return config_from_dict({"server_name": "me.example", "federation": federation}, tmp_path)


async def test_resolver_trusts_the_upstream_a_static_server_and_pinned_peers_only(
    tmp_path: Path,
) -> None:
    config = _config(
        tmp_path, upstream="127.0.0.11:8448", servers={"hq.example": "https://10.0.0.5:8448"}
    )
    resolver = ServerResolver(config)
    rules = resolver.policy
    assert rules.is_trusted_route("10.0.0.5", 8448)  # configured URLs from the start
    await resolver.resolve("127.0.0.11:8448")
    assert rules.is_trusted_route("127.0.0.11", 8448)
    await resolver.resolve("127.0.0.12:8448")
    assert not rules.is_trusted_route("127.0.0.12", 8448)
    rules.pinned_peer = lambda name: name == "192.168.7.7:8448"
    await resolver.resolve("192.168.7.7:8448")
    assert rules.is_trusted_route("192.168.7.7", 8448)
    await resolver.aclose()


class Counter:
    def __init__(self) -> None:
        self.connections = 0


async def _serve(host: str, counter: Counter, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    async def handle(stream: trio.SocketStream) -> None:
        counter.connections += 1
        await stream.receive_some(65536)
        body = b"hello"
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body)
        )
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host=host)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def test_guarded_client_never_connects_to_a_refused_address_and_does_to_its_twin(
    nursery: trio.Nursery,
) -> None:
    counter = Counter()
    port = await nursery.start(_serve, "127.0.0.93", counter)
    url = f"http://127.0.0.93:{port}/"
    async with guarded_client(policy(), verify=False, timeout=10) as http:
        with pytest.raises(AddressRefused):
            await http.get(url)
    assert counter.connections == 0
    async with guarded_client(policy("127.0.0.93"), verify=False, timeout=10) as http:
        assert (await http.get(url)).text == "hello"
    assert counter.connections == 1


async def test_federation_client_to_a_refused_server_is_unreachable_and_sends_nothing(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    from relay.federation.errors import PeerUnreachable

    counter = Counter()
    port = await nursery.start(_serve, "127.0.0.94", counter)
    client = FederationClient(_config(tmp_path), new_signing_key())
    with pytest.raises(PeerUnreachable, match="refused"):
        await client.get_json(f"127.0.0.94:{port}", "/_matrix/federation/v1/version")
    await client.aclose()
    assert counter.connections == 0


def test_fetch_budget_per_requester_and_negative_cache() -> None:
    now = [0.0]
    budget = FetchBudget(0.1, 3, negative_ttl=600, clock=lambda: now[0])
    assert [budget.may_fetch("10.0.0.1", f"s{i}") for i in range(4)] == [True] * 3 + [False]
    assert budget.may_fetch("10.0.0.2", "s9")  # its own budget
    assert budget.may_fetch(None, "s10")  # the relay's own needs are not budgeted
    budget.failed("dead.example")
    assert not budget.may_fetch("10.0.0.3", "dead.example")
    assert budget.may_fetch(None, "dead.example")
    now[0] = 601.0
    assert budget.may_fetch("10.0.0.3", "dead.example")
    budget.failed("x.example")
    budget.succeeded("x.example")
    assert budget.may_fetch("10.0.0.4", "x.example")


def test_config_refuses_a_bad_allowlist_entry(tmp_path: Path) -> None:
    from relay.config import ConfigError

    with pytest.raises(ConfigError, match="ip_range_allowlist"):
        _config(tmp_path, ip_range_allowlist=["not an address"])
