"""What the due index rebuild needs of a stored state, kept at the front of the state's own
record, so that a restart re-arms and recounts a partition without decoding its states.

A partition's rebuild after recovery needs, per customer, only its next deadline and its
position (journeys' stages and lifecycle status, for the populations gauge). Decoding a
whole CustomerState for that costs 22 to 36 µs per customer (22 s or more at a million). The worker
therefore writes an entry at the front of every state it stores, in the same changelog
record (a cold restore carries it too):

    {"_index":["<fingerprint>",<deadline or null>,<status or null>,"j1","s1",...],"v":...}

A flat array of strings, numbers and null, so its end is found without parsing the state
after it. The deadline depends on the journey configuration, so the entry carries a
fingerprint of the engine's settings and definitions; an entry written under another
configuration (or a state written before entries existed) is decoded in full.
`CustomerState.from_dict` ignores the key, so every other reader of stored states is as
before.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

import journey
import journey.engine
from journey.engine import CustomerState, Engine
from journey.pipeline.metrics import Position, StagePopulations, position_of
from journey.pipeline.timekeeping import DueIndex

#: The key of the entry in a stored state's JSON object; always its first key.
INDEX_KEY = "_index"
_PREFIX = b'{"' + INDEX_KEY.encode() + b'":'
_START = len(_PREFIX)
#: The entry: a flat JSON array whose items are strings (escapes allowed), numbers or null.
_ENTRY = re.compile(rb'\{"' + INDEX_KEY.encode() + rb'":(\[(?:"(?:[^"\\]|\\.)*"|[^"\[\]{}])*\]),')


@functools.cache
def engine_source_hash() -> str:
    """A hash of the engine's own source files: a deploy that changes a rule changes it,
    even when the package version stays the same (no stale deadline survives an upgrade).
    Without readable sources (an installed build without them), the package version."""
    package = Path(journey.engine.__file__).parent
    digest = hashlib.sha256()
    sources = sorted(package.glob("*.py"))
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest() if sources else journey.__version__


def fingerprint(engine: Engine) -> str:
    """A short hash of everything `engine.next_deadline` depends on besides the state: the
    engine's settings (the offer secret left out: it changes no deadline), its journey
    definitions, the package version and the engine's source (an upgrade may change the
    rules themselves)."""
    config = dataclasses.asdict(engine.config)
    config.pop("offer_secret", None)
    doc = {"config": config, "version": journey.__version__, "engine": engine_source_hash(),
           "definitions": [j.definition.model_dump(mode="json") for j in engine.journeys]}
    canonical = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
                             default=repr)
    return hashlib.sha256(canonical).hexdigest()[:12]


class StateIndex:
    """Writes the entry of a state under one engine, and reads entries back."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.fingerprint = fingerprint(engine)

    def entry(self, state: CustomerState) -> list[object]:
        """The entry to store at the front of `state`'s record."""
        stages, status = position_of(state)
        entry: list[object] = [self.fingerprint, self.engine.next_deadline(state), status]
        for journey_name, stage in stages:
            entry.append(journey_name)
            entry.append(stage)
        return entry

    def read(self, value: bytes) -> tuple[int | None, Position] | None:
        """(deadline, position) from a stored state's entry, or None when the state has no
        entry or one written under another configuration (decode it in full)."""
        if not value.startswith(_PREFIX):
            return None
        # The entry is flat, so it ends at the first "]," outside a string; one inside a
        # string leaves that string unterminated, which orjson refuses: then the exact,
        # slower pattern decides.
        end = value.find(b"],", _START)
        try:
            entry = orjson.loads(memoryview(value)[_START:end + 1])
        except orjson.JSONDecodeError:
            found = _ENTRY.match(value)
            if found is None:
                return None
            try:
                entry = orjson.loads(found.group(1))
            except orjson.JSONDecodeError:
                return None
        if not isinstance(entry, list):
            return None
        if len(entry) < 3 or entry[0] != self.fingerprint or len(entry) % 2 == 0:
            return None
        deadline, status = entry[1], entry[2]
        stages = tuple(zip(entry[3::2], entry[4::2], strict=True))
        return deadline, (stages, status)


def entry_prefix(value: bytes) -> bytes:
    """The front of a stored state that `StateIndex.read` reads: for every value, and under
    every configuration, `read(entry_prefix(value)) == read(value)` (the same steps find the
    same end in both). Empty when the value has no entry at all. The RocksDB store keeps
    these prefixes apart from the states (journey/stream/indexfamily.py), so that a rebuild
    reads about 80 bytes per customer instead of the whole state."""
    if not value.startswith(_PREFIX):
        return b""
    end = value.find(b"],", _START)
    try:
        orjson.loads(memoryview(value)[_START:end + 1])
    except orjson.JSONDecodeError:
        found = _ENTRY.match(value)
        return b"" if found is None else value[:found.end()]
    return value[:end + 2]


class PrefixReader:
    """`StateIndex.read` for entry prefixes (`entry_prefix`), with the same answer for every
    value, in about a third of the time: the rebuild of a million customers from their
    entries spent most of its time in `read` itself.

    A value that begins with this configuration's fingerprint followed by a plain deadline
    (null, or digits as orjson writes an integer) is split there. What follows (status,
    journeys and stages) is read once per distinct text, by `StateIndex.read` of the same
    value with null for its deadline: the deadline, a JSON scalar without "]" or ",", plays
    no part in how `read` finds and checks the rest. Any other value goes to `read`."""

    def __init__(self, index: StateIndex) -> None:
        self._read = index.read
        self._head = _PREFIX + b'["' + index.fingerprint.encode() + b'",'
        self._start = len(self._head)
        self._positions: dict[bytes, Position | None] = {}

    def read(self, value: bytes) -> tuple[int | None, Position] | None:
        if not value.startswith(self._head):
            return self._read(value)
        start = self._start
        comma = value.find(b",", start)
        token = value[start:comma]
        if token == b"null":
            deadline = None
        elif comma > start and token.isdigit() and comma - start <= 18 and (
                token[0] != 48 or comma - start == 1):  # no leading zero, as orjson writes
            deadline = int(token)
        else:
            return self._read(value)
        rest = value[comma + 1:]
        try:
            position = self._positions[rest]
        except KeyError:
            found = self._read(self._head + b"null," + rest)
            position = self._positions[rest] = None if found is None else found[1]
        if position is None:
            return None
        return deadline, position


def encode(doc: dict[str, object], entry: list[object] | None) -> bytes:
    """A state's record: its JSON object (`CustomerState.to_dict`, perhaps with more keys),
    with the index entry as its first key when given. Copied out of orjson's buffer, which
    would otherwise keep its whole growth (about 16 KiB) alive in the table."""
    if entry is not None:
        doc = {INDEX_KEY: entry, **doc}
    return bytes(memoryview(orjson.dumps(doc)))


@dataclass
class Rebuild:
    """One partition's due index and populations rebuilt from its stored (key, value)
    pairs; counts what it read, by which path."""

    index: StateIndex
    partition: int
    due: DueIndex
    populations: StagePopulations
    count: int = 0
    unreadable: int = 0
    #: states read in full: no entry, or one of another configuration
    decoded: int = 0

    def run(self, items: Iterable[tuple[bytes, bytes]], slice_size: int,
            full: Callable[[bytes], bytes | None] | None = None) -> Iterator[None]:
        """Read every item, pausing after each `slice_size` (the caller lets its event loop
        run, and may stop iterating when the partition was taken away meanwhile). The due
        index and the populations are filled once every item is read: positions are
        counted and deadlines gathered on the way (nothing reads this partition's index
        or counts until its rebuild has ended).

        Items are (key, stored state), or with `full`, (key, `entry_prefix` of the stored
        state): a state whose prefix does not read is then fetched whole with `full(key)`
        and decoded (a state that is not there counts as unreadable)."""
        read = self.index.read if full is None else PrefixReader(self.index).read
        positions: dict[Position, int] = {}
        deadlines: list[tuple[int, str]] = []
        keep = deadlines.append
        count = self.count
        for key, value in items:
            count += 1
            if count % slice_size == 0:
                self.count = count
                yield
            found = read(value)
            if found is None:
                try:
                    whole = value if full is None else full(key)
                    if whole is None:
                        raise KeyError(key)
                    state = CustomerState.from_bytes(whole)
                except Exception:
                    self.unreadable += 1  # dead-lettered as state_unreadable when next touched
                    continue
                self.decoded += 1
                found = self.index.engine.next_deadline(state), position_of(state)
            deadline, position = found
            positions[position] = positions.get(position, 0) + 1
            if deadline is not None:
                keep((deadline, key.decode()))
        self.count = count
        self.due.arm_many(deadlines)
        self.populations.add(self.partition, positions)
