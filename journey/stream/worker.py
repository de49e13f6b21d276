"""The Faust shell: agents that decode, run the engine, publish outputs and count.

Two stages, and a timer:

1. ``ingest`` reads raw ``touchpoints``, validates each record, re-keys valid ones by
   customer onto the internal events topic and dead-letters the rest.
2. ``advance`` reads the events topic in batches and hands them to the BatchProcessor
   (journey/pipeline/processor.py): each customer's state is loaded once per batch, events and
   ticks are applied in log order, detections fire as partition watermarks pass
   deadlines, and each touched customer is written once (one changelog record per
   customer per batch, not per event). Faust flushes the producer (changelog and
   outputs) before it commits the batch's offsets, so state and offsets stay consistent:
   after a crash the batch is replayed, and deterministic ids make the replay's outputs
   duplicates a consumer can drop.
3. ``tick`` appends a tick record to every touchpoints partition this worker owns; ingest
   forwards each to every events partition (journey/pipeline/timekeeping.py), so event time
   advances with the log, behind any backlog.
"""

from __future__ import annotations

import logging
import socket
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
from faust.streams import _current_event

from journey.contract import codec
from journey.contract.decode import IngestPolicy, Rejection, decode
from journey.contract.topics import Topics
from journey.engine import CustomerState, Output, StageChange, TriggerRequest
from journey.pipeline.metrics import Metrics
from journey.pipeline.processor import BatchProcessor, BatchResult
from journey.pipeline.timekeeping import (
    TICK_HEADER,
    TICK_VALUE,
    decode_tick,
    encode_tick,
    is_tick,
    partition_of,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Channels:
    """The Faust topic and table handles of one app."""

    touchpoints: Any
    events: Any
    stage_changes: Any
    triggers: Any
    trigger_audit: Any
    dead_letters: Any
    states: Any


def declare(app: faust.App, topics: Topics) -> Channels:
    def topic(spec: Any, **kw: Any) -> Any:
        return app.topic(
            spec.name, partitions=spec.partitions, key_serializer="raw",
            value_serializer="raw", **kw,
        )

    return Channels(
        touchpoints=topic(topics.touchpoints),
        events=topic(topics.events, internal=True),
        stage_changes=topic(topics.stage_changes),
        triggers=topic(topics.triggers),
        trigger_audit=topic(topics.trigger_audit),
        dead_letters=topic(topics.dead_letters),
        states=app.Table(
            "customer-state",
            partitions=topics.events.partitions,
            # bytes types make Faust use the raw codec for the changelog in both directions
            # (a Schema alone sets the writer but not the recovery reader).
            key_type=bytes,
            value_type=bytes,
            help="Journey state per customer id (JSON bytes of CustomerState).",
        ),
    )


def install_agents(
    app: faust.App,
    ch: Channels,
    *,
    processor: BatchProcessor,
    metrics: Metrics,
    policy: IngestPolicy,
    batch_max: int,
    batch_within_s: float,
    tick_interval_s: float,
) -> None:
    events_topic = ch.events.get_topic_name()
    touchpoints_topic = ch.touchpoints.get_topic_name()
    partitions = ch.events.partitions
    assignment: dict[str, frozenset[int]] = {"owned": frozenset()}

    @app.agent(ch.touchpoints, name="ingest")
    async def ingest(stream: Any) -> None:
        async for batch in stream.take_events(batch_max, within=batch_within_s):
            now_ms = int(time.time() * 1000)
            for event in batch:
                if is_tick(event.headers):
                    _forward_tick(event, ch, partitions, metrics)
                else:
                    _ingest_one(event, ch, metrics, policy, now_ms)

    @app.agent(ch.events, name="advance")
    async def advance(stream: Any) -> None:
        async for batch in stream.take_events(batch_max, within=batch_within_s):
            started = time.perf_counter()
            owned = _owned(app, events_topic)
            if owned != assignment["owned"]:
                # After recovery or a rebalance: the table holds the truth; rebuild the
                # due index of the partitions this worker now owns.
                assignment["owned"] = owned
                armed = processor.rebuild(owned, _stored_states(ch.states, partitions))
                metrics.customers_armed.set(armed)
                log.info("due index rebuilt for partitions %s: %d customers armed",
                         sorted(owned), armed)
            result = processor.process(batch, lambda cid: _load(ch.states, cid),
                                       partition_of=_partition)
            for output in result.outputs:
                _publish(output, ch, metrics)
            if result.outputs:
                # Outputs reach the broker before the state that remembers them: if the
                # worker dies in between, the replayed batch sees the old state and emits
                # the same ids again (a duplicate), instead of deduplicating the events
                # against a state whose outputs were lost.
                await app.producer.flush()
            _write_states(ch.states, result)
            _count(metrics, result, len(batch))
            metrics.batch_seconds.observe(time.perf_counter() - started)
            metrics.customers_tracked.set(len(ch.states))

    worker_name = f"{socket.gethostname()}:{app.conf.web_port}"

    @app.timer(interval=tick_interval_s, name="tick")  # type: ignore[untyped-decorator]
    async def tick() -> None:
        # Ticks go into the raw touchpoints partitions this worker owns, behind their backlog;
        # the ingest agent forwards them in order to every events partition.
        if app.rebalancing:
            return
        now_ms = int(time.time() * 1000)
        for partition in sorted(_owned(app, touchpoints_topic)):
            await ch.touchpoints.send(
                partition=partition, value=encode_tick(now_ms, worker_name),
                headers={TICK_HEADER: TICK_VALUE},
            )
        metrics.ticks_sent.inc()


def _owned(app: faust.App, topic: str) -> frozenset[int]:
    return frozenset(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)


def _stored_states(table: Any, partitions: int) -> Iterator[tuple[int, CustomerState]]:
    for key, value in table.items():
        yield partition_of(key, partitions), CustomerState.from_bytes(value)


def _load(table: Any, cid: str) -> CustomerState | None:
    stored = table.get(cid.encode())
    return None if stored is None else CustomerState.from_bytes(stored)


def _write_states(table: Any, result: BatchResult) -> None:
    # One write per touched customer. The table picks the changelog partition from the
    # current event, so point it at a record of that customer's partition.
    token = _current_event.get(None)
    try:
        for cid, (state, fevent) in result.dirty.items():
            _current_event.set(weakref.ref(fevent))
            table[cid.encode()] = state.to_bytes()
    finally:
        _current_event.set(token)


def _count(metrics: Metrics, result: BatchResult, size: int) -> None:
    metrics.batch_size.observe(size)
    metrics.events_processed.inc(result.processed)
    if result.duplicates:
        metrics.events_duplicate.inc(result.duplicates)
    if result.late:
        metrics.events_late.inc(result.late)
    if result.ticks:
        metrics.ticks_received.inc(result.ticks)
    if result.bad_ticks:
        metrics.ticks_malformed.inc(result.bad_ticks)
    if result.detections_due:
        metrics.detections_due.inc(result.detections_due)


def _forward_tick(event: Any, ch: Channels, partitions: int, metrics: Metrics) -> None:
    source = int(event.message.partition)
    try:
        at_ms, _ = decode_tick(event.value)
    except ValueError:
        metrics.ticks_malformed.inc()
        return
    value = encode_tick(at_ms, "ingest", source=source)
    for partition in range(partitions):
        ch.events.send_soon(partition=partition, value=value, headers={TICK_HEADER: TICK_VALUE})


def _ingest_one(
    event: Any, ch: Channels, metrics: Metrics, policy: IngestPolicy, now_ms: int
) -> None:
    message = event.message
    try:
        result = decode(event.value, policy=policy, now_ms=now_ms)
    except Exception as exc:  # A bug in our decoder must not stop the stream.
        log.exception("decoder failed on %s[%d]@%d", message.topic, message.partition,
                      message.offset)
        result = Rejection("internal_error", f"{type(exc).__name__}: {exc}")
    if isinstance(result, Rejection):
        ch.dead_letters.send_soon(key=event.key, value=_dead_letter(result, event))
        metrics.events_dead_lettered.labels(result.reason).inc()
        return
    ch.events.send_soon(key=result.customer_id.encode(), value=codec.touchpoint_to_bytes(result))
    metrics.events_accepted.inc()


def _dead_letter(rejection: Rejection, event: Any) -> bytes:
    message = event.message
    return codec.record_bytes(codec.dead_letter_record(
        rejection, topic=message.topic, partition=message.partition, offset=message.offset,
        key=event.key, value=event.value, at=datetime.now(UTC),
    ))


def _publish(output: Output, ch: Channels, metrics: Metrics) -> None:
    key = output.customer_id.encode()
    if isinstance(output, StageChange):
        ch.stage_changes.send_soon(
            key=key, value=codec.record_bytes(codec.stage_change_record(output))
        )
        metrics.stage_changes.labels(output.journey, output.to_stage).inc()
    elif isinstance(output, TriggerRequest):
        ch.triggers.send_soon(key=key, value=codec.record_bytes(codec.trigger_record(output)))
        metrics.triggers_emitted.labels(output.journey, output.rule).inc()
    else:
        ch.trigger_audit.send_soon(key=key, value=codec.record_bytes(codec.audit_record(output)))
        metrics.triggers_withheld.labels(output.request.journey, output.request.rule,
                                         output.decision, output.reason).inc()


def _partition(fevent: Any) -> int:
    return int(fevent.message.partition)
