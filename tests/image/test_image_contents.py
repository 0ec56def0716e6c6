"""What the built image holds, read from its root partition on the host with debugfs (no
mount, no boot): no password anywhere, no remote login, the relay's unit as the issue asks,
time sync enabled, security updates configured, the first-boot data partition defined.

Runs for the architecture of the image tests (amd64 in `make test`, arm64 with
`make image-test ARCH=arm64`).
"""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

import pytest

from relay.config import ListenerLimits
from tests.image.conftest import image_arch
from tests.image.vm import Disk, built_image

pytestmark = pytest.mark.image


class RootFs:
    def __init__(self, disk: Path) -> None:
        root = Disk.existing(disk).partition("root")
        self.device = f"{disk}?offset={root.start}"

    def debugfs(self, request: str) -> str:
        return subprocess.run(
            ["debugfs", "-R", request, self.device], capture_output=True, text=True, check=True
        ).stdout

    def read(self, path: str) -> str:
        return self.debugfs(f"cat {path}")

    def exists(self, path: str) -> bool:
        # `stat` prints the inode for an existing path and nothing on stdout otherwise.
        return "Inode:" in self.debugfs(f"stat {path}")

    def listdir(self, path: str) -> set[str]:
        out = self.debugfs(f"ls -p {path}")
        return {f.split("/")[5] for f in out.splitlines() if f.count("/") >= 6} - {".", ".."}


@pytest.fixture(scope="module")
def rootfs() -> RootFs:
    return RootFs(built_image(image_arch()) / "disk.img")


def unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_no_password_and_no_remote_login(rootfs: RootFs) -> None:
    for line in rootfs.read("/etc/shadow").splitlines():
        user, hashed = line.split(":")[:2]
        # Locked ("!..."), or no login at all ("*"): never a usable or empty password.
        assert hashed.startswith(("!", "*")), f"{user} has a password: {hashed!r}"
    assert not rootfs.exists("/usr/sbin/sshd")
    passwd = rootfs.read("/etc/passwd")
    relay = [line for line in passwd.splitlines() if line.startswith("relay:")]
    assert relay and relay[0].endswith(":/usr/sbin/nologin")


def test_relay_service(rootfs: RootFs) -> None:
    service = unit(rootfs.read("/etc/systemd/system/relay.service"))["Service"]
    assert service["User"] == "relay"
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert int(service["WatchdogSec"]) > 0
    # Both listeners full, with room for everything else (issue 13: 1,024 ran out).
    assert int(service["LimitNOFILE"]) >= 2 * ListenerLimits().max_connections + 1024
    assert service["ExecStart"].startswith("/opt/edge-relay/venv/bin/relay run")
    # Logs go to the journal: stdout/stderr are not redirected elsewhere.
    assert "StandardOutput" not in service and "StandardError" not in service
    wants = rootfs.listdir("/etc/systemd/system/multi-user.target.wants")
    assert {"relay.service", "edge-relay-provision.service"} <= wants
    assert rootfs.exists("/opt/edge-relay/venv/bin/relay")


def test_time_sync_and_network_enabled(rootfs: RootFs) -> None:
    sysinit = rootfs.listdir("/etc/systemd/system/sysinit.target.wants")
    assert "systemd-timesyncd.service" in sysinit
    wants = rootfs.listdir("/etc/systemd/system/multi-user.target.wants")
    assert "systemd-networkd.service" in wants


def test_data_partition_made_on_first_boot(rootfs: RootFs) -> None:
    repart = unit(rootfs.read("/etc/repart.d/50-edge-relay-data.conf"))["Partition"]
    assert repart["Label"] == "edge-relay-data" and repart["Format"] == "ext4"
    fstab = rootfs.read("/etc/fstab")
    assert any(
        line.split()[:3] == ["PARTLABEL=edge-relay-data", "/var/lib/edge-relay", "ext4"]
        for line in fstab.splitlines()
        if line and not line.startswith("#")
    ), fstab


def test_boot_partition_mounted_where_the_kernel_hook_writes(rootfs: RootFs) -> None:
    esp = dict(
        line.split("=", 1)
        for line in rootfs.read("/etc/default/edge-relay-esp").splitlines()
        if "=" in line and not line.startswith("#")
    )["ESP"]
    assert esp == ("/boot/efi" if image_arch() == "amd64" else "/boot/firmware")
    mounts = {
        fields[0]: fields[1]
        for fields in (line.split() for line in rootfs.read("/etc/fstab").splitlines())
        if fields and not fields[0].startswith("#")
    }
    assert mounts["PARTLABEL=boot"] == esp
    assert rootfs.read("/etc/kernel/cmdline").startswith("root=UUID=")


def test_security_updates_configured(rootfs: RootFs) -> None:
    sources = rootfs.read("/etc/apt/sources.list")
    assert "-security" in sources and "-updates" in sources, sources


def test_machine_id_made_per_device(rootfs: RootFs) -> None:
    # "uninitialized": systemd makes the id on the device's first boot.
    assert rootfs.read("/etc/machine-id").strip() == "uninitialized"


def test_kernel_from_backports_on_arm64(rootfs: RootFs) -> None:
    if image_arch() != "arm64":
        pytest.skip("arm64 image only")
    pin = rootfs.read("/etc/apt/preferences.d/edge-relay-kernel")
    assert "-backports" in pin and "linux-image-arm64" in pin
