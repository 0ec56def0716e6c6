"""Rooms-core tests reuse the in-process relay fixture."""

from tests.client.conftest import api  # noqa: F401
