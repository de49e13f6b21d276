"""Input reaches the pipeline without a hole: per partition, from the group's committed offset
on, every record in offset order, or the worker seeks back and reads it again.

faust-streaming 0.15.3 can drop a record on its way to an agent, without a trace: the fault
suite caught a restarted worker whose first record of a partition was the one after the
committed offset (tests/fault, random kills). Processing on from there would move the next
commit past a record never applied, and lose it. So the shell checks each record against the
next offset it expects, which starts at the committed offset after every assignment:

- the expected offset: admitted, and the next one is expected;
- below it: read again after a seek (already processed, or committed by the group): skipped;
- beyond it: a hole. The record is not processed, the consumer is sought back to the
  expected offset, and records still queued from before the seek are passed over. If the
  re-read starts beyond the expected offset again, the hole holds no records (transaction
  markers, compaction) and reading goes on from there.

Holes are logged and counted (journey_input_rereads_total), so a lossy consumer shows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from faust.types import TP

log = logging.getLogger(__name__)

#: The group's committed offsets of these partitions (None where nothing is committed).
Committed = Callable[[set[TP]], Awaitable[dict[TP, int | None]]]
#: The first offset still in the log, per partition.
Earliest = Callable[[set[TP]], Awaitable[dict[TP, int]]]
#: Move the consumer's position of a partition.
Seek = Callable[[TP, int], Awaitable[None]]


@dataclass
class _Partition:
    expected: int
    #: set while a seek back is under way: the highest offset passed over since
    seeking_past: int | None = None


class Continuity:
    def __init__(self, committed: Committed, earliest: Earliest, seek: Seek,
                 on_reread: Callable[[], None] = lambda: None) -> None:
        self._committed = committed
        self._earliest = earliest
        self._seek = seek
        self._on_reread = on_reread
        self._partitions: dict[TP, _Partition] = {}

    def reset(self) -> None:
        """After a rebalance: the group's committed offsets are the starting points again."""
        self._partitions.clear()

    async def admit(self, tp: TP, offset: int) -> bool:
        """Whether to process the record at `offset` of `tp` now."""
        state = self._partitions.get(tp)
        if state is None:
            state = self._partitions[tp] = _Partition(await self._start(tp))
        expected = state.expected
        if offset == expected:
            state.expected = offset + 1
            state.seeking_past = None
            return True
        if offset < expected:
            return False  # read again: processed already, or before the committed offset
        if state.seeking_past is None:
            log.warning("input %s[%d]: expected offset %d, got %d; reading again from %d",
                        tp.topic, tp.partition, expected, offset, expected)
            self._on_reread()
            state.seeking_past = offset
            await self._seek(tp, expected)
            return False
        if offset <= state.seeking_past:
            # The re-read started, beyond the expected offset: nothing is stored there.
            log.info("input %s[%d]: offsets %d to %d hold no records; going on from %d",
                     tp.topic, tp.partition, expected, offset - 1, offset)
            state.expected = offset + 1
            state.seeking_past = None
            return True
        state.seeking_past = offset  # still queued from before the seek
        return False

    async def _start(self, tp: TP) -> int:
        committed = (await self._committed({tp})).get(tp)
        if committed is not None and committed >= 0:
            return committed
        return (await self._earliest({tp}))[tp]
