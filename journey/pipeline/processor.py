"""Batch processing of the events topic, free of Faust: the same code runs in the worker,
in the in-process replay and in benchmarks.

Per batch: each customer's state is loaded once, events and ticks are applied in log
order per partition, detections fire as each partition's watermark passes deadlines, and
every touched customer comes out once in `dirty` (to be written once, not per event).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from journey.contract import codec
from journey.engine import CustomerState, Engine, Output
from journey.pipeline.timekeeping import PartitionClock, decode_tick, is_tick


class Record(Protocol):
    """What the processor needs of a consumed record."""

    @property
    def partition(self) -> int: ...
    @property
    def value(self) -> bytes: ...
    @property
    def headers(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class PlainRecord:
    partition: int
    value: bytes
    headers: Any = None


@dataclass
class BatchResult:
    outputs: list[Output] = field(default_factory=list)
    #: customer id -> (new state, the record whose partition the state belongs to)
    dirty: dict[str, tuple[CustomerState, Any]] = field(default_factory=dict)
    processed: int = 0
    duplicates: int = 0
    late: int = 0
    ticks: int = 0
    bad_ticks: int = 0
    detections_due: int = 0


Load = Callable[[str], CustomerState | None]


class BatchProcessor:
    """Applies batches of the events topic to state; owns the per-partition clocks."""

    def __init__(self, engine: Engine, *, allowed_lateness_ms: int, sources: int = 1) -> None:
        """`sources`: how many partitions the ticks come from (the touchpoints topic's)."""
        self.engine = engine
        self.allowed_lateness_ms = allowed_lateness_ms
        self.sources = sources
        self.clocks: dict[int, PartitionClock] = {}

    def clock(self, partition: int) -> PartitionClock:
        found = self.clocks.get(partition)
        if found is None:
            found = self.clocks[partition] = PartitionClock(self.sources)
        return found

    def rebuild(
        self, partitions: Iterable[int], states: Iterable[tuple[int, CustomerState]]
    ) -> int:
        """Forget the clocks of other partitions and re-arm every customer of these from
        their stored state (after recovery or a rebalance). Returns how many were armed."""
        keep = set(partitions)
        self.clocks = {p: PartitionClock(self.sources) for p in keep}
        armed = 0
        for partition, state in states:
            if partition in keep:
                deadline = self.engine.next_deadline(state)
                if deadline is not None:
                    self.clocks[partition].due.arm(state.customer_id, deadline)
                    armed += 1
        return armed

    def process(
        self,
        records: Sequence[Any],
        load: Load,
        *,
        partition_of: Callable[[Any], int] = lambda r: r.partition,
    ) -> BatchResult:
        """Apply records in order. `load` reads a stored state. Each customer in `dirty`
        comes with a record of its partition, for the caller's write."""
        result = BatchResult()
        states: dict[str, CustomerState | None] = {}
        engine = self.engine

        def current(cid: str) -> CustomerState | None:
            if cid in states:
                return states[cid]
            state = states[cid] = load(cid)
            return state

        for record in records:
            partition = partition_of(record)
            clock = self.clock(partition)
            if is_tick(record.headers):
                try:
                    moved = clock.observe_tick(*decode_tick(record.value))
                except ValueError:
                    result.bad_ticks += 1
                    continue
                result.ticks += 1
            else:
                event = codec.event_from_bytes(record.value)
                cid = event.customer_id
                step = engine.apply(current(cid), event)
                states[cid] = step.state
                result.dirty[cid] = (step.state, record)
                if step.note == "duplicate":
                    result.duplicates += 1
                    continue
                if step.note == "late":
                    result.late += 1
                result.processed += 1
                result.outputs.extend(step.outputs)
                clock.due.arm(cid, engine.next_deadline(step.state))
                moved = clock.advance(event.at_ms - self.allowed_lateness_ms)
                deadline = clock.due.deadline_of(cid)
                if not moved and deadline is not None and deadline <= clock.watermark_ms:
                    moved = True  # this customer is already due: the watermark passed it
            if moved:
                self._fire_due(clock, current, states, result, record)
        return result

    def _fire_due(self, clock: PartitionClock, current: Callable[[str], CustomerState | None],
                  states: dict[str, CustomerState | None], result: BatchResult,
                  token: Any) -> None:
        engine = self.engine
        for cid in clock.due.pop_due(clock.watermark_ms):
            state = current(cid)
            if state is None:
                continue
            result.detections_due += 1
            step = engine.on_time(state, clock.watermark_ms)
            states[cid] = step.state
            if step.outputs:
                result.outputs.extend(step.outputs)
                previous = result.dirty.get(cid)
                result.dirty[cid] = (step.state, previous[1] if previous else token)
            clock.due.arm(cid, engine.next_deadline(step.state))
