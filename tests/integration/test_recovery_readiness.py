"""Readiness while recovering, on the real broker: a worker starting on a changelog of many
customers says it is not ready until every assigned partition is recovered and its due
index rebuilt, and its web page answers meanwhile."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from journey.pipeline.build import build_engine
from journey.pipeline.stateindex import StateIndex
from journey.stream.kafka_client import ensure_topics
from tests.bench.scale import load, templates
from tests.support.kafka import WorkerProcess, settings_for

pytestmark = pytest.mark.integration

CUSTOMERS = 30_000


def ready_answer(worker: WorkerProcess) -> tuple[int, dict[str, Any]] | None:
    """(status, body) of /ready, or None while nothing listens yet."""
    try:
        with urllib.request.urlopen(worker.url("/ready"), timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())
    except OSError:
        return None


def test_a_recovering_worker_is_ready_only_once_every_customer_is_tracked(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # Given many customers' states in the changelog, written as a worker writes them
    settings = settings_for(topic_prefix, kafka_bootstrap)
    topics = settings.topics()
    ensure_topics(settings, topics)
    load(kafka_bootstrap, topics.state_changelog.name, CUSTOMERS, templates(),
         StateIndex(build_engine(settings)), settings.compression_type())
    # When a worker starts on them (no ticks: the old histories would all fall due at once)
    worker = WorkerProcess(bootstrap=kafka_bootstrap, prefix=topic_prefix,
                           data_dir=tmp_path / "w",
                           extra_env={"JOURNEY_TICK_INTERVAL_MS": "3600000",
                                      "JOURNEY_REBUILD_SLICE_CUSTOMERS": "200"})
    reasons: set[str] = set()
    try:
        worker.start()
        deadline = time.monotonic() + 240
        while True:
            assert time.monotonic() < deadline, f"never ready; reasons seen: {reasons}"
            assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
            answer = ready_answer(worker)
            if answer is not None and answer[0] == 200:
                break
            if answer is not None:
                reasons.add(answer[1]["reason"])
            time.sleep(0.05)
        # Then by its first ready answer every customer is tracked and armed from the
        # stored index entries, none decoded in full
        assert worker.metric("journey_customers_tracked") == CUSTOMERS
        assert "table recovery is not done" in reasons
        assert worker.log_path is not None
        rebuilds = [line for line in worker.log_path.read_text().splitlines()
                    if "due index rebuilt" in line]
        assert rebuilds and all(", 0 decoded in full" in line for line in rebuilds), rebuilds
    finally:
        worker.stop()
