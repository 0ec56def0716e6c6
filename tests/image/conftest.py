"""Appliance image tests: build firmware-image/ and boot it under QEMU.

They run only with RELAY_IMAGE_TEST=1, which `make test` (so CI) and `make image-test` set: a
bare `pytest` while editing the relay skips them (an image build takes minutes). The amd64
boot test runs by default; `make image-test ARCH=arm64` sets RELAY_IMAGE_ARCH=arm64 for the
Raspberry Pi layout check instead (the arm64 build runs under qemu-user).
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "image: builds the appliance image and boots it in QEMU")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("RELAY_IMAGE_TEST") == "1":
        return
    skip = pytest.mark.skip(reason="image tests run with RELAY_IMAGE_TEST=1 (make test)")
    for item in items:
        if item.get_closest_marker("image"):
            item.add_marker(skip)


def image_arch() -> str:
    return os.environ.get("RELAY_IMAGE_ARCH", "amd64")


@pytest.fixture(scope="session")
def arch() -> str:
    return image_arch()
