"""Reads by offset, straight from the broker, on the worker's event loop: the records of an
input hole (journey/stream/continuity.py), the last record of a changelog before its end
(journey/stream/faust_internals.py, recovery) and the group's committed offsets; and deletes
the internal events topic's committed records (journey/stream/app.py, the purge).

One aiokafka consumer without a group and one admin client, opened on first use and closed
with the worker. A lock makes each read whole: assigning, seeking and fetching one
partition is never interleaved with another read. Reads are `read_committed`, like the
worker's own consumer, so records of aborted transactions and transaction markers are
never returned: the offsets they take are simply missing from the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)

#: The broker holds a fetch at most this long when nothing is there yet (a hole's records
#: are there: the consumer has handed over a record after them).
FETCH_WAIT_MS = 10


class OffsetReader:
    def __init__(self, client_options: Callable[[], dict[str, Any]], group_id: str) -> None:
        """`client_options`: the connection options of an aiokafka client (brokers, TLS,
        SASL); `group_id`: the group whose committed offsets `committed` reads."""
        self._options = client_options
        self._group_id = group_id
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()

    async def _reader(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(**self._options(), group_id=None,
                                        enable_auto_commit=False,
                                        isolation_level="read_committed",
                                        auto_offset_reset="earliest",
                                        fetch_max_wait_ms=FETCH_WAIT_MS)
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(**self._options())
            await admin.start()
            self._admin = admin
        return self._admin

    async def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset of one partition, or None."""
        async with self._lock:
            admin = await self._admin_client()
            tp = TopicPartition(topic, partition)
            found = await admin.list_consumer_group_offsets(self._group_id, partitions=[tp])
        meta = found.get(tp)
        return None if meta is None or meta.offset < 0 else int(meta.offset)

    async def read(self, topic: str, partition: int, start: int, end: int, *,
                   timeout_s: float = 60.0) -> list[Any]:
        """The records of `topic[partition]` with offsets in [start, end), in order (start
        is moved up to the first offset still in the log). TimeoutError when the broker
        does not give them within `timeout_s`."""
        async with self._lock:
            consumer = await self._reader()
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            earliest = (await consumer.beginning_offsets([tp]))[tp]
            return await _fetch(consumer, tp, max(start, earliest), end, timeout_s)

    async def last_offset_before(self, topic: str, partition: int, end: int, *,
                                 timeout_s: float = 60.0) -> int:
        """The offset of the last committed record below `end` (or the one before the
        first offset in the log, when there is none): the end of a changelog is its last
        stable offset, and what stands just before it is usually a transaction marker,
        which no consumer is ever handed."""
        async with self._lock:
            consumer = await self._reader()
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            earliest = int((await consumer.beginning_offsets([tp]))[tp])
            window = 16
            start = end
            while start > earliest:
                start = max(earliest, start - window)
                found = await _fetch(consumer, tp, start, end, timeout_s)
                if found:
                    return int(found[-1].offset)
                end, window = start, window * 8
            return earliest - 1

    async def delete_before(self, topic: str, offsets: dict[int, int]) -> None:
        """Delete the records of each `topic[partition]` below its offset (DeleteRecords)."""
        async with self._lock:
            admin = await self._admin_client()
            await admin.delete_records({TopicPartition(topic, p): RecordsToDelete(offset)
                                        for p, offset in offsets.items()})

    async def close(self) -> None:
        for client in (self._consumer, self._admin):
            if client is None:
                continue
            try:
                await asyncio.wait_for(client.stop() if isinstance(client, AIOKafkaConsumer)
                                       else client.close(), 10)
            except Exception as exc:  # closing a broken client must not fail the stop
                log.debug("closing a reader client: %s", exc)
        self._consumer = None
        self._admin = None


async def _fetch(consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int,
                 timeout_s: float) -> list[Any]:
    found: list[Any] = []
    if start >= end:
        return found
    consumer.seek(tp, start)
    deadline = time.monotonic() + timeout_s
    while await consumer.position(tp) < end:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{tp.topic}[{tp.partition}]: offsets {start} to {end - 1} "
                               f"not read within {timeout_s:.0f}s")
        batches = await consumer.getmany(tp, timeout_ms=500)
        found.extend(r for r in batches.get(tp, ()) if start <= r.offset < end)
    return found

