"""Records out through an aiokafka producer, a batch's records as one record batch per topic
partition (`send_many_on`); in the worker, inside a partition's transaction
(journey/stream/transactions.py).

Handing aiokafka one record at a time costs a delivery future, a partitioner call and an
accumulator append per record; for the outputs and states of a batch of thousands of events
that was a tenth of the worker's time. `send_many_on` groups the records by topic and
partition (the partition the producer's own partitioner gives a keyed record, as `send`
would), fills aiokafka `BatchBuilder`s in the records' order and submits each with
`send_batch`: one future per record batch. Each record still gets its own delivery, an
awaitable that gives the record's own metadata (partition, and offset = the batch's base
offset + the record's place in it), which the delivery barrier waits on and the state
store applier reads (journey/pipeline/barrier.py, journey/stream/tables.py).

Order per partition is kept: the records of one call go out in their order. A batch that
fails fails each of its records' deliveries, and with them the transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from journey.pipeline.routing import Outgoing
from journey.stream.faust_internals import default_partition, wait_on_metadata


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """What the barrier and the store applier read of a delivered record."""

    topic: str
    partition: int
    offset: int


class InBatch:
    """The delivery of one record of a record batch: awaiting it gives the record's own
    metadata, once the broker has confirmed the batch (or raises what the batch raised)."""

    __slots__ = ("batch", "relative")

    def __init__(self, batch: Awaitable[Any], relative: int) -> None:
        self.batch = batch
        self.relative = relative

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        meta = yield from self.batch.__await__()
        return RecordMetadata(meta.topic, meta.partition, meta.offset + self.relative)


async def delivered(deliveries: Sequence[Awaitable[Any]]) -> list[Any]:
    """Every delivery's metadata, in order. A record batch's future is awaited once for all
    its records, not once per record (thousands of records per flush share a few batches);
    any other awaitable is awaited as it is. Raises what the first failed batch raised."""
    confirmed: dict[int, Any] = {}
    found: list[Any] = []
    for delivery in deliveries:
        if isinstance(delivery, InBatch):
            batch = delivery.batch
            meta = confirmed.get(id(batch))
            if meta is None:
                meta = confirmed[id(batch)] = await batch
            found.append(RecordMetadata(meta.topic, meta.partition,
                                        meta.offset + delivery.relative))
        else:
            found.append(await delivery)
    return found


async def send_many_on(producer: Any, records: Sequence[Outgoing]) -> list[Awaitable[Any]]:
    """Hand `records` to an aiokafka producer as record batches, in order; a delivery per
    record (inside a transaction when the producer has one open)."""
    groups: dict[tuple[str, int], list[int]] = {}
    known: set[str] = set()
    for index, record in enumerate(records):
        partition = record.partition
        if partition is None:
            if record.topic not in known:
                await wait_on_metadata(producer, record.topic)
                known.add(record.topic)
            partition = default_partition(producer, record.topic, record.key, record.value)
        groups.setdefault((record.topic, partition), []).append(index)
    deliveries: list[Awaitable[Any]] = [None] * len(records)  # type: ignore[list-item]
    for (topic, partition), indexes in groups.items():
        batch = producer.create_batch()
        members: list[tuple[int, int]] = []
        for index in indexes:
            record = records[index]
            headers = list(record.headers) if record.headers else []
            meta = batch.append(timestamp=None, key=record.key, value=record.value,
                                headers=headers)
            if meta is None:  # full: submit it, start the next
                await _submit(producer, batch, topic, partition, members, deliveries)
                batch, members = producer.create_batch(), []
                meta = batch.append(timestamp=None, key=record.key, value=record.value,
                                    headers=headers)
                if meta is None:
                    raise ValueError(f"a record for {topic} is larger than a record batch")
            members.append((index, meta.offset))
        await _submit(producer, batch, topic, partition, members, deliveries)
    return deliveries


async def _submit(producer: Any, batch: Any, topic: str, partition: int,
                  members: list[tuple[int, int]], deliveries: list[Awaitable[Any]]) -> None:
    future = await producer.send_batch(batch, topic, partition=partition)
    for index, relative in members:
        deliveries[index] = InBatch(future, relative)
