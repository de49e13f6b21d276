"""Fenced writes: one Kafka transaction per partition and flush, on a producer whose
transactional id names the partition.

Everything a flush writes for partition p (the outputs caused by input of touchpoints[p]
and events[p], the states and erasure markers of p's customers) and the input offsets of
those two partitions go in one transaction of the producer `<app id>-p<p>`, so they become
visible together or not at all. A worker that is given partition p starts a new producer
with that id before Faust recovers p's changelog (journey/stream/faust_internals.py,
`FencingTableManager`): the broker aborts whatever transaction the previous owner left
open and refuses every later write of its producer (ProducerFenced), so a worker frozen
past its session timeout and then thawed (a zombie) can no longer write states, outputs
or offsets of p. Restores, standbys and the worker's own consumer read committed data
only, and so should downstream consumers (docs/reliability.md, the AsyncAPI contract).

This is Kafka Streams' first exactly-once mode (one producer per task), and Faust's
`exactly_once` layout; aiokafka's `send_offsets_to_transaction` has no group generation,
so the second mode's single fenced producer is not open to us (docs/fencing.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidProducerEpoch,
    MessageSizeTooLargeError,
    ProducerFenced,
    RecordTooLargeError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.structs import TopicPartition

from journey.pipeline.barrier import FatalWriteError, FencedError
from journey.pipeline.routing import Outgoing
from journey.stream.faust_internals import transaction_failure
from journey.stream.produce import delivered, send_many_on

log = logging.getLogger(__name__)

#: The producer's errors that mean another worker owns the partition now.
FENCED = (ProducerFenced, InvalidProducerEpoch)
#: A record the broker will never take: writing again cannot help, and committing without
#: it would lose it, so the worker stops (FatalWriteError) with the reason.
REFUSED_FOR_GOOD = (MessageSizeTooLargeError, RecordTooLargeError, CorruptRecordException)

ProducerFactory = Callable[[str], AIOKafkaProducer]

#: How long the broker lets a transaction stay open before it aborts it. A worker that dies
#: mid-flush leaves one open; its partition's next owner aborts it at once by starting
#: its producer, so this only bounds how long the partition's committed end (its last
#: stable offset) can stand still when nobody takes over.
TRANSACTION_TIMEOUT_MS = 60_000
#: How long aborting a failed transaction may take (the broker may be restarting).
ABORT_TIMEOUT_S = 60.0
#: How long the stop waits for a partition's commit under way before closing its producer.
CLOSE_WAIT_S = 5.0


def transactional_id(app_id: str, partition: int) -> str:
    return f"{app_id}-p{partition}"


def transactional_producer(options: Callable[[], dict[str, Any]],
                           transactional_id: str, *,
                           compression_type: str | None = None) -> AIOKafkaProducer:
    """An idempotent, transactional aiokafka producer with Faust's connection options;
    `compression_type`: Settings.producer_compression (the changelog's size on the broker,
    and what a cold restore reads)."""
    return AIOKafkaProducer(
        **options(), transactional_id=transactional_id, enable_idempotence=True,
        acks="all", linger_ms=5, compression_type=compression_type,
        # The worker writes outputs and states in bursts: larger batches.
        max_batch_size=256 * 1024, max_request_size=4 * 1024 * 1024,
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS)


class PartitionTransactions:
    """The transactional producers of the partitions this worker owns, and `commit`, the
    barrier's one way to write (journey/pipeline/barrier.py, `Commit`)."""

    def __init__(self, app_id: str, group_id: str, new_producer: ProducerFactory) -> None:
        self._app_id = app_id
        self._group_id = group_id
        self._new_producer = new_producer
        self._producers: dict[int, AIOKafkaProducer] = {}
        #: a commit and a producer swap of one partition never overlap
        self._locks: dict[int, asyncio.Lock] = {}
        self.fenced = 0

    def _lock(self, partition: int) -> asyncio.Lock:
        lock = self._locks.get(partition)
        if lock is None:
            lock = self._locks[partition] = asyncio.Lock()
        return lock

    async def take_over(self, partitions: Iterable[int]) -> None:
        """Start a fresh producer for each partition (fencing every earlier holder of its
        transactional id, this worker's own included), and stop those of the others.
        Called on every assignment, before the changelogs are read: a worker cannot tell
        from its own assignment whether a partition it keeps was another's in between."""
        wanted = set(partitions)
        for partition in sorted(set(self._producers) - wanted):
            async with self._lock(partition):
                old = self._producers.pop(partition, None)
                if old is not None:
                    await _stop(old)
        await asyncio.gather(*(self._start(p) for p in sorted(wanted)))
        log.info("transactional producers ready for partitions %s", sorted(wanted))

    async def _start(self, partition: int) -> None:
        async with self._lock(partition):
            old = self._producers.pop(partition, None)
            if old is not None:
                await _stop(old)
            producer = self._new_producer(transactional_id(self._app_id, partition))
            try:
                await producer.start()  # InitProducerId: fences the previous holder
            except BaseException:
                await _stop(producer)
                raise
            self._producers[partition] = producer

    async def commit(self, partition: int, records: Sequence[Outgoing],
                     offsets: Mapping[tuple[str, int], int]) -> list[tuple[Outgoing, Any]]:
        """Write `records` and commit the input `offsets` (topic, partition -> next offset)
        in one transaction; the delivery metadata of each record. Raises FencedError when
        this worker may no longer write the partition; any other failure is aborted and
        left to the caller to retry."""
        async with self._lock(partition):
            producer = self._producers.get(partition)
            if producer is None:
                raise FencedError(f"no producer for partition {partition}: not owned")
            try:
                return await self._transaction(producer, records, offsets)
            except FENCED as exc:
                self.fenced += 1
                self._producers.pop(partition, None)
                await _stop(producer)
                raise FencedError(f"partition {partition}: {type(exc).__name__}") from exc
            except TransactionalIdAuthorizationFailed as exc:
                raise FatalWriteError(f"the broker refuses transactional id "
                                      f"{transactional_id(self._app_id, partition)}: {exc}"
                                      ) from exc
            except REFUSED_FOR_GOOD as exc:
                await self._abort(partition, producer)
                raise FatalWriteError(f"partition {partition}: the broker refuses a record "
                                      f"for good ({type(exc).__name__}: {exc})") from exc
            except Exception as exc:
                cause = transaction_failure(producer)
                if cause is None:
                    await self._abort(partition, producer)
                    raise
                self._producers.pop(partition, None)
                await _stop(producer)
                if isinstance(cause, FENCED):
                    self.fenced += 1
                    raise FencedError(f"partition {partition}: {type(cause).__name__}"
                                      ) from cause
                raise FatalWriteError(f"partition {partition}: the producer failed "
                                      f"({type(cause).__name__}: {cause})") from exc

    async def _transaction(self, producer: AIOKafkaProducer, records: Sequence[Outgoing],
                           offsets: Mapping[tuple[str, int], int]
                           ) -> list[tuple[Outgoing, Any]]:
        await producer.begin_transaction()
        deliveries = await send_many_on(producer, records)
        # Every record confirmed before the offsets join and the transaction commits: a
        # batch refused for good (too large, say) fails only its own delivery, and aiokafka
        # would commit the rest without it.
        confirmed = await delivered(deliveries)
        if offsets:
            await producer.send_offsets_to_transaction(
                {TopicPartition(t, p): o for (t, p), o in offsets.items()}, self._group_id)
        await producer.commit_transaction()
        return list(zip(records, confirmed, strict=True))

    async def _abort(self, partition: int, producer: AIOKafkaProducer) -> None:
        """After a failed transaction: abort it, so the next attempt starts clean. A
        producer that cannot abort is not replaced here: a new producer with the same id
        would fence whoever owns the partition now, and this worker cannot be sure it is
        still that owner outside an assignment. It stops instead (FatalWriteError), and
        its next start replays what was not committed."""
        try:
            await asyncio.wait_for(producer.abort_transaction(), ABORT_TIMEOUT_S)
        except FENCED:
            self.fenced += 1
            self._producers.pop(partition, None)
            await _stop(producer)
        except Exception as exc:
            self._producers.pop(partition, None)
            await _stop(producer)
            raise FatalWriteError(f"partition {partition}: a failed transaction could not "
                                  f"be aborted ({type(exc).__name__}: {exc})") from exc

    async def close(self) -> None:
        """Stop every producer, each once its partition's commit under way has ended."""
        for partition in sorted(self._producers):
            try:
                await asyncio.wait_for(self._lock(partition).acquire(), CLOSE_WAIT_S)
            except TimeoutError:
                log.info("partition %d: a commit still running at the stop is left to its "
                         "transaction timeout", partition)
            else:
                self._lock(partition).release()
            producer = self._producers.pop(partition, None)
            if producer is not None:
                await _stop(producer)


async def _stop(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 10)
    except Exception as exc:  # a fenced or broken producer: nothing of it is needed
        log.debug("stopping a transactional producer: %s", exc)
