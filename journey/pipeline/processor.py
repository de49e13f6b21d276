"""Batch processing, free of Faust: the same code runs in the worker, in the in-process run
and in benchmarks.

Items are decoded events and ticks, each with the partition it belongs to. Events and ticks
are applied in order per partition, detections fire as each partition's watermark passes
deadlines, and every changed customer is marked in the StateCache, which writes it behind
(once per flush, not per event). A failure on one event (an engine error, a stored state
this worker cannot read) is reported for that item and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import orjson

from journey.engine import CustomerState, Engine, Event, Output
from journey.engine.vocabulary import ERASURE_REQUESTED
from journey.pipeline.lift import LIFT_WINDOW_MS, Count, LiftTracker, holdout_configured
from journey.pipeline.stateindex import StateIndex, encode
from journey.pipeline.timekeeping import PartitionClock, partition_of


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed on a source: every record it wrote before `at_ms` has been read."""

    at_ms: int
    source: int


Item = Event | Tick


@dataclass(frozen=True, slots=True)
class Erasure:
    """A customer was erased: the router writes a CustomerErased record for it."""

    customer_id: str
    event_id: str
    at_ms: int
    channel: str | None
    pending_dropped: int


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
    erasures: list[Erasure] = field(default_factory=list)
    #: events of an erased customer dated at or before the erasure, dropped
    dropped_erased: int = 0
    failures: list[Failure] = field(default_factory=list)
    processed: int = 0
    duplicates: int = 0
    late: int = 0
    ticks: int = 0
    bad_ticks: int = 0  # malformed ticks are counted where ticks are decoded (the core)
    detections_due: int = 0
    #: customers whose detection raised (their live state is dropped, the store's kept)
    detection_errors: list[str] = field(default_factory=list)
    #: live holdout lift: (journey, rule, arm, "assigned" or "converted"), one per customer
    lift: list[Count] = field(default_factory=list)


Read = Callable[[bytes], bytes | None]

#: The key under which a stored state carries the input offsets it has applied.
SOURCES_KEY = "_applied_offsets"
#: Input paths a customer's records arrive by: its touchpoints partition (one hop), and its
#: partition of the internal events topic (re-keyed).
TOUCHPOINTS, EVENTS = 0, 1


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
        read_marker: Read | None = None,
        count_created: bool = False,
        index: StateIndex | None = None,
    ) -> None:
        """`position`: when given, `before` holds each customer's position as first read
        since the last `take_before()` (the engine changes live states in place).
        `count_created`: remember new customers for `take_created()` (the caller must
        then call it regularly). `index`: when given, every state written carries its
        entry for the due index rebuild (journey.pipeline.stateindex)."""
        self._read = read
        self.index = index
        self.partitions = partitions
        self.max_clean = max_clean
        self.live: dict[str, CustomerState] = {}
        self.dirty: set[str] = set()
        self._position = position
        self.before: dict[str, object] = {}
        #: per customer, the offset of the last record applied on each input path
        self.applied: dict[str, list[int]] = {}
        # Erasure (GDPR art. 17): erased customers whose tombstone the store has not applied
        # yet, and erasure markers (customer -> erased_at ms) known here or to be written.
        self._read_marker = read_marker
        self.tombstoned: set[str] = set()
        self._tombstones_taken: set[str] = set()
        self.markers: dict[str, int] = {}
        self.new_markers: set[str] = set()
        # Tracked-customer counting without a scan (count_created): customers read and
        # found nowhere (new unless never put), those that then appeared, and stored
        # customers erased since the last take_created().
        self._count_created = count_created
        self._absent: set[str] = set()
        self._created: set[str] = set()
        self._erased: set[str] = set()

    def get(self, customer_id: str) -> CustomerState | None:
        state = self.live.get(customer_id)
        if state is None:
            # An erased customer has no state, whether or not the store has its tombstone.
            stored = None if customer_id in self.tombstoned else self._read(customer_id.encode())
            if stored is not None:
                try:
                    raw = orjson.loads(stored)
                    applied = raw.pop(SOURCES_KEY, None)
                    state = CustomerState.from_dict(raw)
                except Exception as exc:
                    raise StateUnreadableError(f"{type(exc).__name__}: {exc}") from None
                self.live[customer_id] = state
                if isinstance(applied, list) and len(applied) == 2:
                    self.applied[customer_id] = [int(applied[0]), int(applied[1])]
            elif self._count_created:
                self._absent.add(customer_id)
        if self._position is not None and customer_id not in self.before:
            self.before[customer_id] = self._position(state)
        return state

    def peek(self, customer_id: str) -> CustomerState | None:
        """The newest state, for a reader outside the pipeline (the web API): the live one,
        else the stored one; None when erased. Changes nothing here."""
        state = self.live.get(customer_id)
        if state is not None or customer_id in self.tombstoned:
            return state
        stored = self._read(customer_id.encode())
        if stored is None:
            return None
        try:
            return CustomerState.from_bytes(stored)
        except Exception as exc:
            raise StateUnreadableError(f"{type(exc).__name__}: {exc}") from None

    def erase(self, customer_id: str, at_ms: int) -> CustomerState | None:
        """Erase a customer: the live state goes, a tombstone is written at the next flush,
        and a marker (id and erased_at only) keeps events dated at or before at_ms from
        bringing the profile back. Returns the state erased, if any."""
        existed = True
        try:
            state = self.get(customer_id)  # remembers the position before (populations)
            existed = state is not None
        except StateUnreadableError:
            state = None  # unreadable or not, it is erased all the same
        if self._count_created:
            self._absent.discard(customer_id)
            if customer_id in self._created:
                self._created.discard(customer_id)  # appeared and went in one stretch
            elif existed:
                self._erased.add(customer_id)
        self.live.pop(customer_id, None)
        self.dirty.add(customer_id)
        self.tombstoned.add(customer_id)
        self.markers[customer_id] = max(at_ms, self.erased_at(customer_id) or at_ms)
        self.new_markers.add(customer_id)
        return state

    def erased_at(self, customer_id: str) -> int | None:
        """Event time of the customer's latest erasure, or None."""
        at = self.markers.get(customer_id)
        if at is None and self._read_marker is not None:
            raw = self._read_marker(customer_id.encode())
            if raw is not None:
                at = self.markers[customer_id] = int(raw)
        return at

    def take_markers(self) -> list[tuple[str, int, bytes]]:
        """(customer, partition, erased_at ms as ASCII digits) of new markers, once."""
        taken = [(cid, partition_of(cid.encode(), self.partitions),
                  str(self.markers[cid]).encode()) for cid in self.new_markers]
        self.new_markers = set()
        return taken

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
        """Per partition, how many customers appeared (first put after a read found no
        state) less how many stored ones were erased, since the last call: tracked-customer
        counts follow without a scan of the store."""
        counts: dict[int, int] = {}
        partitions = self.partitions
        for cid in self._created:
            partition = partition_of(cid.encode(), partitions)
            counts[partition] = counts.get(partition, 0) + 1
        for cid in self._erased:
            partition = partition_of(cid.encode(), partitions)
            counts[partition] = counts.get(partition, 0) - 1
        self._created = set()
        self._erased = set()
        self._absent.clear()
        return {p: n for p, n in counts.items() if n}

    def forget(self, customer_id: str) -> None:
        """Drop a live state (after an engine error left it half-changed): the next read
        comes from the store, the last state written."""
        self.live.pop(customer_id, None)
        self.applied.pop(customer_id, None)
        self.dirty.discard(customer_id)
        self._absent.discard(customer_id)
        self._created.discard(customer_id)  # never written: not a customer after all

    def seen(self, customer_id: str, path: int, offset: int) -> bool:
        """Whether this customer's state already reflects the record at `offset` of its
        partition on `path`: a record replayed after a crash, from before the state was
        written, whatever its event time (event ids are remembered only for a while)."""
        self.get(customer_id)
        applied = self.applied.get(customer_id)
        return applied is not None and offset <= applied[path]

    def mark(self, customer_id: str, path: int, offset: int) -> None:
        """The record at `offset` on `path` is now reflected in this customer's state."""
        applied = self.applied.get(customer_id)
        if applied is None:
            applied = self.applied[customer_id] = [-1, -1]
        if offset > applied[path]:
            applied[path] = offset

    def take_dirty(self) -> list[tuple[str, int, bytes | None]]:
        """(customer, partition, state bytes) of every changed customer, once; None (a
        tombstone) for an erased one."""
        live = self.live
        taken = [(cid, partition_of(cid.encode(), self.partitions),
                  self._encode(cid) if cid in live else None)
                 for cid in self.dirty]
        self._tombstones_taken = {cid for cid, _, value in taken if value is None}
        self.dirty = set()
        return taken

    def _encode(self, customer_id: str) -> bytes:
        state = self.live[customer_id]
        doc = state.to_dict()
        applied = self.applied.get(customer_id)
        if applied is not None:
            doc[SOURCES_KEY] = applied
        return encode(doc, None if self.index is None else self.index.entry(state))

    def trim(self) -> None:
        # The tombstones taken by the flush that calls this are in the store now.
        if self._tombstones_taken:
            self.tombstoned -= {c for c in self._tombstones_taken if c not in self.dirty}
            self._tombstones_taken = set()
        excess = len(self.live) - len(self.dirty) - self.max_clean
        if excess <= 0:
            return
        for cid in [c for c in self.live if c not in self.dirty][:excess]:
            del self.live[cid]
            self.applied.pop(cid, None)

    def keep_partitions(self, owned: Iterable[int]) -> None:
        keep = set(owned)
        self.live = {c: s for c, s in self.live.items()
                     if partition_of(c.encode(), self.partitions) in keep}
        # Erasures of partitions given away go with their unacknowledged input: the new
        # owner applies the erasure_requested event again.
        self.tombstoned = {c for c in self.tombstoned
                           if partition_of(c.encode(), self.partitions) in keep}
        self.dirty = {c for c in self.dirty if c in self.live or c in self.tombstoned}
        self.markers = {c: at for c, at in self.markers.items()
                        if partition_of(c.encode(), self.partitions) in keep}
        self.new_markers = {c for c in self.new_markers if c in self.markers}
        self.applied = {c: a for c, a in self.applied.items() if c in self.live}
        if self._count_created:
            def kept(cids: set[str]) -> set[str]:
                return {c for c in cids if partition_of(c.encode(), self.partitions) in keep}
            self._absent, self._created = kept(self._absent), kept(self._created)
            self._erased = kept(self._erased)


class BatchProcessor:
    """Applies batches of items to state; owns the per-partition clocks."""

    def __init__(self, engine: Engine, *, allowed_lateness_ms: int, sources: int = 1,
                 lift_window_ms: int = LIFT_WINDOW_MS) -> None:
        """`sources`: how many tick sources a partition's clock waits for; the live lift
        (journey.pipeline.lift) is followed when the engine holds customers out."""
        self.engine = engine
        self.allowed_lateness_ms = allowed_lateness_ms
        self.sources = sources
        self.clocks: dict[int, PartitionClock] = {}
        self.lift = LiftTracker(lift_window_ms) if holdout_configured(engine) else None

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
        from the stored states (journey/stream/ownership.py rebuilds it in slices)."""
        clock = self.clocks[partition] = PartitionClock(self.sources)
        return clock

    def process(self, items: Sequence[tuple[int, Item]], states: StateCache) -> BatchResult:
        """Apply (partition, item) pairs in order; changed customers are put in `states`."""
        result = BatchResult()
        for _ in self.run(items, states, result):
            pass
        return result

    def run(
        self, items: Sequence[tuple[int, Item]], states: StateCache, result: BatchResult,
        *, due_slice: int = 0,
    ) -> Iterator[None]:
        """`process`, filling `result`, as a generator that pauses after every `due_slice`
        due detections of one burst (0: never pauses), so that a worker can let its event
        loop run while a tick makes many customers due. The caller must not touch the
        processor or the states before it resumes; the outputs are then exactly those of
        `process`, in the same order."""
        engine = self.engine
        lateness = self.allowed_lateness_ms
        for index, (partition, item) in enumerate(items):
            clock = self.clock(partition)
            if isinstance(item, Tick):
                result.ticks += 1
                if clock.observe_tick(item.at_ms, item.source):
                    yield from self._fire_due(clock, states, result, due_slice)
                continue
            cid = item.customer_id
            erased_at = states.erased_at(cid)
            if erased_at is not None and item.at_ms <= erased_at:
                result.dropped_erased += 1  # it would bring the erased profile back
                continue
            if item.type == ERASURE_REQUESTED:
                self._erase(clock, states, item, result)
                continue
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
            if self.lift is not None:
                self.lift.observe(step.state, step.outputs,
                                  item.at_ms if item.type == "purchase" else None, result.lift)
            clock.due.arm(cid, engine.next_deadline(step.state))
            moved = clock.advance(item.at_ms - lateness)
            deadline = clock.due.deadline_of(cid)
            if moved or (deadline is not None and deadline <= clock.watermark_ms):
                yield from self._fire_due(clock, states, result, due_slice)

    @staticmethod
    def _erase(clock: PartitionClock, states: StateCache, event: Event,
               result: BatchResult) -> None:
        cid = event.customer_id
        erased = states.erase(cid, event.at_ms)
        clock.due.arm(cid, None)
        result.erasures.append(Erasure(cid, event.event_id, event.at_ms, event.channel,
                                       0 if erased is None else len(erased.pending)))

    def _fire_due(self, clock: PartitionClock, states: StateCache, result: BatchResult,
                  due_slice: int) -> Iterator[None]:
        engine = self.engine
        watermark = clock.watermark_ms
        # Everything due is taken at once: a customer re-armed below with a deadline
        # already passed fires at the next burst, however this one is sliced.
        for n, cid in enumerate(clock.due.pop_due(watermark)):
            if due_slice and n and n % due_slice == 0:
                yield
            try:
                state = states.get(cid)
            except StateUnreadableError:
                continue
            if state is None:
                continue
            result.detections_due += 1
            try:
                step = engine.on_time(state, watermark)
            except Exception as exc:
                states.forget(cid)
                result.detection_errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if step.outputs:
                result.outputs.extend(step.outputs)
                if self.lift is not None:
                    self.lift.observe(step.state, step.outputs, None, result.lift)
                states.put(cid, step.state)
            clock.due.arm(cid, engine.next_deadline(step.state))
