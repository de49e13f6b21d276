"""A standby replica takes over: with JOURNEY_STANDBY_REPLICAS=1 each of two workers keeps a
warm copy of the other's partitions; when one dies, the other serves its partitions from
that copy, reading only the changelog's tail, and the deployment ends as the in-process run
of the same events."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from journey.pipeline.inprocess import in_process_pipeline, replay_lines
from journey.stream.kafka_client import ensure_topics
from tests.integration.test_durable_state import (
    ENV,
    _final_states,
    _settled_changelog,
    _touchpoints,
    _wait_for,
    _worker,
)
from tests.support.faults import GroupWatch, wait_until
from tests.support.kafka import produce_json, settings_for

pytestmark = pytest.mark.integration

STANDBY = {**ENV, "JOURNEY_STANDBY_REPLICAS": "1"}


def test_a_standby_serves_a_dead_workers_partitions_without_a_full_restore(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given two workers on RocksDB with a standby replica of every partition, which have
    # applied a first stream, and whose standbys have caught up with each other's writes
    for key, value in STANDBY.items():
        monkeypatch.setenv(key, value)
    settings = settings_for(topic_prefix, kafka_bootstrap)
    topics = settings.topics()
    changelog = topics.state_changelog.name
    ensure_topics(settings, topics)
    first_docs = _touchpoints(3000, 400, seed=21, spacing_s=20.0)
    one = _worker(kafka_bootstrap, topic_prefix, tmp_path / "one").start()
    two = _worker(kafka_bootstrap, topic_prefix, tmp_path / "two").start()
    workers = [one, two]
    watch = GroupWatch(kafka_bootstrap, settings.app_id)
    try:
        # (each owns its partitions before anything arrives: each writes its own)
        assert wait_until(lambda: watch.stable_members() == 2, timeout_s=90)
        time.sleep(2)
        produce_json(kafka_bootstrap, topics.touchpoints.name, first_docs)
        def processed() -> float:
            return sum(w.metric("journey_events_processed_total") or 0 for w in (one, two))

        _wait_for(processed, len(first_docs), timeout_s=120)
        _wait_for(lambda: two.metric("journey_customers_tracked"), 1)
        written = _settled_changelog(kafka_bootstrap, changelog)

        time.sleep(3)  # the standbys read what was committed last
        before = one.metric("journey_state_restored_records_total") or 0

        # When the second dies (SIGKILL) and a second stream arrives
        two.kill()
        killed = time.monotonic()
        more = _touchpoints(1000, 400, seed=22, first=len(first_docs), spacing_s=20.0)
        produce_json(kafka_bootstrap, topics.touchpoints.name, more)
        customers = {d["customer_id"] for d in first_docs + more}
        _wait_for(lambda: one.metric("journey_customers_tracked"), len(customers),
                  timeout_s=120)
        took = time.monotonic() - killed
        read_at_takeover = (one.metric("journey_state_restored_records_total") or 0) - before
        print(f"standby take-over: every customer tracked {took:.1f}s after the kill "
              f"(session timeout {STANDBY['JOURNEY_SESSION_TIMEOUT_S']}s); "
              f"{read_at_takeover:.0f} changelog records read at the take-over, of "
              f"{written} the first stream wrote")

        # Then the survivor tracks everyone, having read at most the tail the standby had
        # not applied yet, not the dead worker's whole changelog
        assert before > 0
        assert read_at_takeover < written / 4
        # and every customer's state counts every input event once, as the in-process run
        # of both streams does (the fields that wall-clock ticks between the two streams
        # cannot change)
        lines = [json.dumps(d).encode() for d in first_docs + more]
        expected = in_process_pipeline(settings.model_copy(update={"topic_prefix": ""}))
        for _ in replay_lines(lines, expected, until_ms=int(time.time() * 1000)):
            pass
        want = {cid: _counted(state.to_dict()) for cid, state in expected.states.live.items()}
        deadline = time.monotonic() + 90
        while True:
            _settled_changelog(kafka_bootstrap, changelog)
            final = _final_states(kafka_bootstrap, changelog)
            differing = sorted(cid for cid in want if _counted(final.get(cid, {})) != want[cid])
            if not differing or time.monotonic() > deadline:
                break
        assert differing == [], (len(differing), differing[:5])
    finally:
        watch.close()
        for worker in workers:
            worker.stop()


def _counted(state: dict[str, Any]) -> dict[str, Any]:
    """What a state counts of the customer's events."""
    return {k: state.get(k) for k in ("touches", "counts", "purchases", "spend")}
