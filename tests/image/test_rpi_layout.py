"""The arm64 (Raspberry Pi 4/5) image's boot partition is laid out as the Pi firmware and
Debian's raspi-firmware expect. Runs with `make image-test ARCH=arm64` (the arm64 build runs
under qemu-user: minutes), not in `make test`."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.image.conftest import image_arch
from tests.image.vm import IMAGE_DIR, Disk, built_image

pytestmark = [
    pytest.mark.image,
    pytest.mark.skipif(image_arch() != "arm64", reason="arm64 image (RELAY_IMAGE_ARCH=arm64)"),
]

ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ARM64_ROOT_TYPE = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"


@pytest.fixture(scope="module")
def image() -> Path:
    return built_image("arm64")


def fat_listing(disk: Path, offset: int) -> set[str]:
    out = subprocess.run(
        ["mdir", "-/", "-b", "-i", f"{disk}@@{offset}", "::/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.removeprefix("::/").strip("/") for line in out.splitlines() if line.strip()}


def fat_read(disk: Path, offset: int, name: str) -> str:
    return subprocess.run(
        ["mtype", "-i", f"{disk}@@{offset}", f"::/{name}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def kernel_version(files: set[str]) -> str:
    versions = [f.removeprefix("vmlinuz-") for f in files if f.startswith("vmlinuz-")]
    assert len(versions) == 1, f"one vmlinuz-<version> expected: {sorted(files)}"
    return versions[0]


def test_partitions_and_boot_files(image: Path) -> None:
    disk = image / "disk.img"
    table = subprocess.run(
        ["sfdisk", "--json", str(disk)], capture_output=True, text=True, check=True
    ).stdout
    parts = json.loads(table)["partitiontable"]["partitions"]
    assert [p["type"] for p in parts] == [ESP_TYPE, ARM64_ROOT_TYPE]
    assert [p.get("name") for p in parts] == ["boot", "root"]

    d = Disk.existing(disk)
    boot = d.partition("boot")
    files = fat_listing(disk, boot.start)
    kver = kernel_version(files)

    # Everything firmware-files.txt requires, with <version> the image's kernel.
    wanted = []
    for line in (IMAGE_DIR / "boards/rpi/firmware-files.txt").read_text().splitlines():
        if line and not line.startswith(("#", "?")):
            wanted.append(line.replace("<version>", kver))
    for must in ("config.txt", "cmdline.txt", "start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb"):
        assert must in wanted
    missing = [f for f in wanted if f not in files]
    assert not missing, f"missing from the boot partition: {missing}"

    # config.txt boots that kernel and initramfs in 64-bit mode, with our settings appended.
    config = fat_read(disk, boot.start, "config.txt")
    assert re.search(r"(?m)^arm_64bit=1$", config)
    assert re.search(rf"(?m)^kernel=vmlinuz-{re.escape(kver)}$", config)
    assert re.search(rf"(?m)^initramfs initrd\.img-{re.escape(kver)}", config)
    assert re.search(r"(?m)^gpu_mem=16$", config)

    # cmdline.txt mounts the image's root filesystem (UUID read from the ext4 superblock).
    cmdline = fat_read(disk, boot.start, "cmdline.txt")
    root = d.partition("root")
    with open(disk, "rb") as f:
        f.seek(root.start + 1024 + 0x68)
        fs_uuid = str(uuid.UUID(bytes=f.read(16)))
    assert f"root=UUID={fs_uuid}" in cmdline, cmdline
    assert "console=ttyS1,115200" in cmdline


def test_pi5_device_tree(image: Path) -> None:
    d = Disk.existing(image / "disk.img")
    boot = d.partition("boot")
    files = fat_listing(d.path, boot.start)
    assert {"bcm2712-rpi-5-b.dtb", "bcm2712-d-rpi-5-b.dtb"} <= files
    # The Pi 5's firmware reads the same config.txt: the kernel and initramfs lines are global,
    # before any [pi4]-style conditional section.
    config = fat_read(d.path, boot.start, "config.txt")
    head = config.split("\n[", 1)[0]
    assert re.search(r"(?m)^kernel=vmlinuz-", head) and re.search(r"(?m)^initramfs ", head)


def test_generic_arm64_uefi_entry(image: Path) -> None:
    """The same image boots on UEFI arm64 machines: systemd-boot and its entry on the ESP
    (the boot test boots it under qemu-system-aarch64 -M virt with UEFI firmware)."""
    d = Disk.existing(image / "disk.img")
    boot = d.partition("boot")
    files = fat_listing(d.path, boot.start)
    kver = kernel_version(files)
    assert "EFI/BOOT/BOOTAA64.EFI" in files
    entry = fat_read(d.path, boot.start, "loader/entries/edge-relay.conf")
    assert f"linux /vmlinuz-{kver}" in entry
    assert f"initrd /initrd.img-{kver}" in entry
    assert "root=UUID=" in entry
