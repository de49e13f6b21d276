"""The index entries of a RocksDB store's customer states, kept apart from the states, so
that the due index rebuild of a warm restart reads about 80 bytes per customer instead of
the whole state (1.9 KB on average): RocksDB's iteration over whole states was most of a
million-customer warm recovery.

Each partition's database gets a column family, FAMILY, beside Faust's own (the default
family, which Faust alone reads and sizes: nothing of Faust sees the other). It maps every
customer key to the `entry_prefix` of its stored state (journey/pipeline/stateindex.py),
and is written in the same RocksDB write batch as the states themselves, whoever writes
them: Faust's changelog recovery, the bulk restore, a standby, the barrier's confirmed
writes. A tombstone (an erasure) deletes the key from both. The changelog stays the only
source of truth: the family is derived from what is applied to the store, never read from
anywhere else, and a cold restore writes it as it writes the states.

The family is trusted only when complete. Its MARK holds Faust's persisted changelog
offset as of the last batch that kept it complete, written in that same batch together
with the offset itself. A database that had states before the family existed (a store
written by an older version), or that a version without this module wrote to meanwhile
(the offsets then differ), has a family that is not complete: its rebuild reads the
states, as before (`index_items` answers None), and fills the family anew as it goes
(`refilling`), so the next rebuild reads the entries. A family starts complete only when
it is created on an empty database, or when a refill read every state while nothing was
written to the partition.

The mark is read from the database once per partition and then kept in memory (`Marks`),
for as long as the persisted offset is the one this process last wrote: rocksdict reads a
family only through a view of it that flushes the family's memtable when dropped, which
on every write batch cost a small flush and a tiny table file each (the cold restore's
page went silent for seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from journey.pipeline.stateindex import entry_prefix
from journey.stream.faust_internals import (
    rocksdb_offset_key,
    rocksdb_partition,
    rocksdict_store,
)

#: The column family of the index entries, in every partition database of the states' store.
FAMILY = "journey-index"
#: The family's own key for its mark; no customer key is empty (records.CustomerId).
MARK = b""

#: (key, entry prefix) of every state of a partition, and a way to read one state whole.
IndexItems = tuple[Iterator[tuple[bytes, bytes]], Callable[[bytes], bytes | None]]


@dataclass
class Marks:
    """Whether each partition's family is complete, as this process last wrote or read it,
    with the persisted offset it was at: trusted only while that offset is still the
    database's (no other writer since, the database reopened or not)."""

    known: dict[int, tuple[bytes, bool]] = field(default_factory=dict)

    def complete(self, db: Any, partition: int, persisted: bytes | None) -> bool:
        known = self.known.get(partition)
        if known is not None and known[0] == persisted:
            return known[1]
        mark = db.get_column_family(FAMILY).get(MARK)  # the view's drop flushes: rarely
        return mark is not None and mark == persisted

    def wrote(self, partition: int, persisted: bytes, complete: bool) -> None:
        self.known[partition] = (persisted, complete)


def _family(db: Any) -> Any | None:
    """The family's handle in `db` (for write batches), or None when it was never made."""
    try:
        return db.get_column_family_handle(FAMILY)
    except Exception:  # rocksdict raises a bare Exception for an unknown family
        return None


def _empty(db: Any) -> bool:
    it = db.iter()
    it.seek_to_first()
    return not it.valid()


def apply_indexed(store: Any, events: Sequence[Any], marks: Marks) -> bool:
    """Apply changelog events (Faust's `apply_changelog_batch` shape: `event.message` with
    partition, offset, key and value) to a RocksDB store as Faust does, one write batch per
    partition holding the states and the partition's persisted offset, and in the same
    batch their index entries and, while the family is complete, its mark. False, with
    nothing written, when the store is not a rocksdict RocksDB store: the caller applies
    the events Faust's way."""
    if not rocksdict_store(store):
        return False
    from rocksdict import Options, WriteBatch

    offset_key = rocksdb_offset_key(store)
    by_partition: dict[int, list[Any]] = {}
    for event in events:
        by_partition.setdefault(event.message.partition, []).append(event.message)
    for partition, messages in by_partition.items():
        db: Any = rocksdb_partition(store, partition)  # never None in a rocksdict store
        family = _family(db)
        if family is None:
            complete = _empty(db)  # states written before the family would be missing
            db.create_column_family(FAMILY, Options(raw_mode=True))
            family = _family(db)
        else:
            complete = marks.complete(db, partition, db.get(offset_key))
        batch = WriteBatch(raw_mode=True)
        offset = -1
        for message in messages:
            offset = max(offset, message.offset)
            key, value = message.key, message.value
            if value is None:
                batch.delete(key)
                batch.delete(key, family)
            else:
                batch.put(key, value)
                if key == MARK:
                    complete = False  # cannot be kept apart: the family is not trusted
                else:
                    batch.put(key, entry_prefix(value), family)
        persisted = str(offset).encode()  # as Faust's set_persisted_offset writes it
        batch.put(offset_key, persisted)
        if complete:
            batch.put(MARK, persisted, family)
        db.write(batch)
        marks.wrote(partition, persisted, complete)
    return True


def index_items(store: Any, partition: int, marks: Marks) -> IndexItems | None:
    """The index entries of one partition's states, when its family is complete: (key,
    entry prefix) pairs, and a read of one whole state (for an entry the rebuild cannot
    use). None when the rebuild must read the states themselves."""
    if not rocksdict_store(store):
        return None
    db = rocksdb_partition(store, partition)
    if db is None or _family(db) is None:
        return None
    if not marks.complete(db, partition, db.get(rocksdb_offset_key(store))):
        return None
    entries = db.get_column_family(FAMILY)

    def items() -> Iterator[tuple[bytes, bytes]]:
        for key, prefix in entries.items():
            if key != MARK:
                yield key, prefix

    return items(), db.get


#: Entries a refill writes per write batch.
REFILL_BATCH = 5000


def refilling(store: Any, partition: int, states: Iterator[tuple[bytes, bytes]],
              marks: Marks) -> Iterator[tuple[bytes, bytes]]:
    """`states` (every stored state of a partition whose family is not complete), passed
    on unchanged while the family is made anew from them: emptied first, then filled with
    their entries a write batch at a time. Marked complete at the end only when nothing
    was written to the partition meanwhile (its persisted offset is the same): a state
    changed while this read an older one is then left unmarked, not trusted. A refill left
    unfinished (the partition given away) leaves the family unmarked too."""
    if not rocksdict_store(store):
        yield from states
        return
    from rocksdict import Options, WriteBatch

    db: Any = rocksdb_partition(store, partition)
    offset_key = rocksdb_offset_key(store)
    persisted = db.get(offset_key)
    if persisted is None:
        # Nothing applied yet (an empty store, say): no mark could be written, and the
        # first write makes the family of an empty database, complete.
        yield from states
        return
    if _family(db) is not None:
        db.drop_column_family(FAMILY)
    db.create_column_family(FAMILY, Options(raw_mode=True))
    family = _family(db)
    marks.wrote(partition, persisted, False)
    batch = WriteBatch(raw_mode=True)
    complete = True
    for count, (key, value) in enumerate(states, start=1):
        if key == MARK:
            complete = False
        else:
            batch.put(key, entry_prefix(value), family)
        if count % REFILL_BATCH == 0:
            db.write(batch)
            batch = WriteBatch(raw_mode=True)
        yield key, value
    complete = complete and db.get(offset_key) == persisted
    if complete:
        batch.put(MARK, persisted, family)
    db.write(batch)
    if complete:
        marks.wrote(partition, persisted, True)
