"""The worker's Faust topics and tables, and its two ways into a table's local store: read by
partition (`StoreView`), and the states the barrier has committed applied as Faust's own
recovery applies changelog records (`store_applier`). Every write of the states' table
goes through `StateTable._apply`, which on RocksDB keeps the states' index entries beside
them (journey/stream/indexfamily.py).

The local store is read by partition, never through Faust's `table[key]`: with RocksDB
that looks the key up in the partition of the *current event*, and a batch spans
partitions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from journey.contract.topics import Topics
from journey.pipeline.routing import Outgoing
from journey.pipeline.timekeeping import partition_of
from journey.stream.faust_internals import rocksdb_items, rocksdb_partition
from journey.stream.indexfamily import (
    IndexItems,
    Marks,
    apply_indexed,
    index_items,
    refilling,
)

#: (key, value) pairs of a table's local store
Stored = Iterator[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Channels:
    """The Faust topic and table handles of one app."""

    touchpoints: Any
    events: Any
    states: Any
    #: erasure markers: customer id -> erased_at epoch ms (ASCII), no personal data
    erasures: Any = None


class StateTable(faust.Table[bytes, bytes]):
    """A table of the worker's own (customer states, erasure markers). Counts the changelog
    records Faust's recovery applies to the local store (`on_restored`); the barrier's own
    writes go through `apply_confirmed` and are not counted. With RocksDB a restart
    restores only the changelog's tail."""

    on_restored: Callable[[int], None] = staticmethod(lambda n: None)
    #: the customer states' table: a RocksDB store keeps each state's index entry beside
    #: it, written in the same batch (journey/stream/indexfamily.py)
    indexed: bool = False

    def apply_changelog_batch(self, batch: Any) -> None:
        events = batch if isinstance(batch, list) else list(batch)
        self._apply(events)
        self.on_restored(len(events))

    def apply_confirmed(self, batch: Sequence[Any]) -> None:
        self._apply(batch)

    def _apply(self, events: Sequence[Any]) -> None:
        if not (self.indexed and apply_indexed(self.data, events, self.index_marks())):
            super().apply_changelog_batch(events)

    def index_marks(self) -> Marks:
        """What this process knows of the completeness of the store's index families."""
        marks: Marks | None = getattr(self, "_index_marks", None)
        if marks is None:
            marks = self._index_marks = Marks()
        return marks


#: Changelog records a standby replica gathers per partition before applying them.
STANDBY_BUFFER = 100


def declare(app: faust.App, topics: Topics) -> Channels:
    def topic(spec: Any, **kw: Any) -> Any:
        return app.topic(
            spec.name, partitions=spec.partitions, key_serializer="raw",
            value_serializer="raw", **kw,
        )

    def table(name: str, help: str) -> StateTable:
        # bytes types make Faust use the raw codec for the changelog in both directions
        # (a Schema alone sets the writer but not the recovery reader).
        # A standby applies what it reads once STANDBY_BUFFER records of a partition have
        # arrived (Faust's default is 1,000): the copy a take-over starts from stays fresh.
        table = StateTable(app, name=name, beacon=app.tables.beacon,
                           partitions=topics.events.partitions, key_type=bytes,
                           value_type=bytes, help=help, standby_buffer_size=STANDBY_BUFFER)
        app.tables.add(table)
        return table

    # acks=False: Faust neither tracks nor commits the input topics' offsets; the barrier
    # commits them in its transactions (docs/faust.md explains why Faust's own cannot).
    states = table("customer-state",
                   "Journey state per customer id (JSON bytes of CustomerState).")
    states.indexed = True
    return Channels(
        touchpoints=topic(topics.touchpoints, acks=False),
        events=topic(topics.events, internal=True, acks=False),
        states=states,
        erasures=table("customer-erasures", "Erased customers: id -> erased_at epoch ms "
                       "(journey/pipeline/processor.py)."),
    )


class StoreView:
    """The table's local store read per partition: one key, or every stored state of one
    partition (RocksDB keeps a database per partition; the memory store one dict)."""

    def __init__(self, table: Any, partitions: int) -> None:
        self._table = table
        self.partitions = partitions

    def read(self, key: bytes) -> bytes | None:
        store = self._table.data
        db = rocksdb_partition(store, partition_of(key, self.partitions))
        value = store.data.get(key) if db is None else db.get(key)
        return None if value is None else bytes(value)

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        store = self._table.data
        db = rocksdb_partition(store, partition)
        if db is not None:
            yield from rocksdb_items(store, db)
            return
        partitions = self.partitions
        for key, value in list(store.data.items()):
            if partition_of(key, partitions) == partition:
                yield key, value

    def rebuild_items(self, partition: int) -> tuple[IndexItems | None, Stored]:
        """What the due index rebuild of one partition reads: the index entries kept apart
        by a RocksDB store, when complete (journey/stream/indexfamily.py), else None and
        every stored state (a RocksDB store then fills its entries anew on the way)."""
        store, marks = self._table.data, self._table.index_marks()
        apart = index_items(store, partition, marks)
        if apart is not None:
            return apart, iter(())
        return None, refilling(store, partition, self.items(partition), marks)


@dataclass(frozen=True, slots=True)
class _ChangelogMessage:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes | None

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class _ChangelogEvent:
    key: bytes
    value: bytes | None
    message: _ChangelogMessage


def changelog_event(topic: str, partition: int, offset: int, key: bytes | None,
                    value: bytes | None) -> _ChangelogEvent:
    """One changelog record as Faust's `apply_changelog_batch` reads it (the event's key,
    value and message: topic, partition, offset and tp)."""
    key = key or b""
    return _ChangelogEvent(key, value, _ChangelogMessage(topic, partition, offset, key, value))


def store_applier(*tables: Any) -> Callable[[Sequence[tuple[Outgoing, Any]]], None]:
    """Apply confirmed changelog records to each table's local store the way Faust's own
    recovery does (Table.apply_changelog_batch), so the store, and a RocksDB store's
    persisted changelog offset, are exactly what a restart would rebuild. Records go to
    the table whose changelog topic they were written to."""
    by_topic = {t.changelog_topic.get_topic_name(): t for t in tables}

    def apply(written: Sequence[tuple[Outgoing, Any]]) -> None:
        batches: dict[str, list[_ChangelogEvent]] = {}
        for record, meta in written:
            batches.setdefault(record.topic, []).append(changelog_event(
                record.topic, int(meta.partition), int(meta.offset), record.key,
                record.value))
        for topic, batch in batches.items():
            by_topic[topic].apply_confirmed(batch)

    return apply

