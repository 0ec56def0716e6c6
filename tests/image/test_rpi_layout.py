"""The arm64 image's boot partition is laid out as the Raspberry Pi 4/5 firmware, Debian's
raspi-firmware and UEFI (generic arm64) expect.

In `make test` (CI) the partition is built alone (`build.sh arm64` with BOOT_ONLY=1: the same
steps from a root filesystem of just the kernel and boot packages; a whole arm64 image runs
every package's scripts under qemu-user, which takes far longer). With
`make image-test ARCH=arm64` it is read from the whole SD-card image, with its partition table.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.image.conftest import image_arch
from tests.image.vm import (
    IMAGE_DIR,
    Disk,
    ForeignArchUnavailable,
    built_boot_partition,
    built_image,
)

pytestmark = pytest.mark.image

ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ARM64_ROOT_TYPE = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"


@dataclass
class BootPartition:
    """A FAT file system at `offset` in `path` (the whole disk, or the partition alone)."""

    path: Path
    offset: int
    root_fs_uuid: str
    whole_disk: bool

    def listing(self) -> set[str]:
        out = subprocess.run(
            ["mdir", "-/", "-b", "-i", f"{self.path}@@{self.offset}", "::/"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {line.removeprefix("::/").strip("/") for line in out.splitlines() if line.strip()}

    def read(self, name: str) -> str:
        return subprocess.run(
            ["mtype", "-i", f"{self.path}@@{self.offset}", f"::/{name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout


def ext4_uuid(disk: Path, offset: int) -> str:
    with open(disk, "rb") as f:
        f.seek(offset + 1024 + 0x68)  # the superblock's s_uuid
        return str(uuid.UUID(bytes=f.read(16)))


@pytest.fixture(scope="module")
def boot() -> BootPartition:
    if image_arch() == "arm64":
        disk = built_image("arm64") / "disk.img"
        d = Disk.existing(disk)
        return BootPartition(
            disk, d.partition("boot").start, ext4_uuid(disk, d.partition("root").start), True
        )
    try:
        out = built_boot_partition("arm64")
    except ForeignArchUnavailable as exc:
        pytest.skip(f"cannot build arm64 here: {exc}")
    # The root file system's UUID is fixed per release (build.sh): the whole image's cmdline
    # names the same one.
    cmdline = (out / "cmdline.txt").read_text()
    match = re.search(r"root=UUID=([0-9a-f-]+)", cmdline)
    assert match, cmdline
    return BootPartition(out / "boot.img", 0, match.group(1), False)


def kernel_version(files: set[str]) -> str:
    versions = [f.removeprefix("vmlinuz-") for f in files if f.startswith("vmlinuz-")]
    assert len(versions) == 1, f"one vmlinuz-<version> expected: {sorted(files)}"
    return versions[0]


def test_partition_table(boot: BootPartition) -> None:
    if not boot.whole_disk:
        pytest.skip("whole SD-card image only (make image-test ARCH=arm64)")
    table = subprocess.run(
        ["sfdisk", "--json", str(boot.path)], capture_output=True, text=True, check=True
    ).stdout
    parts = json.loads(table)["partitiontable"]["partitions"]
    assert [p["type"] for p in parts] == [ESP_TYPE, ARM64_ROOT_TYPE]
    assert [p.get("name") for p in parts] == ["boot", "root"]


def test_pi_boot_files(boot: BootPartition) -> None:
    files = boot.listing()
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
    config = boot.read("config.txt")
    assert re.search(r"(?m)^arm_64bit=1$", config)
    assert re.search(rf"(?m)^kernel=vmlinuz-{re.escape(kver)}$", config)
    assert re.search(rf"(?m)^initramfs initrd\.img-{re.escape(kver)}", config)
    assert re.search(r"(?m)^gpu_mem=16$", config)

    # cmdline.txt mounts the image's root file system.
    cmdline = boot.read("cmdline.txt")
    assert f"root=UUID={boot.root_fs_uuid}" in cmdline, cmdline
    assert "console=ttyS1,115200" in cmdline


def test_pi5_device_tree(boot: BootPartition) -> None:
    files = boot.listing()
    assert {"bcm2712-rpi-5-b.dtb", "bcm2712-d-rpi-5-b.dtb"} <= files
    # The Pi 5's firmware reads the same config.txt: the kernel and initramfs lines are global,
    # before any [pi4]-style conditional section.
    config = boot.read("config.txt")
    head = config.split("\n[", 1)[0]
    assert re.search(r"(?m)^kernel=vmlinuz-", head) and re.search(r"(?m)^initramfs ", head)


def test_generic_arm64_uefi_entry(boot: BootPartition) -> None:
    """The same image boots on UEFI arm64 machines: systemd-boot and its entry on the ESP
    (the arm64 boot test boots it under qemu-system-aarch64 -M virt with UEFI firmware)."""
    files = boot.listing()
    kver = kernel_version(files)
    assert "EFI/BOOT/BOOTAA64.EFI" in files
    entry = boot.read("loader/entries/edge-relay.conf")
    assert f"linux /vmlinuz-{kver}" in entry
    assert f"initrd /initrd.img-{kver}" in entry
    assert f"root=UUID={boot.root_fs_uuid}" in entry
