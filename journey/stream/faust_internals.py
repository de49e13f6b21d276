"""Every use of a private name of faust-streaming, mode and aiokafka in the worker, in one
module, each with a test that fails when an upgrade changes it (tests/unit/test_faust_internals.py).
The versions are pinned in pyproject.toml; docs/faust.md tells why each one is needed.

- `BatchingConsumer`: Faust's fetch loop (`Consumer._drain_messages`) hands each record to
  the conductor inside `wait_first(callback(message), suspend_flow.wait())`, two tasks and
  a trip through the event loop per record. This one hands over a whole fetch in one task
  (`_hand_over`), which a rebalance (`suspend_flow`) cancels as before; everything else is
  Faust's. Its consumer reads `read_committed` and asks the broker to hold a fetch at
  most FETCH_MAX_WAIT_MS.
- `FencingTableManager`: Faust's table manager, which runs a hook (the fencing of
  journey/stream/transactions.py) before the changelogs of an assignment are read, and
  whose recovery (`ChangelogEndRecovery`) takes a changelog's end to be its last record
  rather than its last offset: with transactions the last offset is a marker no consumer
  is handed, and Faust's recovery would wait for it forever. It also starts without
  Faust's one-second wait for tables declared late (the worker declares none late).
- The transactional producer's fatal state and its cause (`transaction_failure`,
  journey/stream/transactions.py).
- The producer's metadata and partitioner (record batches, journey/stream/produce.py), the
  RocksDB store's per-partition databases, driver and persisted-offset key
  (journey/stream/tables.py reads states by partition; journey/stream/indexfamily.py
  writes index entries beside them), the worker's signal and crash handlers
  (`HookedWorker`), and the aiohttp application under Faust's web server
  (`add_web_middleware`: JSON bodies for the router's 404 and 405).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import faust
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import (
    AIOKafkaConsumerThread,
    Consumer,
    Transport,
    credentials_to_aiokafka_auth,
    server_list,
)
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
        # Records of aborted transactions (a fenced worker's) and transaction markers are
        # never handed over; Faust reads committed data only in its own exactly_once mode.
        consumer._isolation_level = "read_committed"
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


#: How long reading the ends of an assignment's changelogs may take, well inside Faust's
#: own bound on building them (broker_request_timeout, 90 s by default).
CHANGELOG_END_TIMEOUT_S = 45.0
#: Run before the changelogs of an assignment are read: the active partitions (numbers).
BeforeRecovery = Callable[[frozenset[TP]], Awaitable[None]]
#: The offset of the last committed record of a partition below an offset.
LastOffsetBefore = Callable[[str, int, int], Awaitable[int]]


class ChangelogEndRecovery(Recovery):
    """Faust's recovery, with each changelog's end taken at its last record.

    Faust reads a changelog up to its highwater less one and waits until a record with
    that offset has been applied. A transaction ends with a marker, which takes an offset
    but is never handed to a consumer, so after every transactional write the last offset
    below the end is a marker, and the wait would never end (Faust's own exactly_once mode
    waits two 5 s timeouts and then looks at the consumer position). Here the end is the
    offset of the last committed record, read from the broker (journey/stream/reader.py)."""

    last_offset_before: LastOffsetBefore | None = None
    #: Run when the recovery of an assignment starts, after the rebalance callback has
    #: returned (the consumer heartbeats meanwhile), before the persisted offsets of the
    #: active changelog partitions are read: the bulk restore (journey/stream/restore.py).
    before_offsets: BeforeRecovery | None = None

    async def _build_offsets(self, consumer: Any, tps: Any, destination: Any,
                             title: str) -> None:
        hook = self.before_offsets
        if hook is not None and title == "active" and tps:
            await hook(frozenset(tps))
            # The offsets to read from were taken from the stores at the assignment
            # (Recovery.add_active): take what the hook wrote into them since.
            for tp in tps:
                table = self.tp_to_table.get(tp)
                persisted = None if table is None else table.persisted_offset(tp)
                if persisted is not None and (destination[tp] is None
                                              or persisted > destination[tp]):
                    destination[tp] = persisted
        await super()._build_offsets(consumer, tps, destination, title)

    async def _build_highwaters(self, consumer: Any, tps: Any, destination: Any,
                                title: str) -> None:
        await super()._build_highwaters(consumer, tps, destination, title)
        last_before = self.last_offset_before
        if last_before is None:
            return
        ends = {tp: end for tp, end in destination.items() if tp in tps and end is not None
                and end >= 0}
        try:
            lasts = await asyncio.wait_for(asyncio.gather(
                *(last_before(tp.topic, tp.partition, end + 1) for tp, end in ends.items())),
                CHANGELOG_END_TIMEOUT_S)
        except Exception as exc:
            # Faust would take a timeout here for a stop and end its recovery for good,
            # leaving the worker in the group with nothing processed: stop it instead.
            log.critical("the ends of the changelogs could not be read (%s: %s); stopping",
                         type(exc).__name__, exc)
            await self.app.crash(exc)
            raise
        for (tp, end), last in zip(ends.items(), lasts, strict=True):
            destination[tp] = last
            if last != end:
                log.debug("changelog %s[%d]: last record at %s, end offset %d", tp.topic,
                          tp.partition, last, end + 1)


class FencingTableManager(TableManager):
    """Faust's table manager: `before_recovery` runs on every assignment before the
    changelogs are read (and before anything of the assignment is processed); its
    recovery is ChangelogEndRecovery."""

    before_recovery: BeforeRecovery | None = None

    async def on_start(self) -> None:
        """Faust's start, less its first second: TableManager.on_start sleeps 1 s so that
        tables declared after the app started are still registered, then registers their
        changelog channels (`_update_channels`) and starts recovery. The worker declares
        every table before it starts (journey/stream/tables.py), so the second only
        delayed every start; the subscription waits for the registration as before."""
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = ChangelogEndRecovery(self.app, self, beacon=self.beacon,
                                                  loop=self.loop)
        return self._recovery

    async def on_rebalance(self, assigned: Any, revoked: Any, newly_assigned: Any,
                           generation_id: int = 0) -> None:
        hook = self.before_recovery
        # A generation already superseded is skipped, as Faust's recovery skips it: its
        # producers would fence the partitions' owners of the newer one.
        if hook is not None and generation_id == self.app.consumer_generation_id:
            await hook(frozenset(self.app.assignor.assigned_actives()))
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)


def aiokafka_options(app: faust.App) -> dict[str, Any]:
    """The connection options Faust gives its aiokafka clients: brokers, TLS, SASL."""
    conf = app.conf
    transport: Any = app.transport
    return {
        "bootstrap_servers": server_list(transport.url, transport.default_port),
        **credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context),
    }


async def wait_on_metadata(producer: Any, topic: str) -> None:
    """Wait until an aiokafka producer knows `topic`'s partitions."""
    await producer.client._wait_on_metadata(topic)


def default_partition(producer: Any, topic: str, key: bytes | None,
                      value: bytes | None) -> int:
    """The partition an aiokafka producer's own partitioner gives a keyed record."""
    return int(producer._partition(topic, None, None, None, key, value))


def transaction_failure(producer: Any) -> BaseException | None:
    """What put an aiokafka transactional producer in its fatal state (a fence seen by its
    background sender, say), or None when it is not in one. aiokafka then refuses every
    call with IllegalOperation or an assertion, not with the cause."""
    manager = producer._txn_manager
    if manager is None or not manager.is_fatal_error():
        return None
    waiter = manager._transaction_waiter
    if waiter is not None and waiter.done() and not waiter.cancelled():
        return waiter.exception()  # type: ignore[no-any-return]
    return RuntimeError("the transactional producer is in its fatal state")


def add_web_middleware(app: faust.App, middleware: Any) -> None:
    """Add an aiohttp middleware to the worker's web server: Faust's aiohttp driver keeps
    its aiohttp Application as `web_app` (not in Faust's Web interface); middlewares must
    be added before the server starts."""
    web: Any = app.web
    web.web_app.middlewares.append(middleware)


def rocksdb_partition(store: Any, partition: int) -> Any | None:
    """The RocksDB database of one partition of a Faust table's store, or None when the
    store is not RocksDB (the memory store keeps one dict)."""
    db_for = getattr(store, "_db_for_partition", None)
    return None if db_for is None else db_for(partition)


def rocksdb_items(store: Any, db: Any) -> Iterator[tuple[bytes, bytes]]:
    """Every key and value of one RocksDB partition database, without Faust's metadata."""
    yield from store._visible_items(db)


def rocksdict_store(store: Any) -> bool:
    """Whether a Faust table's store is RocksDB through rocksdict (Faust's default driver
    when rocksdict is installed; the other is python-rocksdb)."""
    return (getattr(store, "_db_for_partition", None) is not None
            and getattr(store, "use_rocksdict", False) is True)


def rocksdb_offset_key(store: Any) -> bytes:
    """The key under which Faust's RocksDB store keeps each partition database's persisted
    changelog offset (in the default column family, as `str(offset).encode()`)."""
    return bytes(store.offset_key)


class HookedWorker(faust.Worker):
    """Faust's worker with two hooks: `on_stop_signal` when SIGTERM or SIGINT asks it to
    stop, and `on_crashed` when mode marks the whole service tree crashed (it does so
    here, not through `crash`, when a service without a supervisor crashes, e.g. the app
    after a processing failure)."""

    def on_stop_signal(self, signal_name: str) -> None:
        """Called first thing when a stop signal arrives."""

    def on_crashed(self) -> None:
        """Called first thing when the service tree is marked crashed."""

    def _on_sigterm(self) -> None:
        self.on_stop_signal("SIGTERM")
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self.on_stop_signal("SIGINT")
        super()._on_sigint()

    def _crash(self, reason: BaseException) -> None:
        self.on_crashed()
        super()._crash(reason)
