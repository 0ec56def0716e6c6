"""The device part of a /sync answer: to-device messages, device list changes,
one-time key counts and unused fallback key types.

Read in the same store snapshot as the rest of the answer (relay/sync/builder.py), up to the
same position `to`. A sync acknowledges the to-device messages its `since` covers
(relay/e2ee/to_device.py): the section never carries them again, and the build notes in
its snapshot whether any are left to delete (`acknowledged`), which `after` then does.
Key counts are always present; only messages and device list changes make an
incremental sync non-empty.

Spec: https://spec.matrix.org/v1.16/client-server-api/#extensions-to-sync (E2EE) and
https://spec.matrix.org/v1.16/client-server-api/#extensions-to-sync-1 (to-device)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relay.e2ee.device_keys import E2eKeys
from relay.e2ee.device_lists import DeviceLists
from relay.e2ee.to_device import ToDevice
from store import Connection


@dataclass(slots=True)
class DeviceSection:
    to_device: list[dict[str, Any]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    one_time_keys_count: dict[str, int] = field(default_factory=dict)
    unused_fallback_key_types: list[str] = field(default_factory=list)
    #: The device still holds messages up to the sync's `since` (not in the answer).
    acknowledged: bool = False

    def has_news(self) -> bool:
        return bool(self.to_device or self.changed or self.left)

    def as_json(self) -> dict[str, Any]:
        return {
            "to_device": {"events": self.to_device},
            "device_lists": {"changed": self.changed, "left": self.left},
            "device_one_time_keys_count": self.one_time_keys_count,
            "device_unused_fallback_key_types": self.unused_fallback_key_types,
        }


class DeviceSync:
    def __init__(self, keys: E2eKeys, device_lists: DeviceLists, to_device: ToDevice) -> None:
        self.keys = keys
        self.device_lists = device_lists
        self.to_device = to_device

    async def after(
        self, user_id: str, device_id: str, since: int | None, section: DeviceSection
    ) -> None:
        """Delete the messages the sync from `since` acknowledged (if its build saw any)."""
        if since is not None and section.acknowledged:
            await self.to_device.forget_acknowledged(user_id, device_id, since)

    def section_txn(
        self, conn: Connection, user_id: str, device_id: str, since: int | None, to: int
    ) -> DeviceSection:
        section = DeviceSection(
            to_device=self.to_device.messages_txn(conn, user_id, device_id, since, to)
        )
        if since is not None:
            section.acknowledged = self.to_device.acknowledged_txn(conn, user_id, device_id, since)
            section.changed, section.left = self.device_lists.changes_txn(conn, user_id, since, to)
        counts, fallback = self.keys.key_counts_txn(conn, user_id, device_id)
        section.one_time_keys_count = counts
        section.unused_fallback_key_types = fallback
        return section
