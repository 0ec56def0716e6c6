"""A relay restored from `relay backup` federates with a Synapse that knew the original:
same server name, same signing key (Synapse verifies the restored relay's events and
requests with the key it cached), every event there, messages both ways."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import RelayProcess
from tests.synapse.conftest import Pair, start_pair


def test_restored_relay_federates_with_a_synapse_that_knew_it(tmp_path: Path) -> None:
    pair: Pair = start_pair(tmp_path)
    restored: RelayProcess | None = None
    try:
        field = pair.relay_user("field")
        hq = pair.synapse_user("hq")
        room_id = field.create_room(name="kit room", preset="private_chat")
        field.invite(room_id, hq.user_id)
        hq.wait_for_invite(room_id)
        hq.join(room_id)
        field.send(room_id, "before the backup")
        hq.wait_for_bodies(room_id, {"before the backup"})

        archive = tmp_path / "kit.tar.gz"
        pair.relay.cli("backup", "--output", str(archive))
        pair.relay.stop()

        # The same box, rebuilt: a new data dir from the archive, the same addresses.
        restored = RelayProcess(
            data_dir=tmp_path / "restored",
            host=pair.relay.host,
            client_port=pair.relay.client_port,
            federation_port=pair.relay.federation_port,
        )
        restored.cli("restore", str(archive))
        restored.start()
        field.since = None  # the same access token works on the restored relay
        field.send(room_id, "after the restore")
        hq.send(room_id, "hq hears you")
        assert "after the restore" in hq.wait_for_bodies(room_id, {"after the restore"})
        assert "hq hears you" in field.wait_for_bodies(room_id, {"hq hears you"})
        history = [e["content"].get("body") for e in field.messages(room_id)]
        assert "before the backup" in history
    finally:
        if restored is not None:
            restored.kill()
        pair.relay.kill()
        pair.synapse.kill()
