"""Build the appliance image and boot it under QEMU (TCG) for tests/image/.

`built_image(arch)` runs firmware-image/build.sh (which reuses a build whose inputs are
unchanged); `Disk` is a per-test copy of the image grown like a real SD card/SSD, whose
partitions are read and written from the host with mtools and debugfs (no mounts); `Vm` boots
a disk with direct kernel boot and user-mode networking, forwarding the relay's client and
federation ports to free ports on 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import free_port

TOP = Path(__file__).resolve().parents[2]
IMAGE_DIR = TOP / "firmware-image"
BOOT_PARTITION = 1
ROOT_PARTITION = 2
DATA_LABEL = "edge-relay-data"


# UEFI firmware (Debian's ovmf and qemu-efi-aarch64, which build.sh's host-deps.sh installs):
# code, variable store template.
UEFI_FIRMWARE = {
    "amd64": ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    "arm64": ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"),
}


def built_image(arch: str = "amd64") -> Path:
    """firmware-image/build/ARCH, built (or reused) by build.sh."""
    subprocess.run([str(IMAGE_DIR / "build.sh"), arch], check=True, timeout=1800)
    out = IMAGE_DIR / "build" / arch
    assert (out / "disk.img").is_file()
    return out


KERNEL_PANIC = b"Kernel panic - not syncing"


class GuestKernelPanic(AssertionError):
    """The guest's kernel panicked (its console says so): it will never serve."""


class ForeignArchUnavailable(Exception):
    """This machine cannot run another architecture's programs (no binfmt_misc handler)."""


def wait_for_image_builds() -> None:
    """Block until no build.sh runs (each holds build/<flavour>.lock throughout): a boot timed
    against the budget must not share the CPUs with a build (`make test` starts them in the
    background)."""
    for lock in sorted((IMAGE_DIR / "build").glob("*.lock")):
        with open(lock, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            fcntl.flock(f, fcntl.LOCK_UN)


def built_boot_partition(arch: str) -> Path:
    """firmware-image/build/ARCH-boot: the boot partition alone (boot.img), built by build.sh
    with BOOT_ONLY=1 from a root filesystem of just the kernel and boot packages."""
    env = {**os.environ, "BOOT_ONLY": "1"}
    done = subprocess.run(
        [str(IMAGE_DIR / "build.sh"), arch],
        timeout=1800,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if done.returncode == 2 and "binfmt_misc" in done.stdout:
        # A foreign architecture's packages are configured under qemu-user through
        # binfmt_misc; a machine (container) without it cannot build them at all.
        raise ForeignArchUnavailable(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, done.stdout[-4000:]
    out = IMAGE_DIR / "build" / f"{arch}-boot"
    assert (out / "boot.img").is_file()
    return out


@dataclass
class Partition:
    number: int
    start: int  # bytes
    size: int  # bytes
    name: str


class Disk:
    """A copy of disk.img, grown to `size` bytes (the free space becomes the data partition)."""

    def __init__(self, image: Path, path: Path, size: int = 2 << 30) -> None:
        subprocess.run(["cp", "--sparse=always", str(image), str(path)], check=True)
        os.truncate(path, size)
        self.path = path

    @classmethod
    def existing(cls, path: Path) -> Disk:
        """The disk image at `path` itself (read-only use), not a copy."""
        disk = cls.__new__(cls)
        disk.path = path
        return disk

    def partitions(self) -> list[Partition]:
        out = subprocess.run(
            ["sfdisk", "--json", str(self.path)], capture_output=True, text=True, check=True
        ).stdout
        table = json.loads(out)["partitiontable"]
        sector = int(table.get("sectorsize", 512))
        return [
            Partition(i + 1, p["start"] * sector, p["size"] * sector, p.get("name", ""))
            for i, p in enumerate(table["partitions"])
        ]

    def partition(self, name: str) -> Partition:
        for p in self.partitions():
            if p.name == name:
                return p
        raise KeyError(f"no partition named {name!r} in {self.path}")

    def _fat(self) -> str:
        return f"{self.path}@@{self.partition('boot').start}"

    def write_boot_file(self, name: str, text: str) -> None:
        """Put a file on the boot (FAT) partition, as a user would from a PC."""
        src = self.path.with_name(name)
        src.write_text(text)
        subprocess.run(["mcopy", "-o", "-i", self._fat(), str(src), f"::/{name}"], check=True)

    def read_boot_file(self, name: str) -> str | None:
        proc = subprocess.run(
            ["mtype", "-i", self._fat(), f"::/{name}"], capture_output=True, text=True
        )
        return proc.stdout if proc.returncode == 0 else None

    def dump_data_files(self, names: list[str], dest: Path) -> list[Path]:
        """Copy files out of the data partition's ext4 (made in the VM) with debugfs."""
        part = self.partition(DATA_LABEL)
        fs = dest / "data.ext4"
        with open(self.path, "rb") as src, open(fs, "wb") as dst:
            src.seek(part.start)
            left = part.size
            while left:
                chunk = src.read(min(left, 8 << 20))
                if not chunk:
                    break
                dst.write(chunk)
                left -= len(chunk)
        got = []
        for name in names:
            out = dest / Path(name).name
            subprocess.run(
                ["debugfs", "-R", f"dump {name} {out}", str(fs)], capture_output=True, check=True
            )
            if out.exists() and out.stat().st_size:
                got.append(out)
        fs.unlink()
        return got


@dataclass
class Vm:
    disk: Disk
    build: Path
    log_path: Path
    arch: str = "amd64"
    memory_mib: int = 1024
    client_port: int = field(default_factory=free_port)
    federation_port: int = field(default_factory=free_port)
    # "direct": QEMU loads the build's kernel and initrd (fast under TCG); "uefi": UEFI
    # firmware boots the disk by itself (systemd-boot on the ESP), as a real machine does.
    firmware: str = "direct"
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def federation_url(self) -> str:
        return f"https://127.0.0.1:{self.federation_port}"

    def command(self) -> list[str]:
        cmdline = (self.build / "cmdline.txt").read_text().strip()
        fwd = (
            f"hostfwd=tcp:127.0.0.1:{self.client_port}-:8008,"
            f"hostfwd=tcp:127.0.0.1:{self.federation_port}-:8448"
        )
        if self.arch == "amd64":
            machine = ["qemu-system-x86_64", "-M", "q35", "-cpu", "max"]
            console = "ttyS0"
        else:
            machine = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72"]
            console = "ttyAMA0"
        self.qmp_path = self.log_path.with_suffix(".qmp")
        if self.firmware == "uefi":
            boot = self.uefi_flash()
        else:
            boot = [
                "-kernel",
                str(self.build / "vmlinuz"),
                "-initrd",
                str(self.build / "initrd.img"),
                "-append",
                # Quiet kernel (every console byte is slow under TCG); the journal's info
                # messages (units, the relay's log) go to the console log for post-mortems.
                f"{cmdline} console={console} quiet systemd.journald.forward_to_console=1",
            ]
        return [
            *machine,
            "-accel",
            "tcg,thread=multi",
            "-smp",
            "2",
            "-m",
            str(self.memory_mib),
            "-nographic",
            "-no-reboot",
            *boot,
            "-drive",
            f"file={self.disk.path},format=raw,if=none,id=disk0,cache=writeback",
            "-device",
            "virtio-blk-pci,drive=disk0",
            "-nic",
            f"user,model=virtio-net-pci,{fwd}",
            "-qmp",
            f"unix:{self.qmp_path},server=on,wait=off",
        ]

    def uefi_flash(self) -> list[str]:
        """The UEFI firmware's code (read-only) and a per-disk copy of its variable store."""
        code, template = UEFI_FIRMWARE[self.arch]
        vars_path = self.disk.path.with_name(f"{self.disk.path.stem}-efivars.fd")
        if not vars_path.exists():
            shutil.copyfile(template, vars_path)
        return [
            "-drive",
            f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive",
            f"if=pflash,format=raw,unit=1,file={vars_path}",
        ]

    def start(self) -> None:
        self.log = open(self.log_path, "ab")  # closed by kill()/shutdown()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )

    def console(self, tail: int = 80) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-tail:])

    def wait_serving(self, timeout: float = 90.0, quiet: float | None = None) -> float:
        """Wait until the relay answers on both ports; the seconds since QEMU started.

        Fails after `timeout` seconds, or sooner when `quiet` is given and the guest's
        console has printed nothing for that long: a boot that keeps making progress is
        waited for (TCG on a loaded machine can take minutes), a stuck one is not."""
        assert self.proc is not None
        deadline = self.started + timeout
        ok = {"client": False, "federation": False}
        printed, last_output = 0, time.monotonic()
        with httpx.Client(verify=False, timeout=3.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"QEMU exited ({self.proc.returncode}):\n{self.console()}")
                output = self.log_path.read_bytes()
                if KERNEL_PANIC in output:
                    raise GuestKernelPanic(self.console())
                if len(output) != printed:
                    printed, last_output = len(output), time.monotonic()
                elif quiet is not None and time.monotonic() - last_output > quiet:
                    raise AssertionError(
                        f"relay not serving {ok}; the console silent for {quiet:.0f} s:\n"
                        f"{self.console()}"
                    )
                for name, url in (
                    ("client", f"{self.client_url}/_matrix/client/versions"),
                    ("federation", f"{self.federation_url}/_matrix/key/v2/server"),
                ):
                    if not ok[name]:
                        try:
                            ok[name] = http.get(url).status_code == 200
                        except httpx.HTTPError:
                            pass
                if all(ok.values()):
                    return time.monotonic() - self.started
                time.sleep(1.0)
        raise AssertionError(f"relay not serving {ok} after {timeout} s:\n{self.console()}")

    def kill(self) -> None:
        """Power cut: SIGKILL QEMU, no shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.log.close()

    def _qmp(self, command: str) -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(self.qmp_path))
            f = s.makefile("rw")
            f.readline()  # greeting
            for cmd in ("qmp_capabilities", command):
                f.write(json.dumps({"execute": cmd}) + "\n")
                f.flush()
                f.readline()

    def shutdown(self, timeout: float = 120.0) -> None:
        """Clean shutdown: the ACPI power button (systemd-logind powers off)."""
        assert self.proc is not None
        self._qmp("system_powerdown")
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise AssertionError(f"no clean shutdown in {timeout} s:\n{self.console()}") from exc
        self.log.close()

    def __enter__(self) -> Vm:
        if self.proc is None:  # (a VM already started is just killed on exit)
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


HOST_DEPS = Path(__file__).resolve().parents[2] / "tools" / "host" / "deps.sh"


def missing_host_packages(*groups: str) -> list[str]:
    """The Debian packages of `groups` (tools/host/packages.txt) that this host lacks."""
    out = subprocess.run(
        [str(HOST_DEPS), "--missing", *groups], capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def require_host_tools(arch: str) -> None:
    missing = missing_host_packages(f"image-{arch}")
    assert not missing, f"missing host packages {missing}: `make image-test` installs them"
