"""firmware-image's esp-kernel hook keeps systemd-boot's ESP in step with /boot.

The script runs in the image build and on the device from Debian's kernel and initramfs hooks;
here it runs on the host against a scratch root (EDGE_RELAY_ROOT), through a kernel upgrade,
an initramfs rebuild and the old kernel's removal. (The image boot test boots the entry it
writes, by UEFI firmware.)
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.image.vm import IMAGE_DIR

SCRIPT = IMAGE_DIR / "rootfs/usr/local/lib/edge-relay/esp-kernel"
HOOKS = [
    "etc/kernel/postinst.d/zz-edge-relay-esp",
    "etc/kernel/postrm.d/zz-edge-relay-esp",
    "etc/initramfs/post-update.d/zz-edge-relay-esp",
]
CMDLINE = "root=UUID=5c3b2b36-7e0c-4bd8-9a0d-5a3f1c1e0a01 ro rootwait quiet"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "boot/efi").mkdir(parents=True)
    (tmp_path / "etc/default").mkdir(parents=True)
    (tmp_path / "etc/kernel").mkdir(parents=True)
    (tmp_path / "etc/default/edge-relay-esp").write_text("ESP=/boot/efi\nEFI_NAME=BOOTX64.EFI\n")
    (tmp_path / "etc/kernel/cmdline").write_text(CMDLINE + "\n")
    loader = tmp_path / "usr/lib/systemd/boot/efi"
    loader.mkdir(parents=True)
    (loader / "systemd-bootx64.efi").write_bytes(b"MZ systemd-boot 257")
    return tmp_path


def install_kernel(root: Path, version: str, initrd: bytes = b"initrd") -> None:
    (root / f"boot/vmlinuz-{version}").write_bytes(b"kernel " + version.encode())
    (root / f"boot/initrd.img-{version}").write_bytes(initrd + b" " + version.encode())


def run(root: Path, *, mounted: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGE_RELAY_ROOT": str(root)}
    if not mounted:
        env["EDGE_RELAY_ESP_UNMOUNTED"] = "1"
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True)


def entry(root: Path) -> dict[str, str]:
    text = (root / "boot/efi/loader/entries/edge-relay.conf").read_text()
    return dict(line.split(" ", 1) for line in text.splitlines())


def test_first_install_writes_loader_kernel_and_entry(root: Path) -> None:
    install_kernel(root, "6.12.1-amd64")
    assert run(root).returncode == 0
    esp = root / "boot/efi"
    assert (esp / "EFI/BOOT/BOOTX64.EFI").read_bytes() == b"MZ systemd-boot 257"
    assert (esp / "vmlinuz-6.12.1-amd64").read_bytes() == b"kernel 6.12.1-amd64"
    assert (esp / "initrd.img-6.12.1-amd64").read_bytes() == b"initrd 6.12.1-amd64"
    assert entry(root) == {
        "title": "edge-relay",
        "version": "6.12.1-amd64",
        "linux": "/vmlinuz-6.12.1-amd64",
        "initrd": "/initrd.img-6.12.1-amd64",
        "options": CMDLINE,
    }
    assert "default edge-relay.conf" in (esp / "loader/loader.conf").read_text()
    assert not list(esp.rglob("*.new"))


def test_upgrade_boots_the_newest_kernel_and_removal_cleans_up(root: Path) -> None:
    install_kernel(root, "6.12.9-amd64")
    assert run(root).returncode == 0
    # Version order, not name order: 6.12.10 is newer than 6.12.9.
    install_kernel(root, "6.12.10-amd64")
    assert run(root).returncode == 0
    assert entry(root)["linux"] == "/vmlinuz-6.12.10-amd64"
    esp = root / "boot/efi"
    # The old kernel stays on the ESP while it is installed (a fallback to copy back).
    assert (esp / "vmlinuz-6.12.9-amd64").exists()
    (root / "boot/vmlinuz-6.12.9-amd64").unlink()
    (root / "boot/initrd.img-6.12.9-amd64").unlink()
    assert run(root).returncode == 0
    assert sorted(p.name for p in esp.glob("*-amd64")) == [
        "initrd.img-6.12.10-amd64",
        "vmlinuz-6.12.10-amd64",
    ]


def test_initramfs_rebuild_is_copied(root: Path) -> None:
    install_kernel(root, "6.12.1-amd64")
    assert run(root).returncode == 0
    install_kernel(root, "6.12.1-amd64", initrd=b"rebuilt initrd")
    assert run(root).returncode == 0
    got = (root / "boot/efi/initrd.img-6.12.1-amd64").read_bytes()
    assert got == b"rebuilt initrd 6.12.1-amd64"


def test_unmounted_esp_fails_and_writes_nothing(root: Path) -> None:
    install_kernel(root, "6.12.1-amd64")
    done = run(root, mounted=True)
    assert done.returncode == 1
    assert "not mounted" in done.stderr
    assert list((root / "boot/efi").iterdir()) == []


def test_no_kernel_is_an_error(root: Path) -> None:
    done = run(root)
    assert done.returncode == 1
    assert "no kernel" in done.stderr


def test_hooks_call_the_script() -> None:
    for hook in HOOKS:
        path = IMAGE_DIR / "rootfs" / hook
        assert os.access(path, os.X_OK), hook
        assert "exec /usr/local/lib/edge-relay/esp-kernel" in path.read_text()
