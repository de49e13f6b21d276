"""The delivery barrier: per partition, outputs, states and input offsets are written as one
unit, states reach the local store only after that unit is committed, a failed unit is
retried whole until it succeeds, and a fenced partition writes nothing more."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from journey.contract.topics import Topics
from journey.engine import CustomerState
from journey.pipeline.barrier import DeliveryBarrier, FatalWriteError, FencedError
from journey.pipeline.processor import StateCache
from journey.pipeline.routing import Outgoing, Router
from journey.pipeline.timekeeping import partition_of

TOPICS = Topics.named(prefix="t-", partitions=2)
ROUTER = Router(TOPICS)
TP_TOPIC = TOPICS.touchpoints.name


@dataclass
class Meta:
    partition: int
    offset: int


@dataclass
class Unit:
    partition: int
    topics: list[str]
    offsets: dict[tuple[str, int], int]


@dataclass
class Broker:
    """Our side of the transactions: a unit is committed when the test says so, or fails."""

    committed: list[Unit] = field(default_factory=list)
    fail_next: int = 0
    fenced: set[int] = field(default_factory=set)
    gate: asyncio.Event | None = None
    attempts: int = 0

    async def commit(self, partition: int, records: Sequence[Outgoing],
                     offsets: Mapping[tuple[str, int], int]) -> list[tuple[Outgoing, Any]]:
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        if partition in self.fenced:
            raise FencedError(f"partition {partition}")
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker gone")
        self.committed.append(Unit(partition, [r.topic for r in records], dict(offsets)))
        return [(r, Meta(partition, i)) for i, r in enumerate(records)]


def _customer_on(partition: int) -> str:
    return next(f"c{i}" for i in range(1000)
                if partition_of(f"c{i}".encode(), 2) == partition)


def _barrier(broker: Broker, states: StateCache, applied: list[str], **kw: Any
             ) -> DeliveryBarrier:
    return DeliveryBarrier(broker.commit, states, ROUTER,
                           lambda written: applied.extend(r.topic for r, _ in written),
                           retry_min_s=0.001, retry_max_s=0.002, **kw)


def _states() -> StateCache:
    return StateCache(lambda key: None, 2)


async def _one_batch(barrier: DeliveryBarrier, states: StateCache, partition: int,
                     offset: int) -> str:
    cid = _customer_on(partition)
    async with barrier.batch():
        states.put(cid, CustomerState(customer_id=cid))
        barrier.send(partition, [Outgoing(TOPICS.triggers.name, cid.encode(), b"{}")])
        barrier.hold(partition, [(TP_TOPIC, offset)])
    return cid


def test_a_partitions_outputs_states_and_input_offsets_are_committed_as_one_unit() -> None:
    async def run() -> tuple[Broker, list[str], int]:
        broker, states, applied = Broker(), _states(), list[str]()
        barrier = _barrier(broker, states, applied)
        await _one_batch(barrier, states, 0, 7)
        return broker, applied, await barrier.flush()

    broker, applied, committed = asyncio.run(run())
    assert committed == 1
    assert broker.committed == [Unit(0, [TOPICS.triggers.name, TOPICS.state_changelog.name],
                                     {(TP_TOPIC, 0): 8})]
    assert applied == [TOPICS.state_changelog.name]


def test_states_reach_the_local_store_only_once_their_unit_is_committed() -> None:
    async def run() -> list[str]:
        broker, states = Broker(gate=asyncio.Event()), _states()
        applied: list[str] = []
        barrier = _barrier(broker, states, applied)
        await _one_batch(barrier, states, 0, 1)
        flush = asyncio.ensure_future(barrier.flush())
        await asyncio.sleep(0.01)
        assert applied == [] and broker.committed == []
        assert broker.gate is not None
        broker.gate.set()
        await flush
        return applied

    assert asyncio.run(run()) == [TOPICS.state_changelog.name]


def test_a_failed_unit_is_written_again_whole_until_it_is_committed() -> None:
    async def run() -> tuple[Broker, DeliveryBarrier]:
        broker, states, applied = Broker(fail_next=3), _states(), list[str]()
        barrier = _barrier(broker, states, applied)
        await _one_batch(barrier, states, 1, 4)
        await barrier.flush()
        return broker, barrier

    broker, barrier = asyncio.run(run())
    assert barrier.send_errors == 3 and broker.attempts == 4
    assert broker.committed == [Unit(1, [TOPICS.triggers.name, TOPICS.state_changelog.name],
                                     {(TP_TOPIC, 1): 5})]


def test_each_partition_is_its_own_unit() -> None:
    async def run() -> list[Unit]:
        broker, states, applied = Broker(), _states(), list[str]()
        barrier = _barrier(broker, states, applied)
        await _one_batch(barrier, states, 0, 3)
        await _one_batch(barrier, states, 1, 9)
        await barrier.flush()
        return broker.committed

    units = {u.partition: u for u in asyncio.run(run())}
    assert units[0].offsets == {(TP_TOPIC, 0): 4}
    assert units[1].offsets == {(TP_TOPIC, 1): 10}


def test_a_fenced_partition_is_dropped_and_the_others_are_committed() -> None:
    async def run() -> tuple[Broker, list[int], DeliveryBarrier]:
        broker, states, applied = Broker(fenced={1}), _states(), list[str]()
        lost: list[int] = []
        barrier = _barrier(broker, states, applied, on_fenced=lost.append)
        await _one_batch(barrier, states, 0, 3)
        await _one_batch(barrier, states, 1, 9)
        assert await barrier.flush() == 1
        return broker, lost, barrier

    broker, lost, barrier = asyncio.run(run())
    assert lost == [1] and barrier.fenced == 1
    assert [u.partition for u in broker.committed] == [0]


def test_a_batch_during_a_flush_waits_for_the_next_flush() -> None:
    async def run() -> list[Unit]:
        broker, states = Broker(gate=asyncio.Event()), _states()
        applied: list[str] = []
        barrier = _barrier(broker, states, applied)
        await _one_batch(barrier, states, 0, 1)
        flush = asyncio.ensure_future(barrier.flush())
        await asyncio.sleep(0.01)
        await _one_batch(barrier, states, 0, 2)  # while the first unit waits for the broker
        assert broker.gate is not None
        broker.gate.set()
        assert await flush == 1
        assert await barrier.flush() == 1
        return broker.committed

    first, second = asyncio.run(run())
    assert first.offsets == {(TP_TOPIC, 0): 2} and second.offsets == {(TP_TOPIC, 0): 3}


def test_input_of_a_partition_given_away_is_dropped_with_its_outputs() -> None:
    async def run() -> tuple[int, list[Unit]]:
        broker, states, applied = Broker(), _states(), list[str]()
        barrier = _barrier(broker, states, applied)
        await _one_batch(barrier, states, 0, 1)
        await _one_batch(barrier, states, 1, 1)
        dropped = barrier.forget_partitions([0])
        states.keep_partitions([0])
        await barrier.flush()
        return dropped, broker.committed

    dropped, units = asyncio.run(run())
    assert dropped == 1
    assert [u.partition for u in units] == [0]


def test_a_stopping_worker_gives_up_on_a_failed_unit_and_writes_nothing_more() -> None:
    async def run() -> tuple[int, list[Unit]]:
        broker, states, applied = Broker(fail_next=1), _states(), list[str]()
        barrier = _barrier(broker, states, applied, stopping=lambda: True)
        await _one_batch(barrier, states, 0, 8)
        with pytest.raises(ConnectionError):
            await barrier.flush()
        # offset 9 committed would pass over offset 8, whose unit was never written
        await _one_batch(barrier, states, 0, 9)
        return await barrier.flush(), broker.committed

    committed, units = asyncio.run(run())
    assert committed == 0 and units == []


def test_a_halted_barrier_writes_nothing_more() -> None:
    async def run() -> tuple[int, list[Unit], list[str]]:
        broker, states, applied = Broker(), _states(), list[str]()
        barrier = _barrier(broker, states, applied)
        await _one_batch(barrier, states, 0, 2)
        barrier.halt()  # processing failed after this batch
        return await barrier.flush(), broker.committed, applied

    committed, units, applied = asyncio.run(run())
    assert committed == 0 and units == [] and applied == []


def test_a_fatal_write_error_is_not_retried_and_stops_the_writing() -> None:
    async def run() -> tuple[int, DeliveryBarrier]:
        broker, states = Broker(), _states()

        async def commit(partition: int, records: Sequence[Outgoing],
                         offsets: Mapping[tuple[str, int], int]) -> list[tuple[Outgoing, Any]]:
            broker.attempts += 1
            raise FatalWriteError("partition 0: a failed transaction could not be aborted")

        barrier = DeliveryBarrier(commit, states, ROUTER, lambda w: None,
                                  retry_min_s=0.001, retry_max_s=0.002)
        await _one_batch(barrier, states, 0, 5)
        with pytest.raises(FatalWriteError):
            await barrier.flush()
        await _one_batch(barrier, states, 0, 6)
        assert await barrier.flush() == 0  # halted: nothing later passes over offset 5
        return broker.attempts, barrier

    attempts, barrier = asyncio.run(run())
    assert attempts == 1 and barrier.send_errors == 0
