"""The delivery barrier: nothing is acknowledged before the records it caused are confirmed,
states are written only after the outputs they remember, and a failed send is retried
until it succeeds, never skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field

import pytest

from journey.contract.topics import Topics
from journey.engine import CustomerState
from journey.pipeline.barrier import DeliveryBarrier
from journey.pipeline.processor import StateCache
from journey.pipeline.routing import Outgoing, Router

TOPICS = Topics.named(prefix="t-", partitions=2)
ROUTER = Router(TOPICS)


@dataclass
class Meta:
    partition: int
    offset: int


@dataclass
class Broker:
    """Our side of the producer: records are confirmed when the test says so."""

    log: list[str] = field(default_factory=list)
    pending: list[tuple[Outgoing, asyncio.Future[Meta]]] = field(default_factory=list)
    fail_next: int = 0

    async def send(self, record: Outgoing) -> Awaitable[Meta]:
        future: asyncio.Future[Meta] = asyncio.get_running_loop().create_future()
        if self.fail_next:
            self.fail_next -= 1
            future.set_exception(ConnectionError("broker gone"))
        else:
            self.pending.append((record, future))
        return future

    def confirm_all(self) -> None:
        for record, future in self.pending:
            if not future.done():
                self.log.append(f"confirmed {record.topic}")
                future.set_result(Meta(record.partition or 0, len(self.log)))
        self.pending.clear()


@dataclass
class Input:
    name: str
    log: list[str]

    def ack(self) -> None:
        self.log.append(f"acked {self.name}")


def _barrier(broker: Broker, states: StateCache, applied: list[str]) -> DeliveryBarrier:
    return DeliveryBarrier(broker.send, states, ROUTER,
                           lambda written: applied.extend(r.topic for r, _ in written),
                           retry_min_s=0.001, retry_max_s=0.002)


def _states() -> StateCache:
    return StateCache(lambda key: None, 2)


async def _stopping_barrier_after_a_failed_flush(broker: Broker, held: str) -> DeliveryBarrier:
    """A barrier of a stopping worker whose flush gave up: one output, caused by the input
    `held`, was refused once and not re-sent, so the flush raised."""
    barrier = DeliveryBarrier(broker.send, _states(), ROUTER, lambda written: None,
                              stopping=lambda: True)
    async with barrier.batch():
        await barrier.send([Outgoing(TOPICS.triggers.name, b"a", b"1")])
        barrier.hold([(0, Input(held, broker.log))])
    with pytest.raises(ConnectionError):
        await barrier.flush()
    return barrier


def test_inputs_are_acknowledged_only_after_outputs_then_states_are_confirmed() -> None:
    async def run() -> list[str]:
        broker, states = Broker(), _states()
        applied: list[str] = []
        barrier = _barrier(broker, states, applied)
        async with barrier.batch():
            states.put("c1", CustomerState(customer_id="c1"))
            await barrier.send([Outgoing(TOPICS.triggers.name, b"c1", b"{}")])
            barrier.hold([(0, Input("offset-7", broker.log))])
        flush = asyncio.ensure_future(barrier.flush())
        await asyncio.sleep(0.01)
        assert broker.log == []  # nothing confirmed: nothing acknowledged, no state sent
        assert [r.topic for r, _ in broker.pending] == [TOPICS.triggers.name]
        broker.confirm_all()  # the output
        await asyncio.sleep(0.01)
        assert [r.topic for r, _ in broker.pending] == [TOPICS.state_changelog.name]
        assert "acked offset-7" not in broker.log
        broker.confirm_all()  # the state
        assert await flush == 1
        assert applied == [TOPICS.state_changelog.name]
        return broker.log

    assert asyncio.run(run()) == [f"confirmed {TOPICS.triggers.name}",
                                  f"confirmed {TOPICS.state_changelog.name}",
                                  "acked offset-7"]


def test_a_failed_send_is_sent_again_until_confirmed_before_anything_is_acknowledged() -> None:
    async def run() -> list[str]:
        broker, states = Broker(fail_next=3), _states()
        applied: list[str] = []
        barrier = _barrier(broker, states, applied)
        async with barrier.batch():
            await barrier.send([Outgoing(TOPICS.stage_changes.name, b"c1", b"{}")])
            barrier.hold([(0, Input("offset-1", broker.log))])
        flush = asyncio.ensure_future(barrier.flush())
        while not broker.pending:
            await asyncio.sleep(0.001)
        broker.confirm_all()
        await flush
        assert barrier.send_errors == 3
        return broker.log

    assert asyncio.run(run()) == [f"confirmed {TOPICS.stage_changes.name}", "acked offset-1"]


def test_a_batch_during_a_flush_waits_for_the_next_flush() -> None:
    async def run() -> None:
        broker, states = Broker(), _states()
        applied: list[str] = []
        barrier = _barrier(broker, states, applied)
        async with barrier.batch():
            await barrier.send([Outgoing(TOPICS.triggers.name, b"a", b"1")])
            barrier.hold([(0, Input("first", broker.log))])
        flush = asyncio.ensure_future(barrier.flush())
        await asyncio.sleep(0.01)
        async with barrier.batch():  # taken while the first flush waits for the broker
            states.put("b", CustomerState(customer_id="b"))
            await barrier.send([Outgoing(TOPICS.triggers.name, b"b", b"2")])
            barrier.hold([(0, Input("second", broker.log))])
        broker.confirm_all()
        assert await flush == 1
        assert "acked second" not in broker.log
        assert applied == []  # b's state belongs to the second flush
        second = asyncio.ensure_future(barrier.flush())
        await asyncio.sleep(0.01)
        broker.confirm_all()
        await asyncio.sleep(0.01)
        broker.confirm_all()
        assert await second == 1
        assert broker.log[-1] == "acked second"
        assert applied == [TOPICS.state_changelog.name]

    asyncio.run(run())


def test_a_stopping_worker_gives_up_on_a_failed_send_without_acknowledging() -> None:
    async def run() -> list[str]:
        broker = Broker(fail_next=1)
        await _stopping_barrier_after_a_failed_flush(broker, "offset-3")
        return broker.log

    assert asyncio.run(run()) == []




def test_a_send_refused_before_it_left_is_sent_again_by_the_flush() -> None:
    async def run() -> list[str]:
        broker, states = Broker(), _states()
        refused = [True]

        async def send(record: Outgoing) -> Awaitable[Meta]:
            if refused[0]:
                refused[0] = False
                raise TimeoutError("metadata not available")  # raised by the call itself
            return await broker.send(record)

        barrier = DeliveryBarrier(send, states, ROUTER, lambda written: None,
                                  retry_min_s=0.001, retry_max_s=0.002)
        async with barrier.batch():
            await barrier.send([Outgoing(TOPICS.triggers.name, b"a", b"1")])
            barrier.hold([(0, Input("offset-4", broker.log))])
        flush = asyncio.ensure_future(barrier.flush())
        while not broker.pending:
            await asyncio.sleep(0.001)
        broker.confirm_all()
        await flush
        assert barrier.send_errors == 1
        return broker.log

    assert asyncio.run(run()) == [f"confirmed {TOPICS.triggers.name}", "acked offset-4"]


def test_a_halted_barrier_writes_and_acknowledges_nothing_more() -> None:
    async def run() -> tuple[int, list[str], list[str]]:
        broker, states = Broker(), _states()
        applied: list[str] = []
        barrier = _barrier(broker, states, applied)
        async with barrier.batch():
            states.put("c1", CustomerState(customer_id="c1"))
            await barrier.send([Outgoing(TOPICS.triggers.name, b"c1", b"{}")])
            barrier.hold([(0, Input("offset-2", broker.log))])
        barrier.halt()  # processing failed after this batch
        broker.confirm_all()
        return await barrier.flush(), broker.log, applied

    acknowledged, log, applied = asyncio.run(run())
    assert acknowledged == 0
    assert "acked offset-2" not in log and applied == []


def test_records_handed_over_as_a_batch_are_confirmed_like_single_sends() -> None:
    async def run() -> tuple[list[str], list[list[str]]]:
        broker, states = Broker(), _states()
        batches: list[list[str]] = []

        async def send_many(records: Sequence[Outgoing]) -> list[Awaitable[Meta]]:
            batches.append([r.topic for r in records])
            return [await broker.send(r) for r in records]

        barrier = DeliveryBarrier(broker.send, states, ROUTER, lambda written: None,
                                  send_many=send_many)
        async with barrier.batch():
            states.put("c1", CustomerState(customer_id="c1"))
            await barrier.send([Outgoing(TOPICS.triggers.name, b"c1", b"1"),
                                Outgoing(TOPICS.stage_changes.name, b"c1", b"2")])
            barrier.hold([(0, Input("offset-5", broker.log))])
        flush = asyncio.ensure_future(barrier.flush())
        while not flush.done():  # the outputs, then (once they are confirmed) the state
            await asyncio.sleep(0.001)
            broker.confirm_all()
        await flush
        return broker.log, batches

    log, batches = asyncio.run(run())
    assert batches == [[TOPICS.triggers.name, TOPICS.stage_changes.name],
                       [TOPICS.state_changelog.name]]
    assert log[-1] == "acked offset-5"


def test_a_batch_refused_before_it_left_is_sent_again_record_by_record() -> None:
    async def run() -> tuple[list[str], int]:
        broker, states = Broker(), _states()

        async def send_many(records: Sequence[Outgoing]) -> list[Awaitable[Meta]]:
            raise TimeoutError("metadata not available")

        barrier = DeliveryBarrier(broker.send, states, ROUTER, lambda written: None,
                                  retry_min_s=0.001, retry_max_s=0.002, send_many=send_many)
        async with barrier.batch():
            await barrier.send([Outgoing(TOPICS.triggers.name, b"a", b"1"),
                                Outgoing(TOPICS.triggers.name, b"b", b"2")])
            barrier.hold([(0, Input("offset-6", broker.log))])
        flush = asyncio.ensure_future(barrier.flush())
        while not flush.done():  # each re-sent on its own, one after the other
            await asyncio.sleep(0.001)
            broker.confirm_all()
        await flush
        return broker.log, barrier.send_errors

    log, errors = asyncio.run(run())
    assert log == [f"confirmed {TOPICS.triggers.name}"] * 2 + ["acked offset-6"]
    assert errors == 2


def test_after_a_flush_that_failed_no_later_flush_acknowledges_anything() -> None:
    async def run() -> tuple[int, list[str]]:
        broker = Broker(fail_next=1)
        # gave up on offset-8's output: it is no longer held
        barrier = await _stopping_barrier_after_a_failed_flush(broker, "offset-8")
        async with barrier.batch():
            await barrier.send([Outgoing(TOPICS.triggers.name, b"b", b"2")])
            barrier.hold([(0, Input("offset-9", broker.log))])
        broker.confirm_all()
        return await barrier.flush(), broker.log

    acknowledged, log = asyncio.run(run())
    # offset-9 acknowledged would commit past offset-8, whose output was never confirmed
    assert acknowledged == 0 and "acked offset-9" not in log
