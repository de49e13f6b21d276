"""Shared fixtures: the real local Kafka broker for integration tests, started once per session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.kafka import TEST_PORT, WorkerProcess, broker_start, broker_stop, unique_prefix


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Apache Kafka broker. JOURNEY_TEST_BOOTSTRAP points at one already running;
    otherwise the session starts deploy/kafka/kafka.sh on the test port and stops it after."""
    given = os.environ.get("JOURNEY_TEST_BOOTSTRAP")
    if given:
        # The fault tests pause, stop and start the broker on the test port: it must be the
        # one the tests talk to, or those faults hit another broker and pass for nothing.
        port = given.rsplit(":", 1)[-1]
        if port != str(TEST_PORT):
            pytest.fail(f"JOURNEY_TEST_BOOTSTRAP={given} is not on the test port {TEST_PORT}: "
                        f"set JOURNEY_TEST_KAFKA_PORT={port} too", pytrace=False)
        yield given
        return
    bootstrap = broker_start()
    try:
        yield bootstrap
    finally:
        broker_stop()


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, so tests never see each other's records."""
    return unique_prefix()


@pytest.fixture
def worker_factory(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def make(**extra_env: str) -> WorkerProcess:
        worker = WorkerProcess(
            bootstrap=kafka_bootstrap, prefix=topic_prefix, data_dir=tmp_path / "worker",
            extra_env=extra_env,
        ).start()
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop()
