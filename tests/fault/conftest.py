"""What every fault scenario on the real broker shares: its markers, timeout and warning filters."""

from __future__ import annotations

from pathlib import Path

import pytest

_ON_THE_BROKER = (
    pytest.mark.integration, pytest.mark.fault, pytest.mark.timeout(900),
    # kafka-python leaves the sockets of connection attempts made while the broker is stopped
    # or paused under it to the garbage collector; that is not the behaviour under test.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
)


@pytest.hookimpl(tryfirst=True)  # before -m selects by these markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the fault tests that use the broker; the golden reference's own tests need none."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and "kafka_bootstrap" in getattr(
                item, "fixturenames", ()):
            for mark in _ON_THE_BROKER:
                item.add_marker(mark)
