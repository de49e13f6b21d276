"""The states' index entries kept apart in a RocksDB store (journey/stream/indexfamily.py): a
rebuild from them equals one from the states, through restores, overwrites and erasures;
Faust never sees them; and a family a store cannot vouch for is not used."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP

from journey.engine import CustomerState
from journey.pipeline.build import build_engine
from journey.pipeline.inprocess import in_process_pipeline, replay_lines
from journey.pipeline.metrics import StagePopulations
from journey.pipeline.processor import SOURCES_KEY
from journey.pipeline.settings import Settings
from journey.pipeline.stateindex import Rebuild, StateIndex, encode, entry_prefix
from journey.pipeline.timekeeping import DueIndex
from journey.stream.indexfamily import FAMILY, Marks, index_items
from journey.stream.tables import StoreView, changelog_event, declare
from tests.bench.generate import touchpoint_lines

SETTINGS = Settings(quiet_hours="", contact_budget="")
PARTITION = 2


@pytest.fixture(scope="module")
def states() -> list[CustomerState]:
    pipeline = in_process_pipeline(SETTINGS)
    for _ in replay_lines(touchpoint_lines(3000, 400, seed=5), pipeline):
        pass
    return list(pipeline.states.live.values())


@pytest.fixture(scope="module")
def index() -> StateIndex:
    return StateIndex(build_engine(SETTINGS))


def value_of(state: CustomerState, entry: list[object] | None) -> bytes:
    doc = state.to_dict()
    doc[SOURCES_KEY] = [1, -1]
    return encode(doc, entry)


def awkward_values(index: StateIndex) -> list[bytes]:
    """Values whose entries are hard to find the end of, or are not entries at all."""
    fp = index.fingerprint
    odd: list[list[object]] = [
        [fp, 7, "lead", 'a"]b', "x],y"], [fp, None, None], [fp, 1, "lead", "j"],
        ["another", 5, "lead", "j", "s"], [fp, 3, "lead", '"],', "\\"], [fp, "x"]]
    found = [encode({"v": 1, "customer_id": "c"}, entry) for entry in odd]
    return [*found, b"", b"{}", b'{"_index":', b'{"_index":[1,2', b'{"_index":["a"],',
            b'{"_index":[["x"],1],"v":1}', b'{"_index":["a\\"],"],"v":1}', b"\x00not json"]


def test_a_prefix_reads_as_the_whole_state_does(states: list[CustomerState],
                                                index: StateIndex) -> None:
    other = StateIndex(index.engine)
    other.fingerprint = "another-config"
    values = [value_of(s, index.entry(s)) for s in states[:200]]
    values += [value_of(s, None) for s in states[:20]] + awkward_values(index)
    for value in values:
        prefix = entry_prefix(value)
        assert value.startswith(prefix)
        assert index.read(prefix) == index.read(value), value[:80]
        assert other.read(prefix) == other.read(value) is None
    assert sum(len(entry_prefix(v)) for v in values[:200]) < sum(map(len, values[:200])) / 10


class Tables:
    """The worker's tables on a RocksDB store in a directory, without a broker."""

    def __init__(self, datadir: Path) -> None:
        app = faust.App("t-indexfamily", broker="kafka://127.0.0.1:1", store="rocksdb://",
                        datadir=str(datadir))
        self.states = declare(app, SETTINGS.topics()).states
        self.topic = self.states.changelog_topic.get_topic_name()
        self.view = StoreView(self.states, SETTINGS.partitions)
        self.offset = 0

    def events(self, pairs: list[tuple[bytes, bytes | None]]) -> list[Any]:
        found = []
        for key, value in pairs:
            self.offset += 1
            found.append(changelog_event(self.topic, PARTITION, self.offset, key, value))
        return found

    def apply(self, pairs: list[tuple[bytes, bytes | None]]) -> None:
        """As Faust's recovery, the bulk restore and a standby apply changelog records."""
        self.states.apply_changelog_batch(self.events(pairs))

    def apply_as_before(self, pairs: list[tuple[bytes, bytes | None]]) -> None:
        """As a version of the worker without the family did."""
        faust.Table.apply_changelog_batch(self.states, self.events(pairs))

    def close(self) -> None:
        for db in self.states.data._dbs.values():
            db.close()
        self.states.data._dbs.clear()


def rebuilt(index: StateIndex, items: Iterator[tuple[bytes, bytes]],
            full: Any = None) -> Rebuild:
    rebuild = Rebuild(index, PARTITION, DueIndex(), StagePopulations())
    for _ in rebuild.run(items, 50, full):
        pass
    return rebuild


def same(a: Rebuild, b: Rebuild) -> None:
    assert (a.count, a.unreadable, a.decoded) == (b.count, b.unreadable, b.decoded)
    assert a.due._armed == b.due._armed
    assert a.populations.stages() == b.populations.stages()
    assert a.populations.statuses() == b.populations.statuses()


Pairs = list[tuple[bytes, bytes | None]]


def history(states: list[CustomerState], index: StateIndex) -> list[Pairs]:
    """Batches of changelog records: states with entries, states written before entries,
    entries of another configuration, an unreadable value, awkward entries, overwrites, and
    erasures (tombstones), some of keys never written."""
    keyed = [(s.customer_id.encode(), value_of(s, index.entry(s))) for s in states]
    stale = StateIndex(index.engine)
    stale.fingerprint = "another-config"
    first: Pairs = list(keyed[:150])
    second: Pairs = [
        *[(s.customer_id.encode(), value_of(s, None)) for s in states[150:170]],
        *[(s.customer_id.encode(), value_of(s, stale.entry(s))) for s in states[170:190]],
        (b"broken", b"\x00not json"),
        *[(f"odd-{i}".encode(), v) for i, v in enumerate(awkward_values(index))],
    ]
    third: Pairs = [
        *[(k, None) for k, _ in keyed[:30]],  # erased
        (b"never-written", None),
        *[(keyed[i][0], keyed[i + 40][1]) for i in range(40, 60)],  # overwritten
        *keyed[190:],
        (keyed[5][0], keyed[5][1]),  # erased, then back
    ]
    return [first, second, third]


def test_the_rebuild_from_the_family_equals_the_rebuild_from_the_states(
        tmp_path: Path, states: list[CustomerState], index: StateIndex) -> None:
    # Given a store that took restores, overwrites and erasures in several batches
    tables = Tables(tmp_path)
    for batch in history(states, index):
        tables.apply(batch)
    # When a partition is rebuilt from the entries kept apart, and from the states
    apart = index_items(tables.states.data, PARTITION, Marks())
    assert apart is not None
    from_family = rebuilt(index, *apart)
    from_states = rebuilt(index, tables.view.items(PARTITION))
    # Then both arm and count the same, states without a usable entry decoded in full
    same(from_family, from_states)
    assert from_family.decoded >= 40 and from_family.unreadable >= 1
    assert from_family.count == len(list(tables.view.items(PARTITION)))
    # And after a restart on the same directory, the family is still there and complete
    tables.close()
    again = Tables(tmp_path)
    apart = index_items(again.states.data, PARTITION, Marks())
    assert apart is not None
    same(rebuilt(index, *apart), from_states)


def test_faust_sees_only_the_states(tmp_path: Path, states: list[CustomerState],
                                    index: StateIndex) -> None:
    tables = Tables(tmp_path)
    for batch in history(states, index):
        tables.apply(batch)
    store = tables.states.data
    db = store._db_for_partition(PARTITION)
    visible = dict(store._visible_items(db))
    assert visible == dict(tables.view.items(PARTITION))
    assert all(not v.startswith(b'{"_index":[') or len(v) > 200 or k.startswith(b"odd-")
               for k, v in visible.items())  # whole states, not prefixes
    assert store.persisted_offset(TP(tables.topic, PARTITION)) == tables.offset
    assert len(list(db.get_column_family(FAMILY).items())) == len(visible) + 1  # the mark


def test_a_store_written_before_the_family_is_rebuilt_from_its_states(
        tmp_path: Path, states: list[CustomerState], index: StateIndex) -> None:
    # Given a store an older version wrote, then this one
    tables = Tables(tmp_path)
    first, second, third = history(states, index)
    tables.apply_as_before(first)
    tables.apply(second)
    tables.apply(third)
    # Then its family lacks the first states: the rebuild reads the states
    assert index_items(tables.states.data, PARTITION, Marks()) is None


def test_a_write_by_an_older_version_makes_the_family_untrusted(
        tmp_path: Path, states: list[CustomerState], index: StateIndex) -> None:
    # Given a complete family, then a roll-back that wrote states without entries
    tables = Tables(tmp_path)
    first, second, third = history(states, index)
    tables.apply(first)
    assert index_items(tables.states.data, PARTITION, Marks()) is not None
    tables.apply_as_before(third)
    # Then the family is not used again, even after this version writes once more
    assert index_items(tables.states.data, PARTITION, Marks()) is None
    tables.apply(second)
    assert index_items(tables.states.data, PARTITION, Marks()) is None


def test_a_rebuild_from_the_states_fills_the_family_for_the_next_one(
        tmp_path: Path, states: list[CustomerState], index: StateIndex) -> None:
    # Given a store an older version wrote in full
    tables = Tables(tmp_path)
    for batch in history(states, index):
        tables.apply_as_before(batch)
    # When it is rebuilt (from its states: there is no family)
    apart, stored = tables.view.rebuild_items(PARTITION)
    assert apart is None
    first = rebuilt(index, stored)
    # Then the next rebuild reads the entries, and arms and counts the same
    apart, _ = tables.view.rebuild_items(PARTITION)
    assert apart is not None
    same(rebuilt(index, *apart), first)
    same(first, rebuilt(index, tables.view.items(PARTITION)))


def test_a_write_while_the_family_is_filled_leaves_it_untrusted(
        tmp_path: Path, states: list[CustomerState], index: StateIndex) -> None:
    # Given a store an older version wrote, whose rebuild is filling the family
    tables = Tables(tmp_path)
    first, second, third = history(states, index)
    tables.apply_as_before(first)
    tables.apply_as_before(second)
    _, stored = tables.view.rebuild_items(PARTITION)
    head = [next(stored) for _ in range(10)]
    # When states are written meanwhile (erasures and overwrites among them)
    tables.apply(third)
    rest = list(stored)
    assert len(head) + len(rest) > 100
    # Then the family is not trusted; the next rebuild fills it again, complete
    assert index_items(tables.states.data, PARTITION, Marks()) is None
    apart, stored = tables.view.rebuild_items(PARTITION)
    assert apart is None
    from_states = rebuilt(index, stored)
    apart, _ = tables.view.rebuild_items(PARTITION)
    assert apart is not None
    same(rebuilt(index, *apart), from_states)


def test_a_fill_left_unfinished_leaves_the_family_untrusted(
        tmp_path: Path, states: list[CustomerState], index: StateIndex) -> None:
    tables = Tables(tmp_path)
    tables.apply_as_before(history(states, index)[0])
    _, stored = tables.view.rebuild_items(PARTITION)
    for _ in range(20):
        next(stored)
    assert isinstance(stored, Generator)
    stored.close()  # the partition was given away meanwhile
    assert index_items(tables.states.data, PARTITION, Marks()) is None


def test_writes_do_not_flush_the_family_each_time(
        tmp_path: Path, states: list[CustomerState], index: StateIndex) -> None:
    # rocksdict reads a family through a view that flushes it when dropped: read on every
    # write batch, that was a flush and a tiny table file per batch
    tables = Tables(tmp_path)
    for state in states[:60]:
        tables.apply([(state.customer_id.encode(), value_of(state, index.entry(state)))])
    assert index_items(tables.states.data, PARTITION, Marks()) is not None
    [log] = tmp_path.rglob("customer-state-2.db/LOG")
    assert log.read_text().count(f"[{FAMILY}] Manual flush start") <= 4


def test_an_empty_store_rebuilt_first_gets_a_complete_family_with_its_first_write(
        tmp_path: Path, states: list[CustomerState], index: StateIndex) -> None:
    # Given a worker's first start on an empty store: the rebuild comes before any write
    tables = Tables(tmp_path)
    apart, stored = tables.view.rebuild_items(PARTITION)
    assert apart is None and rebuilt(index, stored).count == 0
    # When the barrier writes its first states
    for batch in history(states, index):
        tables.apply(batch)
    # Then the next rebuild reads the entries
    apart, _ = tables.view.rebuild_items(PARTITION)
    assert apart is not None
    same(rebuilt(index, *apart), rebuilt(index, tables.view.items(PARTITION)))
