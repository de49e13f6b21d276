"""The composition root: create_app(settings) builds the whole worker from one settings object."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from journey.contract.topics import Topics
from journey.engine import Engine
from journey.pipeline.build import build_engine
from journey.pipeline.kafka_security import sasl_login, ssl_context
from journey.pipeline.metrics import Metrics
from journey.pipeline.processor import BatchProcessor
from journey.pipeline.settings import Settings
from journey.stream.worker import Channels, declare, install_agents

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
        # Consistency between table state and committed offsets relies on Faust
        # flushing the producer before it commits; keep the window short.
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_s,
        producer_linger_ms=5,
        # opentracing is not used; avoid Faust looking for it.
    )
    channels = declare(app, topics)
    install_agents(
        app,
        channels,
        processor=BatchProcessor(
            engine,
            allowed_lateness_ms=settings.allowed_lateness_s * 1000,
            sources=topics.touchpoints.partitions,
        ),
        metrics=metrics,
        policy=settings.ingest_policy(),
        batch_max=settings.batch_max_events,
        batch_within_s=settings.batch_within_ms / 1000,
        tick_interval_s=settings.tick_interval_ms / 1000,
    )
    _install_pages(app, metrics)
    return JourneyApp(app, settings, topics, channels, metrics)


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
