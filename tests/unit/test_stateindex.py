"""The index entry at the front of a stored state: the due index rebuild reads deadlines and
positions from it without decoding states, and decodes in full whatever it cannot trust."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import orjson
import pytest

from journey.engine import CustomerState, Engine
from journey.pipeline import stateindex
from journey.pipeline.build import build_engine
from journey.pipeline.inprocess import in_process_pipeline, replay_lines
from journey.pipeline.metrics import StagePopulations
from journey.pipeline.processor import SOURCES_KEY, StateCache
from journey.pipeline.settings import Settings
from journey.pipeline.stateindex import (
    INDEX_KEY,
    PrefixReader,
    Rebuild,
    StateIndex,
    encode,
    engine_source_hash,
    entry_prefix,
    fingerprint,
)
from journey.pipeline.timekeeping import DueIndex
from tests.bench.generate import touchpoint_lines

SETTINGS = Settings(quiet_hours="", contact_budget="")


@pytest.fixture(scope="module")
def states() -> list[CustomerState]:
    """A mix of histories made by the engine itself: leads, regulars, quiet and lost."""
    pipeline = in_process_pipeline(SETTINGS)
    for _ in replay_lines(touchpoint_lines(4000, 600, seed=3), pipeline):
        pass
    return list(pipeline.states.live.values())


def stored(states: list[CustomerState], index: StateIndex | None) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs as the worker's table holds them, with the input offsets too."""
    found = []
    for n, state in enumerate(states):
        doc = state.to_dict()
        doc[SOURCES_KEY] = [n, -1]
        found.append((state.customer_id.encode(),
                      encode(doc, None if index is None else index.entry(state))))
    return found


def rebuilt(index: StateIndex, items: list[tuple[bytes, bytes]]) -> Rebuild:
    rebuild = Rebuild(index, 0, DueIndex(), StagePopulations())
    for _ in rebuild.run(iter(items), slice_size=100):
        pass
    return rebuild


def armed(rebuild: Rebuild, states: list[CustomerState]) -> dict[str, int | None]:
    return {s.customer_id: rebuild.due.deadline_of(s.customer_id) for s in states}


def test_the_rebuild_from_entries_arms_and_counts_as_a_full_decode_does(
        states: list[CustomerState]) -> None:
    # Given the same states stored with entries and without (as older code wrote them)
    index = StateIndex(build_engine(SETTINGS))
    # When a partition is rebuilt from each
    fast = rebuilt(index, stored(states, index))
    full = rebuilt(index, stored(states, None))
    # Then the entries were read without decoding a state, and decoding every state gives
    # the same deadlines and the same populations
    assert fast.count == full.count == len(states)
    assert (fast.decoded, full.decoded) == (0, len(states))
    assert armed(fast, states) == armed(full, states)
    assert sum(d is not None for d in armed(fast, states).values()) > len(states) // 2
    assert fast.populations.stages() == full.populations.stages()
    assert fast.populations.statuses() == full.populations.statuses()
    assert sum(fast.populations.statuses().values()) > 0


def test_entries_of_another_configuration_are_decoded_in_full(
        states: list[CustomerState]) -> None:
    # Given states written by a worker whose customers go cold after 90 days
    before = build_engine(SETTINGS)
    items = stored(states, StateIndex(before))
    # When the next deploy says 30 days and rebuilds
    changed = Engine([j.definition for j in before.journeys],
                     config=dataclasses.replace(before.config, cold_after_ms=30 * 86_400_000))
    rebuild = rebuilt(StateIndex(changed), items)
    # Then every state was decoded and armed by the new configuration's rules
    assert rebuild.decoded == len(states)
    assert armed(rebuild, states) == {s.customer_id: changed.next_deadline(s) for s in states}
    assert armed(rebuild, states) != {s.customer_id: before.next_deadline(s) for s in states}


def test_a_change_of_the_engine_source_changes_the_fingerprint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the fingerprint of today's engine and configuration
    engine = build_engine(SETTINGS)
    today = fingerprint(engine)
    # When a deploy changes a rule's code but neither the version nor the configuration
    # (the engine's source hash stands for that code here)
    monkeypatch.setattr(stateindex, "engine_source_hash", lambda: "another engine")
    # Then entries written before no longer count: their states are decoded in full
    assert fingerprint(engine) != today
    assert len(engine_source_hash()) == 64


def test_a_state_with_its_entry_reads_back_unchanged_everywhere(
        states: list[CustomerState]) -> None:
    # Given a state the worker's cache wrote with its entry and input offsets
    index = StateIndex(build_engine(SETTINGS))
    state = next(s for s in states if s.journeys)
    writer = StateCache(lambda key: None, 1, index=index)
    writer.put(state.customer_id, state)
    writer.mark(state.customer_id, 0, 41)
    [(_, _, value)] = writer.take_dirty()
    assert value is not None and value.startswith(b'{"' + INDEX_KEY.encode())
    # Then every reader of stored states sees the same state
    assert CustomerState.from_bytes(value) == state
    reader = StateCache(lambda key: value, 1)
    assert reader.get(state.customer_id) == state
    assert reader.seen(state.customer_id, 0, 41)
    assert reader.peek(state.customer_id) == state


@pytest.mark.parametrize("name", ['a"]b', "c\\d", "[x]", "x],y", 'q"],"r', "é,{}"])
def test_an_entry_with_awkward_stage_names_is_read_exactly(
        states: list[CustomerState], name: str) -> None:
    # Given an entry whose journey and stage names hold JSON's own punctuation
    index = StateIndex(build_engine(SETTINGS))
    entry: list[object] = [index.fingerprint, 123, "lead", name, name + "!"]
    value = encode({"v": 3, "customer_id": "c"}, entry)
    # Then it reads back as written, and the state after it is untouched
    assert index.read(value) == (123, (((name, name + "!"),), "lead"))
    assert orjson.loads(value)["customer_id"] == "c"


def test_an_unreadable_state_is_counted_and_the_rest_rebuilt(
        states: list[CustomerState]) -> None:
    # Given a partition where one stored value is not a state
    index = StateIndex(build_engine(SETTINGS))
    items = [*stored(states[:10], index), (b"broken", b"\x00not json")]
    # When it is rebuilt
    rebuild = rebuilt(index, items)
    # Then the broken one is counted as unreadable and the others armed from their entries
    assert (rebuild.count, rebuild.unreadable, rebuild.decoded) == (11, 1, 0)


def test_the_configuration_fingerprint_is_the_same_in_every_process() -> None:
    # Given the same settings in processes with different string hashing (set orders)
    code = ("from journey.pipeline.build import build_engine\n"
            "from journey.pipeline.settings import Settings\n"
            "from journey.pipeline.stateindex import fingerprint\n"
            "print(fingerprint(build_engine(Settings(definitions="
            "'touchpoint_journey,dentist,wedding_photographer'))))")
    # When each computes the fingerprint
    found = {subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            env={**os.environ, "PYTHONHASHSEED": str(seed)},
                            text=True).stdout.strip() for seed in (1, 2, 3)}
    # Then they agree, so a restart trusts the entries its predecessor wrote
    assert len(found) == 1 and len(found.pop()) == 12


def test_the_prefix_reader_answers_as_read_does(states: list[CustomerState]) -> None:
    # Given entries with every kind of deadline and rest, as prefixes and as whole values
    index = StateIndex(build_engine(SETTINGS))
    fp = index.fingerprint
    head = b'{"_index":["' + fp.encode() + b'",'
    rests = [b'"lead","j","s"],', b'null],', b'"lead","j"],', b'"a\\"],","x],y"],',
             b'"lead","j","s"]', b'"lead",["j"],"s"],', b'"lead","j","s"],"v":1}', b"],",
             b'"lead","j","s"],,', b'"lead" ,"j","s"],', b"", b'"\\u00e9","j","s"],']
    tokens = [b"null", b"0", b"7", b"1764547200000", b"-5", b"007", b"1e3", b"1.5",
              b"123456789012345678", b"1234567890123456789012", b" 5", b"nul", b"true",
              b'"5"', b""]
    values = [head + token + b"," + rest for token in tokens for rest in rests]
    values += [head + b"5", head, b'{"_index":["other",5,"lead"],', b"x"]
    values += [v for s in states[:100] for v in stored([s], index)[0][1:]]
    values += [entry_prefix(v) for v in values]
    # When each is read both ways (one reader for all: it keeps what it has read)
    reader = PrefixReader(index)
    # Then every answer is the same
    for value in values:
        assert reader.read(value) == index.read(value), value[:90]
    assert sum(index.read(v) is not None for v in values) > 150
