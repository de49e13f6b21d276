"""The fence itself, on the real broker (journey/stream/transactions.py): once another
worker has taken a partition over, the previous holder's writes of it fail as fenced and
none of them is ever visible to a read_committed reader; the new holder writes as usual."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from journey.pipeline.barrier import FencedError
from journey.pipeline.routing import Outgoing
from journey.stream.kafka_client import ensure_topics
from journey.stream.transactions import PartitionTransactions, transactional_producer
from tests.support.kafka import read_to_end, settings_for

pytestmark = pytest.mark.integration


def _holder(bootstrap: str, app_id: str) -> PartitionTransactions:
    return PartitionTransactions(app_id, app_id, lambda tid: transactional_producer(
        lambda: {"bootstrap_servers": bootstrap}, tid))


def _committed_values(bootstrap: str, topic: str, partition: int) -> list[bytes]:
    return [r.value for r in read_to_end(bootstrap, topic, [partition])]


def test_a_partition_taken_over_fences_every_later_write_of_its_previous_holder(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = settings_for(topic_prefix, kafka_bootstrap)
    topics = settings.topics()
    ensure_topics(settings, topics)
    out = topics.triggers.name
    touchpoints = topics.touchpoints.name

    def records(value: bytes) -> list[Outgoing]:
        return [Outgoing(out, b"c1", value, partition=1)]

    async def run() -> tuple[Any, list[Outgoing]]:
        # Given a worker holding partition 1 that has written once
        zombie = _holder(kafka_bootstrap, settings.app_id)
        owner = _holder(kafka_bootstrap, settings.app_id)
        try:
            await zombie.take_over([1])
            await zombie.commit(1, records(b"before"), {(touchpoints, 1): 1})
            # When another worker takes partition 1 over, and the first then tries to write
            await owner.take_over([1])
            with pytest.raises(FencedError) as fenced:
                await zombie.commit(1, records(b"zombie"), {(touchpoints, 1): 2})
            # Then the first is fenced, and the new holder writes as usual
            written = await owner.commit(1, records(b"owner"), {(touchpoints, 1): 2})
            return fenced.value, [r for r, _ in written]
        finally:
            await zombie.close()
            await owner.close()

    fenced, written = asyncio.run(run())
    assert "partition 1" in str(fenced)
    assert len(written) == 1
    assert _committed_values(kafka_bootstrap, out, 1) == [b"before", b"owner"]
