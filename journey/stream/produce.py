"""Records out through the aiokafka producer Faust runs: one at a time (`producer_send`), or a
batch's records as one record batch per topic partition (`producer_send_many`).

Handing aiokafka one record at a time costs a delivery future, a partitioner call and an
accumulator append per record; for the outputs and states of a batch of thousands of events
that was a tenth of the worker's time. `producer_send_many` groups the records by topic and
partition (the partition the producer's own partitioner gives a keyed record, as `send`
would), fills aiokafka `BatchBuilder`s in the records' order and submits each with
`send_batch`: one future per record batch. Each record still gets its own delivery, an
awaitable that gives the record's own metadata (partition, and offset = the batch's base
offset + the record's place in it), which the delivery barrier waits on and the state
store applier reads (journey/pipeline/barrier.py, journey/stream/worker.py).

Order per partition is kept: the records of one call go out in their order, and calls are
awaited one after another. A batch that fails fails each of its records' deliveries; the
barrier re-sends those one at a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust

from journey.pipeline.barrier import Send, SendMany
from journey.pipeline.routing import Outgoing


def producer_send(app: faust.App) -> Send:
    """Send through Faust's own producer, straight to aiokafka (no send_soon buffer):
    returns the delivery future the barrier waits on."""

    async def send(record: Outgoing) -> Awaitable[Any]:
        headers = list(record.headers) if record.headers else None
        return await app.producer.send(record.topic, record.key, record.value,
                                       record.partition, None, headers)

    return send


def aiokafka_producer(app: faust.App) -> Any:
    """The aiokafka producer under Faust's (started with the app)."""
    return cast(Any, app.producer)._ensure_producer()


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """What the barrier and the store applier read of a delivered record."""

    topic: str
    partition: int
    offset: int


class InBatch:
    """The delivery of one record of a record batch: awaiting it gives the record's own
    metadata, once the broker has confirmed the batch (or raises what the batch raised)."""

    __slots__ = ("_batch", "_relative")

    def __init__(self, batch: Awaitable[Any], relative: int) -> None:
        self._batch = batch
        self._relative = relative

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        meta = yield from self._batch.__await__()
        return RecordMetadata(meta.topic, meta.partition, meta.offset + self._relative)


def producer_send_many(producer_of: Callable[[], Any]) -> SendMany:
    """Send records as record batches per topic partition (see the module docstring), on
    the aiokafka producer `producer_of()` gives (Faust's, in the worker: it starts with the
    app)."""

    async def send_many(records: Sequence[Outgoing]) -> list[Awaitable[Any]]:
        producer = producer_of()
        groups: dict[tuple[str, int], list[int]] = {}
        known: set[str] = set()
        for index, record in enumerate(records):
            partition = record.partition
            if partition is None:
                if record.topic not in known:
                    await producer.client._wait_on_metadata(record.topic)
                    known.add(record.topic)
                partition = producer._partition(record.topic, None, None, None,
                                                record.key, record.value)
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

    return send_many


async def _submit(producer: Any, batch: Any, topic: str, partition: int,
                  members: list[tuple[int, int]], deliveries: list[Awaitable[Any]]) -> None:
    future = await producer.send_batch(batch, topic, partition=partition)
    for index, relative in members:
        deliveries[index] = InBatch(future, relative)
