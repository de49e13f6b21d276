"""Input offsets are committed here, and only here, behind the delivery barrier.

Faust's own offset bookkeeping is switched off for the input topics (they are declared
with `acks=False`, journey/stream/worker.py), because in faust-streaming 0.15.3 it
commits offsets whose records were never processed:

- a message fetched before a rebalance and dropped after it (`Stream._py_aiter` skips a
  message of an older generation, or one that arrives while flow control is off) is
  acknowledged all the same, whatever `noack()` says; its offset then counts as done,
  and the next commit moves past it while the re-fetched copy still waits to be processed;
- `Consumer._new_offset` commits past a single unacknowledged message at the head of a
  partition (`min(acked) - committed > 1`), and skips that check entirely while nothing
  has been committed yet.

Either way a kill soon after such a commit loses input: the next owner starts past it.
Instead, the barrier hands over the input it acknowledges (all of it processed, its
outputs and states confirmed), and this commits, per partition, the offset after the last
of it. A partition no longer assigned is left to its new owner, which replays from the
last committed offset; a commit that fails is retried by the next flush.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)


class OffsetCommitter:
    """The barrier's acknowledgement in the worker: commit what it confirmed."""

    def __init__(self, app: Any) -> None:
        self._app = app
        #: per partition, the next offset to commit (one past the last confirmed record)
        self._pending: dict[TP, int] = {}
        #: per partition, the last offset committed by this worker while it owned it
        self._committed: dict[TP, int] = {}
        self.failures = 0

    @property
    def pending(self) -> dict[TP, int]:
        return dict(self._pending)

    async def __call__(self, held: Sequence[tuple[int, Any]]) -> None:
        pending = self._pending
        for _, event in held:
            message = event.message
            after = message.offset + 1
            if after > pending.get(message.tp, -1):
                pending[message.tp] = after
        if pending:
            await self.commit()

    async def commit(self) -> bool:
        """Commit the pending offsets of partitions still assigned; forget the others."""
        consumer = self._app.consumer
        assigned = consumer.assignment()
        self._committed = {tp: o for tp, o in self._committed.items() if tp in assigned}
        offsets = {tp: offset for tp, offset in self._pending.items()
                   if tp in assigned and offset > self._committed.get(tp, -1)}
        self._pending = {}
        if not offsets:
            return True
        # Faust's consumer, straight to aiokafka's commit (with its retries); False when the
        # group rebalanced meanwhile. Faust's commit() would add its own acked offsets.
        if await consumer._commit(offsets):
            self._committed.update(offsets)
            return True
        self.failures += 1
        log.info("an offset commit was refused (the group is rebalancing); the offsets "
                 "are committed by the next flush if the partitions are still assigned")
        for tp, offset in offsets.items():
            if offset > self._pending.get(tp, -1):
                self._pending[tp] = offset
        return False
