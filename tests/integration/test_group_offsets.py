"""What the worker's continuity check reads from the real broker (journey/stream/kafka_client.py
GroupOffsets): a group's committed offsets, and a partition's records by offset range."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from journey.stream.kafka_client import GroupOffsets, ensure_topics
from tests.support.kafka import settings_for

pytestmark = pytest.mark.integration


def test_records_are_read_by_offset_range_and_committed_offsets_by_group(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Given a partition with ten records and a group that committed offset 4 of it
    settings = settings_for(topic_prefix, kafka_bootstrap)
    topics = settings.topics()
    ensure_topics(settings, topics)
    name = topics.touchpoints.name
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(10):
        producer.send(name, key=b"k", value=f"r{i}".encode(), partition=1,
                      headers=[("journey-kind", b"tick")] if i == 6 else None)
    producer.flush()
    producer.close()
    tp = TopicPartition(name, 1)
    group = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=settings.app_id,
                          enable_auto_commit=False)
    group.assign([tp])
    group.commit({tp: OffsetAndMetadata(4, "", -1)})
    group.close()
    offsets = GroupOffsets(settings, settings.app_id)
    try:
        # When the worker asks for them
        committed = offsets.committed([(name, 0), (name, 1)])
        found = offsets.read(name, 1, 4, 8)
        # Then it gets the committed offset of the partition that has one, and exactly the
        # records in the range, in order, with their headers
        assert committed == {(name, 1): 4}
        assert [(r.offset, r.value) for r in found] == [(o, f"r{o}".encode()) for o in range(4, 8)]
        assert list(found[2].headers) == [("journey-kind", b"tick")]
    finally:
        offsets.close()
