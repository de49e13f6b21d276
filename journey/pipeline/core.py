"""The Faust-free pipeline: consumed records in, records to produce out.

One object, driven the same way by the Faust worker (journey/stream/shell.py) and by the
in-process run (journey/pipeline/inprocess.py)::

    sends = pipeline.on_touchpoints(records, now_ms)   # raw touchpoints, as consumed
    sends = pipeline.on_events(records, now_ms)        # re-keyed ones, from the internal topic
    pipeline.states.take_dirty()                       # changed customers, to write behind

One hop when the key is right: a touchpoint whose record key is its customer id, and which
sits in the partition Kafka's default partitioner gives that key, is decoded and applied in
the same pass, on the touchpoints partition (the state table is co-partitioned with it).
Anything else is re-keyed onto the internal events topic and applied from there. A
customer's events keep their order within each path; a platform that keys some of a
customer's events right and others not gets no order between the two.

Time: a tick read on touchpoints partition p moves p's clock directly (p's own records
before it are applied) and is forwarded to every events partition (so the re-keyed records
written before it are applied too). A partition's clock waits for both: the forwarded
ticks of every touchpoints partition, and its own direct tick.

A record that cannot be applied goes to the dead-letter topic with a reason code and is
counted; the stream goes on. Reasons beyond the decoder's (journey/contract/decode.py):

======================== ===========================================================
corrupt_internal_record  a record of the internal events topic that does not decode
state_unreadable         the customer's stored state cannot be read (corrupt, or written
                         by a newer version): the event is not applied, the state is kept
engine_error             the engine raised on this event: the customer goes back to the
                         last state written, and the event is not applied
internal_error           the decoder itself raised (a bug), not the record's fault
======================== ===========================================================
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from journey.contract import codec
from journey.contract.decode import IngestPolicy, Rejection
from journey.contract.fastdecode import decode_touchpoint
from journey.engine import Event
from journey.pipeline.metrics import Metrics
from journey.pipeline.processor import (
    EVENTS,
    TOUCHPOINTS,
    BatchProcessor,
    BatchResult,
    Item,
    StateCache,
    StateUnreadableError,
    Tick,
)
from journey.pipeline.routing import Outgoing, Router
from journey.pipeline.timekeeping import decode_tick, is_tick, partition_of

log = logging.getLogger(__name__)

#: The records to send for one batch, handed over in slices (Pipeline.touchpoints_in_slices).
Slices = Generator[list[Outgoing], None, None]

#: Dead-letter reasons of the pipeline itself, beside the decoder's.
PROCESSING_REASONS: frozenset[str] = frozenset({
    "corrupt_internal_record", "state_unreadable", "engine_error", "internal_error",
})


@dataclass(frozen=True, slots=True)
class Incoming:
    """A consumed record, as any driver sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any = None


@dataclass
class Totals:
    """Running counts of one pipeline, for summaries (the metrics carry the same)."""

    accepted: int = 0
    dead_lettered: int = 0
    processed: int = 0
    duplicates: int = 0
    late: int = 0


class Pipeline:
    """Decode, apply, route. Holds the processor (clocks, due index) and the live states."""

    def __init__(
        self,
        processor: BatchProcessor,
        states: StateCache,
        router: Router,
        policy: IngestPolicy,
        metrics: Metrics,
        *,
        one_hop_only: bool = False,
    ) -> None:
        """`one_hop_only`: apply every accepted touchpoint in its own partition, without
        re-keying (the in-process run: one partition, no internal topic)."""
        self.processor = processor
        self.states = states
        self.router = router
        self.policy = policy
        self.metrics = metrics
        self.one_hop_only = one_hop_only
        self.partitions = router.topics.events.partitions
        #: the tick source id of a partition's own (direct) ticks; forwarded ones are 0..N-1
        self.direct_source = 0 if one_hop_only else router.topics.touchpoints.partitions
        self.totals = Totals()

    @classmethod
    def clock_sources(cls, touchpoint_partitions: int, *, one_hop_only: bool = False) -> int:
        """How many tick sources a partition's clock waits for."""
        return 1 if one_hop_only else touchpoint_partitions + 1

    def on_touchpoints(
        self, records: Sequence[Incoming], now_ms: int, *, dead_lettered_at_ms: int | None = None
    ) -> list[Outgoing]:
        """Raw touchpoints (and ticks) of the touchpoints topic, in offset order."""
        return _joined(self.touchpoints_in_slices(records, now_ms,
                                                  dead_lettered_at_ms=dead_lettered_at_ms))

    def on_events(self, records: Sequence[Incoming], now_ms: int) -> list[Outgoing]:
        """Re-keyed touchpoints and forwarded ticks of the internal events topic."""
        return _joined(self.events_in_slices(records, now_ms))

    def touchpoints_in_slices(
        self, records: Sequence[Incoming], now_ms: int, *,
        dead_lettered_at_ms: int | None = None, due_slice: int = 0,
    ) -> Slices:
        """`on_touchpoints`, its sends handed over in slices: a burst of due detections
        pauses after every `due_slice` of them (BatchProcessor.run). Joined, the slices
        are exactly what `on_touchpoints` returns; the caller lets its event loop run
        between them, and touches nothing of this pipeline until the generator ends."""
        sends: list[Outgoing] = []
        items: list[tuple[int, Item]] = []
        origins: list[Incoming] = []
        accepted: list[Event] = []
        at_ms = now_ms if dead_lettered_at_ms is None else dead_lettered_at_ms
        metrics = self.metrics
        for record in records:
            if is_tick(record.headers):
                tick = self._tick(record)
                if tick is not None:
                    if not self.one_hop_only:
                        sends.extend(self.router.ticks(tick.at_ms, record.partition))
                    items.append((record.partition, Tick(tick.at_ms, self.direct_source)))
                    origins.append(record)
                continue
            try:
                decoded = decode_touchpoint(record.value, policy=self.policy, now_ms=now_ms)
            except Exception as exc:  # a bug in our decoder must not stop the stream
                log.exception("decoder failed on %s[%d]@%d", record.topic, record.partition,
                              record.offset)
                decoded = Rejection("internal_error", f"{type(exc).__name__}: {exc}")
            if isinstance(decoded, Rejection):
                sends.append(self._dead_letter(record, decoded, at_ms))
                continue
            accepted.append(decoded.event)
            customer_key = decoded.customer_id.encode()
            if self.one_hop_only or (
                record.key == customer_key
                and record.partition == partition_of(customer_key, self.partitions)
            ):
                items.append((record.partition, decoded.event))
                origins.append(record)
            else:
                sends.append(self.router.rekey(decoded.customer_id, decoded.canonical()))
        metrics.observe_events(accepted, now_ms)
        self.totals.accepted += len(accepted)
        yield from self._apply(sends, items, origins, at_ms, TOUCHPOINTS, due_slice)

    def events_in_slices(
        self, records: Sequence[Incoming], now_ms: int, *, due_slice: int = 0
    ) -> Slices:
        """`on_events`, its sends handed over in slices (see `touchpoints_in_slices`)."""
        sends: list[Outgoing] = []
        items: list[tuple[int, Item]] = []
        origins: list[Incoming] = []
        for record in records:
            item: Item | None
            if is_tick(record.headers):
                item = self._tick(record)
            else:
                try:
                    item = codec.event_from_bytes(record.value or b"")
                except Exception as exc:
                    sends.append(self._dead_letter(record, Rejection(
                        "corrupt_internal_record",
                        f"not a canonical touchpoint: {type(exc).__name__}: {exc}"), now_ms))
                    continue
            if item is not None:
                items.append((record.partition, item))
                origins.append(record)
        yield from self._apply(sends, items, origins, now_ms, EVENTS, due_slice)

    # ----- internals ----------------------------------------------------------------------
    def _tick(self, record: Incoming) -> Tick | None:
        try:
            at_ms, source = decode_tick(record.value or b"")
        except ValueError:
            self.metrics.ticks_malformed.inc()
            return None
        return Tick(at_ms, source)

    def _apply(
        self, sends: list[Outgoing], items: list[tuple[int, Item]], origins: list[Incoming],
        now_ms: int, path: int, due_slice: int,
    ) -> Slices:
        """`sends` (of the decoding) first, then what applying `items` gives, in slices."""
        if not items:
            yield sends
            return
        states = self.states
        replayed = 0
        if not self.one_hop_only:
            # After a crash the input is read again from the last committed offset, which
            # may be behind the states written: skip what a customer's state already has.
            kept = [(item, origin) for item, origin in zip(items, origins, strict=True)
                    if not self._replayed(item[1], origin, path)]
            replayed = len(items) - len(kept)
            items = [item for item, _ in kept]
            origins = [origin for _, origin in kept]
        result = BatchResult()
        route = self.router.output
        routed = 0  # outputs handed over so far; in one topic they keep their order
        for _ in self.processor.run(items, states, result, due_slice=due_slice):
            sends.extend(route(output) for output in result.outputs[routed:])
            routed = len(result.outputs)
            yield sends
            sends = []
        result.duplicates += replayed
        failed = {f.index for f in result.failures}
        if not self.one_hop_only:
            for index, ((_, item), origin) in enumerate(zip(items, origins, strict=True)):
                if index not in failed and not isinstance(item, Tick):
                    states.mark(item.customer_id, path, origin.offset)
        sends.extend(route(output) for output in result.outputs[routed:])
        if result.erasures:
            sends.extend(self.router.erasure(e) for e in result.erasures)
            self.metrics.erasures.inc(len(result.erasures))
        if result.dropped_erased:
            self.metrics.events_dropped_erased.inc(result.dropped_erased)
        for failure in result.failures:
            origin = origins[failure.index]
            log.error("%s on %s[%d]@%d: %s", failure.reason, origin.topic, origin.partition,
                      origin.offset, failure.message)
            sends.append(self._dead_letter(origin, Rejection(failure.reason, failure.message),
                                           now_ms))
        for message in result.detection_errors:
            log.error("a detection raised; the customer keeps its last written state: %s",
                      message)
        self._count(result, len(items), now_ms)
        yield sends

    def _replayed(self, item: Item, origin: Incoming, path: int) -> bool:
        if isinstance(item, Tick):
            return False
        try:
            return self.states.seen(item.customer_id, path, origin.offset)
        except StateUnreadableError:
            return False  # the processor dead-letters it

    def _dead_letter(self, record: Incoming, rejection: Rejection, at_ms: int) -> Outgoing:
        self.metrics.observe_rejection(rejection.reason)
        self.totals.dead_lettered += 1
        value = record.value
        if self._erased(record):
            # The record is keyed by an erased customer: its bytes may be their personal
            # data, which the erasure removed everywhere else. The reason and origin stay.
            value = b""
            rejection = Rejection(rejection.reason, f"{rejection.message} (original bytes "
                                  "withheld: the record's key is an erased customer)",
                                  rejection.field)
        return self.router.dead_letter(
            rejection, topic=record.topic, partition=record.partition, offset=record.offset,
            key=record.key, value=value, at=datetime.fromtimestamp(at_ms / 1000, tz=UTC),
        )

    def _erased(self, record: Incoming) -> bool:
        """Whether a record's key names a customer with an erasure marker. Asked only of a
        record in its key's partition: that customer's marker is in the co-partitioned table
        this worker reads (a record elsewhere is not the owner's to judge)."""
        key = record.key
        if not key or partition_of(key, self.partitions) != record.partition:
            return False
        try:
            return self.states.erased_at(key.decode()) is not None
        except (UnicodeDecodeError, StateUnreadableError, ValueError):
            return False

    def _count(self, result: BatchResult, size: int, now_ms: int) -> None:
        totals = self.totals
        totals.processed += result.processed
        totals.duplicates += result.duplicates
        totals.late += result.late
        self.metrics.observe_batch(result, now_ms, size=size)
        states = self.states
        partitions = states.partitions
        self.metrics.populations.follow(states.take_before(), states.live,
                                        lambda cid: partition_of(cid.encode(), partitions))


def _joined(slices: Iterable[list[Outgoing]]) -> list[Outgoing]:
    return [send for part in slices for send in part]
