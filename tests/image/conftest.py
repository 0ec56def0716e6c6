"""Appliance image tests: build firmware-image/ and boot it under QEMU.

They run only with RELAY_IMAGE_TEST=1, which `make test` (so CI) and `make image-test` set: a
bare `pytest` while editing the relay skips them (an image build takes minutes). RELAY_IMAGE_ARCH
(default amd64) picks the image the boot scenario and the content checks run on;
`make image-test ARCH=arm64` sets arm64. The Raspberry Pi boot partition is checked in both
(from the whole arm64 image with ARCH=arm64, else from build.sh's boot-only arm64 build).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "image: builds the appliance image and boots it in QEMU")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("RELAY_IMAGE_TEST") == "1":
        # `make test` builds the images in the background meanwhile (see the Makefile). In
        # one process they run last; under xdist, tests/conftest.py hands tests/image/ out
        # first, to a worker that waits for the builds while the others run the rest.
        if not os.environ.get("PYTEST_XDIST_WORKER"):
            image = [item for item in items if item.get_closest_marker("image")]
            items[:] = [item for item in items if not item.get_closest_marker("image")] + image
        return
    skip = pytest.mark.skip(reason="image tests run with RELAY_IMAGE_TEST=1 (make test)")
    for item in items:
        if item.get_closest_marker("image"):
            item.add_marker(skip)


# Lines the image tests want in the run's summary (boot times, build times). They travel on
# the test's report as ("summary", line) user properties, so they reach the summary from an
# xdist worker too (tests/conftest.py prints them).
BOOT_SUMMARY: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    item.user_properties.extend(("summary", line) for line in BOOT_SUMMARY)
    BOOT_SUMMARY.clear()
    yield


def image_arch() -> str:
    return os.environ.get("RELAY_IMAGE_ARCH", "amd64")


@pytest.fixture(scope="session")
def arch() -> str:
    return image_arch()
