"""Erasure reaches every topic journey writes, on the real broker: the sweeper tombstones
each dead letter naming the erased customer and the broker's compaction then removes their
bytes (other customers' dead letters stay whole); the internal events topic's records are
deleted once committed."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from journey.contract import codec
from journey.contract.deadletters import dead_letter_key
from journey.contract.decode import Rejection
from journey.stream.sweeper import ErasureSweeper
from tests.support.faults import wait_until
from tests.support.kafka import WorkerProcess, produce, produce_json, read_to_end, settings_for

pytestmark = pytest.mark.integration

EMAIL = b"ada.erased@example.org"
KEPT = b"bob.kept@example.org"


def _original(value: bytes) -> bytes:
    return base64.b64decode(json.loads(value)["original_value_b64"])


def _latest(records: list[Any]) -> dict[bytes, bytes | None]:
    return {r.key: r.value for r in records}


def test_an_erasure_tombstones_the_customers_earlier_dead_letters_and_compaction_removes_them(
    kafka_bootstrap: str, topic_prefix: str, worker_factory: Callable[..., WorkerProcess]
) -> None:
    # Given a worker whose dead letters may stay at most a second after an erasure
    worker = worker_factory(JOURNEY_DEAD_LETTER_ERASURE_LAG_MS="1000")
    topics = settings_for(topic_prefix).topics()
    # And three bad records: two naming Ada (one keyed by her and cut short, one unkeyed
    # with her id in it and an unknown type), one keyed by Bob
    produce(kafka_bootstrap, topics.touchpoints.name,
            [b'{"customer_id": "ada", "email": "' + EMAIL], key=b"ada")
    produce(kafka_bootstrap, topics.touchpoints.name, [json.dumps(
        {"event_id": "a-bad", "customer_id": "ada", "type": "no_such_type",
         "occurred_at": "2026-03-01T10:00:00+00:00", "email": EMAIL.decode()}).encode()])
    produce(kafka_bootstrap, topics.touchpoints.name,
            [b'{"customer_id": "bob", "email": "' + KEPT], key=b"bob")
    assert wait_until(lambda: len(read_to_end(kafka_bootstrap, topics.dead_letters.name))
                      == 3, timeout_s=60), "three dead letters"
    letters = read_to_end(kafka_bootstrap, topics.dead_letters.name)
    # Each is keyed by where it came from, and holds its original bytes
    for r in letters:
        d = json.loads(r.value)
        assert r.key == dead_letter_key(d["source_topic"], d["source_partition"],
                                        d["source_offset"])
    assert sum(EMAIL in _original(r.value) for r in letters) == 2

    # When Ada asks to be erased
    produce_json(kafka_bootstrap, topics.touchpoints.name, [
        {"event_id": "a-erase", "customer_id": "ada", "type": "erasure_requested",
         "occurred_at": "2026-03-02T10:00:00+00:00", "channel": "web"}])
    # Then her two dead letters are tombstoned, and Bob's is not
    assert wait_until(lambda: worker.metric_total("journey_dead_letters_erased_total") == 2,
                      timeout_s=60), worker.log_tail()
    latest = _latest(read_to_end(kafka_bootstrap, topics.dead_letters.name))
    assert sorted(v is None for v in latest.values()) == [False, True, True]
    assert [KEPT in _original(v) for v in latest.values() if v is not None] == [True]

    # When the lag has passed (the sweeper then writes to each swept partition once more, so
    # the broker rolls its segment) and the log cleaner has run
    def compacted() -> bool:
        records = read_to_end(kafka_bootstrap, topics.dead_letters.name)
        return not any(EMAIL in _original(r.value) for r in records if r.value is not None)

    # Then no record on the broker holds Ada's bytes any more, and Bob's is still there
    assert wait_until(compacted, timeout_s=90, poll_s=2), "compaction removed Ada's bytes"
    records = read_to_end(kafka_bootstrap, topics.dead_letters.name)
    assert sum(KEPT in _original(r.value) for r in records if r.value is not None) == 1
    # And the sweep wrote no more tombstones of dead letters
    assert worker.metric_total("journey_dead_letters_erased_total") == 2



def test_the_internal_events_topic_keeps_no_record_once_its_group_committed_it(
    kafka_bootstrap: str, topic_prefix: str, worker_factory: Callable[..., WorkerProcess]
) -> None:
    # Given a worker that purges the internal events topic every second
    worker = worker_factory(JOURNEY_EVENTS_PURGE_INTERVAL_S="1")
    topics = settings_for(topic_prefix).topics()
    # When touchpoints not keyed by their customer come in (re-keyed onto the events topic)
    produce(kafka_bootstrap, topics.touchpoints.name, [json.dumps(
        {"event_id": f"a-{n}", "customer_id": f"ada-{n}", "type": "site_visit",
         "occurred_at": "2026-03-01T10:00:00+00:00", "channel": "web", "source": "google"}
    ).encode() for n in range(20)])
    assert wait_until(lambda: worker.metric_total("journey_customers_tracked") == 20,
                      timeout_s=60), worker.log_tail()
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        tps = [TopicPartition(topics.events.name, p) for p in range(topics.events.partitions)]
        ends = consumer.end_offsets(tps)
        # Then they were written there (20 records at least, with transaction markers)
        assert sum(ends.values()) >= 20
        # And once committed, every one of them is deleted: each partition's log starts
        # at or past where it ended then (ticks keep coming after them)
        def purged() -> bool:
            starts = consumer.beginning_offsets(tps)
            return all(starts[tp] >= ends[tp] for tp in tps)

        assert wait_until(purged, timeout_s=60), (consumer.beginning_offsets(tps), ends)
    finally:
        consumer.close()
    assert [r for r in read_to_end(kafka_bootstrap, topics.events.name)
            if b"ada-" in (r.value or b"")] == []


def test_a_sweep_tombstones_only_latest_copies_naming_the_customer_and_a_second_finds_none(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Given a dead-letter topic of two partitions where one key's latest copy names Bob only
    topic = f"{topic_prefix}sweep-dead-letters"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()

    def letter(key: bytes, value: bytes) -> bytes:
        return codec.dead_letter_bytes(Rejection("invalid_json", "not JSON"), topic="t",
                                       partition=0, offset=0, key=key, value=value,
                                       at=datetime(2026, 3, 1, tzinfo=UTC))

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for partition, key, value in [(0, b"t:0:1", letter(b"ada", b"{")),
                                  (1, b"t:0:2", letter(b"bob", b"{")),
                                  (1, b"t:0:3", letter(b"x", b'{"customer_id": "ada"}')),
                                  (0, b"t:0:4", letter(b"ada", b"{")),
                                  (0, b"t:0:4", letter(b"bob", b"{"))]:
        producer.send(topic, key=key, value=value, partition=partition)
    producer.flush()
    producer.close()
    sweeper = ErasureSweeper(lambda: {"bootstrap_servers": kafka_bootstrap}, group_id="unused",
                             erasures="unused", dead_letters=topic, partitions=2, lag_ms=1000,
                             stopping=lambda: False, on_tombstones=lambda _: None)
    # When Ada's dead letters are swept, twice
    first = asyncio.run(sweeper.sweep({"ada"}))
    second = asyncio.run(sweeper.sweep({"ada"}))
    # Then her two are tombstoned (not t:0:4, whose latest copy is Bob's), and then none
    assert (first, second) == (2, 0)
    latest = _latest(read_to_end(kafka_bootstrap, topic))
    assert {k for k, v in latest.items() if v is None} == {b"t:0:1", b"t:0:3"}
