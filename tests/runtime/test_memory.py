"""relay/runtime/memory.py: the allocator calls work on this machine's C library."""

from __future__ import annotations

import platform

import pytest

from relay.runtime import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_arenas_can_be_limited_and_freed_memory_trimmed() -> None:
    assert memory.limit_arenas(memory.ARENAS) is True
    big = [bytearray(64 * 1024) for _ in range(200)]  # freed below: something to give back
    del big
    assert memory.trim() in (True, False)  # glibc says whether it released anything
    assert memory._libc() is not None
