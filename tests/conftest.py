"""The whole suite: how `make test` spreads it over pytest-xdist workers.

`make test` runs `pytest -n N --dist loadgroup`. Every test module is one xdist group, so a
module's tests, and its module-scoped servers, stay on one worker (as `--dist loadfile`);
the appliance image tests are one group together, since they wait on the same background
builds and boot one VM at a time (tests/image/conftest.py schedules them first). Lines a
test wants in the run's summary (the image's boot times) come as ("summary", line) user
properties on its reports, from whichever process ran it.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)  # before xdist names the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = "image" if item.get_closest_marker("image") else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


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
