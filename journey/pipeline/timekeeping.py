"""Event-time keeping for the worker: tick records, per-partition watermarks, the due index.

Time advances only by records in the log. Each worker periodically appends a tick (the
wall-clock time at which it was written) to every partition it owns of the *touchpoints*
topic, so the tick queues behind the raw backlog. The ingest agent forwards each tick, in
order, to every partition of the events topic, marked with the touchpoints partition it
came from. An events partition receives from all touchpoints partitions, so its tick time
is the minimum over those sources of the latest tick from each: only then has everything
written before that time, anywhere, been processed. The watermark of an events partition
is the largest of that tick time and (event time - allowed lateness); a customer's
detection fires when the watermark passes the customer's deadline. Duplicate or missing
ticks are harmless: the watermark only moves forward, and the next round catches up.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from functools import lru_cache

import orjson
from kafka.partitioner.default import murmur2

#: Header marking a tick record on the events topic.
TICK_HEADER = "journey-kind"
TICK_VALUE = b"tick"


def encode_tick(at_ms: int, worker: str, source: int | None = None) -> bytes:
    doc: dict[str, object] = {"tick_ms": at_ms, "worker": worker}
    if source is not None:
        doc["source"] = source
    return orjson.dumps(doc)


def decode_tick(value: bytes) -> tuple[int, int]:
    """(time, source partition) of a tick; raises ValueError on a malformed tick."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"a tick is JSON: {exc}") from None
    at = doc.get("tick_ms") if isinstance(doc, dict) else None
    if not isinstance(at, int) or isinstance(at, bool) or at < 0:
        raise ValueError("a tick carries a non-negative integer tick_ms")
    source = doc.get("source", 0)
    if not isinstance(source, int) or isinstance(source, bool) or source < 0:
        raise ValueError("a tick's source is a partition number")
    return at, source


def is_tick(headers: object) -> bool:
    """Whether record headers (a mapping, or a list of (name, value) pairs) mark a tick."""
    if isinstance(headers, dict):
        value = headers.get(TICK_HEADER)
        return value == TICK_VALUE or value == TICK_VALUE.decode()
    if isinstance(headers, list | tuple):
        return any(pair[0] == TICK_HEADER and pair[1] == TICK_VALUE for pair in headers)
    return False


@lru_cache(maxsize=1 << 16)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, as the Java client).
    Cached: murmur2 is pure Python, and the same customers' keys come back batch after
    batch."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


@dataclass
class DueIndex:
    """Customers by deadline: arming is O(log n), and popping what is due costs in
    proportion to the customers due, not to all customers tracked.

    Re-arming a customer leaves its old heap entry behind; entries are checked against the
    armed deadline when popped, and the heap is compacted when stale entries dominate.
    """

    _heap: list[tuple[int, str]] = field(default_factory=list)
    _armed: dict[str, int] = field(default_factory=dict)

    def arm(self, customer_id: str, deadline_ms: int | None) -> None:
        if deadline_ms is None:
            self._armed.pop(customer_id, None)
            return
        if self._armed.get(customer_id) == deadline_ms:
            return
        self._armed[customer_id] = deadline_ms
        heapq.heappush(self._heap, (deadline_ms, customer_id))
        if len(self._heap) > 2 * len(self._armed) + 1024:
            self._compact()

    def arm_many(self, deadlines: list[tuple[int, str]]) -> None:
        """`arm` for many (deadline, customer) pairs at once, as a rebuild does: one heapify
        instead of a push per customer. A customer given twice keeps the last deadline."""
        armed = self._armed
        for deadline_ms, customer_id in deadlines:
            armed[customer_id] = deadline_ms
        self._heap.extend(deadlines)
        heapq.heapify(self._heap)

    def pop_due(self, watermark_ms: int) -> list[str]:
        """Customers whose deadline is at or before the watermark, in deadline order."""
        due: list[str] = []
        heap, armed = self._heap, self._armed
        while heap and heap[0][0] <= watermark_ms:
            deadline, customer_id = heapq.heappop(heap)
            if armed.get(customer_id) == deadline:
                del armed[customer_id]
                due.append(customer_id)
        return due

    def deadline_of(self, customer_id: str) -> int | None:
        return self._armed.get(customer_id)

    def clear(self) -> None:
        self._heap.clear()
        self._armed.clear()

    def _compact(self) -> None:
        self._heap = [(d, c) for c, d in self._armed.items()]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._armed)


@dataclass
class PartitionClock:
    """The event-time clock and the due index of one events partition."""

    sources: int = 1
    watermark_ms: int = 0
    due: DueIndex = field(default_factory=DueIndex)
    latest_tick: dict[int, int] = field(default_factory=dict)

    def advance(self, candidate_ms: int) -> bool:
        """Move the watermark forward to candidate_ms; True when it moved."""
        if candidate_ms > self.watermark_ms:
            self.watermark_ms = candidate_ms
            return True
        return False

    def observe_tick(self, at_ms: int, source: int) -> bool:
        """Record a tick from one source partition; the ticks move the watermark only to
        the oldest of the latest tick of every source. True when the watermark moved."""
        if at_ms <= self.latest_tick.get(source, -1):
            return False
        self.latest_tick[source] = at_ms
        if len(self.latest_tick) < self.sources:
            return False
        return self.advance(min(self.latest_tick.values()))
