"""Server ACLs: the spec's order of checks (m.room.server_acl), ports ignored, globs matched
whole and case-insensitively, malformed content read as Synapse reads it."""

from __future__ import annotations

import pytest

from relay.events.server_acl import host_of, server_allowed

DENY_EVIL = {"allow": ["*"], "deny": ["evil.example", "*.evil.example"]}


def test_no_acl_allows_everyone() -> None:
    assert server_allowed(None, "anything.example")
    assert server_allowed(None, "127.0.0.1:8448")


@pytest.mark.parametrize(
    ("server", "allowed"),
    [
        ("good.example", True),
        ("evil.example", False),
        ("evil.example:8448", False),
        ("evil.example:1234", False),
        ("sub.evil.example", False),
        ("sub.evil.example:443", False),
        ("notevil.example", True),  # globs match the whole name, not a suffix
        ("evil.example.org", True),
        ("EVIL.example", False),  # case-insensitive
        ("Sub.EVIL.Example:8448", False),
    ],
)
def test_deny_beats_allow_and_ports_are_ignored(server: str, allowed: bool) -> None:
    assert server_allowed(DENY_EVIL, server) is allowed


def test_missing_allow_denies_everyone() -> None:
    assert not server_allowed({}, "good.example")
    assert not server_allowed({"deny": []}, "good.example")


def test_allow_list_only_allows_what_it_names() -> None:
    acl = {"allow": ["*.trusted.example", "ONE.example"]}
    assert server_allowed(acl, "a.trusted.example")
    assert server_allowed(acl, "one.example:8448")
    assert not server_allowed(acl, "trusted.example")  # "*." needs a label before it
    assert not server_allowed(acl, "two.example")


def test_question_mark_matches_exactly_one_character() -> None:
    acl = {"allow": ["kit-?.relief.example"]}
    assert server_allowed(acl, "kit-7.relief.example")
    assert not server_allowed(acl, "kit-07.relief.example")
    assert not server_allowed(acl, "kit-.relief.example")


def test_regex_characters_in_globs_are_literal() -> None:
    acl = {"allow": ["a.example"]}
    assert not server_allowed(acl, "abexample")
    assert server_allowed({"allow": ["[*"]}, "[::1]:8448")


@pytest.mark.parametrize(
    "server", ["127.0.0.2", "127.0.0.2:8448", "10.1.2.3", "[::1]", "[::1]:8448", "[2001:db8::1]"]
)
def test_ip_literals_denied_when_allow_ip_literals_is_false(server: str) -> None:
    assert server_allowed({"allow": ["*"]}, server)
    assert server_allowed({"allow": ["*"], "allow_ip_literals": True}, server)
    assert not server_allowed({"allow": ["*"], "allow_ip_literals": False}, server)


def test_names_that_only_look_like_ips_are_not_ip_literals() -> None:
    acl = {"allow": ["*"], "allow_ip_literals": False}
    assert server_allowed(acl, "1.2.3.example")
    assert server_allowed(acl, "1.2.3.4.5")


def test_malformed_content_is_read_as_synapse_reads_it() -> None:
    # A non-boolean allow_ip_literals is true; non-list lists are empty; non-strings skipped.
    assert server_allowed({"allow": ["*"], "allow_ip_literals": "no"}, "127.0.0.2")
    assert not server_allowed({"allow": "*"}, "good.example")
    assert server_allowed({"allow": ["*"], "deny": "good.example"}, "good.example")
    assert server_allowed({"allow": [1, None, "good.example"]}, "good.example")
    assert not server_allowed({"allow": ["*"], "deny": [{}, "good.example"]}, "good.example")


@pytest.mark.parametrize(
    ("name", "host"),
    [
        ("a.example", "a.example"),
        ("a.example:8448", "a.example"),
        ("127.0.0.2:8448", "127.0.0.2"),
        ("[::1]:8448", "[::1]"),
        ("[::1]", "[::1]"),
    ],
)
def test_host_of_drops_the_port(name: str, host: str) -> None:
    assert host_of(name) == host
