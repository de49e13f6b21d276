"""The Faust shell's own rules, on a built app without a broker: a batch reads below Faust's
stream API and ends cleanly when the app stops; a partition given away while a batch awaits
the broker contributes nothing to it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import faust
import pytest
from faust.types import TP

from journey.pipeline.barrier import DeliveryBarrier
from journey.pipeline.routing import Outgoing
from journey.pipeline.settings import Settings
from journey.pipeline.timekeeping import partition_of
from journey.stream.app import create_app
from journey.stream.continuity import Continuity, Refetched
from journey.stream.worker import drain


@dataclass
class Channel:
    channel: Any


def _iterating_channel() -> Any:
    app = faust.App("t-drain", broker="memory://", store="memory://")
    return app.channel().clone(is_iterator=True)  # what aiter() of the agent's channel gives


def test_drain_hands_over_every_queued_event_up_to_the_limit_without_waiting_for_more() -> None:
    async def run() -> list[list[int]]:
        channel = _iterating_channel()
        for i in range(5):
            channel.queue.put_nowait(i)
        batches = drain(Channel(channel), 3)
        return [await anext(batches), await anext(batches)]

    assert asyncio.run(run()) == [[0, 1, 2], [3, 4]]


def test_drain_ends_cleanly_when_faust_stops_the_channel() -> None:
    # Faust stops an agent by throwing StopAsyncIteration into its channel's queue. Raised
    # through the generator it became a RuntimeError: the agent crashed, its supervisor
    # restarted it, and every stop hung until the shutdown bound.
    async def run() -> list[list[int]]:
        channel = _iterating_channel()
        batches = drain(Channel(channel), 3)
        waiting = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0)
        channel._throw(StopAsyncIteration())
        got = [batch async for batch in _rest(waiting, batches)]
        return got

    assert asyncio.run(run()) == []


async def _rest(first: Awaitable[list[int]], rest: Any) -> Any:
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


def test_a_partition_given_away_while_a_batch_awaits_the_broker_adds_nothing_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a worker owning partitions 0 and 1, and a batch with a record of each
    built = create_app(Settings(store="memory://", flush_interval_ms=60_000))
    shell = built.shell
    assert shell is not None
    topic = shell.channels.touchpoints.get_topic_name()
    partitions = built.topics.events.partitions
    first = _customer_on(0, partitions)
    second = _customer_on(1, partitions)
    batch = [_touchpoint(topic, 0, 0, first), _touchpoint(topic, 1, 0, second)]
    assigned = {0, 1}
    shell.owned = frozenset(assigned)
    monkeypatch.setattr(shell, "assignment", lambda: frozenset(assigned))
    monkeypatch.setattr(shell, "_observe_lag", lambda batch: None)  # no consumer here

    # When partition 1 goes to another worker while the continuity check asks the broker
    # for the committed offset of the first record's partition
    async def committed(tp: TP) -> int:
        if tp.partition == 0:
            assigned.discard(1)
            shell.on_assigned({TP(topic, p) for p in assigned})
        return 0

    async def earliest(tp: TP) -> int:
        return 0

    async def read_range(tp: TP, start: int, end: int) -> list[Refetched]:
        return []

    monkeypatch.setattr(shell, "continuity", Continuity(committed, earliest, read_range))
    sent: list[Outgoing] = []

    async def send(record: Outgoing) -> Awaitable[Any]:
        sent.append(record)
        return asyncio.get_running_loop().create_future()  # never confirmed here

    barrier = DeliveryBarrier(send, shell.pipeline.states, shell.pipeline.router,
                              lambda written: None)
    monkeypatch.setattr(shell, "barrier", barrier)

    def step(records: Any, now_ms: int) -> Any:
        return shell.pipeline.touchpoints_in_slices(records, now_ms, due_slice=100)

    asyncio.run(shell.handle(batch, step))

    # Then only the record of the partition still owned is processed and held
    assert shell.owned == {0}
    assert barrier.held == 1
    assert set(shell.pipeline.states.live) == {first}
    assert {r.key for r in sent} <= {first.encode()}
    assert sent  # its outputs went out
