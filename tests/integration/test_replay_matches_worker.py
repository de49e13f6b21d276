"""The same engine, the same answer: the streaming worker on the real broker and the
in-process replay (`journey replay FILE --in-process`) give the same stage changes, triggers
and audit records for the same file of touchpoints."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from journey.stream.kafka_client import ensure_topics
from tests.support.kafka import REPO, WorkerProcess, consume, settings_for

pytestmark = pytest.mark.integration

CUSTOMERS = 20
SEED = 20260301
#: Outputs of the in-process replay by topic, each record by its deterministic id.
Outputs = dict[str, dict[str, dict[str, Any]]]
ID_FIELD = {"stage-changes": "change_id", "triggers": "trigger_id",
            "trigger-audit": "trigger_id"}
DETECTION_RULES = {"dormant_wake_up", "win_back", "inactive_lead_reactivation",
                   "complaint_escalation"}


# ----- a deterministic file of touchpoints --------------------------------------------------
# A persona is a customer's story: (days ago, type, extra fields) in the customer's order.
Story = list[tuple[float, str, dict[str, Any]]]


def _regular(rng: random.Random) -> Story:
    story: Story = [(330 + rng.uniform(0, 30), "ad_click", {"source": "google"})]
    day = story[0][0] - 1
    tiers = ["tripwire", "core", "premium"]
    while day > 5:
        story.append((day, "site_visit", {}))
        story.append((day - 0.1, "purchase", {"amount": 30.0, "properties": {
            "tier": tiers[min(len(story) // 6, 2)]}}))
        day -= rng.uniform(15, 35)
    return story


def _lapsed(rng: random.Random) -> Story:
    start = 430 + rng.uniform(0, 20)
    return [(start, "signup", {}), *((start - 1 - 30 * i, "purchase", {"amount": 20.0})
                                     for i in range(3))]


def _comeback(rng: random.Random) -> Story:
    start = 400 + rng.uniform(0, 20)
    back = 180 + rng.uniform(0, 20)
    return [(start, "site_visit", {}), *((start - 1 - 12 * i, "purchase", {"amount": 15.0})
                                         for i in range(3)),
            (back, "site_visit", {}), (back - 2, "purchase", {"amount": 40.0})]


def _lead(rng: random.Random) -> Story:
    start = 140 + rng.uniform(0, 20)
    return [(start, "signup", {"source": "facebook"}),
            *((start - 2 - 3 * i, "site_visit", {}) for i in range(3))]


def _hot_subscriber(rng: random.Random) -> Story:
    start = 70 + rng.uniform(0, 10)
    opens: Story = [(start - 1 - 2 * i, "email_opened", {"channel": "email"})
                    for i in range(12)]
    return [(start, "newsletter_subscribe", {}), *opens,
            (start - 30, "purchase", {"amount": 9.0})]


def _complainer(rng: random.Random) -> Story:
    start = 110 + rng.uniform(0, 10)
    return [(start, "purchase", {"amount": 50.0}), (start - 20, "complaint", {}),
            (start - 60, "complaint_response", {}), (start - 70, "complaint", {}),
            (start - 70.5, "complaint_response", {})]


def _opted_out(rng: random.Random) -> Story:
    start = 90 + rng.uniform(0, 10)
    return [(start, "signup", {}), (start - 1, "purchase", {"amount": 12.0}),
            (start - 10, "opt_out", {}), (start - 45, "purchase", {"amount": 12.0}),
            (start - 50, "incident", {}), (start - 60, "opt_in", {}),
            (start - 80, "purchase", {"amount": 12.0})]


def _referrer(rng: random.Random) -> Story:
    start = 200 + rng.uniform(0, 20)
    return [(start, "site_visit", {"source": "referral"}),
            (start - 1, "purchase", {"amount": 99.0, "properties": {"tier": "core"}}),
            (start - 20, "referral", {"properties": {"rewarded": False}}),
            (start - 40, "purchase", {"amount": 99.0}),
            (start - 60, "referral", {"properties": {"rewarded": True}})]


def _browser(rng: random.Random) -> Story:
    start = 60 + rng.uniform(0, 20)
    return [(start - 4 * i, rng.choice(["ad_click", "site_visit", "content_view"]), {})
            for i in range(9)]


def _promo_fan(rng: random.Random) -> Story:
    start = 250 + rng.uniform(0, 20)
    return [(start, "store_visit", {"channel": "store"}),
            (start - 0.5, "purchase", {"amount": 300.0, "properties": {"tier": "premium"}}),
            (start - 10, "consultation", {}), (start - 90, "purchase", {"amount": 80.0}),
            (start - 100, "referral", {"properties": {"rewarded": True}})]


PERSONAS: tuple[Callable[[random.Random], Story], ...] = (
    _regular, _lapsed, _comeback, _lead, _hot_subscriber, _complainer, _opted_out, _referrer,
    _browser, _promo_fan,
)


def touchpoints(now: datetime, seed: int = SEED) -> list[dict[str, Any]]:
    """A few hundred touchpoints of CUSTOMERS customers, all in the past, in event-time order,
    as one platform would stream them; each customer also gets background site visits."""
    rng = random.Random(seed)
    timed: list[tuple[datetime, dict[str, Any]]] = []
    for n in range(CUSTOMERS):
        customer = f"cust-{n:02d}"
        story = PERSONAS[n % len(PERSONAS)](rng)
        newest, oldest = min(d for d, _, _ in story), max(d for d, _, _ in story)
        story += [(rng.uniform(newest, oldest), "email_opened", {"channel": "email"})
                  for _ in range(rng.randint(2, 10))]
        for i, (days_ago, etype, extra) in enumerate(sorted(story, key=lambda s: -s[0])):
            at = now - timedelta(days=days_ago)
            timed.append((at, {"event_id": f"{customer}-{i:03d}", "customer_id": customer,
                               "type": etype, "occurred_at": at.isoformat(), **extra}))
    timed.sort(key=lambda t: (t[0], t[1]["event_id"]))
    return [doc for _, doc in timed]


def _midnight_utc() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# ----- the two pipelines --------------------------------------------------------------------
@dataclass(frozen=True)
class Deployment:
    partitions: int
    env: dict[str, str]


DEPLOYMENTS = [
    pytest.param(Deployment(1, {"JOURNEY_PARTITIONS": "1"}), id="one-partition"),
    pytest.param(Deployment(4, {
        # Ten years: the events never move the watermark past anything; only ticks do.
        "JOURNEY_ALLOWED_LATENESS_S": str(10 * 365 * 86_400),
        # The trigger hold would default to the allowed lateness; keep it an hour.
        "JOURNEY_TRIGGER_HOLD_S": "3600",
    }), id="four-partitions-time-from-ticks"),
]


def _replay(path: Path, until: datetime, env: dict[str, str]) -> list[dict[str, Any]]:
    """`journey replay FILE --in-process --until ...`, run as a user would run it."""
    out = path.with_name(f"replay-{until:%Y%m%dT%H%M%S}.jsonl")
    subprocess.run(
        [sys.executable, "-m", "journey.cli", "replay", str(path), "--in-process",
         "--out", str(out), "--until", until.isoformat()],
        env={**os.environ, **env}, cwd=REPO, check=True, capture_output=True, timeout=120,
    )
    return [json.loads(line) for line in out.read_bytes().splitlines()]


def _produce_in_order(bootstrap: str, topic: str, docs: list[dict[str, Any]]) -> None:
    # One request in flight: a retry can never reorder what was sent.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                             max_in_flight_requests_per_connection=1)
    try:
        for doc in docs:
            producer.send(topic, key=doc["customer_id"].encode(), value=json.dumps(doc).encode())
        producer.flush()
    finally:
        producer.close()


def _read(bootstrap: str, topic: str, expect: int, timeout_s: float = 90.0) -> list[Any]:
    """At least `expect` records, then two seconds more for late duplicates."""
    return consume(bootstrap, topic, expect=expect, timeout_s=timeout_s, settle_s=2.0)


def _by_topic(outputs: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Each output record as canonical JSON, counted, per topic."""
    found: dict[str, Counter[str]] = {topic: Counter() for topic in ID_FIELD}
    for output in outputs:
        found.setdefault(output["topic"], Counter())[_canonical(output["value"])] += 1
    return found


def _canonical(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)


def _ids(records: Counter[str], topic: str) -> set[str]:
    return {json.loads(r)[ID_FIELD[topic]] for r in records}


def _lines(docs: list[dict[str, Any]]) -> Iterator[bytes]:
    for doc in docs:
        yield json.dumps(doc).encode() + b"\n"


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_in_process_replay_gives_the_same_outputs_as_the_worker(
    deployment: Deployment, kafka_bootstrap: str, topic_prefix: str,
    worker_factory: Callable[..., WorkerProcess], tmp_path: Path,
) -> None:
    """Every stage change, trigger and audit record is compared, detections included, in
    full (not only the sets of change_id and trigger_id): deterministic ids and values are
    the contract, and a detection changes state that later outputs depend on (a dormant
    customer's next purchase is a "reactivated" change), so leaving detections out would
    not make the rest comparable anyway.

    Three things decide when a detection (or a held trigger's release) happens relative to
    a customer's own events, and the test pins each one:

    - Ticks carry the wall clock. The file is the backlog the worker starts behind, so its
      ticks queue behind the data and move time to "now" only after the last event; the
      replay ends with `--until` now. Nothing in the data falls due within an hour of now
      (checked: the replay gives the same answer an hour later), so the few minutes between
      the replay's "now" and the worker's ticks cannot matter. Event times are fixed to
      midnight UTC, so quiet hours (local time of day) fall on the same events every run.
    - An events partition's watermark also moves with the event times of the *other*
      customers on that partition. The replay has one partition; a default worker has four,
      so whether a customer's deadline passes before their own next event depends on who
      shares their partition (a dormancy that fires in the replay can be pre-empted by the
      next purchase in the worker). So: one deployment has one partition, where the worker's
      log order is the file's order and everything, mid-stream detections included, must
      agree; the other keeps four partitions, keyed by customer, with an allowed lateness
      longer than the data, so only the ticks move time and the answer cannot depend on
      partitioning.
    - Per-customer order: the file is in event-time order, keyed by customer_id, sent by one
      producer with one request in flight.
    """
    # Given a few hundred touchpoints of 20 customers, all in the past, in a file
    now = datetime.now(UTC)
    docs = touchpoints(_midnight_utc())
    path = tmp_path / "touchpoints.jsonl"
    path.write_bytes(b"".join(_lines(docs)))
    # And the in-process replay's answer, which nothing due near now could change
    expected = _by_topic(_replay(path, now, deployment.env))
    assert _by_topic(_replay(path, now + timedelta(hours=1), deployment.env)) == expected
    assert "dead-letters" not in expected
    triggered = {json.loads(r)["rule"] for t in ("triggers", "trigger-audit")
                 for r in expected[t]}
    assert triggered & DETECTION_RULES, "the comparison should cover detections"
    assert any(json.loads(r)["cause_event_id"].startswith("detection:")
               for r in expected["stage-changes"])

    # When the same file, keyed by customer, is the backlog a worker starts behind
    settings = settings_for(topic_prefix, kafka_bootstrap,
                            partitions=deployment.partitions)
    topics = settings.topics()
    ensure_topics(settings, topics)
    _produce_in_order(kafka_bootstrap, topics.touchpoints.name, docs)
    worker = worker_factory(JOURNEY_TICK_INTERVAL_MS="200", **deployment.env)

    # Then the worker publishes exactly the replay's records, keyed by customer
    names = {"stage-changes": topics.stage_changes.name, "triggers": topics.triggers.name,
             "trigger-audit": topics.trigger_audit.name}
    for topic in ("triggers", "stage-changes", "trigger-audit"):
        records = _read(kafka_bootstrap, names[topic], expect=sum(expected[topic].values()))
        assert all(r.key == json.loads(r.value)["customer_id"].encode() for r in records)
        got = Counter(_canonical(json.loads(r.value)) for r in records)
        assert _ids(got, topic) == _ids(expected[topic], topic), topic
        assert got == expected[topic], topic
    assert worker.metric("journey_events_processed_total") == len(docs)
