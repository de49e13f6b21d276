"""The composition root: create_app(settings) builds the whole worker from one settings object."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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
from journey.stream.worker import (
    Channels,
    Shell,
    StoreView,
    declare,
    install_agents,
    producer_send,
    store_applier,
)

log = logging.getLogger(__name__)

# aiohttp takes the charset separately and refuses it inside content_type.
_METRICS_CONTENT_TYPE = "; ".join(
    part for part in CONTENT_TYPE_LATEST.split("; ") if not part.startswith("charset")
)


@dataclass(frozen=True)
class JourneyApp:
    """The built application: the Faust app and what it was built from."""

    faust: faust.App
    settings: Settings
    topics: Topics
    channels: Channels
    metrics: Metrics
    pipeline: Pipeline


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
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        consumer_auto_offset_reset="earliest",
        # Faust commits only offsets this worker acknowledged, and it acknowledges only
        # behind the delivery barrier (journey/pipeline/barrier.py); the interval only
        # bounds how much is replayed after a crash.
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_s,
        table_standby_replicas=settings.standby_replicas,
        producer_linger_ms=5,
        # Larger aiokafka batches: the worker sends outputs and states in bursts.
        producer_max_batch_size=256 * 1024,
        producer_max_request_size=4 * 1024 * 1024,
    )
    channels = declare(app, topics)
    router = Router(topics)
    store = StoreView(channels.states, topics.events.partitions)
    states = StateCache(store.read, topics.events.partitions,
                        max_clean=settings.state_cache_customers, position=position_of,
                        count_created=True)
    processor = BatchProcessor(
        engine,
        allowed_lateness_ms=settings.allowed_lateness_s * 1000,
        sources=Pipeline.clock_sources(topics.touchpoints.partitions),
    )
    metrics.describe_engine(engine)
    metrics.watch_clocks(lambda: processor.clocks)
    pipeline = Pipeline(processor, states, router, settings.ingest_policy(), metrics)
    barrier = DeliveryBarrier(producer_send(app), states, router,
                              store_applier(channels.states),
                              stopping=lambda: bool(app.should_stop))
    channels.states.on_restored = metrics.state_restored_records.inc
    shell = Shell(app, channels, pipeline, barrier, metrics,
                  flush_interval_s=settings.flush_interval_ms / 1000,
                  flush_max_held=settings.flush_max_held, store=store,
                  rebuild_slice=settings.rebuild_slice_customers)
    install_agents(
        app,
        shell,
        batch_max=settings.batch_max_events,
        batch_within_s=settings.batch_within_ms / 1000,
        tick_interval_s=settings.tick_interval_ms / 1000,
    )
    _install_pages(app, metrics)
    return JourneyApp(app, settings, topics, channels, metrics, pipeline)


def _install_pages(app: faust.App, metrics: Metrics) -> None:
    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(metrics.registry), content_type=_METRICS_CONTENT_TYPE)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "rebalancing": bool(app.rebalancing)})


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
