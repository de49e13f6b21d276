"""Records sent as record batches (journey/stream/produce.py) land on the real broker where
their deliveries say, in order, in the partition the producer's partitioner gives their key."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from journey.pipeline.routing import Outgoing
from journey.pipeline.timekeeping import partition_of
from journey.stream.kafka_client import ensure_topics
from journey.stream.produce import delivered, send_many_on
from tests.support.kafka import read_to_end, settings_for

pytestmark = pytest.mark.integration


def _read_all(bootstrap: str, topic: str) -> dict[tuple[int, int], Any]:
    return {(r.partition, r.offset): r
            for r in read_to_end(bootstrap, topic, isolation="read_uncommitted")}


def test_a_batch_of_records_lands_where_each_delivery_says_in_order(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Given records for a 4-partition topic: keyed ones, one with its partition set, one
    # with headers, and enough bytes to fill several record batches of 16 KiB
    settings = settings_for(topic_prefix, kafka_bootstrap)
    topics = settings.topics()
    ensure_topics(settings, topics)
    name = topics.stage_changes.name
    records = [Outgoing(name, f"cust-{i % 7}".encode(), f"v{i}-".encode() + b"x" * 900)
               for i in range(120)]
    records.append(Outgoing(name, b"cust-1", b"pinned", partition=3))
    records.append(Outgoing(name, b"cust-2", b"with headers", headers=(("h", b"1"),)))

    async def send() -> list[Any]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5,
                                    max_batch_size=16 * 1024)
        await producer.start()
        try:
            deliveries = await send_many_on(producer, records)
            # the batch-at-once resolution gives what awaiting each delivery gives
            together = await delivered(deliveries)
            assert together == [await d for d in deliveries]
            return together
        finally:
            await producer.stop()

    # When they are sent as record batches
    metas = asyncio.run(send())

    # Then each is at the partition and offset its delivery gave, with its key, value and
    # headers; keyed records where the default partitioner puts their key; and a
    # customer's records in the order sent
    on_broker = _read_all(kafka_bootstrap, name)
    assert len(on_broker) == len(records)
    for record, meta in zip(records, metas, strict=True):
        found = on_broker[(meta.partition, meta.offset)]
        assert (found.key, found.value) == (record.key, record.value)
        assert list(found.headers or []) == list(record.headers or [])
        expected = (record.partition if record.partition is not None
                    else partition_of(record.key or b"", topics.stage_changes.partitions))
        assert meta.partition == expected
    for key in {r.key for r in records}:
        offsets = [(m.partition, m.offset) for r, m in zip(records, metas, strict=True)
                   if r.key == key and r.partition is None]
        assert offsets == sorted(offsets)
