"""Kill -9 a worker while triggers are being produced, start another: every episode keeps
one trigger id, and no trigger is lost (at-least-once; duplicates carry the same id).

Run twice: with the default write-behind (a flush every 100 ms), and with every state still
only in the worker's memory when it is killed (no flush yet: the changelog is empty and no
offset committed), the case the write-behind cache makes possible."""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from journey.pipeline.inprocess import in_process_pipeline, replay_lines
from journey.pipeline.settings import Settings
from journey.stream.kafka_client import ensure_topics
from tests.support.kafka import (
    WorkerProcess,
    committed_records,
    consume_until,
    end_offsets,
    iter_json,
    produce_json,
    settings_for,
)

pytestmark = pytest.mark.integration

ENV = {
    "JOURNEY_TICK_INTERVAL_MS": "300",
    "JOURNEY_BATCH_MAX_EVENTS": "40",
    "JOURNEY_SESSION_TIMEOUT_S": "8",
    # No quiet hours or budget here: the comparison with the replay stays exact.
    "JOURNEY_QUIET_HOURS": "",
    "JOURNEY_CONTACT_BUDGET": "",
}
#: No flush before the kill: states live only in memory (write-behind), outputs already sent.
HOLDING = {"JOURNEY_FLUSH_INTERVAL_MS": "60000", "JOURNEY_FLUSH_MAX_HELD": "1000000"}
TYPES = ["site_visit", "lead_magnet_download", "purchase", "email_opened", "referral",
         "incident", "newsletter_subscribe", "content_view", "purchase", "refund"]


def _touchpoints(n: int, customers: int) -> list[dict[str, Any]]:
    rng = random.Random(11)
    start = datetime.now(UTC) - timedelta(days=3)
    step = timedelta(days=2.5) / n  # the last one 12 hours ago
    docs = []
    for i in range(n):
        doc: dict[str, Any] = {
            "event_id": f"k-{i}", "customer_id": f"cust-{rng.randrange(customers)}",
            "type": rng.choice(TYPES), "channel": "web",
            "occurred_at": (start + step * i).isoformat()}
        if doc["type"] == "purchase":
            doc["amount"] = 20.0
            doc["properties"] = {"tier": rng.choice(["tripwire", "core"])}
        docs.append(doc)
    return docs


def _progress(worker: WorkerProcess) -> dict[str, float | None]:
    """What the worker says it did, for a failure message."""
    return {name: worker.metric(name) for name in (
        "journey_events_accepted_total", "journey_events_processed_total",
        "journey_events_duplicate_total", "journey_ticks_received_total",
        "journey_triggers_emitted_total", "journey_batch_seconds_count")}


def _expected_ids(docs: list[dict[str, Any]], settings: Settings) -> set[str]:
    lines = [json.dumps(d).encode() for d in docs]
    now_ms = int(time.time() * 1000)
    pipeline = in_process_pipeline(settings.model_copy(update={"topic_prefix": ""}))
    return {r["value"]["trigger_id"] for r in replay_lines(lines, pipeline, until_ms=now_ms)
            if r["topic"] == "triggers"}


@pytest.mark.parametrize("holding", [False, True], ids=["flushing", "all-state-in-memory"])
def test_a_killed_and_restarted_worker_never_gives_an_episode_a_second_trigger_id(
    kafka_bootstrap: str, topic_prefix: str, worker_factory: Callable[..., WorkerProcess],
    monkeypatch: pytest.MonkeyPatch, holding: bool,
) -> None:
    # Given a worker and a stream of touchpoints that fire many triggers
    env = {**ENV, **(HOLDING if holding else {})}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = settings_for(topic_prefix, kafka_bootstrap)
    topics = settings.topics()
    docs = _touchpoints(12_000, 300)
    expected = _expected_ids(docs, settings)
    # The touchpoints (days old) are written before any worker runs, so the workers'
    # ticks (wall-clock time) queue behind them, as they would behind a live stream.
    ensure_topics(settings, topics)
    produce_json(kafka_bootstrap, topics.touchpoints.name, docs)
    first = worker_factory(**env)

    # When it is killed (SIGKILL, no clean shutdown) while triggers are coming out (or,
    # holding, once it has decided a fifth of them, none written yet: outputs, states and
    # offsets are written together, by a flush)
    def fired() -> float:
        if holding:
            return first.metric_total("journey_triggers_emitted_total")
        return end_offsets(kafka_bootstrap, topics.triggers.name)

    deadline = time.monotonic() + 60
    while fired() < len(expected) // 5:
        assert time.monotonic() < deadline, "no triggers before the kill"
        time.sleep(0.1)
    first.kill()
    killed_at = end_offsets(kafka_bootstrap, topics.triggers.name)
    assert killed_at < len(expected), "the kill came too late to test anything"
    if holding:
        # (with every state it had changed still only in its memory)
        changelog = f"{settings.app_id}-customer-state-changelog"
        assert committed_records(kafka_bootstrap, changelog) == 0, "a state was flushed"

    # And another worker of the same app takes over
    second = worker_factory(**env)

    # Then every expected trigger arrives, and each episode has exactly one id
    def all_arrived(got: list[Any]) -> bool:
        return expected <= {r["trigger_id"] for r in iter_json(got)}

    records = list(iter_json(consume_until(kafka_bootstrap, topics.triggers.name, all_arrived,
                                           timeout_s=150)))
    ids_of: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for r in records:
        ids_of[(r["customer_id"], r["journey"], r["rule"], r["episode"])].add(r["trigger_id"])
    assert all(len(ids) == 1 for ids in ids_of.values()), [
        k for k, ids in ids_of.items() if len(ids) > 1]
    # and nothing else: detections falling due while the test ran (the worker's clock is
    # the wall clock) are the only triggers allowed beyond the expected ones
    allowed = _expected_ids(docs, settings)
    unexpected = sorted((r["customer_id"], r["rule"], r["episode"], r["occurred_at"])
                        for r in records if r["trigger_id"] not in allowed)
    missing = expected - {r["trigger_id"] for r in records}
    assert not missing, (len(missing), len(expected), _progress(second))
    assert unexpected == []
