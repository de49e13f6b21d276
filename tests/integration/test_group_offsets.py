"""What the worker reads straight from the real broker, on its event loop
(journey/stream/reader.py): a group's committed offsets, a partition's records by offset
range (only that partition's, from the first offset still in the log, committed records
only), two reads at once, and the last record before a transaction marker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.structs import TopicPartition as AioTP
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from journey.contract.topics import Topics
from journey.pipeline.settings import Settings
from journey.stream.kafka_client import ensure_topics
from journey.stream.reader import OffsetReader
from tests.support.kafka import settings_for, write_transactions

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, partition: int, n: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(n):
        producer.send(topic, key=b"k", value=f"p{partition}-r{i}".encode(), partition=partition,
                      headers=[("journey-kind", b"tick")] if i == 6 else None)
    producer.flush()
    producer.close()


def _deployment(bootstrap: str, prefix: str) -> tuple[Settings, Topics]:
    """A test deployment's settings and its topics, created."""
    settings = settings_for(prefix, bootstrap)
    topics = settings.topics()
    ensure_topics(settings, topics)
    return settings, topics


def _reader(bootstrap: str, group: str) -> OffsetReader:
    return OffsetReader(lambda: {"bootstrap_servers": bootstrap}, group)


def test_records_are_read_by_offset_range_and_committed_offsets_by_group(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Given two partitions with ten records each and a group that committed offset 4 of one
    settings, topics = _deployment(kafka_bootstrap, topic_prefix)
    name = topics.touchpoints.name
    for partition in (0, 1):
        _produce(kafka_bootstrap, name, partition, 10)
    tp = TopicPartition(name, 1)
    group = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=settings.app_id,
                          enable_auto_commit=False)
    group.assign([tp])
    group.commit({tp: OffsetAndMetadata(4, "", -1)})
    group.close()

    async def run() -> tuple[int | None, int | None, list[list[Any]]]:
        reader = _reader(kafka_bootstrap, settings.app_id)
        try:
            # When the worker asks for them, reading two holes at once
            committed = (await reader.committed(name, 0), await reader.committed(name, 1))
            found = await asyncio.gather(reader.read(name, 1, 4, 8), reader.read(name, 0, 2, 5))
            return committed[0], committed[1], [list(f) for f in found]
        finally:
            await reader.close()

    none, four, (ones, zeros) = asyncio.run(run())
    # Then it gets the committed offset of the partition that has one, and exactly each
    # range's records of its own partition, in order, with their headers
    assert (none, four) == (None, 4)
    assert [(r.offset, r.value) for r in ones] == [(o, f"p1-r{o}".encode()) for o in range(4, 8)]
    assert [(r.offset, r.value) for r in zeros] == [(o, f"p0-r{o}".encode()) for o in range(2, 5)]
    assert list(ones[2].headers) == [("journey-kind", b"tick")]


def test_a_range_that_starts_before_the_log_is_read_from_its_first_offset(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Given a partition whose first three records were deleted
    settings, topics = _deployment(kafka_bootstrap, topic_prefix)
    name = topics.touchpoints.name
    _produce(kafka_bootstrap, name, 0, 6)

    async def run() -> list[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_records({AioTP(name, 0): RecordsToDelete(3)})
        finally:
            await admin.close()
        reader = _reader(kafka_bootstrap, settings.app_id)
        try:
            return [r.offset for r in await reader.read(name, 0, 0, 5, timeout_s=10)]
        finally:
            await reader.close()

    # When a hole from offset 0 is read, Then it is read from offset 3 on, without waiting
    assert asyncio.run(run()) == [3, 4]


def test_the_last_record_before_the_end_is_found_behind_transaction_markers(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Given a partition written by two transactions and one aborted one
    settings, topics = _deployment(kafka_bootstrap, topic_prefix)
    name = topics.state_changelog.name

    async def run() -> tuple[int, list[int], int]:
        await write_transactions(kafka_bootstrap, f"{topic_prefix}-t", [
            ([(name, b"k", value, 2) for value in values], commit)
            for values, commit in (([b"a", b"b"], True), ([b"c"], True), ([b"x"], False))])
        consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
        end = consumer.end_offsets([TopicPartition(name, 2)])[TopicPartition(name, 2)]
        consumer.close()
        reader = _reader(kafka_bootstrap, settings.app_id)
        try:
            found = [r.offset for r in await reader.read(name, 2, 0, end)]
            return end, found, await reader.last_offset_before(name, 2, end)
        finally:
            await reader.close()

    end, found, last = asyncio.run(run())
    # Then: a, b, marker, c, marker, x (aborted), marker: only a, b and c are records
    assert end == 7
    assert found == [0, 1, 3]
    assert last == 3
