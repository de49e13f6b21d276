"""The Faust shell's own rules, on a built app without a broker: a batch reads below Faust's
stream API and ends cleanly when the app stops; a partition given away while a batch awaits
the broker contributes nothing to it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import pytest
from faust.types import TP

from journey.pipeline.barrier import DeliveryBarrier, FencedError
from journey.pipeline.routing import Outgoing
from journey.pipeline.settings import Settings
from journey.pipeline.timekeeping import partition_of
from journey.stream.agents import RecoveryEnded, drain
from journey.stream.app import create_app
from journey.stream.continuity import Continuity, Refetched


@dataclass
class Channel:
    channel: Any


def _iterating_channel() -> Any:
    app = faust.App("t-drain", broker="memory://", store="memory://")
    return app.channel().clone(is_iterator=True)  # what aiter() of the agent's channel gives


def test_drain_hands_over_every_queued_event_up_to_the_limit_without_waiting_for_more() -> None:
    async def run() -> list[tuple[list[int], bool]]:
        channel = _iterating_channel()
        for i in range(5):
            channel.queue.put_nowait(i)
        batches = drain(Channel(channel), 3)
        return [await anext(batches), await anext(batches)]

    # each batch says whether it left anything waiting (the second caught up)
    assert asyncio.run(run()) == [([0, 1, 2], False), ([3, 4], True)]


def test_drain_ends_cleanly_when_faust_stops_the_channel() -> None:
    # Faust stops an agent by throwing StopAsyncIteration into its channel's queue. Raised
    # through the generator it became a RuntimeError: the agent crashed, its supervisor
    # restarted it, and every stop hung until the shutdown bound.
    async def run() -> list[tuple[list[int], bool]]:
        channel = _iterating_channel()
        batches = drain(Channel(channel), 3)
        waiting = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0)
        channel._throw(StopAsyncIteration())
        got = [batch async for batch in _rest(waiting, batches)]
        return got

    assert asyncio.run(run()) == []


async def _rest(first: Awaitable[tuple[list[int], bool]], rest: Any) -> Any:
    try:
        yield await first
    except StopAsyncIteration:
        return
    async for batch in rest:
        yield batch


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass
class Event:
    message: Message
    headers: Any = None

    def ack(self) -> bool:
        return True


def _customer_on(partition: int, partitions: int) -> str:
    return next(cid for i in range(1000)
                if partition_of((cid := f"cust-{i}").encode(), partitions) == partition)


def _touchpoint(topic: str, partition: int, offset: int, customer_id: str) -> Event:
    doc = {"event_id": f"e-{partition}-{offset}", "customer_id": customer_id,
           "type": "site_visit", "channel": "web", "occurred_at": "2026-11-01T10:00:00Z"}
    return Event(Message(topic, partition, offset, customer_id.encode(),
                         json.dumps(doc).encode()))


@dataclass
class Recorder:
    """The barrier's writes, recorded instead of sent."""

    units: list[tuple[int, list[Outgoing], dict[tuple[str, int], int]]] = field(
        default_factory=list)

    async def commit(self, partition: int, records: Sequence[Outgoing],
                     offsets: Mapping[tuple[str, int], int]) -> list[tuple[Outgoing, Any]]:
        self.units.append((partition, list(records), dict(offsets)))
        return [(r, None) for r in records]


def _shell_owning(monkeypatch: pytest.MonkeyPatch, assigned: set[int],
                  committed: Callable[[TP], Awaitable[int]]) -> tuple[Any, Recorder]:
    """The composed shell, owning `assigned` (which the test may change), with the broker's
    parts replaced: the continuity check asks `committed`, the barrier records."""
    built = create_app(Settings(store="memory://", flush_interval_ms=60_000))
    shell = built.shell
    assert shell is not None
    ownership = shell.ownership
    ownership.owned = frozenset(assigned)
    monkeypatch.setattr(ownership, "assignment", lambda: frozenset(assigned - ownership.fenced))
    monkeypatch.setattr(shell, "_observe_lag", lambda batch: None)  # no consumer here

    async def earliest(tp: TP) -> int:
        return 0

    async def read_range(tp: TP, start: int, end: int) -> list[Refetched]:
        return []

    continuity = Continuity(committed, earliest, read_range)
    monkeypatch.setattr(shell, "continuity", continuity)
    monkeypatch.setattr(ownership, "continuity", continuity)
    recorder = Recorder()
    barrier = DeliveryBarrier(recorder.commit, shell.pipeline.states, shell.pipeline.router,
                              lambda written: None, on_fenced=ownership.on_fenced)
    monkeypatch.setattr(shell, "barrier", barrier)
    monkeypatch.setattr(ownership, "barrier", barrier)
    return shell, recorder


def _owning_two(monkeypatch: pytest.MonkeyPatch, assigned: set[int]
                ) -> tuple[Any, Recorder, str, tuple[str, str]]:
    """`_shell_owning` with nothing committed yet; its touchpoints topic and a customer of
    each of partitions 0 and 1."""

    async def committed(tp: TP) -> int:
        return 0

    shell, recorder = _shell_owning(monkeypatch, assigned, committed)
    topic = shell.ownership.channels.touchpoints.get_topic_name()
    partitions = shell.pipeline.partitions
    return shell, recorder, topic, (_customer_on(0, partitions), _customer_on(1, partitions))


def _step(shell: Any) -> Any:
    def step(records: Any, now_ms: int) -> Any:
        return shell.pipeline.touchpoints_in_slices(records, now_ms, due_slice=100)
    return step


def test_a_partition_given_away_while_a_batch_awaits_the_broker_adds_nothing_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a worker owning partitions 0 and 1, and a batch with a record of each
    assigned = {0, 1}
    topic_name: list[str] = []

    # When partition 1 goes to another worker while the continuity check asks the broker
    # for the committed offset of the first record's partition
    async def committed(tp: TP) -> int:
        if tp.partition == 0:
            assigned.discard(1)
            shell.ownership.on_assigned({TP(topic_name[0], p) for p in assigned})
        return 0

    shell, recorder = _shell_owning(monkeypatch, assigned, committed)
    topic = shell.ownership.channels.touchpoints.get_topic_name()
    topic_name.append(topic)
    partitions = shell.pipeline.partitions
    first, second = _customer_on(0, partitions), _customer_on(1, partitions)
    batch = [_touchpoint(topic, 0, 0, first), _touchpoint(topic, 1, 0, second)]
    asyncio.run(shell.handle(batch, _step(shell)))

    # Then only the record of the partition still owned is processed, held and written
    assert shell.ownership.owned == {0}
    assert shell.barrier.held == 1
    assert set(shell.pipeline.states.live) == {first}
    asyncio.run(shell.barrier.flush())
    assert [(p, offsets) for p, _, offsets in recorder.units] == [(0, {(topic, 0): 1})]
    assert {r.key for r in recorder.units[0][1]} == {first.encode()}


def test_a_partition_lost_in_the_middle_of_its_burst_holds_and_writes_nothing_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a worker owning partitions 0 and 1, and a batch of several records of each
    # (processed in slices of one due detection, with the event loop let run between them)
    assigned = {0, 1}
    shell, recorder, topic, (first, second) = _owning_two(monkeypatch, assigned)
    batch = [_touchpoint(topic, p, o, cid) for o in range(3)
             for p, cid in ((0, first), (1, second))]
    sends = 0
    real_send = shell.barrier.send

    # When partition 0 is given away right after its first slice was handed over
    def send(partition: int, records: Any) -> None:
        nonlocal sends
        real_send(partition, records)
        sends += 1
        if partition == 0 and sends == 1:
            assigned.discard(0)
            shell.ownership.on_assigned({TP(topic, p) for p in assigned})

    monkeypatch.setattr(shell.barrier, "send", send)
    asyncio.run(shell.handle(batch, _step(shell)))
    asyncio.run(shell.barrier.flush())

    # Then nothing of partition 0 is held, written or kept live, and partition 1 is whole
    assert [p for p, _, _ in recorder.units] == [1]
    assert recorder.units[0][2] == {(topic, 1): 3}
    assert set(shell.pipeline.states.live) == {second}
    assert max(shell.pipeline.states.applied[second]) == 2  # all three records applied
    assert 0 not in shell.pipeline.processor.clocks


def test_a_fenced_partition_is_forgotten_and_not_taken_back_until_the_next_assignment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a worker owning partitions 0 and 1 whose producer of partition 1 was fenced
    shell, recorder, topic, (first, second) = _owning_two(monkeypatch, {0, 1})

    async def fenced_on_1(partition: int, records: Any, offsets: Any) -> Any:
        if partition == 1:
            raise FencedError("partition 1: ProducerFenced")
        return await recorder.commit(partition, records, offsets)

    monkeypatch.setattr(shell.barrier, "_commit", fenced_on_1)
    batch = [_touchpoint(topic, 0, 0, first), _touchpoint(topic, 1, 0, second)]

    async def run() -> None:
        await shell.handle(batch, _step(shell))
        await shell.barrier.flush()
        # the group still lists partition 1 here until the rebalance reaches this worker
        await shell.handle([_touchpoint(topic, 1, 1, second)], _step(shell))

    asyncio.run(run())

    # Then partition 0 is written, partition 1 is dropped and stays dropped
    assert [p for p, _, _ in recorder.units] == [0]
    assert shell.ownership.owned == {0} and shell.ownership.fenced == {1}
    assert set(shell.pipeline.states.live) == {first}
    assert shell.barrier.held == 0


def test_a_batch_that_leaves_nothing_waiting_is_written_at_once_not_at_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a shell whose flush interval is a minute
    shell, recorder, topic, (first, _) = _owning_two(monkeypatch, {0})

    async def run(caught_up: bool) -> None:
        offset = shell.barrier.held + len(recorder.units)
        await shell.handle([_touchpoint(topic, 0, offset, first)], _step(shell),
                           caught_up=caught_up)
        if shell._flush_task is not None:
            await shell._flush_task

    # When a batch leaves more records waiting, it is only held
    asyncio.run(run(caught_up=False))
    assert recorder.units == [] and shell.barrier.held == 1
    # When a batch leaves nothing waiting, what is held is written at once
    asyncio.run(run(caught_up=True))
    assert [(p, offsets) for p, _, offsets in recorder.units] == [(0, {(topic, 0): 2})]
    assert shell.barrier.held == 0


def test_a_flush_asked_for_while_one_runs_is_started_when_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a worker that has caught up, whose first transaction waits on the broker
    shell, recorder, topic, (first, _) = _owning_two(monkeypatch, {0})
    broker = asyncio.Event()

    async def slow_first(partition: int, records: Any, offsets: Any) -> Any:
        if not recorder.units:
            await broker.wait()
        return await recorder.commit(partition, records, offsets)

    monkeypatch.setattr(shell.barrier, "_commit", slow_first)

    async def run() -> None:
        await shell.handle([_touchpoint(topic, 0, 0, first)], _step(shell), caught_up=True)
        await asyncio.sleep(0)  # the first flush has taken offset 0 and waits
        # When the next batch arrives, and caught up too, while that flush runs
        await shell.handle([_touchpoint(topic, 0, 1, first)], _step(shell), caught_up=True)
        assert shell.barrier.held == 1
        broker.set()
        while shell._flush_task is not None and not shell._flush_task.done():
            await shell._flush_task

    asyncio.run(run())
    # Then the second batch is written by a flush right after the first, not an interval later
    assert [offsets for _, _, offsets in recorder.units] == [{(topic, 0): 1}, {(topic, 0): 2}]
    assert shell.barrier.held == 0


def test_the_shell_says_since_when_its_batch_has_been_processed_and_none_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a batch whose continuity check waits on the broker
    answer = asyncio.Event()
    seen: list[float | None] = []

    async def committed(tp: TP) -> int:
        seen.append(shell.busy_since())
        await answer.wait()
        return 0

    shell, _ = _shell_owning(monkeypatch, {0}, committed)
    topic = shell.ownership.channels.touchpoints.get_topic_name()
    batch = [_touchpoint(topic, 0, 0, _customer_on(0, shell.pipeline.partitions))]

    async def run() -> tuple[float | None, float | None]:
        before = shell.busy_since()
        handled = asyncio.ensure_future(shell.handle_or_stop(batch, _step(shell)))
        await asyncio.sleep(0.01)
        answer.set()
        await handled
        return before, shell.busy_since()

    started = time.monotonic()
    before, after = asyncio.run(run())
    # Then while it waits the shell says since when (liveness reads it), and not between
    assert before is None and after is None
    assert len(seen) == 1 and seen[0] is not None and started <= seen[0] <= time.monotonic()


def test_the_end_of_recovery_takes_the_assignment_in_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A warm restart waited up to the assignment timer's second after "Worker ready" before
    # its due index rebuild began: the app's rebalance-end hook now starts it.
    built = create_app(Settings(store="memory://", flush_interval_ms=60_000))
    app, shell = built.faust, built.shell
    assert shell is not None
    sensors = [s for s in app.sensors if isinstance(s, RecoveryEnded)]
    assert len(sensors) == 1
    taken: list[bool] = []

    async def on_assignment() -> None:
        taken.append(app.rebalancing)

    monkeypatch.setattr(shell.ownership, "on_assignment", on_assignment)

    async def run() -> None:
        app.rebalancing = True
        state = app.sensors.on_rebalance_start(app)
        app.rebalancing = False  # what Faust's on_rebalance_end does before the sensors
        app.sensors.on_rebalance_end(app, state)
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(run())
    assert taken == [False]
