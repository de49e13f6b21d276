"""The delivery barrier: no input offset is acknowledged before everything it caused is on
the broker. This is the one place where that order is kept.

For each batch the driver runs, under `batch()`: process, send what the batch produced
(outputs, forwarded events, dead letters), and `hold` the batch's input records. Nothing
is acknowledged yet; changed customer states wait in the StateCache (write-behind).

`flush()` then, in this order, for everything gathered up to its start:

1. waits until the broker has confirmed every record sent (re-sending on error);
2. writes the state of every changed customer to the changelog (a tombstone for an erased
   one, with its erasure marker), and waits until the broker confirms those too; only then
   are they applied to the local store;
3. acknowledges the held input records: in the worker, commits the offset after the last
   of them per partition (journey/stream/offsets.py); nothing else commits input offsets.

Outputs are on the broker before the state that remembers them, and both before the
offsets. A crash at any point replays the input from the last committed offset against a
state that has not yet seen it, so the replay produces the same records with the same ids
again: duplicates a consumer recognises, never a loss. The delivery futures of our own
sends are the barrier: nothing here relies on a producer's flush.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from journey.pipeline.backoff import Backoff
from journey.pipeline.processor import StateCache
from journey.pipeline.routing import Outgoing, Router

log = logging.getLogger(__name__)


class Ackable(Protocol):
    def ack(self) -> Any: ...


#: Hands a record to the producer; returns the delivery future (metadata with the offset).
Send = Callable[[Outgoing], Awaitable[Awaitable[Any]]]
#: Hands records to the producer; returns a delivery per record, in order
#: (journey/stream/produce.py sends them as record batches).
SendMany = Callable[[Sequence[Outgoing]], Awaitable[list[Awaitable[Any]]]]
#: Applies confirmed state records (with their delivery metadata) to the local store.
ApplyStates = Callable[[Sequence[tuple[Outgoing, Any]]], None]
#: Acknowledges held (partition, input record) pairs, once what they caused is written.
Acknowledge = Callable[[Sequence[tuple[int, Any]]], Awaitable[None]]


async def ack_each(held: Sequence[tuple[int, Any]]) -> None:
    """Acknowledge by calling each record's own `ack()`."""
    for _, record in held:
        record.ack()


class DeliveryBarrier:
    def __init__(
        self,
        send: Send,
        states: StateCache,
        router: Router,
        apply_states: ApplyStates,
        *,
        retry_min_s: float = 0.1,
        retry_max_s: float = 5.0,
        stopping: Callable[[], bool] = lambda: False,
        acknowledge: Acknowledge = ack_each,
        send_many: SendMany | None = None,
    ) -> None:
        """`send` hands over one record (re-sends use it); `send_many`, when given, a
        batch's records at once (outputs and states)."""
        self._send = send
        self._send_many = send_many
        self._acknowledge = acknowledge
        self._states = states
        self._router = router
        self._apply_states = apply_states
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._stopping = stopping
        self._held: list[tuple[int, Ackable]] = []
        self._sent: list[tuple[Outgoing, Awaitable[Any]]] = []
        self._section = asyncio.Lock()  # a batch's send-and-hold, or a flush's snapshot
        self._flushing = asyncio.Lock()  # one flush at a time, in order
        self.last_flush = time.monotonic()
        self.send_errors = 0
        self._halted = False

    def halt(self) -> None:
        """Processing failed mid-batch: write and acknowledge nothing more. The live
        states may hold part of a batch whose outputs were never sent; the next start
        replays everything not acknowledged yet against the states last written."""
        self._halted = True

    @property
    def held(self) -> int:
        return len(self._held)

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Process, send and hold one batch with no flush snapshot in between."""
        async with self._section:
            yield

    async def send(self, records: Iterable[Outgoing]) -> None:
        records = list(records)
        self._sent.extend(zip(records, await self._deliver_all(records), strict=True))

    async def _deliver_all(self, records: Sequence[Outgoing]) -> list[Awaitable[Any]]:
        """Each record handed to the producer, in order; their delivery futures."""
        if self._send_many is None or not records:
            return [await self._deliver(record) for record in records]
        try:
            return await self._send_many(records)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # refused before they left: `_confirm` re-sends each
            return [_failed(exc) for _ in records]

    async def _deliver(self, record: Outgoing) -> Awaitable[Any]:
        """The record handed to the producer; its delivery future. A send refused before
        it left (the producer raised) is a failed delivery, which `_confirm` re-sends."""
        try:
            return await self._send(record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return _failed(exc)

    def hold(self, inputs: Iterable[tuple[int, Ackable]]) -> None:
        """(partition, input record) pairs, acknowledged by a later flush."""
        self._held.extend(inputs)

    def forget_partitions(self, keep: Iterable[int]) -> int:
        """Drop the held input of partitions no longer owned, unacknowledged: their new
        owner reads it again from the last committed offset. The caller drops those
        partitions' changed states with it (StateCache.keep_partitions), so no state is
        written for input that is not acknowledged, and no input is acknowledged whose
        state was dropped. Returns how many records were dropped."""
        kept = set(keep)
        before = len(self._held)
        self._held = [(p, record) for p, record in self._held if p in kept]
        return before - len(self._held)

    async def flush(self) -> int:
        """Confirm, write states, acknowledge (see the module docstring). Returns how many
        inputs were acknowledged."""
        async with self._flushing:
            if self._halted:
                return 0
            async with self._section:
                held, self._held = self._held, []
                sent, self._sent = self._sent, []
                dirty = self._states.take_dirty()
                markers = self._states.take_markers()
            self.last_flush = time.monotonic()
            try:
                await self._confirm(sent)
                state_records = [self._router.state(cid, partition, value)
                                 for cid, partition, value in dirty]
                # Erasure markers go with the tombstones they guard
                # (journey/pipeline/processor.py).
                state_records += [self._router.erasure_marker(cid, partition, value)
                                  for cid, partition, value in markers]
                written = await self._confirm(list(zip(
                    state_records, await self._deliver_all(state_records), strict=True)))
                if written:
                    self._apply_states(written)
                await self._acknowledge(held)  # also retries what an earlier one could not
            except BaseException:
                # What this flush took is neither confirmed nor acknowledged, and is no
                # longer held: a later flush acknowledging later input would pass over it.
                self._halted = True
                raise
            self._states.trim()
            return len(held)

    async def _confirm(
        self, sent: list[tuple[Outgoing, Awaitable[Any]]]
    ) -> list[tuple[Outgoing, Any]]:
        confirmed: list[tuple[Outgoing, Any]] = []
        for record, delivery in sent:
            backoff = Backoff(self._retry_min_s, self._retry_max_s)
            while True:
                try:
                    confirmed.append((record, await delivery))
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    delay = backoff.next_delay()
                    self.send_errors += 1
                    if self._stopping():
                        raise
                    if backoff.worth_logging:
                        log.warning("a send to %s failed (%s: %s), attempt %d; retrying in "
                                    "%.1fs; nothing is acknowledged until it succeeds",
                                    record.topic, type(exc).__name__, exc, backoff.attempt,
                                    delay)
                    await asyncio.sleep(delay)
                    delivery = await self._deliver(record)
        return confirmed


def _failed(exc: Exception) -> asyncio.Future[Any]:
    """A delivery that failed before it left."""
    delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    delivery.set_exception(exc)
    return delivery
