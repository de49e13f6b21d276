"""The Faust shell around the pipeline (journey/pipeline/core.py): consume, hand over, send,
acknowledge only behind the delivery barrier (journey/pipeline/barrier.py).

Faust owns group membership, partition assignment, the customer-state table and its
changelog, recovery, timers and the web server. This module only:

- runs two agents, on the touchpoints topic and on the internal events topic, that read
  events in batches below Faust's stream API (`drain`, with records fetched by
  journey/stream/faust_internals.py), check each is the next offset of its partition
  (journey/stream/continuity.py: a record Faust dropped is read again, not skipped), give
  them to the pipeline and send what it returns through Faust's producer, keeping each
  delivery future;
- flushes the barrier on a timer, when enough input is held, and when partitions are
  revoked, so states are written behind (once per flush, not per event) and input offsets
  are committed (journey/stream/offsets.py) only after the records they caused are
  confirmed; Faust's own offset commits are off for the input topics;
- appends ticks to the touchpoints partitions it owns;
- re-arms the due index and drops the live states of partitions it no longer owns when
  the assignment changes: per newly assigned partition, reading its stored states in
  slices and yielding to the event loop between slices, so a partition of a million
  customers never holds the loop (and the consumer's heartbeats) for long.

The table's local store is read by partition (StoreView), never through Faust's
`table[key]`: with RocksDB that looks the key up in the partition of the *current event*,
and a batch spans partitions.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP

from journey.contract.topics import Topics
from journey.engine import CustomerState
from journey.pipeline.barrier import DeliveryBarrier
from journey.pipeline.core import Incoming, Pipeline, Slices
from journey.pipeline.metrics import Metrics
from journey.pipeline.routing import Outgoing
from journey.pipeline.timekeeping import TICK_HEADER, TICK_VALUE, encode_tick, partition_of
from journey.stream.continuity import Continuity
from journey.stream.faust_internals import rocksdb_items, rocksdb_partition

log = logging.getLogger(__name__)

#: A batch's step: records in, the records to send out in slices (journey/pipeline/core.py).
Step = Callable[[Sequence[Incoming], int], Slices]


@dataclass(frozen=True)
class Channels:
    """The Faust topic and table handles of one app."""

    touchpoints: Any
    events: Any
    states: Any
    #: erasure markers: customer id -> erased_at epoch ms (ASCII), no personal data
    erasures: Any = None


class StateTable(faust.Table[bytes, bytes]):
    """A table of the worker's own (customer states, erasure markers). Counts the changelog
    records Faust's recovery applies to the local store (`on_restored`); the barrier's own
    writes go through `apply_confirmed` and are not counted. With RocksDB a restart
    restores only the changelog's tail."""

    on_restored: Callable[[int], None] = staticmethod(lambda n: None)

    def apply_changelog_batch(self, batch: Any) -> None:
        events = batch if isinstance(batch, list) else list(batch)
        super().apply_changelog_batch(events)
        self.on_restored(len(events))

    def apply_confirmed(self, batch: Sequence[Any]) -> None:
        super().apply_changelog_batch(batch)


def declare(app: faust.App, topics: Topics) -> Channels:
    def topic(spec: Any, **kw: Any) -> Any:
        return app.topic(
            spec.name, partitions=spec.partitions, key_serializer="raw",
            value_serializer="raw", **kw,
        )

    def table(name: str, help: str) -> StateTable:
        # bytes types make Faust use the raw codec for the changelog in both directions
        # (a Schema alone sets the writer but not the recovery reader).
        table = StateTable(app, name=name, beacon=app.tables.beacon,
                           partitions=topics.events.partitions, key_type=bytes,
                           value_type=bytes, help=help)
        app.tables.add(table)
        return table

    # acks=False: Faust neither tracks nor commits the input topics' offsets; the barrier
    # commits them (journey/stream/offsets.py explains why Faust's own commits cannot).
    return Channels(
        touchpoints=topic(topics.touchpoints, acks=False),
        events=topic(topics.events, internal=True, acks=False),
        states=table("customer-state",
                     "Journey state per customer id (JSON bytes of CustomerState)."),
        erasures=table("customer-erasures", "Erased customers: id -> erased_at epoch ms "
                       "(journey/pipeline/processor.py)."),
    )


class StoreView:
    """The table's local store read per partition: one key, or every stored state of one
    partition (RocksDB keeps a database per partition; the memory store one dict)."""

    def __init__(self, table: Any, partitions: int) -> None:
        self._table = table
        self.partitions = partitions

    def read(self, key: bytes) -> bytes | None:
        store = self._table.data
        db = rocksdb_partition(store, partition_of(key, self.partitions))
        value = store.data.get(key) if db is None else db.get(key)
        return None if value is None else bytes(value)

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        store = self._table.data
        db = rocksdb_partition(store, partition)
        if db is not None:
            yield from rocksdb_items(store, db)
            return
        partitions = self.partitions
        for key, value in list(store.data.items()):
            if partition_of(key, partitions) == partition:
                yield key, value


@dataclass(frozen=True, slots=True)
class _ChangelogMessage:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes | None

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class _ChangelogEvent:
    key: bytes
    value: bytes | None
    message: _ChangelogMessage


def store_applier(*tables: Any) -> Callable[[Sequence[tuple[Outgoing, Any]]], None]:
    """Apply confirmed changelog records to each table's local store the way Faust's own
    recovery does (Table.apply_changelog_batch), so the store, and a RocksDB store's
    persisted changelog offset, are exactly what a restart would rebuild. Records go to
    the table whose changelog topic they were written to."""
    by_topic = {t.changelog_topic.get_topic_name(): t for t in tables}

    def apply(written: Sequence[tuple[Outgoing, Any]]) -> None:
        batches: dict[str, list[_ChangelogEvent]] = {}
        for record, meta in written:
            key = record.key or b""
            message = _ChangelogMessage(record.topic, int(meta.partition), int(meta.offset),
                                        key, record.value)
            batches.setdefault(record.topic, []).append(
                _ChangelogEvent(key, record.value, message))
        for topic, batch in batches.items():
            by_topic[topic].apply_confirmed(batch)

    return apply


@dataclass
class Shell:
    """What the agents and timers share."""

    app: faust.App
    channels: Channels
    pipeline: Pipeline
    barrier: DeliveryBarrier
    metrics: Metrics
    flush_interval_s: float
    flush_max_held: int
    continuity: Continuity
    store: StoreView | None = None
    rebuild_slice: int = 5000
    #: due detections applied between yields to the event loop in a burst
    due_slice: int = 2000
    #: most input records handled as one batch (`drain`)
    batch_max: int = 2000
    owned: frozenset[int] = frozenset()
    #: set when processing failed and the worker is stopping: nothing more is processed,
    #: written or committed
    failed: bool = False
    #: customers with state per owned partition: counted at the rebuild, then as new ones
    #: appear (StateCache.take_created), never by scanning the store
    tracked: dict[int, int] = field(default_factory=dict)
    #: how many times each partition was given away: a batch whose partition went (even
    #: if it came back) while the batch awaited holds none of its input
    losses: dict[int, int] = field(default_factory=dict)
    #: partitions whose writes were fenced (another worker owns them now) since the last
    #: assignment: not taken back until the group says so again
    fenced: set[int] = field(default_factory=set)
    _assigning: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: the flush started by `handle`, running beside the next batches
    _flush_task: asyncio.Future[None] | None = None

    def assignment(self) -> frozenset[int]:
        topics = {self.channels.touchpoints.get_topic_name(),
                  self.channels.events.get_topic_name()}
        return frozenset(tp.partition for tp in self.app.assignor.assigned_actives()
                         if tp.topic in topics and tp.partition not in self.fenced)

    def on_fenced(self, partition: int) -> None:
        """The barrier's word that another worker owns `partition` now (its producer was
        fenced): forget it at once, as if revoked, until the next assignment."""
        self.fenced.add(partition)
        if partition in self.owned:
            self._give_away(frozenset({partition}))
            self._set_gauges()

    async def on_assignment(self) -> None:
        """After recovery or a rebalance: forget the partitions now elsewhere, and rebuild
        the due index and counts of each newly assigned one from its stored states. The
        clocks and indexes of partitions kept are left as they are."""
        # Always under the lock: the other agent must wait until a rebuild is done, not
        # only notice that the assignment was already taken in.
        async with self._assigning:
            while (owned := self.assignment()) != self.owned:
                gained = sorted(owned - self.owned)
                self._give_away(self.owned - owned)
                self.owned = owned
                self.continuity.reset()  # reading starts at the committed offsets again
                for partition in gained:
                    await self._rebuild(partition)
                self._set_gauges()
                log.info("partitions %s: %d customers tracked, %d armed", sorted(owned),
                         sum(self.tracked.values()), self._armed())

    def on_assigned(self, assigned: Any) -> None:
        """Faust's partitions-assigned signal, once per generation: forget at once every
        partition this generation took away. A partition lost and regained between two
        batches would otherwise keep its live states and due index from before, while
        another worker went on changing its customers."""
        topics = {self.channels.touchpoints.get_topic_name(),
                  self.channels.events.get_topic_name()}
        now = frozenset(tp.partition for tp in assigned if tp.topic in topics)
        self.fenced.clear()  # this generation's producers were started for it (FencingTableManager)
        if self.owned - now:
            self._give_away(self.owned - now)
            self._set_gauges()

    def _give_away(self, lost: frozenset[int]) -> None:
        """Forget partitions now elsewhere. Their held input and their states go together,
        both dropped: no state is written for input left unacknowledged, and no input is
        acknowledged whose state was dropped; the new owner replays both."""
        if not lost:
            return
        self.owned = self.owned - lost
        self.continuity.reset()
        for partition in lost:
            self.losses[partition] = self.losses.get(partition, 0) + 1
        dropped = self.barrier.forget_partitions(self.owned)
        self.pipeline.states.keep_partitions(self.owned)
        self.pipeline.processor.keep_partitions(self.owned)
        log.info("partitions %s given away (%d unacknowledged records dropped); %s kept",
                 sorted(lost), dropped, sorted(self.owned))
        populations = self.metrics.populations
        for partition in lost:
            self.tracked.pop(partition, None)
            populations.drop_partition(partition)
            for topic in (self.channels.touchpoints.get_topic_name(),
                          self.channels.events.get_topic_name()):
                self.metrics.forget_lag(topic, partition)

    async def _rebuild(self, partition: int) -> None:
        """Re-arm one partition's due index and recount it, a slice at a time. Its live
        states were dropped when it was last given away, so the store is the truth."""
        started = time.perf_counter()
        clock = self.pipeline.processor.reset_partition(partition)
        engine = self.pipeline.processor.engine
        populations = self.metrics.populations
        populations.reset_partition(partition, ())
        count = unreadable = 0
        items = self.store.items(partition) if self.store is not None else iter(())
        for key, value in items:
            count += 1
            if count % self.rebuild_slice == 0:
                await asyncio.sleep(0)
                if partition not in self.owned:  # taken away meanwhile (on_assigned)
                    break
            try:
                state = CustomerState.from_bytes(value)
            except Exception:
                unreadable += 1  # dead-lettered as state_unreadable when next touched
                continue
            populations.update(partition, None, state)
            clock.due.arm(key.decode(), engine.next_deadline(state))
        if partition not in self.owned:
            # Given away while the rebuild yielded: _give_away has forgotten it already.
            populations.drop_partition(partition)
            self.pipeline.processor.keep_partitions(self.owned)
            return
        self.tracked[partition] = count
        seconds = time.perf_counter() - started
        self.metrics.index_rebuild_seconds.observe(seconds)
        log.info("partition %d: due index rebuilt from %d stored states in %.2fs (%d armed%s)",
                 partition, count, seconds, len(clock.due),
                 f", {unreadable} unreadable" if unreadable else "")

    def _armed(self) -> int:
        return sum(len(c.due) for c in self.pipeline.processor.clocks.values())

    def _set_gauges(self) -> None:
        tracked = self.tracked
        for partition, created in self.pipeline.states.take_created().items():
            if partition in tracked:
                tracked[partition] += created
        self.metrics.customers_tracked.set(sum(tracked.values()))
        self.metrics.customers_armed.set(self._armed())

    async def handle(self, batch: Sequence[Any], step: Step) -> None:
        if self.failed:
            return  # stopping: left for the next start
        await self.on_assignment()
        started = time.perf_counter()
        # Records of a partition revoked while they waited are left alone (never
        # acknowledged): their new owner reads them from the last committed offset. Records
        # Faust dropped before this one are read from the broker (journey/stream/continuity.py).
        # Ownership is judged by the loss counts taken now: the continuity check awaits the
        # broker, and a partition given away meanwhile must not slip in.
        start = {p: self.losses.get(p, 0) for p in self.owned}

        def kept(partition: int) -> bool:
            return start.get(partition, -1) == self.losses.get(partition, 0)

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
        self._set_gauges()
        if (self.barrier.held >= self.flush_max_held
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
                return  # the next batch after it starts the next flush
            await asyncio.shield(running)
        if not self.failed:
            self._flush_task = asyncio.ensure_future(self.flush_or_stop())

    async def flush_or_stop(self) -> None:
        """Flush the barrier; if that fails (a bug, or the worker stopping mid-flush), stop
        as `handle_or_stop` does: what the flush took is not acknowledged, so nothing
        later may be either."""
        try:
            await self.barrier.flush()
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

    async def handle_or_stop(self, batch: Sequence[Any], step: Step) -> None:
        """`handle`, and if it raises (a bug: bad records are dead-lettered, failed sends
        re-sent), stop the worker. Faust would restart the agent on the next record, and
        the commit after it would skip this one; stopped, the next start replays it."""
        try:
            await self.handle(batch, step)
        except Exception as exc:
            message = batch[0].message if batch else None
            await self._stop(exc, "processing ?" if message is None else
                             f"processing {message.topic}[{message.partition}]@{message.offset}")
            raise

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


async def drain(stream: Any, limit: int) -> AsyncIterator[list[Any]]:
    """An agent's events in batches, read from its channel's queue below Faust's stream API:
    the first event awaited, then every event already queued, up to `limit`. Under a backlog
    a batch is as large as Faust's fetcher has buffered (up to its stream_buffer_maxsize);
    when records trickle in, a batch is the one record there is, with no wait added.

    The queue's own get/get_nowait are used, so Faust's buffer-pressure bookkeeping (pause a
    partition whose buffer is full, resume it when it drains) works as under the stream.
    What the stream would add is left out on purpose: acknowledgement (the barrier's), the
    skipping of records of an older generation (the continuity check skips records below
    the committed offset, and `Shell.handle` records of partitions not owned), sensors."""
    channel = aiter(stream.channel)  # registers it with Faust's conductor, as the stream does
    queue = channel.queue
    try:
        while True:
            try:
                batch = [await queue.get()]
                while len(batch) < limit and not queue.empty():
                    batch.append(queue.get_nowait())
            except StopAsyncIteration:
                # Faust ends a channel by throwing this into its queue when the app stops.
                # Raised inside this generator it would become a RuntimeError (PEP 479): the
                # agent would crash, its supervisor restart it, and the stop would hang
                # until the shutdown bound.
                return
            yield batch
    finally:
        stop = getattr(channel, "on_stop_iteration", None)
        if stop is not None:
            stop()


def install_agents(
    app: faust.App,
    shell: Shell,
    *,
    tick_interval_s: float,
) -> None:
    ch, pipeline = shell.channels, shell.pipeline
    due_slice = shell.due_slice

    def touchpoints_in_slices(records: Sequence[Incoming], now_ms: int) -> Slices:
        return pipeline.touchpoints_in_slices(records, now_ms, due_slice=due_slice)

    def events_in_slices(records: Sequence[Incoming], now_ms: int) -> Slices:
        return pipeline.events_in_slices(records, now_ms, due_slice=due_slice)

    # Batches read below Faust's stream API (`drain`): Faust's stream handles one event at a
    # time and acknowledges events it skips whatever noack() says; its batch API
    # (take_events) acknowledges every event of a batch. The input topics have Faust's acks
    # off; offsets, order and acknowledgement are the barrier's and the continuity check's.
    batch_max = shell.batch_max

    @app.agent(ch.touchpoints, name="touchpoints")
    async def touchpoints(stream: Any) -> None:
        async for batch in drain(stream, batch_max):
            await shell.handle_or_stop(batch, touchpoints_in_slices)

    @app.agent(ch.events, name="events")
    async def events(stream: Any) -> None:
        async for batch in drain(stream, batch_max):
            await shell.handle_or_stop(batch, events_in_slices)

    @app.timer(interval=shell.flush_interval_s, name="flush")  # type: ignore[untyped-decorator]
    async def flush() -> None:
        await shell.flush_or_stop()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # (mode's signal typing)
    async def on_revoked(sender: Any, *_: Any, **__: Any) -> None:
        # Before partitions go: write and commit what was processed of them, so their next
        # owner starts where this worker stopped (a failure here only means a replay).
        shell.continuity.reset()  # after the rebalance, reading starts at the committed offsets
        await shell.flush_or_stop()

    def assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        shell.on_assigned(args[0])

    app.on_partitions_assigned.connect(assigned)

    @app.timer(interval=1.0, name="assignment")  # type: ignore[untyped-decorator]
    async def assignment() -> None:
        # Rebuild the due index of newly assigned partitions as soon as recovery is done,
        # not when their first record arrives (an idle partition has none until a tick).
        if not app.rebalancing and not shell.failed:
            await shell.on_assignment()

    worker_name = f"{socket.gethostname()}:{app.conf.web_port}"
    touchpoints_topic = ch.touchpoints.get_topic_name()

    @app.timer(interval=tick_interval_s, name="tick")  # type: ignore[untyped-decorator]
    async def tick() -> None:
        # Ticks go into the raw touchpoints partitions this worker owns, behind their
        # backlog: each moves that partition's clock, and is forwarded to every events
        # partition for the records re-keyed before it.
        if app.rebalancing:
            return
        now_ms = int(time.time() * 1000)
        owned = frozenset(tp.partition for tp in app.assignor.assigned_actives()
                          if tp.topic == touchpoints_topic)
        for partition in sorted(owned):
            await ch.touchpoints.send(
                partition=partition, value=encode_tick(now_ms, worker_name),
                headers={TICK_HEADER: TICK_VALUE},
            )
        shell.metrics.ticks_sent.inc()
