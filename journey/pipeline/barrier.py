"""The delivery barrier: what a batch caused and the input offsets that caused it are written
together, per partition, or not at all. This is the one place where writes happen.

For each batch the driver runs, under `batch()`: process, `send` what the batch produced
(outputs, forwarded events, dead letters) for the partition whose input caused it, and
`hold` the input's offsets. Nothing is written yet; changed customer states wait in the
StateCache (write-behind).

`flush()` then takes everything gathered up to its start and, for each partition p,
commits one unit of work through `Commit` (journey/stream/transactions.py in the worker: a
Kafka transaction of p's own producer): p's outputs, the states of p's changed customers
(a tombstone for an erased one, with its erasure marker) and the next input offsets of
p's input partitions. Only once that is committed are the states applied to the local
store. Partitions are committed side by side; a failure is retried with backoff (the
whole unit again) until it succeeds or the worker stops.

A unit is all or nothing: a crash at any point replays the input from the last committed
offset against the last committed states, and the replay writes the same records with
the same ids again (a consumer reading uncommitted data may see the first attempt's
records too: duplicates with known ids, never a loss). A worker that has lost a partition
to another (its producer is fenced: FencedError) writes nothing more of it; the barrier
drops what it held of it (`on_fenced`) and the new owner replays it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from journey.pipeline.backoff import Backoff
from journey.pipeline.processor import StateCache
from journey.pipeline.routing import Outgoing, Router

log = logging.getLogger(__name__)


class FencedError(Exception):
    """This worker may no longer write the partition: another owns it now."""


class FatalWriteError(Exception):
    """Writing cannot go on in this process (a producer that cannot be restored, a
    transactional id the broker refuses): retrying would not help, so the worker stops and
    its next start, with fresh producers, replays what was not committed."""


#: Writes one partition's records and input offsets ((topic, partition) -> next offset) as
#: one unit; returns each record with its delivery metadata (partition, offset).
Commit = Callable[[int, Sequence[Outgoing], Mapping[tuple[str, int], int]],
                  Awaitable[list[tuple[Outgoing, Any]]]]
#: Applies committed state records (with their delivery metadata) to the local store.
ApplyStates = Callable[[Sequence[tuple[Outgoing, Any]]], None]


@dataclass
class _Work:
    """One partition's share of a flush."""

    outputs: list[Outgoing] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    inputs: int = 0
    states: list[Outgoing] = field(default_factory=list)

    def hold(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        if offset + 1 > self.offsets.get(key, -1):
            self.offsets[key] = offset + 1
        self.inputs += 1


class DeliveryBarrier:
    def __init__(
        self,
        commit: Commit,
        states: StateCache,
        router: Router,
        apply_states: ApplyStates,
        *,
        retry_min_s: float = 0.1,
        retry_max_s: float = 5.0,
        stopping: Callable[[], bool] = lambda: False,
        on_fenced: Callable[[int], None] = lambda partition: None,
    ) -> None:
        self._commit = commit
        self._states = states
        self._router = router
        self._apply_states = apply_states
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._stopping = stopping
        self._on_fenced = on_fenced
        self._work: dict[int, _Work] = {}
        self._held = 0
        self._section = asyncio.Lock()  # a batch's send-and-hold, or a flush's snapshot
        self._flushing = asyncio.Lock()  # one flush at a time, in order
        self.last_flush = time.monotonic()
        self.send_errors = 0
        self.fenced = 0
        self._halted = False

    def halt(self) -> None:
        """Processing failed mid-batch: write nothing more. The live states may hold part
        of a batch whose outputs were never written; the next start replays everything
        not committed yet against the states last committed."""
        self._halted = True

    @property
    def held(self) -> int:
        """Input records held, not committed yet."""
        return self._held

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Process, send and hold one batch with no flush snapshot in between."""
        async with self._section:
            yield

    def _of(self, partition: int) -> _Work:
        work = self._work.get(partition)
        if work is None:
            work = self._work[partition] = _Work()
        return work

    def send(self, partition: int, records: Iterable[Outgoing]) -> None:
        """Records caused by input of `partition`, written by the next flush."""
        self._of(partition).outputs.extend(records)

    def hold(self, partition: int, inputs: Iterable[tuple[str, int]]) -> None:
        """(topic, offset) of input records of `partition`, committed by the next flush."""
        work = self._of(partition)
        before = work.inputs
        for topic, offset in inputs:
            work.hold(topic, partition, offset)
        self._held += work.inputs - before

    def forget_partitions(self, keep: Iterable[int]) -> int:
        """Drop what is held of partitions no longer owned: their new owner replays their
        input from the last committed offset. The caller drops those partitions' changed
        states with it (StateCache.keep_partitions). Returns how many input records were
        dropped."""
        kept = set(keep)
        dropped = 0
        for partition in [p for p in self._work if p not in kept]:
            dropped += self._work.pop(partition).inputs
        self._held -= dropped
        return dropped

    @asynccontextmanager
    async def quiet(self) -> AsyncIterator[None]:
        """No flush runs meanwhile: the one under way ends first, the next waits. Around a
        producer swap, so no flush taken before it commits through the new producers."""
        async with self._flushing:
            yield

    async def flush(self) -> int:
        """Commit what was gathered, partition by partition (see the module docstring).
        Returns how many input records were committed."""
        async with self._flushing:
            if self._halted:
                return 0
            async with self._section:
                work, self._work, self._held = self._work, {}, 0
                dirty = self._states.take_dirty()
                markers = self._states.take_markers()
            self.last_flush = time.monotonic()
            for cid, partition, value in dirty:
                work.setdefault(partition, _Work()).states.append(
                    self._router.state(cid, partition, value))
            # Erasure markers go with the tombstones they guard (journey/pipeline/processor.py).
            for cid, partition, value in markers:
                work.setdefault(partition, _Work()).states.append(
                    self._router.erasure_marker(cid, partition, value))
            try:
                results = await asyncio.gather(
                    *(self._commit_partition(p, w) for p, w in sorted(work.items())),
                    return_exceptions=True)
            except BaseException:
                # Cancelled (the worker stopping): what this flush took is no longer held
                # nor dirty, so nothing later may be committed past it.
                self._halted = True
                raise
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                # What the failed units took is not committed and no longer held: a later
                # flush committing later input would pass over it.
                self._halted = True
                raise failures[0]
            self._states.trim()
            return sum(r for r in results if isinstance(r, int))

    async def _commit_partition(self, partition: int, work: _Work) -> int:
        records = work.outputs + work.states
        backoff = Backoff(self._retry_min_s, self._retry_max_s)
        while True:
            try:
                written = await self._commit(partition, records, work.offsets)
                break
            except FencedError as exc:
                self.fenced += 1
                log.warning("partition %d belongs to another worker now (%s): %d input "
                            "records and %d records of it are dropped here, its new owner "
                            "replays them", partition, exc, work.inputs, len(records))
                self._on_fenced(partition)
                return 0
            except (asyncio.CancelledError, FatalWriteError):
                raise
            except Exception as exc:
                delay = backoff.next_delay()
                self.send_errors += 1
                if self._stopping():
                    raise
                if backoff.worth_logging:
                    log.warning("writing partition %d failed (%s: %s), attempt %d; retrying "
                                "in %.1fs; nothing of it is committed until it succeeds",
                                partition, type(exc).__name__, exc, backoff.attempt, delay)
                await asyncio.sleep(delay)
        states = written[len(work.outputs):]
        if states:
            self._apply_states(states)
        return work.inputs
