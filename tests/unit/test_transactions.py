"""A partition's transactional producer, when it fails: a fence that aiokafka's background
sender saw first (the producer then refuses every call with IllegalOperation, not with the
fence) drops the partition as fenced instead of stopping the worker."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import IllegalOperation, ProducerFenced

from journey.pipeline.barrier import FatalWriteError, FencedError
from journey.pipeline.routing import Outgoing
from journey.stream.transactions import PartitionTransactions


def _in_transaction(producer: AIOKafkaProducer) -> Any:
    manager = producer._txn_manager
    manager.set_pid_and_epoch(1, 0)  # what starting it does
    return manager


async def _commit_with(cause: BaseException) -> BaseException:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", transactional_id="app-p0")
    manager = _in_transaction(producer)

    async def begin() -> None:
        manager.begin_transaction()

    async def send_batch(*args: Any, **kwargs: Any) -> Any:
        manager.fatal_error(cause)  # the sender met the cause meanwhile
        raise IllegalOperation("Can't send messages while not in transaction")

    producer.begin_transaction = begin
    producer.send_batch = send_batch
    transactions = PartitionTransactions("app", "app", lambda tid: producer)
    transactions._producers[0] = producer
    try:
        await transactions.commit(0, [Outgoing("t", b"k", b"v", partition=0)], {("i", 0): 1})
    except (FencedError, FatalWriteError) as exc:
        return exc
    finally:
        await transactions.close()
    raise AssertionError("the commit did not fail")


def test_a_fence_seen_by_the_background_sender_is_a_fence() -> None:
    raised = asyncio.run(_commit_with(ProducerFenced()))
    assert isinstance(raised, FencedError) and "ProducerFenced" in str(raised)


def test_another_fatal_producer_state_stops_the_worker() -> None:
    raised = asyncio.run(_commit_with(RuntimeError("sender task died")))
    assert isinstance(raised, FatalWriteError) and "sender task died" in str(raised)
