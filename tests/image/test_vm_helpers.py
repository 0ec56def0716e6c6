"""tests/image/vm.py's Vm stops waiting as soon as the guest's console shows a kernel panic
(the boot test then powers the VM on again once) or has been silent too long, instead of
waiting out the timeout; a guest that keeps printing is waited for."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.image.vm import Disk, GuestKernelPanic, Vm


def test_kernel_panic_on_the_console_ends_the_wait(tmp_path: Path) -> None:
    log = tmp_path / "boot.log"
    log.write_bytes(b"[    2.478840] Kernel panic - not syncing: Fatal exception in interrupt\n")
    vm = Vm(Disk.existing(tmp_path / "disk.img"), tmp_path, log)
    vm.proc = subprocess.Popen(["sleep", "60"])  # stands in for a QEMU that hangs on
    vm.started = time.monotonic()
    try:
        with pytest.raises(GuestKernelPanic, match="Kernel panic"):
            vm.wait_serving(timeout=60)
        # The stand-in lasts exactly the timeout: a wait that ran it out finds it ended.
        assert vm.proc.poll() is None, "the wait ran out its timeout"
    finally:
        vm.proc.kill()
        vm.proc.wait()


def test_a_silent_console_ends_the_wait(tmp_path: Path) -> None:
    log = tmp_path / "boot.log"
    log.write_bytes(b"[    2.000000] Run /init as init process\n")
    vm = Vm(Disk.existing(tmp_path / "disk.img"), tmp_path, log)
    vm.proc = subprocess.Popen(["sleep", "60"])  # a guest that prints nothing more
    vm.started = time.monotonic()
    try:
        with pytest.raises(AssertionError, match="console silent for 2 s"):
            vm.wait_serving(timeout=60, quiet=2)
        assert vm.proc.poll() is None, "the wait ran out its timeout"
    finally:
        vm.proc.kill()
        vm.proc.wait()


def test_a_console_that_keeps_printing_is_waited_for(tmp_path: Path) -> None:
    log = tmp_path / "boot.log"
    log.write_bytes(b"")
    vm = Vm(Disk.existing(tmp_path / "disk.img"), tmp_path, log)
    # A slow guest: it keeps printing, it never serves.
    vm.proc = subprocess.Popen(
        ["sh", "-c", f"while true; do echo progress >> {log}; sleep 0.2; done"]
    )
    vm.started = time.monotonic()
    try:
        with pytest.raises(AssertionError, match="after 10 s"):
            vm.wait_serving(timeout=10, quiet=4)
    finally:
        vm.proc.kill()
        vm.proc.wait()
