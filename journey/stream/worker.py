"""The Faust shell around the pipeline (journey/pipeline/core.py): consume, hand over, send,
acknowledge only behind the delivery barrier (journey/pipeline/barrier.py).

Faust owns group membership, partition assignment, the customer-state table and its
changelog, recovery, timers and the web server. This module only:

- runs two agents, on the touchpoints topic and on the internal events topic, that take
  events with acknowledgement off (`noack`), check each is the next offset of its partition
  (journey/stream/continuity.py: a record Faust dropped is read again, not skipped), give
  them to the pipeline and send what it returns through Faust's producer, keeping each
  delivery future;
- flushes the barrier on a timer, when enough input is held, and when partitions are
  revoked, so states are written behind (once per flush, not per event) and input offsets
  are committed (journey/stream/offsets.py) only after the records they caused are
  confirmed; Faust's own offset commits are off for the input topics;
- appends ticks to the touchpoints partitions it owns;
- re-arms the due index and drops the live states of partitions it no longer owns when
  the assignment changes.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from journey.contract.topics import Topics
from journey.engine import CustomerState
from journey.pipeline.barrier import DeliveryBarrier
from journey.pipeline.core import Incoming, Pipeline
from journey.pipeline.metrics import Metrics
from journey.pipeline.routing import Outgoing
from journey.pipeline.timekeeping import TICK_HEADER, TICK_VALUE, encode_tick, partition_of
from journey.stream.continuity import Continuity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Channels:
    """The Faust topic and table handles of one app."""

    touchpoints: Any
    events: Any
    states: Any
    #: erasure markers: customer id -> erased_at epoch ms (ASCII), no personal data
    erasures: Any = None


def declare(app: faust.App, topics: Topics) -> Channels:
    def topic(spec: Any, **kw: Any) -> Any:
        return app.topic(
            spec.name, partitions=spec.partitions, key_serializer="raw",
            value_serializer="raw", **kw,
        )

    # acks=False: Faust neither tracks nor commits the input topics' offsets; the barrier
    # commits them (journey/stream/offsets.py explains why Faust's own commits cannot).
    return Channels(
        touchpoints=topic(topics.touchpoints, acks=False),
        events=topic(topics.events, internal=True, acks=False),
        states=app.Table(
            "customer-state",
            partitions=topics.events.partitions,
            # bytes types make Faust use the raw codec for the changelog in both directions
            # (a Schema alone sets the writer but not the recovery reader).
            key_type=bytes,
            value_type=bytes,
            help="Journey state per customer id (JSON bytes of CustomerState).",
        ),
        erasures=app.Table(
            "customer-erasures",
            partitions=topics.events.partitions,
            key_type=bytes,
            value_type=bytes,
            help="Erased customers: id -> erased_at epoch ms (journey/pipeline/processor.py).",
        ),
    )


def producer_send(app: faust.App) -> Callable[[Outgoing], Awaitable[Awaitable[Any]]]:
    """Send through Faust's own producer, straight to aiokafka (no send_soon buffer):
    returns the delivery future the barrier waits on."""

    async def send(record: Outgoing) -> Awaitable[Any]:
        headers = list(record.headers) if record.headers else None
        return await app.producer.send(record.topic, record.key, record.value,
                                       record.partition, None, headers)

    return send


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
            by_topic[topic].apply_changelog_batch(batch)

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
    owned: frozenset[int] = frozenset()
    #: set when processing failed and the worker is stopping: nothing more is processed,
    #: written or committed
    failed: bool = False

    def assignment(self) -> frozenset[int]:
        topics = {self.channels.touchpoints.get_topic_name(),
                  self.channels.events.get_topic_name()}
        return frozenset(tp.partition for tp in self.app.assignor.assigned_actives()
                         if tp.topic in topics)

    def on_assignment(self) -> None:
        """After recovery or a rebalance: forget states of partitions now elsewhere, and
        re-arm the due index of the partitions owned from their states."""
        owned = self.assignment()
        if owned == self.owned:
            return
        self.owned = owned
        self.continuity.reset()
        states = self.pipeline.states
        # States and held input of a partition go together: both kept, or both dropped.
        dropped = self.barrier.forget_partitions(owned)
        states.keep_partitions(owned)
        if dropped:
            log.info("dropped %d unacknowledged records of partitions now elsewhere", dropped)
        tracked = 0

        def known() -> Iterator[tuple[int, CustomerState]]:
            nonlocal tracked
            partitions = states.partitions
            seen: set[str] = set()
            for key, value in self.channels.states.items():
                cid = key.decode()
                partition = partition_of(key, partitions)
                if partition not in owned:
                    continue
                tracked += 1
                seen.add(cid)
                live = states.live.get(cid)
                yield partition, live if live is not None else CustomerState.from_bytes(value)
            for cid, live in states.live.items():
                if cid not in seen:
                    tracked += 1
                    yield partition_of(cid.encode(), partitions), live

        populations = self.metrics.populations
        armed = self.pipeline.processor.rebuild(owned, populations.recount(owned, known()))
        for topic in (self.channels.touchpoints.get_topic_name(),
                      self.channels.events.get_topic_name()):
            for partition in range(states.partitions):
                if partition not in owned:
                    self.metrics.forget_lag(topic, partition)
        self.metrics.customers_tracked.set(tracked)
        self.metrics.customers_armed.set(armed)
        log.info("partitions %s: %d customers tracked, %d armed", sorted(owned), tracked, armed)

    async def handle(self, batch: Sequence[Any], step: Callable[..., list[Outgoing]]) -> None:
        if self.failed:
            return  # stopping: left for the next start
        started = time.perf_counter()
        self.on_assignment()
        owned = self.owned
        # Records of a partition revoked while they waited are left alone (never
        # acknowledged): their new owner reads them from the last committed offset. Records
        # Faust dropped before this one are read from the broker (journey/stream/continuity.py).
        mine: list[Any] = []
        for e in batch:
            if e.message.partition in owned:
                missing = await self.continuity.admit(e.message.tp, e.message.offset)
                if missing is not None:
                    mine.extend(missing)
                    mine.append(e)
        if not mine:
            return
        records = [Incoming(e.message.topic, e.message.partition, e.message.offset,
                            e.message.key, e.message.value, e.headers) for e in mine]
        now_ms = int(time.time() * 1000)
        async with self.barrier.batch():
            sends = step(records, now_ms)
            await self.barrier.send(sends)
            self.barrier.hold((e.message.partition, e) for e in mine)
        metrics = self.metrics
        metrics.batch_seconds.observe(time.perf_counter() - started)
        self._observe_lag(mine)
        metrics.customers_armed.set(sum(len(c.due) for c in
                                        self.pipeline.processor.clocks.values()))
        if (self.barrier.held >= self.flush_max_held
                or time.monotonic() - self.barrier.last_flush >= self.flush_interval_s):
            await self.barrier.flush()


    async def handle_or_stop(self, batch: Sequence[Any],
                             step: Callable[..., list[Outgoing]]) -> None:
        """`handle`, and if it raises (a bug: bad records are dead-lettered, failed sends
        re-sent), stop the worker. Faust would restart the agent on the next record, and
        the commit after it would skip this one; stopped, the next start replays it."""
        try:
            await self.handle(batch, step)
        except Exception as exc:
            self.failed = True
            self.barrier.halt()
            message = batch[0].message if batch else None
            log.critical("processing %s failed (%s: %s); stopping the worker, the next start "
                         "replays from the last committed offset",
                         "?" if message is None else f"{message.topic}[{message.partition}]"
                         f"@{message.offset}", type(exc).__name__, exc, exc_info=True)
            await self.app.crash(exc)
            raise

    def _observe_lag(self, batch: Sequence[Any]) -> None:
        last: dict[Any, int] = {}
        for event in batch:
            last[event.message.tp] = event.message.offset
        consumer = self.app.consumer
        for tp, offset in last.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self.metrics.set_lag(tp.topic, tp.partition, highwater - offset - 1)


def install_agents(
    app: faust.App,
    shell: Shell,
    *,
    tick_interval_s: float,
) -> None:
    ch, pipeline = shell.channels, shell.pipeline

    # Events one at a time, with acknowledgement off: Faust's take_events() acknowledges
    # every event of a batch as soon as the loop body returns, whatever noack() says
    # (faust-streaming 0.15.3, Stream.take_events). The input topics have Faust's acks off
    # as well; offsets are the barrier's alone (journey/stream/offsets.py).
    @app.agent(ch.touchpoints, name="touchpoints")
    async def touchpoints(stream: Any) -> None:
        async for event in stream.noack().events():
            await shell.handle_or_stop((event,), pipeline.on_touchpoints)

    @app.agent(ch.events, name="events")
    async def events(stream: Any) -> None:
        async for event in stream.noack().events():
            await shell.handle_or_stop((event,), pipeline.on_events)

    @app.timer(interval=shell.flush_interval_s, name="flush")  # type: ignore[untyped-decorator]
    async def flush() -> None:
        await shell.barrier.flush()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # (mode's signal typing)
    async def on_revoked(sender: Any, *_: Any, **__: Any) -> None:
        # Before partitions go: write and commit what was processed of them, so their next
        # owner starts where this worker stopped (a failure here only means a replay).
        shell.continuity.reset()  # after the rebalance, reading starts at the committed offsets
        await shell.barrier.flush()

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
