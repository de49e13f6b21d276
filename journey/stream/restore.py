"""Bulk restore: a newly assigned partition's changelog read into its RocksDB store in large
batches, before Faust's own recovery reads what is left.

Faust's recovery hands every changelog record through its conductor, one event and a few
event-loop trips per record: about 14,700 records/s here, so a cold worker with a million
customers was busy restoring for over a minute, while a bare aiokafka consumer reads about
370,000 records/s on the same machine (docs/scale.md). This reads the same records with a
plain aiokafka consumer and writes them a chunk at a time through the table's own
`apply_changelog_batch`, which puts a chunk in one RocksDB write batch and then records
the chunk's last offset as the store's persisted offset. That is exactly the state Faust's
own recovery leaves behind, so its protocol is kept: it starts from the persisted offset,
finds (almost) nothing left, and goes on to standbys and the highwater checks as always.

It runs on every assignment when Faust's recovery starts, before it reads the persisted
offsets (journey/stream/app.py): after the rebalance callback has returned, so the consumer
heartbeats while it reads (run inside the callback, a million-customer restore outlasted a
30 s session timeout and the group dropped the worker), and after the fence, so the
partition's new transactional producer has aborted whatever its previous holder left open
and everything up to the last stable offset is settled. Reads are `read_committed`:
records of aborted transactions never reach the store. Anything that goes wrong (a broker
error, a newer assignment, the worker stopping, its time budget spent, no progress for a
while) ends the bulk read where it is; Faust's recovery then reads the rest from the
persisted offset, as it always did.

Only RocksDB stores take part: the memory store keeps no persisted offset, so Faust would
read the whole changelog again anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from journey.stream.faust_internals import rocksdb_partition
from journey.stream.tables import changelog_event

log = logging.getLogger(__name__)

#: Below this many records behind, Faust's own recovery reads the tail.
MIN_RECORDS = 5_000
#: Records written per RocksDB write batch (and persisted offset), and the most one fetch
#: hands over: a chunk is decoded and written without a yield to the event loop, so it
#: bounds how long the web page waits (20,000 held it for about 2 s at a million).
CHUNK_RECORDS = 5_000
#: A bulk read that gets no record for this long stops; Faust reads the rest.
STALL_S = 20.0


class BulkRestore:
    """Reads the changelogs of `tables` (Faust tables with a RocksDB store) for the
    partitions given to `run`. `options` gives the aiokafka connection options; `current`
    says whether the assignment the restore serves is still the group's latest."""

    def __init__(self, tables: Sequence[Any], options: Callable[[], dict[str, Any]],
                 min_records: int = MIN_RECORDS, chunk: int = CHUNK_RECORDS) -> None:
        self._tables = tables
        self._options = options
        self.min_records = min_records
        self.chunk = chunk

    async def run(self, partitions: Iterable[int],
                  current: Callable[[], bool] = lambda: True) -> int:
        """Read what is far behind; returns how many changelog records went to the store."""
        started = time.perf_counter()
        wanted = sorted(set(partitions))
        try:
            targets = {TopicPartition(t.changelog_topic.get_topic_name(), p): t
                       for t in self._tables for p in wanted
                       if rocksdb_partition(t.data, p) is not None}
        except Exception as exc:  # a store not openable yet (locked): Faust retries it
            log.warning("bulk restore skipped (%s: %s)", type(exc).__name__, exc)
            return 0
        if not targets:
            return 0
        consumer = AIOKafkaConsumer(
            **self._options(), group_id=None, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest",
            # compressed bytes: zstd states unpack to about seven times as much
            max_partition_fetch_bytes=2 * 1024 * 1024, fetch_max_bytes=8 * 1024 * 1024,
            fetch_max_wait_ms=50)
        records = 0
        try:
            await consumer.start()
            starts = await self._behind(consumer, targets)
            if starts:
                records = await self._read(consumer, targets, starts, current)
        except Exception as exc:  # Faust's recovery reads whatever is left
            log.warning("bulk restore stopped (%s: %s); the changelog's rest is read by "
                        "Faust's recovery", type(exc).__name__, exc)
        finally:
            await consumer.stop()
        seconds = time.perf_counter() - started
        if records:
            log.info("bulk restore: %d changelog records into the store in %.2fs "
                     "(%d records/s)", records, seconds, records / max(seconds, 1e-9))
        return records

    async def _behind(self, consumer: AIOKafkaConsumer,
                      targets: dict[TopicPartition, Any]) -> dict[TopicPartition, tuple[int,
                                                                                     int]]:
        """(first offset to read, last stable offset) of each partition far enough behind."""
        ends = await consumer.end_offsets(list(targets))  # read_committed: last stable
        firsts = await consumer.beginning_offsets(list(targets))
        found: dict[TopicPartition, tuple[int, int]] = {}
        for tp, table in targets.items():
            persisted = table.data.persisted_offset(tp)
            start = max(firsts[tp], 0 if persisted is None else persisted + 1)
            if ends[tp] - start >= self.min_records:
                found[tp] = (start, ends[tp])
        return found

    async def _read(self, consumer: AIOKafkaConsumer, targets: dict[TopicPartition, Any],
                    starts: dict[TopicPartition, tuple[int, int]],
                    current: Callable[[], bool]) -> int:
        consumer.assign(list(starts))
        for tp, (start, _) in starts.items():
            consumer.seek(tp, start)
        left = {tp: end for tp, (_, end) in starts.items()}
        pending: dict[TopicPartition, list[Any]] = {tp: [] for tp in starts}
        total = 0
        last_progress = time.monotonic()
        while left:
            if not current():
                log.info("bulk restore: a newer assignment came; Faust's recovery reads "
                         "the rest")
                break
            fetched = await consumer.getmany(timeout_ms=500, max_records=self.chunk)
            await asyncio.sleep(0)  # the web page and heartbeats between chunks
            for tp, batch in fetched.items():
                held = pending[tp]
                held.extend(changelog_event(r.topic, r.partition, r.offset, r.key, r.value)
                            for r in batch)
                total += len(batch)
                if len(held) >= self.chunk:
                    targets[tp].apply_changelog_batch(held)
                    pending[tp] = []
            if fetched:
                last_progress = time.monotonic()
            for tp, end in list(left.items()):
                if await consumer.position(tp) >= end:
                    del left[tp]
                    consumer.pause(tp)
            if left and time.monotonic() - last_progress > STALL_S:
                log.warning("bulk restore: no changelog record for %.0fs; Faust's recovery "
                            "reads the rest", STALL_S)
                break
        for tp, held in pending.items():
            if held:
                targets[tp].apply_changelog_batch(held)
        return total
