"""Batch processing, free of Faust: the same code runs in the worker, in the in-process run
and in benchmarks.

Items are decoded events and ticks, each with the partition it belongs to. Events and ticks
are applied in order per partition, detections fire as each partition's watermark passes
deadlines, and every changed customer is marked in the StateCache, which writes it behind
(once per flush, not per event). A failure on one event (an engine error, a stored state
this worker cannot read) is reported for that item and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from journey.engine import CustomerState, Engine, Event, Output
from journey.pipeline.timekeeping import PartitionClock, partition_of


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed on a source: every record it wrote before `at_ms` has been read."""

    at_ms: int
    source: int


Item = Event | Tick


class StateUnreadableError(Exception):
    """A stored state this worker cannot read (corrupt, or written by a newer version)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """An item the processor could not apply; the caller dead-letters its record."""

    index: int
    reason: str
    message: str


@dataclass
class BatchResult:
    outputs: list[Output] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    processed: int = 0
    duplicates: int = 0
    late: int = 0
    ticks: int = 0
    bad_ticks: int = 0  # malformed ticks are counted where ticks are decoded (the core)
    detections_due: int = 0
    #: customers whose detection raised (their live state is dropped, the store's kept)
    detection_errors: list[str] = field(default_factory=list)


Read = Callable[[bytes], bytes | None]


class StateCache:
    """Live customer states, read through from the table and written behind.

    `get` returns the live object (decoding the stored bytes once); `put` marks a customer
    changed; `take_dirty` hands over each changed customer once, encoded, for the next
    write. Clean entries beyond `max_clean` are dropped after a write (they are in the
    store); states of partitions this worker no longer owns are forgotten.
    """

    def __init__(
        self, read: Read, partitions: int, *, max_clean: int = 200_000,
        position: Callable[[CustomerState | None], object] | None = None,
        count_created: bool = False,
    ) -> None:
        """`position`: when given, `before` holds each customer's position as first read
        since the last `take_before()` (the engine changes live states in place).
        `count_created`: remember new customers for `take_created()` (the caller must
        then call it regularly)."""
        self._read = read
        self.partitions = partitions
        self.max_clean = max_clean
        self.live: dict[str, CustomerState] = {}
        self.dirty: set[str] = set()
        self._position = position
        self.before: dict[str, object] = {}
        self._count_created = count_created
        self._absent: set[str] = set()  # read and found nowhere: new unless never put
        self._created: set[str] = set()

    def get(self, customer_id: str) -> CustomerState | None:
        state = self.live.get(customer_id)
        if state is None:
            stored = self._read(customer_id.encode())
            if stored is not None:
                try:
                    state = CustomerState.from_bytes(stored)
                except Exception as exc:
                    raise StateUnreadableError(f"{type(exc).__name__}: {exc}") from None
                self.live[customer_id] = state
            elif self._count_created:
                self._absent.add(customer_id)
        if self._position is not None and customer_id not in self.before:
            self.before[customer_id] = self._position(state)
        return state

    def take_before(self) -> dict[str, object]:
        """Positions as first read since the last call, per customer."""
        before, self.before = self.before, {}
        return before

    def put(self, customer_id: str, state: CustomerState) -> None:
        self.live[customer_id] = state
        self.dirty.add(customer_id)
        if customer_id in self._absent:
            self._absent.discard(customer_id)
            self._created.add(customer_id)

    def take_created(self) -> dict[int, int]:
        """How many customers appeared (first put after a read found no state) per
        partition since the last call: tracked-customer counts follow without a scan."""
        counts: dict[int, int] = {}
        for cid in self._created:
            partition = partition_of(cid.encode(), self.partitions)
            counts[partition] = counts.get(partition, 0) + 1
        self._created = set()
        self._absent.clear()
        return counts

    def forget(self, customer_id: str) -> None:
        """Drop a live state (after an engine error left it half-changed): the next read
        comes from the store, the last state written."""
        self.live.pop(customer_id, None)
        self.dirty.discard(customer_id)
        self._absent.discard(customer_id)
        self._created.discard(customer_id)  # never written: not a customer after all

    def take_dirty(self) -> list[tuple[str, int, bytes]]:
        """(customer, partition, state bytes) of every changed customer, once."""
        taken = [(cid, partition_of(cid.encode(), self.partitions), self.live[cid].to_bytes())
                 for cid in self.dirty]
        self.dirty = set()
        return taken

    def trim(self) -> None:
        excess = len(self.live) - len(self.dirty) - self.max_clean
        if excess <= 0:
            return
        for cid in [c for c in self.live if c not in self.dirty][:excess]:
            del self.live[cid]

    def keep_partitions(self, owned: Iterable[int]) -> None:
        keep = set(owned)
        self.live = {c: s for c, s in self.live.items()
                     if partition_of(c.encode(), self.partitions) in keep}
        self.dirty = {c for c in self.dirty if c in self.live}


class BatchProcessor:
    """Applies batches of items to state; owns the per-partition clocks."""

    def __init__(self, engine: Engine, *, allowed_lateness_ms: int, sources: int = 1) -> None:
        """`sources`: how many tick sources a partition's clock waits for."""
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

    def keep_partitions(self, partitions: Iterable[int]) -> None:
        """Forget the clocks and due indexes of partitions given away."""
        keep = set(partitions)
        self.clocks = {p: c for p, c in self.clocks.items() if p in keep}

    def reset_partition(self, partition: int) -> PartitionClock:
        """A fresh clock for a partition just assigned; the caller re-arms its due index
        from the stored states (journey/stream/worker.py rebuilds it in slices)."""
        clock = self.clocks[partition] = PartitionClock(self.sources)
        return clock

    def process(self, items: Sequence[tuple[int, Item]], states: StateCache) -> BatchResult:
        """Apply (partition, item) pairs in order; changed customers are put in `states`."""
        result = BatchResult()
        engine = self.engine
        lateness = self.allowed_lateness_ms
        for index, (partition, item) in enumerate(items):
            clock = self.clock(partition)
            if isinstance(item, Tick):
                result.ticks += 1
                if clock.observe_tick(item.at_ms, item.source):
                    self._fire_due(clock, states, result)
                continue
            cid = item.customer_id
            try:
                step = engine.apply(states.get(cid), item)
            except StateUnreadableError as exc:
                result.failures.append(Failure(index, "state_unreadable", str(exc)))
                continue
            except Exception as exc:  # an engine bug must not stop the stream
                states.forget(cid)
                result.failures.append(Failure(index, "engine_error",
                                               f"{type(exc).__name__}: {exc}"))
                continue
            states.put(cid, step.state)
            if step.note == "duplicate":
                result.duplicates += 1
                continue
            if step.note == "late":
                result.late += 1
            result.processed += 1
            result.outputs.extend(step.outputs)
            clock.due.arm(cid, engine.next_deadline(step.state))
            moved = clock.advance(item.at_ms - lateness)
            deadline = clock.due.deadline_of(cid)
            if moved or (deadline is not None and deadline <= clock.watermark_ms):
                self._fire_due(clock, states, result)
        return result

    def _fire_due(self, clock: PartitionClock, states: StateCache, result: BatchResult) -> None:
        engine = self.engine
        for cid in clock.due.pop_due(clock.watermark_ms):
            try:
                state = states.get(cid)
            except StateUnreadableError:
                continue
            if state is None:
                continue
            result.detections_due += 1
            try:
                step = engine.on_time(state, clock.watermark_ms)
            except Exception as exc:
                states.forget(cid)
                result.detection_errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if step.outputs:
                result.outputs.extend(step.outputs)
                states.put(cid, step.state)
            clock.due.arm(cid, engine.next_deadline(step.state))
