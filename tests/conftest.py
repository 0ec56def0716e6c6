"""The whole suite: how `make test` spreads it over pytest-xdist workers.

`make test` runs `pytest -n N --dist loadscope --no-loadscope-reorder`, with the scheduler
below: every test module goes whole to one worker (its module-scoped servers are started
once), except tests/image/, which goes whole to one worker, since its tests wait on the same
background image builds and boot one VM at a time. Modules are handed out slowest directory
first (the image tests first of all: they wait while the others work), so the run does not
end with one worker alone on a long scenario. Lines a test wants in the run's summary (the
image's boot times) come as ("summary", line) user properties on its reports, from whichever
process ran it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import settings
from xdist.scheduler import LoadScopeScheduling

# No timing assertions, hypothesis's own included: its per-example deadline fails tests
# on a busy 2-core machine that are correct (it did, for tests/events/test_ids.py).
settings.register_profile("edge-relay", deadline=None)
settings.load_profile("edge-relay")

IMAGE_DIR = "tests/image/"
SLOW_FIRST = (
    IMAGE_DIR,
    "tests/synapse/",
    "tests/mesh/",
    "tests/integration/",
    "tests/interop/",
    "tests/web/",
)


def _scope(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return IMAGE_DIR if path.startswith(IMAGE_DIR) else path


class ModuleScheduling(LoadScopeScheduling):
    """A module to a worker; tests/image/ whole to one worker."""

    def _split_scope(self, nodeid: str) -> str:
        return _scope(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> ModuleScheduling:
    return ModuleScheduling(config, log)


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return next((i for i, d in enumerate(SLOW_FIRST) if path.startswith(d)), len(SLOW_FIRST))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=_rank)  # stable: a module's tests keep their order


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        for name, value in getattr(report, "user_properties", ())
        if name == "summary"
    ]
    for line in dict.fromkeys(lines):
        terminalreporter.write_line(line)
