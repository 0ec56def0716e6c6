"""tools/host/packages.txt is the one list of the host's Debian packages, and setup installs
every one of them.

`make test` sets RELAY_HOST_GROUPS to the groups it installs (run, test, lowband, image-amd64,
image-arm64): on a machine that ran it, none of their packages is missing. A bare `pytest`
checks the groups `run` and `test`. Nothing else in the project installs an apt package.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIST = ROOT / "tools" / "host" / "packages.txt"
DEPS = ROOT / "tools" / "host" / "deps.sh"
GROUPS = {"run", "test", "lowband", "image-amd64", "image-arm64"}


def _rows() -> list[tuple[str, str, str]]:
    rows = []
    for line in LIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            group, package, check = line.split()
            rows.append((group, package, check))
    return rows


def _deps(*args: str) -> list[str]:
    out = subprocess.run([str(DEPS), *args], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_every_row_names_a_known_group_a_package_and_a_check() -> None:
    rows = _rows()
    assert {group for group, _, _ in rows} == GROUPS
    for group, package, check in rows:
        assert re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", package), (group, package)
        assert check.startswith(("/", "python:")) or re.fullmatch(r"[\w.+-]+", check), check


def test_deps_lists_each_groups_packages_from_the_file() -> None:
    for group in GROUPS:
        want = list(dict.fromkeys(p for g, p, _ in _rows() if g == group))
        assert _deps("--list", group) == want
    # arch-test: mmdebstrap cannot build a foreign architecture without it (a fresh machine
    # failed so: "install arch-test for foreign architecture support").
    assert "arch-test" in _deps("--list", "image-arm64")


def test_an_unknown_group_is_an_error() -> None:
    out = subprocess.run([str(DEPS), "--list", "imag-amd64"], capture_output=True, text=True)
    assert out.returncode == 2 and "no group" in out.stderr


def test_setup_installed_every_package_of_its_groups() -> None:
    groups = os.environ.get("RELAY_HOST_GROUPS", "run test").split()
    assert set(groups) <= GROUPS
    assert _deps("--missing", *groups) == [], "tools/host/deps.sh did not install these"


def test_nothing_else_installs_apt_packages() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if name == "tools/host/deps.sh" or not path.is_file() or path.suffix == ".md":
            continue
        if name.startswith("firmware-image/") and "/rootfs/" in name:
            continue  # the image's own files (its apt runs on the device)
        text = path.read_text(errors="replace")
        if re.search(r"apt(-get)? +(-\S+ +)*install", text):
            offenders.append(name)
    assert offenders == []
