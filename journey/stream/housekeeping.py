"""What the worker does beside its stream so that an erasure reaches every topic it writes:
the erasure sweeper (journey/stream/sweeper.py) and the purge of the internal events topic.
Both are installed on the Faust app by the composition root (journey/stream/app.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import faust
from aiokafka.errors import KafkaError as AIOKafkaError
from kafka.errors import KafkaError

from journey.contract.topics import Topics
from journey.pipeline.metrics import Metrics
from journey.pipeline.settings import Settings
from journey.stream.faust_internals import aiokafka_options
from journey.stream.reader import OffsetReader
from journey.stream.sweeper import ErasureSweeper

log = logging.getLogger(__name__)

#: How long the erasure sweeper waits before starting again after a failure of its own.
SWEEPER_RESTART_S = 60.0


def install_sweeper(app: faust.App, settings: Settings, topics: Topics,
                     metrics: Metrics) -> None:
    """Erasures reach the dead letters written before them (journey/stream/sweeper.py). A
    failure that is not the broker's (a bug) is logged and the sweep starts over a minute
    later: what it has not committed is swept again."""
    sweeper = ErasureSweeper(
        lambda: aiokafka_options(app), group_id=f"{settings.app_id}-erasure-sweeper",
        erasures=topics.erasures.name, dead_letters=topics.dead_letters.name,
        partitions=topics.dead_letters.partitions, lag_ms=settings.dead_letter_erasure_lag_ms,
        stopping=lambda: bool(app.should_stop),
        on_tombstones=metrics.dead_letters_erased.inc)

    @app.task  # type: ignore[untyped-decorator]
    async def sweep_erasures() -> None:
        while not app.should_stop:
            try:
                await sweeper.run()
            except Exception:
                log.exception("the erasure sweeper failed; it starts again in %.0fs",
                              SWEEPER_RESTART_S)
                await asyncio.sleep(SWEEPER_RESTART_S)


def install_purge(app: faust.App, interval_s: float, events: str, reader: OffsetReader,
                   owned: Callable[[], frozenset[int]]) -> None:
    """The internal events topic holds touchpoints re-keyed by customer, their bytes
    included. As Kafka Streams does with its repartition topics, every `interval_s` the
    records the group has committed of the events partitions this worker owns are deleted
    (DeleteRecords): nothing reads them again (a replay starts at the committed offset),
    and an erased customer's events do not outlive the erasure there by more than that."""
    if interval_s <= 0:
        return
    purged: dict[int, int] = {}

    @app.timer(interval=interval_s, name="purge_events")  # type: ignore[untyped-decorator]
    async def purge_events() -> None:
        try:
            offsets = {}
            for partition in sorted(owned()):
                committed = await reader.committed(events, partition)
                if committed is not None and committed > purged.get(partition, 0):
                    offsets[partition] = committed
            if offsets:
                await reader.delete_before(events, offsets)
                purged.update(offsets)
        except (KafkaError, AIOKafkaError, OSError, TimeoutError) as exc:
            log.warning("deleting the committed records of %s failed (%s: %s); tried again "
                        "in %.0fs", events, type(exc).__name__, exc, interval_s)
