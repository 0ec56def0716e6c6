"""`make image-e2e`: the relay in the amd64 image federates with a real Synapse on the host.

The VM reaches the host's loopback at 10.0.2.2 (QEMU user networking): Synapse listens on
127.0.0.1, the relay is provisioned with it as upstream (`upstream_url` through 10.0.2.2) and
with server name `127.0.0.1:<forwarded federation port>`, which Synapse reaches through the
hostfwd. A field user in the VM creates a room, invites an HQ user on Synapse, who joins; a
message written in the VM arrives upstream. Not in CI (needs `make synapse`; minutes)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.image.vm import Disk, Vm, built_image
from tests.integration.matrix_client import MatrixUser
from tests.support import free_port
from tools.synapse_harness import Synapse, ensure_synapse_installed

pytestmark = [
    pytest.mark.image,
    pytest.mark.skipif(
        os.environ.get("RELAY_IMAGE_E2E") != "1", reason="make image-e2e (RELAY_IMAGE_E2E=1)"
    ),
]


def test_vm_relay_federates_with_synapse(tmp_path: Path) -> None:
    ensure_synapse_installed()
    build = built_image("amd64")
    synapse = Synapse(tmp_path / "synapse", "127.0.0.1", free_port(), free_port())
    synapse.write_config()
    synapse.start()
    disk = Disk(build / "disk.img", tmp_path / "disk.img")
    vm = Vm(disk, build, tmp_path / "boot.log")
    server_name = f"127.0.0.1:{vm.federation_port}"
    disk.write_boot_file(
        "relay-provision.toml",
        f'server_name = "{server_name}"\n'
        f'upstream = "{synapse.server_name}"\n'
        f'upstream_url = "https://10.0.2.2:{synapse.federation_port}"\n'
        "verify_tls = false\n"
        '[admin]\nuser = "field"\npassword = "pw"\n',
    )
    try:
        vm.start()
        took = vm.wait_serving(120)
        print(f"\nVM serving after {took:.1f} s")
        field = MatrixUser.login(vm.client_url, "field")
        synapse.register("hq")
        hq = MatrixUser.login(synapse.client_url, "hq")
        room_id = field.create_room(name="sitrep", preset="private_chat")
        field.invite(room_id, hq.user_id)
        hq.wait_for_invite(room_id, timeout=120)
        hq.join(room_id)
        t0 = time.monotonic()
        field.send(room_id, "written in the VM")
        seen = hq.wait_for_bodies(room_id, {"written in the VM"}, timeout=120)
        assert "written in the VM" in seen
        print(f"message arrived upstream after {time.monotonic() - t0:.1f} s")
        hq.send(room_id, "ack from HQ")
        assert "ack from HQ" in field.wait_for_bodies(room_id, {"ack from HQ"}, timeout=120)
    finally:
        vm.kill()
        synapse.kill()
