"""tests/image/vm.py's Vm stops waiting as soon as the guest's console shows a kernel panic
(the boot test then powers the VM on again once) or has been silent too long, instead of
waiting out the timeout; a guest that keeps printing is waited for."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.image.vm import Disk, GuestKernelPanic, Vm


@contextmanager
def stand_in_vm(tmp_path: Path, console: bytes, command: list[str]) -> Iterator[Vm]:
    """A Vm whose console log starts as `console` and whose "QEMU" is `command` (given the
    log's path as {log}); it is killed on the way out."""
    log = tmp_path / "boot.log"
    log.write_bytes(console)
    vm = Vm(Disk.existing(tmp_path / "disk.img"), tmp_path, log)
    vm.proc = subprocess.Popen([part.format(log=log) for part in command])
    vm.started = time.monotonic()
    try:
        yield vm
    finally:
        vm.proc.kill()
        vm.proc.wait()


def test_kernel_panic_on_the_console_ends_the_wait(tmp_path: Path) -> None:
    panic = b"[    2.478840] Kernel panic - not syncing: Fatal exception in interrupt\n"
    # The stand-in for a QEMU that hangs on lasts exactly the timeout.
    with stand_in_vm(tmp_path, panic, ["sleep", "60"]) as vm:
        with pytest.raises(GuestKernelPanic, match="Kernel panic"):
            vm.wait_serving(timeout=60)
        assert vm.proc is not None
        assert vm.proc.poll() is None, "the wait ran out its timeout"


def test_a_silent_console_ends_the_wait(tmp_path: Path) -> None:
    booting = b"[    2.000000] Run /init as init process\n"
    with stand_in_vm(tmp_path, booting, ["sleep", "60"]) as vm:  # prints nothing more
        with pytest.raises(AssertionError, match="console silent for 2 s"):
            vm.wait_serving(timeout=60, quiet=2)
        assert vm.proc is not None
        assert vm.proc.poll() is None, "the wait ran out its timeout"


def test_a_console_that_keeps_printing_is_waited_for(tmp_path: Path) -> None:
    # A slow guest: it keeps printing, it never serves.
    printing = ["sh", "-c", "while true; do echo progress >> {log}; sleep 0.2; done"]
    with stand_in_vm(tmp_path, b"", printing) as vm:
        with pytest.raises(AssertionError, match="after 10 s"):
            vm.wait_serving(timeout=10, quiet=4)
