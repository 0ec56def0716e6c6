"""relay/sync/lazy_members.py: what a device counts as having, and the bounds."""

from __future__ import annotations

from relay.sync.lazy_members import SentMembers

ROOM = "!r:hs"


def test_a_member_counts_as_had_once_the_device_synced_past_its_answer() -> None:
    sent = SentMembers()
    sent.note_sent("@a:hs", "D", ROOM, [("@b:hs", "$j")], at=10)
    assert sent.had("@a:hs", "D", ROOM, {"@b:hs": "$j"}, since=9) == set()  # answer lost
    assert sent.had("@a:hs", "D", ROOM, {"@b:hs": "$j"}, since=10) == {"@b:hs"}
    # Another event for the member, another room, another device: not had.
    assert sent.had("@a:hs", "D", ROOM, {"@b:hs": "$other"}, since=10) == set()
    assert sent.had("@a:hs", "D", "!s:hs", {"@b:hs": "$j"}, since=10) == set()
    assert sent.had("@a:hs", "E", ROOM, {"@b:hs": "$j"}, since=10) == set()


def test_sending_again_keeps_the_earlier_position() -> None:
    sent = SentMembers()
    sent.note_sent("@a:hs", "D", ROOM, [("@b:hs", "$j")], at=10)
    sent.note_sent("@a:hs", "D", ROOM, [("@b:hs", "$j")], at=20)  # a retry from 9
    assert sent.had("@a:hs", "D", ROOM, {"@b:hs": "$j"}, since=10) == {"@b:hs"}
    sent.note_sent("@a:hs", "D", ROOM, [("@b:hs", "$k")], at=30)  # a new member event
    assert sent.had("@a:hs", "D", ROOM, {"@b:hs": "$k"}, since=29) == set()
    assert sent.had("@a:hs", "D", ROOM, {"@b:hs": "$k"}, since=30) == {"@b:hs"}


def test_an_initial_sync_forgets_the_device() -> None:
    sent = SentMembers()
    sent.note_sent("@a:hs", "D", ROOM, [("@b:hs", "$j")], at=10)
    sent.forget_device("@a:hs", "D")
    assert sent.had("@a:hs", "D", ROOM, {"@b:hs": "$j"}, since=10) == set()


def test_records_are_bounded_per_device_and_in_devices() -> None:
    sent = SentMembers(per_device=3, devices=2)
    members = [(f"@m{n}:hs", f"$e{n}") for n in range(5)]
    sent.note_sent("@a:hs", "D", ROOM, members, at=1)
    kept = sent.had("@a:hs", "D", ROOM, dict(members), since=1)
    assert kept == {"@m2:hs", "@m3:hs", "@m4:hs"}  # the last three sent
    sent.note_sent("@a:hs", "E", ROOM, members[:1], at=1)
    sent.note_sent("@a:hs", "F", ROOM, members[:1], at=1)  # D is the least recent
    assert sent.had("@a:hs", "D", ROOM, dict(members), since=1) == set()
    assert sent.had("@a:hs", "F", ROOM, dict(members), since=1) == {"@m0:hs"}
