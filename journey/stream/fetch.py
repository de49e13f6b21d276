"""Faust's consumer, handing fetched records to the agents a fetch at a time.

faust-streaming 0.15.3's fetch loop (`Consumer._drain_messages`) hands each record to the
conductor inside `wait_first(callback(message), suspend_flow.wait())`: two tasks and a trip
through the event loop per record. That alone caps a worker near Faust's no-op figure
(docs/benchmarks.md), and it wakes the agent for every record, so an agent never finds more
than one record queued (journey/stream/worker.py, `drain`, reads batches).

`BatchingConsumer` runs the same loop with one `wait_first` per fetch: the records of one
`getmany` are handed to the conductor one after another in a single task, which a rebalance
(`suspend_flow`) cancels as before. Everything else is Faust's: group membership, the
fetcher, the conductor's routing and buffer pressure, the recovery of tables, the read
offsets. Records are handed over in the order fetched; a record below its partition's read
offset is not handed over again, as in Faust's loop. Records cut off by a rebalance are
fetched again from the committed offsets, and a record missing in between is caught by the
continuity check (journey/stream/continuity.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Transport
from faust.types import TP

log = logging.getLogger(__name__)

#: How long the broker may hold a fetch for partitions with no new record (Faust sets
#: 1,500 ms). aiokafka keeps one fetch in flight per broker: while it waits on quiet
#: partitions (the internal events topic, say), records arriving on busy ones are not
#: fetched. With 1,500 ms, stage changes came out up to 2 s after their touchpoint at a
#: steady 3,400 events/s (docs/throughput.md).
FETCH_MAX_WAIT_MS = 50


class BatchingConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, with the broker's fetch wait of FETCH_MAX_WAIT_MS."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer


class BatchingConsumer(Consumer):
    """Faust's aiokafka consumer with a fetch loop that hands records over a fetch at a
    time (see the module's docstring)."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return BatchingConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        diag = self.diag
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                diag.set_flag(CONSUMER_FETCHING)
                fetched = [pair async for pair in self.getmany(timeout=1.0)]
                # getmany may return at once, again and again: let the loop run.
                await self.sleep(0)
                if fetched and not self.should_stop:
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await self.wait_first(self._hand_over(fetched), self.suspend_flow.wait())
                diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            diag.unset_flag(CONSUMER_FETCHING)

    async def _hand_over(self, fetched: Sequence[tuple[TP, Any]]) -> None:
        """Give each fetched record to the conductor, in order, advancing its partition's
        read offset as it goes (a rebalance cancels this between two records)."""
        callback = self.callback
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        for tp, message in fetched:
            offset = message.offset
            last = read_offset[tp]
            if last is not None and offset < last:
                continue  # handed over already (a fetch from before a seek)
            if last and offset - last > 1 and acks_enabled_for(message.topic):
                await self._add_gap(tp, last + 1, offset)
            await callback(message)
            read_offset[tp] = offset


class BatchingTransport(Transport):
    """Faust's aiokafka transport, with `BatchingConsumer` as its consumer."""

    Consumer = BatchingConsumer
