"""Input reaches the pipeline without a hole: per partition, from the group's committed offset
on, every record in offset order.

Faust can drop records on their way to an agent without a trace (it clears the agent
queues when a table recovery ends; docs/faust.md), while the consumer's position is
already past them.

So the shell checks each record against the next offset it expects, which starts at the
group's committed offset (or the first offset in the log) after every assignment:

- the expected offset: processed, and the next one is expected;
- below it: read again (processed already, or committed by the group): skipped;
- beyond it: a hole. The missing records are read straight from the broker, with a client
  of our own (journey/stream/reader.py), and processed first, in order; then this one.
  Offsets in the hole that hold no record are simply not returned: the markers that end
  every transaction the worker writes to its internal events topic, records of aborted
  transactions, records removed by compaction.

Holes are logged and counted (journey_input_refetched_total), so a lossy consumer shows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)

#: The group's committed offset of a partition (None when nothing is committed).
Committed = Callable[[TP], Awaitable[int | None]]
#: The first offset still in a partition's log.
Earliest = Callable[[TP], Awaitable[int]]
#: The records of a partition from offset `start` up to, not including, `end`, in order.
ReadRange = Callable[[TP, int, int], Awaitable[Sequence["Refetched"]]]


@dataclass(frozen=True, slots=True)
class RefetchedMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class Refetched:
    """A record read straight from the broker, shaped like the Faust event the shell takes."""

    message: RefetchedMessage
    headers: Any = None


class Continuity:
    def __init__(self, committed: Committed, earliest: Earliest, read_range: ReadRange,
                 on_refetched: Callable[[int], None] = lambda n: None) -> None:
        self._committed = committed
        self._earliest = earliest
        self._read_range = read_range
        self._on_refetched = on_refetched
        self._expected: dict[TP, int] = {}

    def reset(self, partitions: Iterable[int] | None = None) -> None:
        """After a rebalance: the group's committed offsets are the starting points again,
        for every partition or for those named."""
        if partitions is None:
            self._expected.clear()
            return
        lost = set(partitions)
        self._expected = {tp: o for tp, o in self._expected.items() if tp.partition not in lost}

    async def admit(self, tp: TP, offset: int) -> Sequence[Refetched] | None:
        """None to skip the record at `offset` of `tp`; else the records missing before it
        (usually none), to process first."""
        expected = self._expected.get(tp)
        if expected is None:
            expected = self._expected[tp] = await self._start(tp)
        if offset < expected:
            return None  # read again: processed already, or before the committed offset
        missing: Sequence[Refetched] = ()
        if offset > expected:
            missing = await self._read_range(tp, expected, offset)
            if missing:
                log.warning("input %s[%d]: the consumer handed over offset %d where %d was "
                            "expected; %d missing records read from the broker and "
                            "processed first", tp.topic, tp.partition, offset, expected,
                            len(missing))
                self._on_refetched(len(missing))
            else:  # transaction markers, aborted or compacted records: nothing is missing
                log.debug("input %s[%d]: offsets %d to %d hold no committed record",
                          tp.topic, tp.partition, expected, offset - 1)
        self._expected[tp] = offset + 1
        return missing

    async def _start(self, tp: TP) -> int:
        committed = await self._committed(tp)
        if committed is not None and committed >= 0:
            start, whence = committed, "the committed offset"
        else:
            start, whence = await self._earliest(tp), "the start of the log"
        log.info("input %s[%d]: reading from offset %d, %s", tp.topic, tp.partition, start,
                 whence)
        return start
