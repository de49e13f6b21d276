"""The composition root: create_app(settings) builds the whole worker from one settings object."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import faust
from faust.types import TP
from yarl import URL

from journey.contract.topics import Topics
from journey.engine import Engine
from journey.pipeline.barrier import DeliveryBarrier
from journey.pipeline.build import build_engine
from journey.pipeline.core import Pipeline
from journey.pipeline.kafka_security import sasl_login, ssl_context
from journey.pipeline.metrics import Metrics, position_of
from journey.pipeline.processor import BatchProcessor, StateCache
from journey.pipeline.routing import Router
from journey.pipeline.settings import Settings
from journey.pipeline.stateindex import StateIndex
from journey.stream.agents import install_agents
from journey.stream.continuity import Continuity, Refetched, RefetchedMessage
from journey.stream.faust_internals import (
    BatchingTransport,
    ChangelogEndRecovery,
    FencingTableManager,
    LastOffsetBefore,
    aiokafka_options,
)
from journey.stream.housekeeping import install_purge, install_sweeper
from journey.stream.kafka_client import retrying
from journey.stream.ownership import Ownership
from journey.stream.quiet import RepeatFilter
from journey.stream.reader import OffsetReader
from journey.stream.restore import BulkRestore
from journey.stream.shell import Shell
from journey.stream.tables import Channels, StoreView, declare, store_applier
from journey.stream.transactions import PartitionTransactions, transactional_producer
from journey.stream.web import Liveness, WebParts, install_pages

log = logging.getLogger(__name__)

#: The share of Faust's bound on reading an assignment's persisted offsets
#: (broker_request_timeout, 90 s by default) the bulk restore may take before it.
BULK_RESTORE_SHARE = 0.75
#: How often the liveness timer runs and asks the broker for metadata.
PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class JourneyApp:
    """The built application: the Faust app and what it was built from."""

    faust: faust.App
    settings: Settings
    topics: Topics
    channels: Channels
    metrics: Metrics
    pipeline: Pipeline
    liveness: Liveness
    repeat_filter: RepeatFilter
    barrier: DeliveryBarrier | None = None
    shell: Shell | None = None


def create_app(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    engine: Engine | None = None,
) -> JourneyApp:
    """Build the Faust app. Parameters other than settings default to production values."""
    metrics = metrics if metrics is not None else Metrics()
    engine = engine if engine is not None else build_engine(settings)
    topics = settings.topics()
    advertised = URL(settings.advertised_url())
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # web_bind is the interface listened on (Faust's default is every interface);
        # canonical_url is what the assignor tells the group, so lookups of this worker's
        # customers are routed to it (a wildcard there makes every worker answer for all).
        web_bind=settings.web_host,
        web_host=advertised.host,
        web_port=settings.web_port,
        canonical_url=str(advertised),
        web_in_thread=False,
        consumer_auto_offset_reset="earliest",
        # Input offsets are committed by the delivery barrier (journey/stream/offsets.py),
        # not by Faust; its commit timer has nothing of ours to commit.
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_s,
        table_standby_replicas=settings.standby_replicas,
        producer_linger_ms=5,
        # Larger aiokafka batches: the worker sends outputs and states in bursts.
        producer_max_batch_size=256 * 1024,
        producer_max_request_size=4 * 1024 * 1024,
        # Its before_recovery hook starts the fencing producers (journey/stream/transactions.py).
        TableManager=FencingTableManager,
    )
    # Faust's consumer, handing records to the agents a fetch at a time
    # (journey/stream/faust_internals.py).
    app.transport = BatchingTransport(app.conf.broker_consumer, app)
    channels = declare(app, topics)
    router = Router(topics)
    # Both tables are read by partition (StoreView): RocksDB keeps a store per partition.
    store = StoreView(channels.states, topics.events.partitions)
    markers = StoreView(channels.erasures, topics.events.partitions)
    states = StateCache(store.read, topics.events.partitions,
                        max_clean=settings.state_cache_customers, position=position_of,
                        read_marker=markers.read, count_created=True,
                        index=StateIndex(engine))
    processor = BatchProcessor(
        engine,
        allowed_lateness_ms=settings.allowed_lateness_s * 1000,
        sources=Pipeline.clock_sources(topics.touchpoints.partitions),
    )
    metrics.describe_engine(engine)
    metrics.watch_clocks(lambda: processor.clocks)
    pipeline = Pipeline(processor, states, router, settings.ingest_policy(), metrics)
    reader = OffsetReader(lambda: aiokafka_options(app), settings.app_id)
    transactions = PartitionTransactions(
        settings.app_id, settings.app_id,
        partial(transactional_producer, lambda: aiokafka_options(app),
                compression_type=settings.compression_type()))
    fenced: list[Callable[[int], None]] = []  # the shell's, once it exists
    barrier = DeliveryBarrier(transactions.commit, states, router,
                              store_applier(channels.states, channels.erasures),
                              stopping=lambda: bool(app.should_stop),
                              on_fenced=lambda partition: fenced[0](partition))

    def stopping() -> bool:
        return bool(app.should_stop)

    async def committed(tp: TP) -> int | None:
        return await retrying(partial(reader.committed, tp.topic, tp.partition),
                              what="reading the group's committed offsets",
                              stopping=stopping)

    async def earliest(tp: TP) -> int:
        return (await app.consumer.earliest_offsets(tp))[tp]

    async def read_range(tp: TP, start: int, end: int) -> list[Refetched]:
        found = await retrying(
            partial(reader.read, tp.topic, tp.partition, start, end),
            what=f"reading {tp.topic}[{tp.partition}] offsets {start} to {end - 1}",
            stopping=stopping)
        return [Refetched(RefetchedMessage(tp.topic, tp.partition, r.offset, r.key, r.value),
                          list(r.headers or ())) for r in found]

    async def last_offset_before(topic: str, partition: int, end: int) -> int:
        return await retrying(partial(reader.last_offset_before, topic, partition, end),
                              what=f"reading the end of {topic}[{partition}]",
                              stopping=stopping)

    continuity = Continuity(committed, earliest, read_range,
                            on_refetched=metrics.input_refetched.inc)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # (mode's signal typing)
    async def close_clients(sender: Any, **_: Any) -> None:
        await transactions.close()
        await reader.close()

    channels.states.on_restored = metrics.state_restored_records.inc
    ownership = Ownership(app, channels, pipeline, barrier, metrics, continuity, store=store,
                          rebuild_slice=settings.rebuild_slice_customers,
                          fence_grace_s=2 * settings.session_timeout_s)
    fenced.append(ownership.on_fenced)
    restore = BulkRestore([channels.states, channels.erasures], lambda: aiokafka_options(app),
                          min_records=settings.bulk_restore_min_records)
    _fence_before_recovery(app, channels, transactions, barrier, ownership, last_offset_before,
                           restore)
    shell = Shell(app, ownership, pipeline, barrier, metrics, continuity,
                  flush_interval_s=settings.flush_interval_ms / 1000,
                  flush_max_held=settings.flush_max_held,
                  flush_when_caught_up=settings.flush_when_caught_up,
                  due_slice=settings.due_slice_customers,
                  batch_max=settings.batch_max_events)
    install_agents(
        app,
        shell,
        tick_interval_s=settings.tick_interval_ms / 1000,
    )
    liveness = Liveness(broker_window_s=settings.health_broker_s,
                        stall_window_s=settings.health_stall_s, busy_since=shell.busy_since)
    metrics.watch_broker(lambda: liveness.broker_unanswered_s(time.monotonic()))
    install_pages(WebParts(app, settings, topics, engine, states, channels.states, metrics,
                           liveness, owned=lambda: ownership.owned,
                           unindexed=ownership.unindexed,
                           watermark=lambda p: _watermark(processor, p)))
    _install_probe(app, liveness)
    install_sweeper(app, settings, topics, metrics)
    install_purge(app, settings.events_purge_interval_s, topics.events.name, reader,
                   lambda: ownership.owned)
    repeat_filter = RepeatFilter(
        count=lambda logger: metrics.connection_errors.labels(logger).inc())
    return JourneyApp(app, settings, topics, channels, metrics, pipeline, liveness,
                      repeat_filter, barrier, shell)


def _fence_before_recovery(app: faust.App, channels: Channels,
                           transactions: PartitionTransactions, barrier: DeliveryBarrier,
                           ownership: Ownership, last_offset_before: LastOffsetBefore,
                           restore: BulkRestore) -> None:
    """On every assignment, before any changelog is read: with no flush running, forget
    what is kept of every partition and start a fresh transactional producer per active
    partition (fencing its previous holder). That runs in the rebalance callback, where the
    consumer sends no heartbeat, so it is kept short. Then, when Faust's recovery starts,
    the changelogs of partitions far behind are read into the store in bulk
    (journey/stream/restore.py), within a share of Faust's own bound on that step; Faust
    reads whatever is left. The changelogs' ends are taken at their last records
    (journey/stream/faust_internals.py)."""
    inputs = {channels.touchpoints.get_topic_name(), channels.events.get_topic_name()}

    async def fence(actives: frozenset[TP]) -> None:
        partitions = sorted({tp.partition for tp in actives if tp.topic in inputs})
        async with barrier.quiet():
            ownership.forget_all()
            await transactions.take_over(partitions)

    async def bulk(changelogs: frozenset[TP]) -> None:
        generation = app.consumer_generation_id
        deadline = time.monotonic() + BULK_RESTORE_SHARE * float(
            app.conf.broker_request_timeout)
        await restore.run({tp.partition for tp in changelogs}, current=lambda: (
            app.consumer_generation_id == generation and not app.should_stop
            and time.monotonic() < deadline))

    tables = cast(FencingTableManager, app.tables)
    tables.before_recovery = fence
    recovery = cast(ChangelogEndRecovery, tables.recovery)
    recovery.last_offset_before = last_offset_before
    recovery.before_offsets = bulk


def _watermark(processor: BatchProcessor, partition: int) -> int | None:
    clock = processor.clocks.get(partition)
    mark = None if clock is None else clock.watermark_ms
    return mark if mark is not None and mark > 0 else None


def _install_probe(app: faust.App, liveness: Liveness) -> None:
    @app.timer(interval=PROBE_INTERVAL_S, name="liveness")  # type: ignore[untyped-decorator]
    async def probe() -> None:
        # The timer running proves the loop runs; the metadata request, that the broker
        # answers (through the producer's own connection, with its TLS and SASL settings).
        liveness.loop_ran(time.monotonic())
        client = getattr(getattr(app.producer, "_producer", None), "client", None)
        if client is None:
            liveness.broker_failed("the producer has not started")
            return
        try:
            await asyncio.wait_for(client.fetch_all_metadata(), PROBE_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            liveness.broker_failed(f"{type(exc).__name__}: {exc}")
        else:
            liveness.broker_answered(time.monotonic())


def _credentials(settings: Settings) -> Any:
    """Faust's broker credentials, with the same SSL context as every other Kafka client."""
    context = ssl_context(settings)
    login = sasl_login(settings)
    if login is not None:
        # With a context Faust speaks SASL_SSL, without one SASL_PLAINTEXT.
        return faust.SASLCredentials(
            username=login.username, password=login.password,
            mechanism=login.mechanism, ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
