"""Ingest on the real broker: every record sent to touchpoints comes out exactly once, either
re-keyed onto journey-events or in dead-letters with its reason, origin and original bytes."""

from __future__ import annotations

import base64
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from journey.contract.deadletters import dead_letter_key
from journey.contract.decode import REASONS
from journey.contract.records import Touchpoint
from journey.pipeline.timekeeping import TICK_HEADER, TICK_VALUE
from tests.support.kafka import WorkerProcess, consume_until, settings_for

pytestmark = pytest.mark.integration

PAYLOAD_LIMIT = 1024
VALID_COUNT = 300
CUSTOMERS = 40
VALID_TYPES = ("site_visit", "ad_click", "signup", "email_opened", "content_view",
               "purchase", "referral", "complaint", "opt_out", "incident")


@dataclass(frozen=True)
class Sent:
    """One record as produced, where the broker put it, and what ingest should make of it."""

    key: bytes | None
    value: bytes | None
    partition: int
    offset: int
    reason: str | None = None  # None: a valid touchpoint
    field: str | None = None


@dataclass(frozen=True)
class Planned:
    key: bytes | None
    value: bytes | None
    reason: str | None = None
    field: str | None = None


def _at(now: datetime, **ago: float) -> str:
    return (now - timedelta(**ago)).isoformat()


def _valid(rng: random.Random, n: int, now: datetime) -> Planned:
    customer = f"cust-{n % CUSTOMERS:02d}"
    doc: dict[str, Any] = {
        "event_id": f"ev-{n:04d}", "customer_id": customer, "type": rng.choice(VALID_TYPES),
        "occurred_at": _at(now, days=rng.uniform(0.01, 300)),
        "channel": rng.choice(["web", "email", "store"]),
    }
    if doc["type"] == "purchase":
        doc.update(amount=round(rng.uniform(1, 500), 2), currency="EUR")
    # Keyed by customer as the contract asks, by some other platform key, or not at all:
    # the events topic must be keyed by customer_id whatever the source key was.
    key = rng.choice([customer.encode(), f"shop-{n % 3}".encode(), None])
    return Planned(key, json.dumps(doc).encode())


def _invalid(now: datetime) -> list[Planned]:
    """At least one record per reason code ingest can give a record read from Kafka."""
    base = {"event_id": "bad", "customer_id": "cust-bad", "type": "site_visit",
            "occurred_at": _at(now, days=1)}

    def doc(**changes: Any) -> bytes:
        merged = {**base, **changes}
        return json.dumps({k: v for k, v in merged.items() if v is not ...}).encode()

    return [
        Planned(b"k-utf8", b"\xff\xfe{\"event_id\": 1}", "not_utf8"),
        Planned(None, b"caf\xe9", "not_utf8"),
        Planned(b"k-json", b'{"event_id": "half', "invalid_json"),
        Planned(None, b"", "invalid_json"),
        Planned(b"k-array", b"[1, 2, 3]", "not_an_object"),
        Planned(None, b'"just a string"', "not_an_object"),
        Planned(b"k-tombstone", None, "not_an_object"),
        Planned(b"k-big", doc(properties={"blob": "x" * 2 * PAYLOAD_LIMIT}), "payload_too_large"),
        Planned(None, doc(event_id=...), "missing_field", "event_id"),
        Planned(b"k-missing", doc(occurred_at=...), "missing_field", "occurred_at"),
        Planned(None, doc(colour="red"), "unexpected_field", "colour"),
        Planned(b"k-type", doc(channel=5), "wrong_type", "channel"),
        Planned(None, doc(customer_id=42), "wrong_type", "customer_id"),
        Planned(b"k-cid", doc(customer_id=" padded "), "invalid_customer_id", "customer_id"),
        Planned(None, doc(customer_id="c" * 129), "invalid_customer_id", "customer_id"),
        Planned(b"k-unknown", doc(type="teleported"), "unknown_event_type", "type"),
        Planned(None, doc(occurred_at="2026-03-01T10:00:00"), "timezone_missing",
                "occurred_at"),
        Planned(b"k-future", doc(occurred_at=(now + timedelta(days=1)).isoformat()),
                "future_timestamp", "occurred_at"),
        Planned(None, doc(amount=-5), "invalid_amount", "amount"),
        Planned(b"k-amount", doc(amount="12"), "invalid_amount", "amount"),
        Planned(None, doc(schema_version=2), "unsupported_schema", "schema_version"),
        Planned(b"k-schema", doc(schema_version=True), "unsupported_schema", "schema_version"),
        Planned(None, doc(currency="eur"), "invalid_value", "currency"),
        Planned(b"k-zone", doc(timezone="Mars/Olympus"), "invalid_value", "timezone"),
        Planned(None, doc(properties={"n": 2**70}), "invalid_value", "properties.n"),
        Planned(b"k-epoch", doc(occurred_at="1700000000"), "invalid_value", "occurred_at"),
    ]


def _plan(seed: int) -> list[Planned]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    records = [_valid(rng, n, now) for n in range(VALID_COUNT)] + _invalid(now)
    rng.shuffle(records)
    return records


def _send(bootstrap: str, topic: str, planned: list[Planned]) -> list[Sent]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        futures = [producer.send(topic, key=p.key, value=p.value) for p in planned]
        producer.flush()
        sent = []
        for p, future in zip(planned, futures, strict=True):
            meta = future.get(timeout=30)
            sent.append(Sent(p.key, p.value, meta.partition, meta.offset, p.reason, p.field))
        return sent
    finally:
        producer.close()


def _read(bootstrap: str, topic: str, done: Callable[[list[Any]], bool],
          timeout_s: float = 90.0) -> list[Any]:
    """Read a topic until `done`, then two seconds more so a late duplicate is still seen."""
    return consume_until(bootstrap, topic, done, timeout_s=timeout_s, settle_s=2.0)


def _is_tick(record: Any) -> bool:
    return (TICK_HEADER, TICK_VALUE) in (record.headers or [])


def _dead_lettered_by_reason(worker: WorkerProcess) -> dict[str, float]:
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(worker.metrics_text()):
        for sample in family.samples:
            if sample.name == "journey_events_dead_lettered_total" and sample.value:
                counts[sample.labels["reason"]] = sample.value
    return counts


def test_every_record_comes_out_exactly_once_accepted_or_dead_lettered(
    kafka_bootstrap: str, topic_prefix: str, worker_factory: Callable[..., WorkerProcess]
) -> None:
    # Given a worker with a small payload limit, ticking fast so that tick records
    # interleave with the events it forwards
    # (the events topic is read below: not purged meanwhile)
    worker = worker_factory(JOURNEY_EVENTS_PURGE_INTERVAL_S="0",
                            JOURNEY_MAX_PAYLOAD_BYTES=str(PAYLOAD_LIMIT),
                            JOURNEY_TICK_INTERVAL_MS="200")
    topics = settings_for(topic_prefix).topics()
    planned = _plan(seed=20260301)
    expected_reasons = {p.reason for p in planned if p.reason is not None}
    assert expected_reasons == REASONS  # the plan covers every reason code

    # When hundreds of valid touchpoints and every kind of bad record are sent interleaved,
    # some keyed by customer, some by another key and some without a key
    sent = _send(kafka_bootstrap, topics.touchpoints.name, planned)
    valid = {json.loads(s.value or b"")["event_id"]: s for s in sent if s.reason is None}
    invalid = {(s.partition, s.offset): s for s in sent if s.reason is not None}
    rekeyed = {e: s for e, s in valid.items()
               if s.key != json.loads(s.value or b"")["customer_id"].encode()}
    assert 0 < len(rekeyed) < len(valid)
    events = _read(kafka_bootstrap, topics.events.name,
                   lambda rs: sum(not _is_tick(r) for r in rs) >= len(rekeyed))
    letters = _read(kafka_bootstrap, topics.dead_letters.name,
                    lambda rs: len(rs) >= len(invalid))

    # Then every valid touchpoint not keyed by its customer is on the events topic exactly
    # once, keyed by customer, with the content that was sent (those keyed by their
    # customer are applied in one hop and never re-keyed); the tick records there are not
    # touchpoints
    accepted = [r for r in events if not _is_tick(r)]
    assert len(accepted) < len(events), "expected tick records among the events"
    seen = Counter(json.loads(r.value)["event_id"] for r in accepted)
    assert {e for e, n in seen.items() if n > 1} == set()
    assert set(seen) == set(rekeyed)
    for record in accepted:
        touchpoint = Touchpoint.model_validate_json(record.value)
        assert record.key == touchpoint.customer_id.encode()
        assert touchpoint == Touchpoint.model_validate_json(valid[touchpoint.event_id].value
                                                            or b"")

    # And every bad record is in dead-letters exactly once, pointing at where it was sent,
    # with its original key and bytes, its reason and the field at fault, keyed by its origin
    origins = Counter((d["source_partition"], d["source_offset"])
                      for d in (json.loads(r.value) for r in letters))
    assert {o for o, n in origins.items() if n > 1} == set()
    assert set(origins) == set(invalid)
    for record in letters:
        letter = json.loads(record.value)
        source = invalid[(letter["source_partition"], letter["source_offset"])]
        assert letter["source_topic"] == topics.touchpoints.name
        assert letter["reason"] == source.reason, letter
        assert base64.b64decode(letter["original_value_b64"]) == (source.value or b"")
        original_key = letter["original_key_b64"]
        assert (None if original_key is None else base64.b64decode(original_key)) == source.key
        assert record.key == dead_letter_key(topics.touchpoints.name, source.partition,
                                             source.offset)
        assert letter["field"] == source.field, letter
        if source.field is not None:
            assert source.field in letter["message"], letter

    # And the worker's counters agree, reason by reason
    assert worker.metric("journey_events_accepted_total") == len(valid)
    assert _dead_lettered_by_reason(worker) == dict(
        Counter(s.reason for s in invalid.values()))

    # And every valid touchpoint, re-keyed or applied in one hop, is applied exactly once
    deadline = time.monotonic() + 30
    while worker.metric("journey_events_processed_total") != len(valid):
        assert time.monotonic() < deadline, worker.metric("journey_events_processed_total")
        time.sleep(0.2)
    assert not worker.metric("journey_events_duplicate_total")
