"""Which partitions this worker owns, and what follows when that changes: partitions given
away are forgotten at once (their held input, outputs, live states, clocks and gauges);
newly assigned ones get their due index and counts rebuilt from the stored states, a
slice at a time with the event loop let run between slices, so a partition of a million
customers never holds the loop (and the consumer's heartbeats) for long.

A partition is lost three ways: Faust's partitions-assigned signal of a new generation
(`on_assigned`), the assignment read before each batch (`on_assignment`), and the
barrier's word that its producer was fenced (`on_fenced`), which keeps it away until the
group assigns it again. Each loss is counted (`losses`), so a batch that awaited the
broker can tell whether a partition went meanwhile, even if it came back (`kept_since`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust

from journey.pipeline.barrier import DeliveryBarrier
from journey.pipeline.core import Pipeline
from journey.pipeline.metrics import Metrics
from journey.pipeline.stateindex import Rebuild, StateIndex
from journey.stream.continuity import Continuity
from journey.stream.tables import Channels, StoreView

log = logging.getLogger(__name__)


@dataclass
class Ownership:
    """The partitions this worker owns and what it keeps of each."""

    app: faust.App
    channels: Channels
    pipeline: Pipeline
    barrier: DeliveryBarrier
    metrics: Metrics
    continuity: Continuity
    store: StoreView | None = None
    rebuild_slice: int = 5000
    owned: frozenset[int] = frozenset()
    #: owned partitions whose due index and counts are rebuilt: readiness waits for all
    indexed: frozenset[int] = frozenset()
    #: customers with state per owned partition: counted at the rebuild, then as new ones
    #: appear (StateCache.take_created), never by scanning the store
    tracked: dict[int, int] = field(default_factory=dict)
    #: how many times each partition was given away
    losses: dict[int, int] = field(default_factory=dict)
    #: partitions whose writes were fenced (another worker owns them now) since the last
    #: assignment: not taken back until the group says so again
    fenced: set[int] = field(default_factory=set)
    #: seconds a fenced partition may stay without an assignment before the worker stops
    fence_grace_s: float = 60.0
    #: assignments begun (forget_all), so a fence can tell whether one followed it
    assignments: int = 0
    _assigning: asyncio.Lock = field(default_factory=asyncio.Lock)
    _stopping: asyncio.Future[None] | None = None

    def kept_since(self) -> Callable[[int], bool]:
        """A test of whether a partition owned now is still owned, and was never given
        away in between, whenever it is asked."""
        start = {p: self.losses.get(p, 0) for p in self.owned}
        losses = self.losses

        def kept(partition: int) -> bool:
            return start.get(partition, -1) == losses.get(partition, 0)

        return kept

    def unindexed(self) -> frozenset[int]:
        """Partitions assigned to this worker whose due index is not rebuilt yet (being
        rebuilt, or waiting for the next on_assignment): it cannot serve them in full."""
        return self.assignment() - self.indexed

    def assignment(self) -> frozenset[int]:
        topics = {self.channels.touchpoints.get_topic_name(),
                  self.channels.events.get_topic_name()}
        return frozenset(tp.partition for tp in self.app.assignor.assigned_actives()
                         if tp.topic in topics and tp.partition not in self.fenced)

    def on_fenced(self, partition: int) -> None:
        """The barrier's word that another worker owns `partition` now (its producer was
        fenced): forget it at once, as if revoked, until the next assignment. If no
        assignment comes (the broker aborted a transaction left open past its timeout, and
        nobody else owns the partition), the worker stops after `fence_grace_s`, so its
        restart takes the partition up again instead of leaving it unprocessed."""
        self.fenced.add(partition)
        if partition in self.owned:
            self._give_away(frozenset({partition}))
            self.set_gauges()
        asyncio.get_running_loop().call_later(
            self.fence_grace_s, self._still_fenced, partition, self.assignments)

    def _still_fenced(self, partition: int, assignments: int) -> None:
        if partition not in self.fenced or self.assignments != assignments:
            return  # an assignment came: the group has moved on
        log.critical("partition %d was fenced %.0fs ago and no assignment followed; "
                     "stopping, so that the restart takes it up again", partition,
                     self.fence_grace_s)
        self._stopping = asyncio.ensure_future(self.app.crash(RuntimeError(
            f"partition {partition} fenced with no assignment following")))

    def forget_all(self) -> None:
        """A new assignment is about to be recovered: forget what is kept of every
        partition (held work, live states, clocks), as if all were given away. A worker
        cannot tell from its own assignment whether a partition it keeps was another's in
        between (a freeze past its session timeout), so nothing it remembers is trusted;
        the rebuild reads the store, which recovery brings up to the changelog."""
        self.assignments += 1
        if self.owned:
            self._give_away(self.owned)
            self.set_gauges()

    async def on_assignment(self) -> None:
        """After recovery or a rebalance: forget the partitions now elsewhere, and rebuild
        the due index and counts of each newly assigned one from its stored states. The
        clocks and indexes of partitions kept are left as they are."""
        # Always under the lock: the other agent must wait until a rebuild is done, not
        # only notice that the assignment was already taken in.
        async with self._assigning:
            # Not while a rebalance is under way: its partitions' stores are not recovered.
            while not self.app.rebalancing and (owned := self.assignment()) != self.owned:
                gained = sorted(owned - self.owned)
                self._give_away(self.owned - owned)
                self.owned = owned
                self.continuity.reset()  # reading starts at the committed offsets again
                for partition in gained:
                    await self._rebuild(partition)
                self.set_gauges()
                log.info("partitions %s: %d customers tracked, %d armed", sorted(owned),
                         sum(self.tracked.values()), self._armed())

    def on_assigned(self, assigned: Any) -> None:
        """Faust's partitions-assigned signal, once per generation: forget at once every
        partition this generation took away. A partition lost and regained between two
        batches would otherwise keep its live states and due index from before, while
        another worker went on changing its customers."""
        topics = {self.channels.touchpoints.get_topic_name(),
                  self.channels.events.get_topic_name()}
        now = frozenset(tp.partition for tp in assigned if tp.topic in topics)
        self.fenced.clear()  # this generation's producers were started for it (FencingTableManager)
        if self.owned - now:
            self._give_away(self.owned - now)
            self.set_gauges()

    def _give_away(self, lost: frozenset[int]) -> None:
        """Forget partitions now elsewhere. Their held input and their states go together,
        both dropped: no state is written for input left unacknowledged, and no input is
        acknowledged whose state was dropped; the new owner replays both."""
        if not lost:
            return
        self.owned = self.owned - lost
        self.indexed = self.indexed - lost
        self.continuity.reset(lost)
        for partition in lost:
            self.losses[partition] = self.losses.get(partition, 0) + 1
        dropped = self.barrier.forget_partitions(self.owned)
        self.pipeline.states.keep_partitions(self.owned)
        self.pipeline.processor.keep_partitions(self.owned)
        log.info("partitions %s given away (%d unacknowledged records dropped); %s kept",
                 sorted(lost), dropped, sorted(self.owned))
        populations = self.metrics.populations
        for partition in lost:
            self.tracked.pop(partition, None)
            populations.drop_partition(partition)
            for topic in (self.channels.touchpoints.get_topic_name(),
                          self.channels.events.get_topic_name()):
                self.metrics.forget_lag(topic, partition)

    async def _rebuild(self, partition: int) -> None:
        """Re-arm one partition's due index and recount it, a slice at a time. Its live
        states were dropped when it was last given away, so the store is the truth. Each
        state's deadline and position come from the entry stored at its front, decoding
        only the states without a valid one (journey/pipeline/stateindex.py); a RocksDB
        store keeps those entries apart too, and then only they are read."""
        started = time.perf_counter()
        clock = self.pipeline.processor.reset_partition(partition)
        populations = self.metrics.populations
        populations.reset_partition(partition, ())
        index = self.pipeline.states.index or StateIndex(self.pipeline.processor.engine)
        rebuild = Rebuild(index, partition, clock.due, populations)
        # The entries kept apart from the states when the store has them complete, else
        # the states themselves (journey/stream/indexfamily.py).
        apart, states = (self.store.rebuild_items(partition) if self.store is not None
                         else (None, iter(())))
        items, full = apart or (states, None)
        for _ in rebuild.run(items, self.rebuild_slice, full):
            await asyncio.sleep(0)
            if partition not in self.owned:  # taken away meanwhile (on_assigned)
                break
        if partition not in self.owned:
            # Given away while the rebuild yielded: _give_away has forgotten it already.
            populations.drop_partition(partition)
            self.pipeline.processor.keep_partitions(self.owned)
            return
        self.tracked[partition] = rebuild.count
        self.indexed = self.indexed | {partition}
        seconds = time.perf_counter() - started
        self.metrics.index_rebuild_seconds.observe(seconds)
        log.info("partition %d: due index rebuilt from %d stored %s in %.2fs (%d armed, "
                 "%d decoded in full%s)", partition, rebuild.count,
                 "states" if apart is None else "index entries", seconds, len(clock.due),
                 rebuild.decoded,
                 f", {rebuild.unreadable} unreadable" if rebuild.unreadable else "")

    def _armed(self) -> int:
        return sum(len(c.due) for c in self.pipeline.processor.clocks.values())

    def set_gauges(self) -> None:
        tracked = self.tracked
        for partition, created in self.pipeline.states.take_created().items():
            if partition in tracked:
                tracked[partition] += created
        self.metrics.customers_tracked.set(sum(tracked.values()))
        self.metrics.customers_armed.set(self._armed())
