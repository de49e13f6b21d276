"""The batch path of the worker: a batch of consumed records in, its partitions' records
processed one partition at a time, what they cause handed to the delivery barrier
(journey/pipeline/barrier.py), and flushes started behind it.

Each record is checked to be the next offset of its partition (journey/stream/continuity.py:
a record Faust dropped is read again, not skipped), and only records of partitions still
owned are processed (journey/stream/ownership.py). A failure that is not the input's
fault (a bug) stops the worker: the next start replays from the last committed offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust

from journey.pipeline.barrier import DeliveryBarrier
from journey.pipeline.core import Incoming, Pipeline, Slices
from journey.pipeline.metrics import Metrics
from journey.stream.continuity import Continuity
from journey.stream.ownership import Ownership

log = logging.getLogger(__name__)

#: A batch's step: records in, the records to send out in slices (journey/pipeline/core.py).
Step = Callable[[Sequence[Incoming], int], Slices]


@dataclass
class Shell:
    """What the agents and timers share: the batch path and the flushes."""

    app: faust.App
    ownership: Ownership
    pipeline: Pipeline
    barrier: DeliveryBarrier
    metrics: Metrics
    continuity: Continuity
    flush_interval_s: float
    flush_max_held: int
    #: flush as soon as a batch leaves nothing waiting (see `handle`)
    flush_when_caught_up: bool = True
    #: due detections applied between yields to the event loop in a burst
    due_slice: int = 2000
    #: most input records handled as one batch (`drain`)
    batch_max: int = 2000
    #: set when processing failed and the worker is stopping: nothing more is processed,
    #: written or committed
    failed: bool = False
    #: the flush started by `handle`, running beside the next batches
    _flush_task: asyncio.Future[None] | None = None
    #: a flush was asked for while one ran: the running one starts it when it ends
    _flush_again: bool = False
    #: when the batch being handled began (monotonic), None between batches: liveness
    #: reads it to tell a stuck worker from an idle one
    _busy_since: float | None = None

    def busy_since(self) -> float | None:
        return self._busy_since

    async def handle(self, batch: Sequence[Any], step: Step, *, caught_up: bool = False
                     ) -> None:
        """Process a batch and start a flush behind it when one is due: `flush_max_held`
        input records held, `flush_interval_s` since the last flush, or (with
        `flush_when_caught_up`) a batch that left nothing waiting. Under a backlog, batches
        are large and flushes come at the interval, a transaction per partition each; when
        the worker keeps up, its outputs leave at once rather than up to an interval later
        (group commit: what arrives while a flush runs goes in the next one)."""
        if self.failed:
            return  # stopping: left for the next start
        await self.ownership.on_assignment()
        started = time.perf_counter()
        # Records of a partition revoked while they waited are left alone (never
        # acknowledged): their new owner reads them from the last committed offset. Records
        # Faust dropped before this one are read from the broker (journey/stream/continuity.py).
        # Ownership is judged by the loss counts taken now: the continuity check awaits the
        # broker, and a partition given away meanwhile must not slip in.
        kept = self.ownership.kept_since()
        mine: list[Any] = []
        for e in batch:
            if kept(e.message.partition):
                missing = await self.continuity.admit(e.message.tp, e.message.offset)
                if missing is not None:
                    mine.extend(missing)
                    mine.append(e)
        if not mine:
            return
        now_ms = int(time.time() * 1000)
        by_partition: dict[int, list[Any]] = {}
        for e in mine:
            by_partition.setdefault(e.message.partition, []).append(e)
        async with self.barrier.batch():
            # One partition at a time: what its input causes is written in its own
            # transaction (journey/stream/transactions.py). The section may have been
            # awaited too: only what is still owned is processed.
            for partition, events in sorted(by_partition.items()):
                if kept(partition):
                    await self._apply(partition, events, step, now_ms, kept)
        metrics = self.metrics
        metrics.batch_seconds.observe(time.perf_counter() - started)
        self._observe_lag(mine)
        self.ownership.set_gauges()
        if (self.barrier.held >= self.flush_max_held
                or (caught_up and self.flush_when_caught_up)
                or time.monotonic() - self.barrier.last_flush >= self.flush_interval_s):
            await self._flush_behind()

    async def _apply(self, partition: int, events: Sequence[Any], step: Step, now_ms: int,
                     kept: Callable[[int], bool]) -> None:
        """Process one partition's records and hand what they cause to the barrier. A burst
        of due detections comes in slices, with the event loop let run between them
        (heartbeats, the web server); nothing else touches the states meanwhile (the batch
        section is held), so the outputs are those of one pass. If the partition is given
        away meanwhile, the rest is not applied, and nothing of it is held: its states,
        clock and outputs went with it (`_give_away`), and the new owner replays it."""
        records = [Incoming(e.message.topic, partition, e.message.offset, e.message.key,
                            e.message.value, e.headers) for e in events]
        slices = step(records, now_ms)
        for sends in slices:
            self.barrier.send(partition, sends)
            await asyncio.sleep(0)
            if not kept(partition):
                slices.close()
                return
        self.barrier.hold(partition, ((e.message.topic, e.message.offset) for e in events))

    async def _flush_behind(self) -> None:
        """Start a flush that runs beside the next batches, so processing goes on while the
        broker confirms. The barrier keeps the order (a flush takes what was held when it
        started; flushes run one at a time). Back-pressure: with a flush still running and
        `flush_max_held` input records held, wait for it, so a slow or absent broker
        stops the intake instead of letting held records grow without bound."""
        running = self._flush_task
        if running is not None and not running.done():
            if self.barrier.held < self.flush_max_held:
                self._flush_again = True  # started by the running one when it ends
                return
            await asyncio.shield(running)
        if not self.failed:
            self._flush_task = asyncio.ensure_future(self._flushes())

    async def _flushes(self) -> None:
        """Flush, and again while a flush was asked for meanwhile and something is held."""
        while True:
            self._flush_again = False
            await self.flush_or_stop()
            if not self._flush_again or self.failed or not self.barrier.held:
                return

    async def flush_or_stop(self) -> None:
        """Flush the barrier; if that fails (a bug, or the worker stopping mid-flush), stop
        as `handle_or_stop` does: what the flush took is not acknowledged, so nothing
        later may be either."""
        started = time.perf_counter()
        try:
            if await self.barrier.flush():
                self.metrics.flush_seconds.observe(time.perf_counter() - started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.app.should_stop:
                self.failed = True
                self.barrier.halt()
                log.info("flush stopped with the worker (%s); the next start replays from "
                         "the last committed offset", type(exc).__name__)
                return
            await self._stop(exc, "a flush")

    async def handle_or_stop(self, batch: Sequence[Any], step: Step, *,
                             caught_up: bool = False) -> None:
        """`handle`, and if it raises (a bug: bad records are dead-lettered, failed sends
        re-sent), stop the worker. Faust would restart the agent on the next record, and
        the commit after it would skip this one; stopped, the next start replays it."""
        self._busy_since = time.monotonic()
        try:
            await self.handle(batch, step, caught_up=caught_up)
        except Exception as exc:
            message = batch[0].message if batch else None
            await self._stop(exc, "processing ?" if message is None else
                             f"processing {message.topic}[{message.partition}]@{message.offset}")
            raise
        finally:
            self._busy_since = None

    async def _stop(self, exc: Exception, what: str) -> None:
        """Stop the worker after a failure: nothing more is processed, written or
        acknowledged here; the process exits (journey/stream/runner.py bounds the stop) and
        the next start replays from the last committed offset."""
        self.failed = True
        self.barrier.halt()
        log.critical("%s failed (%s: %s); stopping the worker, the next start replays from "
                     "the last committed offset", what, type(exc).__name__, exc, exc_info=True)
        await self.app.crash(exc)

    def _observe_lag(self, batch: Sequence[Any]) -> None:
        last: dict[Any, int] = {}
        for event in batch:
            last[event.message.tp] = event.message.offset
        consumer = self.app.consumer
        assigned = consumer.assignment()  # highwater() of any other partition is an error
        for tp, offset in last.items():
            if tp not in assigned:
                continue
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self.metrics.set_lag(tp.topic, tp.partition, highwater - offset - 1)
