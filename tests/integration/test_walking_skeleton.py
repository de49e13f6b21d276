"""End to end on the real broker: a touchpoint becomes state, stage change, trigger, metric."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from journey.contract.topics import Topics
from tests.support.kafka import (
    WorkerProcess,
    consume,
    iter_json,
    produce,
    produce_json,
    settings_for,
)

pytestmark = pytest.mark.integration


def _topics(prefix: str) -> Topics:
    return settings_for(prefix).topics()


def test_first_purchase_moves_customer_to_customer_stage_and_emits_trigger(
    kafka_bootstrap: str, topic_prefix: str, worker_factory: Callable[..., WorkerProcess]
) -> None:
    # Given a running worker
    worker = worker_factory()
    topics = _topics(topic_prefix)

    # When a customer visits and then buys
    produce_json(kafka_bootstrap, topics.touchpoints.name, [
        {"event_id": "e-1", "customer_id": "cust-1", "type": "site_visit",
         "occurred_at": "2026-03-01T10:00:00+00:00", "channel": "web", "source": "google"},
        {"event_id": "e-2", "customer_id": "cust-1", "type": "purchase",
         "occurred_at": "2026-03-02T10:00:00+00:00", "amount": 49.0, "currency": "EUR"},
    ])

    # Then the lifecycle status moves lead -> customer, keyed by customer
    records = consume(kafka_bootstrap, topics.stage_changes.name, expect=4)
    assert {r.key for r in records} == {b"cust-1"}
    lifecycle = [c for c in iter_json(records) if c["journey"] == "lifecycle"]
    assert [(c["from_stage"], c["to_stage"]) for c in lifecycle] == [
        (None, "lead"), ("lead", "customer")]
    assert lifecycle[1]["cause_event_id"] == "e-2"
    assert lifecycle[1]["seconds_in_previous_stage"] == 86400.0
    # And the touchpoint journey moves acquaintance -> first_purchase
    journey = [(c["from_stage"], c["to_stage"]) for c in iter_json(records)
               if c["journey"] == "touchpoint_journey"]
    assert journey == [(None, "acquaintance"), ("acquaintance", "first_purchase")]

    # And exactly one first-purchase trigger, with a deterministic id
    triggers = list(iter_json(consume(kafka_bootstrap, topics.triggers.name, expect=3)))
    first = [t for t in triggers if t["rule"] == "first_purchase_follow_up"]
    assert len(first) == 1
    assert first[0]["customer_id"] == "cust-1"
    assert first[0]["status"] == "customer"

    # And the counters on /metrics say so, without customer ids in any label
    assert worker.metric("journey_triggers_emitted_total",
                         {"rule": "first_purchase_follow_up"}) == 1.0
    assert worker.metric("journey_stage_changes_total", {"to_stage": "customer"}) == 1.0
    assert worker.metric("journey_events_accepted_total") == 2.0
    assert "cust-1" not in worker.metrics_text()


def test_garbage_record_is_dead_lettered_and_the_worker_keeps_going(
    kafka_bootstrap: str, topic_prefix: str, worker_factory: Callable[..., WorkerProcess]
) -> None:
    # Given a running worker
    worker = worker_factory()
    topics = _topics(topic_prefix)

    # When garbage arrives before a valid purchase
    produce(kafka_bootstrap, topics.touchpoints.name, [b"\xff\xfenot json"], key=b"k")
    produce_json(kafka_bootstrap, topics.touchpoints.name, [
        {"event_id": "e-9", "customer_id": "cust-9", "type": "purchase",
         "occurred_at": "2026-03-02T10:00:00+00:00", "amount": 5.0},
    ])

    # Then the garbage is in the dead-letter topic with its original bytes and reason
    letters = list(iter_json(consume(kafka_bootstrap, topics.dead_letters.name, expect=1)))
    assert len(letters) == 1
    assert letters[0]["reason"] == "not_utf8"
    import base64

    assert base64.b64decode(letters[0]["original_value_b64"]) == b"\xff\xfenot json"
    assert letters[0]["source_topic"] == topics.touchpoints.name

    # And the valid purchase still went through
    triggers = list(iter_json(consume(kafka_bootstrap, topics.triggers.name, expect=2)))
    assert {t["customer_id"] for t in triggers} == {"cust-9"}
    assert "first_purchase_follow_up" in {t["rule"] for t in triggers}
    assert worker.metric("journey_events_dead_lettered_total", {"reason": "not_utf8"}) == 1.0
