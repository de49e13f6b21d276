"""Dormancy on the real broker: detections fire when event time (ticks in the log) passes a
customer's deadline, and never while the worker is still behind the data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from journey.stream.kafka_client import ensure_topics
from tests.support.kafka import WorkerProcess, consume, iter_json, produce_json, settings_for

pytestmark = pytest.mark.integration

FAST_TICKS = {"JOURNEY_TICK_INTERVAL_MS": "200"}


def _at(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def _purchase(event_id: str, customer: str, days_ago: float) -> dict[str, Any]:
    return {"event_id": event_id, "customer_id": customer, "type": "purchase",
            "occurred_at": _at(days_ago), "amount": 10.0}


def _wake_ups(triggers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["customer_id"]: t for t in triggers if t["rule"] == "dormant_wake_up"}


def test_sleeping_customer_is_woken_once_ticks_pass_the_deadline(
    kafka_bootstrap: str, topic_prefix: str, worker_factory: Callable[..., WorkerProcess]
) -> None:
    # Given a worker ticking every 200 ms
    worker = worker_factory(**FAST_TICKS)
    topics = settings_for(topic_prefix).topics()

    # When one customer last bought 100 days ago and another 10 days ago
    produce_json(kafka_bootstrap, topics.touchpoints.name, [
        _purchase("p-1", "sleepy", 100), _purchase("p-2", "fresh", 10)])

    # Then only the sleepy one is woken, at its own deadline (90 days after the purchase)
    records = consume(kafka_bootstrap, topics.triggers.name, expect=5, timeout_s=60)
    wake = _wake_ups(list(iter_json(records)))
    assert set(wake) == {"sleepy"}
    assert wake["sleepy"]["reason"] == "sleeping_customer"
    assert wake["sleepy"]["status"] == "dormant"
    purchased = datetime.fromisoformat(wake["sleepy"]["occurred_at"]) - timedelta(days=90)
    assert abs((datetime.now(UTC) - purchased) - timedelta(days=100)) < timedelta(minutes=5)
    assert (worker.metric("journey_triggers_emitted_total", {"rule": "dormant_wake_up"})
            == 1.0)
    assert (worker.metric("journey_ticks_received_total") or 0) > 0


def test_no_detection_fires_before_the_worker_has_caught_up_with_the_backlog(
    kafka_bootstrap: str, topic_prefix: str, worker_factory: Callable[..., WorkerProcess]
) -> None:
    # Given a backlog written while no worker runs, in event-time order: a customer who
    # bought 100 days ago and again 11 days ago (one day before the 90-day deadline of the
    # first purchase), thousands of other events in between, and a control customer who
    # really is asleep. By the wall clock the first deadline passed 10 days ago.
    settings = settings_for(topic_prefix, kafka_bootstrap)
    topics = settings.topics()
    ensure_topics(settings, topics)

    def filler(tag: str, days_ago: float, n: int) -> list[dict[str, Any]]:
        return [{"event_id": f"{tag}-{i}", "customer_id": f"busy-{i % 500}",
                 "type": "site_visit", "occurred_at": _at(days_ago)} for i in range(n)]

    produce_json(kafka_bootstrap, topics.touchpoints.name, [
        _purchase("b-1", "backlogged", 100), _purchase("c-1", "control", 100),
        *filler("old", 12, 8000), _purchase("b-2", "backlogged", 11),
        *filler("new", 0.01, 1000)])

    # When the worker starts behind all of it (its ticks carry the wall-clock time)
    worker_factory(**FAST_TICKS)

    # Then the control customer is woken, and the backlogged one never is: its second
    # purchase was processed before any tick could say that its old deadline had passed.
    records = consume(kafka_bootstrap, topics.triggers.name, expect=2000, timeout_s=45)
    wake = _wake_ups(list(iter_json(records)))
    assert "control" in wake
    assert "backlogged" not in wake
    lifecycle = [c for c in iter_json(consume(kafka_bootstrap, topics.stage_changes.name,
                                              expect=1, timeout_s=5))
                 if c["customer_id"] == "backlogged" and c["journey"] == "lifecycle"]
    assert "dormant" not in [c["to_stage"] for c in lifecycle]
