"""The worker's agents and timers, installed on the Faust app: two agents (the touchpoints
topic and the internal events topic) that read batches below Faust's stream API and hand
them to the shell (journey/stream/shell.py), the flush and assignment timers (the
assignment is also taken in the moment recovery ends), the revoke flush, and the ticks
appended to the touchpoints partitions this worker owns."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import faust

from journey.pipeline.core import Incoming, Slices
from journey.pipeline.timekeeping import TICK_HEADER, TICK_VALUE, encode_tick
from journey.stream.shell import Shell


class RecoveryEnded(faust.Sensor):
    """A sensor whose only hook is the end of a rebalance, recovery included (Faust calls
    `on_rebalance_end` just before it logs "Worker ready"): it starts `then` as a task.
    The app is no longer rebalancing by the time the task runs."""

    def __init__(self, then: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._then = then
        self._running: set[asyncio.Future[None]] = set()  # kept until done

    def on_rebalance_end(self, app: Any, state: dict[Any, Any]) -> None:
        task = asyncio.ensure_future(self._then())
        self._running.add(task)
        task.add_done_callback(self._running.discard)


async def drain(stream: Any, limit: int) -> AsyncIterator[tuple[list[Any], bool]]:
    """An agent's events in batches, read from its channel's queue below Faust's stream API:
    the first event awaited, then every event already queued, up to `limit`. Under a backlog
    a batch is as large as Faust's fetcher has buffered (up to its stream_buffer_maxsize);
    when records trickle in, a batch is the one record there is, with no wait added. Each
    batch comes with whether it emptied the queue (caught up: nothing else is waiting), which
    lets the shell flush at once instead of at the next flush interval.

    The queue's own get/get_nowait are used, so Faust's buffer-pressure bookkeeping (pause a
    partition whose buffer is full, resume it when it drains) works as under the stream.
    What the stream would add is left out on purpose: acknowledgement (the barrier's), the
    skipping of records of an older generation (the continuity check skips records below
    the committed offset, and `Shell.handle` records of partitions not owned), sensors."""
    channel = aiter(stream.channel)  # registers it with Faust's conductor, as the stream does
    queue = channel.queue
    try:
        while True:
            try:
                batch = [await queue.get()]
                while len(batch) < limit and not queue.empty():
                    batch.append(queue.get_nowait())
                caught_up = queue.empty()
            except StopAsyncIteration:
                # Faust ends a channel by throwing this into its queue when the app stops.
                # Raised inside this generator it would become a RuntimeError (PEP 479): the
                # agent would crash, its supervisor restart it, and the stop would hang
                # until the shutdown bound.
                return
            yield batch, caught_up
    finally:
        stop = getattr(channel, "on_stop_iteration", None)
        if stop is not None:
            stop()


def install_agents(
    app: faust.App,
    shell: Shell,
    *,
    tick_interval_s: float,
) -> None:
    ch, pipeline = shell.ownership.channels, shell.pipeline
    due_slice = shell.due_slice

    def touchpoints_in_slices(records: Sequence[Incoming], now_ms: int) -> Slices:
        return pipeline.touchpoints_in_slices(records, now_ms, due_slice=due_slice)

    def events_in_slices(records: Sequence[Incoming], now_ms: int) -> Slices:
        return pipeline.events_in_slices(records, now_ms, due_slice=due_slice)

    # Batches read below Faust's stream API (`drain`): Faust's stream handles one event at a
    # time and acknowledges events it skips whatever noack() says; its batch API
    # (take_events) acknowledges every event of a batch. The input topics have Faust's acks
    # off; offsets, order and acknowledgement are the barrier's and the continuity check's.
    batch_max = shell.batch_max

    @app.agent(ch.touchpoints, name="touchpoints")
    async def touchpoints(stream: Any) -> None:
        async for batch, caught_up in drain(stream, batch_max):
            await shell.handle_or_stop(batch, touchpoints_in_slices, caught_up=caught_up)

    @app.agent(ch.events, name="events")
    async def events(stream: Any) -> None:
        async for batch, caught_up in drain(stream, batch_max):
            await shell.handle_or_stop(batch, events_in_slices, caught_up=caught_up)

    @app.timer(interval=shell.flush_interval_s, name="flush")  # type: ignore[untyped-decorator]
    async def flush() -> None:
        await shell.flush_or_stop()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # (mode's signal typing)
    async def on_revoked(sender: Any, *_: Any, **__: Any) -> None:
        # Before partitions go: write and commit what was processed of them, so their next
        # owner starts where this worker stopped (a failure here only means a replay).
        shell.continuity.reset()  # after the rebalance, reading starts at the committed offsets
        await shell.flush_or_stop()

    def assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        shell.ownership.on_assigned(args[0])

    app.on_partitions_assigned.connect(assigned)

    async def take_assignment() -> None:
        # Rebuild the due index of newly assigned partitions as soon as recovery is done,
        # not when their first record arrives (an idle partition has none until a tick).
        if not app.rebalancing and not shell.failed:
            await shell.ownership.on_assignment()

    @app.timer(interval=1.0, name="assignment")  # type: ignore[untyped-decorator]
    async def assignment() -> None:
        await take_assignment()

    # ...and at the moment recovery ends, rather than at the timer's next run, up to a
    # second later (a warm restart waited that long before its rebuild began).
    app.sensors.add(RecoveryEnded(take_assignment))

    worker_name = f"{socket.gethostname()}:{app.conf.web_port}"
    touchpoints_topic = ch.touchpoints.get_topic_name()

    @app.timer(interval=tick_interval_s, name="tick")  # type: ignore[untyped-decorator]
    async def tick() -> None:
        # Ticks go into the raw touchpoints partitions this worker owns, behind their
        # backlog: each moves that partition's clock, and is forwarded to every events
        # partition for the records re-keyed before it.
        if app.rebalancing:
            return
        now_ms = int(time.time() * 1000)
        owned = frozenset(tp.partition for tp in app.assignor.assigned_actives()
                          if tp.topic == touchpoints_topic)
        for partition in sorted(owned):
            await ch.touchpoints.send(
                partition=partition, value=encode_tick(now_ms, worker_name),
                headers={TICK_HEADER: TICK_VALUE},
            )
        shell.metrics.ticks_sent.inc()
