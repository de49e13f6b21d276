"""Erasure reaches the dead letters written before it.

A dead letter keeps the original bytes of a rejected record (journey/contract/deadletters.py),
and Kafka cannot delete one record of a topic. So the dead-letter topic is compacted as well
as time-limited, each dead letter has a key of its own, and after an erasure this sweeper
writes a tombstone (a null value) under the key of every dead letter that names the erased
customer. From then on the compacted view of the topic holds nothing of theirs; the broker
removes the bytes themselves at its next compaction. Kafka compacts only closed segments,
and closes one only on a write: once the compaction lag (`JOURNEY_DEAD_LETTER_ERASURE_LAG_MS`,
the topic's max.compaction.lag.ms) has passed, the sweeper writes one more tombstone, under
a key naming nobody, to each partition it swept, so the segment rolls and is compacted even
when no dead letter follows. (A worker stopped before that leaves it to the next dead letter
of the partition, or to the topic's retention.)

It follows the `erasures` topic, which the worker writes in the same transaction as the
erased state, in a consumer group of its own (`<app id>-erasure-sweeper`; each worker of the
deployment sweeps for the erasures partitions it is given). For each batch of erasure records
it reads the dead-letter topic from its start to its current end, writes the tombstones, waits
for the broker to confirm them, and only then commits the erasure records' offsets: a crash
in between sweeps again, and a second tombstone changes nothing. Dead letters written after
an erasure never hold the customer's bytes (journey/pipeline/core.py withholds them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from functools import partial
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from journey.contract.deadletters import named_customers
from journey.stream.kafka_client import retrying

log = logging.getLogger(__name__)

#: Most erasure records swept for together (one read of the dead-letter topic for them all).
BATCH_MAX = 500
#: How long the broker may hold an empty fetch of either consumer.
POLL_MS = 1000
#: The key of the tombstone written to a swept partition once the compaction lag has
#: passed, so that its segment rolls even when no dead letter follows (a key naming nobody).
ROLL_KEY = b"journey:roll"
#: How long after the lag that tombstone is written.
ROLL_MARGIN_S = 1.0
#: A read of the dead-letter topic that moves no position for this long is started again.
STALL_S = 30.0


class ErasureSweeper:
    def __init__(self, client_options: Callable[[], dict[str, Any]], *, group_id: str,
                 erasures: str, dead_letters: str, partitions: int, lag_ms: int,
                 stopping: Callable[[], bool], on_tombstones: Callable[[int], None]) -> None:
        """`client_options`: an aiokafka client's connection options (brokers, TLS, SASL);
        `partitions`: the dead-letter topic's; `lag_ms`: its max.compaction.lag.ms;
        `on_tombstones`: told how many tombstones
        each sweep wrote (the metric)."""
        self._options = client_options
        self._group_id = group_id
        self._erasures = erasures
        self._dead_letters = dead_letters
        self._partitions = partitions
        self._stopping = stopping
        self._on_tombstones = on_tombstones
        self._lag_s = lag_ms / 1000
        #: partitions swept -> when (monotonic) to write their roll tombstone
        self._rolls: dict[int, float] = {}

    async def run(self) -> None:
        """Sweep for every committed erasure record, batch by batch, until cancelled."""
        consumer = AIOKafkaConsumer(
            self._erasures, **self._options(), group_id=self._group_id,
            enable_auto_commit=False, isolation_level="read_committed",
            auto_offset_reset="earliest", max_poll_records=BATCH_MAX)
        await retrying(consumer.start, what="starting the erasure sweeper",
                       stopping=self._stopping)
        try:
            while not self._stopping():
                batch = await consumer.getmany(timeout_ms=POLL_MS, max_records=BATCH_MAX)
                if self._rolls:
                    await retrying(self._roll_due, what="rolling swept dead-letter segments",
                                   stopping=self._stopping)
                records = [r for rs in batch.values() for r in rs]
                if not records:
                    continue
                customers = {c for r in records if (c := _erased_customer(r.key, r.value))}
                if customers:
                    written = await retrying(partial(self.sweep, customers),
                                             what="tombstoning erased customers' dead letters",
                                             stopping=self._stopping)
                    self._on_tombstones(written)
                    log.info("erasure sweep: %d dead letters of %d erased customers "
                             "tombstoned", written, len(customers))
                try:
                    await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batch.items()
                                           if rs})
                except KafkaError as exc:  # a rebalance took them, or the broker is away
                    log.info("erasure sweeper: offsets not committed (%s); those erasures "
                             "are swept again, which changes nothing", type(exc).__name__)
        finally:
            await consumer.stop()

    async def sweep(self, customers: Collection[str]) -> int:
        """Tombstone every dead letter, up to the topic's current end, whose original bytes
        name one of `customers` and which is not tombstoned yet; return how many."""
        found = await self._find(frozenset(customers))
        await self._tombstone(found)
        due = time.monotonic() + self._lag_s + ROLL_MARGIN_S
        for partition, _ in found:
            self._rolls.setdefault(partition, due)
        return len(found)

    async def _roll_due(self) -> None:
        """Once the lag has passed, one more tombstone (under ROLL_KEY) in each partition
        swept: the broker rolls a segment only on a write, and compacts only rolled ones."""
        now = time.monotonic()
        due = sorted(p for p, at in self._rolls.items() if at <= now)
        if due:
            await self._tombstone([(p, ROLL_KEY) for p in due])
            for p in due:
                del self._rolls[p]

    async def _tombstone(self, records: list[tuple[int, bytes]]) -> None:
        """A null value under each (partition, key), confirmed by the broker."""
        if not records:
            return
        producer = AIOKafkaProducer(**self._options(), acks="all", enable_idempotence=True)
        await producer.start()
        try:
            sent = [await producer.send(self._dead_letters, key=key, value=None,
                                        partition=partition) for partition, key in records]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    async def _find(self, customers: frozenset[str]) -> list[tuple[int, bytes]]:
        """(partition, key) of the dead letters whose latest record names one of them."""
        tps = [TopicPartition(self._dead_letters, p) for p in range(self._partitions)]
        scanner = AIOKafkaConsumer(**self._options(), group_id=None, enable_auto_commit=False,
                                   isolation_level="read_committed",
                                   auto_offset_reset="earliest")
        await scanner.start()
        try:
            scanner.assign(tps)
            starts = await scanner.beginning_offsets(tps)
            ends = await scanner.end_offsets(tps)
            for tp in tps:
                scanner.seek(tp, starts[tp])
            holding: dict[tuple[int, bytes], None] = {}  # in the order they were written
            left = [tp for tp in tps if await scanner.position(tp) < ends[tp]]
            moved = time.monotonic()
            while left:
                batch = await scanner.getmany(*left, timeout_ms=POLL_MS)
                if batch:
                    moved = time.monotonic()
                elif time.monotonic() - moved > STALL_S:
                    raise TimeoutError(f"reading {self._dead_letters} moved no offset for "
                                       f"{STALL_S:.0f}s")
                for tp, records in batch.items():
                    for r in records:
                        if r.offset >= ends[tp] or r.key is None:
                            continue
                        where = (tp.partition, r.key)
                        if r.value is not None and named_customers(r.value) & customers:
                            holding[where] = None
                        else:  # tombstoned already, or its latest copy names nobody erased
                            holding.pop(where, None)
                left = [tp for tp in left if await scanner.position(tp) < ends[tp]]
            return list(holding)
        finally:
            await scanner.stop()


def _erased_customer(key: bytes | None, value: bytes | None) -> str | None:
    """The customer an `erasures` record is about: its key, or its value's customer_id."""
    if key:
        return key.decode("utf-8", "replace")
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    customer = doc.get("customer_id") if isinstance(doc, dict) else None
    return customer if isinstance(customer, str) else None
