"""The Faust-free pipeline core: one hop when the key is right, re-keying otherwise, and a
dead letter with a reason for every record it cannot apply, while the stream goes on."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson

from journey.contract.topics import Topics
from journey.engine import CustomerState, Engine, Event, Step
from journey.engine.events import from_epoch_ms
from journey.pipeline.core import Incoming, Pipeline
from journey.pipeline.metrics import Metrics
from journey.pipeline.processor import BatchProcessor, StateCache
from journey.pipeline.routing import Router
from journey.pipeline.settings import Settings
from journey.pipeline.timekeeping import TICK_HEADER, TICK_VALUE, encode_tick, partition_of
from tests.unit.engine_helpers import T0, definition, engine

JOURNEY = definition("name: j\nstages: [{name: s, entry: {}}, "
                     "{name: buyer, entry: {type: [purchase]}}]\n")
TOPICS = Topics.named(prefix="t-", partitions=4)
NOW_MS = T0 + 10_000_000


class _FailsOnRefund(Engine):
    """An engine with a bug: it raises on every refund."""

    def apply(self, state: CustomerState | None, event: Event) -> Step:
        if event.type == "refund":
            raise RuntimeError("bug")
        return super().apply(state, event)


def _pipeline(stored: dict[bytes, bytes] | None = None, broken: bool = False) -> Pipeline:
    eng = _FailsOnRefund([JOURNEY]) if broken else engine(JOURNEY)
    data = stored or {}
    return Pipeline(
        BatchProcessor(eng, allowed_lateness_ms=3_600_000,
                       sources=Pipeline.clock_sources(TOPICS.touchpoints.partitions)),
        StateCache(data.get, TOPICS.events.partitions), Router(TOPICS),
        Settings().ingest_policy(), Metrics())


def _doc(n: int, cid: str, etype: str = "purchase") -> bytes:
    return orjson.dumps({"event_id": f"e{n}", "customer_id": cid, "type": etype,
                         "occurred_at": from_epoch_ms(T0 + n * 1000).isoformat()})


def _record(n: int, cid: str, *, key: bytes | None, partition: int | None = None,
            etype: str = "purchase") -> Incoming:
    if partition is None:
        partition = partition_of(cid.encode(), 4)
    return Incoming(TOPICS.touchpoints.name, partition, n, key, _doc(n, cid, etype))


def _topics(sends: list[Any]) -> list[str]:
    return [s.topic.removeprefix("t-") for s in sends]


def test_a_touchpoint_keyed_by_its_customer_is_applied_in_one_hop() -> None:
    pipeline = _pipeline()
    sends = pipeline.on_touchpoints([_record(1, "ann", key=b"ann")], NOW_MS)
    assert "journey-events" not in _topics(sends)
    assert "stage-changes" in _topics(sends)
    assert pipeline.states.dirty == {"ann"}


def test_a_touchpoint_keyed_otherwise_or_in_another_partition_is_re_keyed_not_applied() -> None:
    pipeline = _pipeline()
    right = partition_of(b"ann", 4)
    sends = pipeline.on_touchpoints([
        _record(1, "ann", key=b"shop-1"),
        _record(2, "ann", key=None),
        _record(3, "ann", key=b"ann", partition=(right + 1) % 4),
    ], NOW_MS)
    assert _topics(sends) == ["journey-events"] * 3
    assert {s.key for s in sends} == {b"ann"}
    assert pipeline.states.dirty == set()
    # and the re-keyed records are applied from the events topic
    applied = pipeline.on_events([Incoming(TOPICS.events.name, right, i, s.key, s.value)
                                  for i, s in enumerate(sends)], NOW_MS)
    assert "stage-changes" in _topics(applied)
    assert pipeline.totals.processed == 3


def test_a_tick_is_forwarded_to_every_events_partition_and_moves_its_own_clock() -> None:
    pipeline = _pipeline()
    tick = Incoming(TOPICS.touchpoints.name, 2, 5, None, encode_tick(NOW_MS, "w"),
                    {TICK_HEADER: TICK_VALUE})
    sends = pipeline.on_touchpoints([tick], NOW_MS)
    assert sorted(s.partition for s in sends if s.partition is not None) == [0, 1, 2, 3]
    assert pipeline.processor.clock(2).latest_tick == {4: NOW_MS}


def test_a_corrupt_internal_record_is_dead_lettered_and_the_batch_goes_on() -> None:
    pipeline = _pipeline()
    sends = pipeline.on_events([
        Incoming(TOPICS.events.name, 0, 1, b"x", b"{not json"),
        Incoming(TOPICS.events.name, 0, 2, b"ann", _doc(2, "ann")),
    ], NOW_MS)
    letters = [orjson.loads(s.value or b"") for s in sends if s.topic == "t-dead-letters"]
    assert [(d["reason"], d["source_offset"]) for d in letters] == [
        ("corrupt_internal_record", 1)]
    assert pipeline.totals.processed == 1


def test_a_state_written_by_a_newer_version_dead_letters_the_event_and_keeps_the_state() -> None:
    newer = orjson.loads(CustomerState(customer_id="ann").to_bytes())
    newer["v"] = 99
    stored = {b"ann": orjson.dumps(newer)}
    pipeline = _pipeline(stored)
    sends = pipeline.on_touchpoints([_record(1, "ann", key=b"ann"),
                                     _record(2, "bob", key=b"bob")], NOW_MS)
    letters = [orjson.loads(s.value or b"") for s in sends if s.topic == "t-dead-letters"]
    assert [d["reason"] for d in letters] == ["state_unreadable"]
    assert "newer" in letters[0]["message"]
    assert pipeline.states.dirty == {"bob"}
    assert stored[b"ann"] == orjson.dumps(newer)


def test_an_engine_error_dead_letters_the_event_and_rolls_the_customer_back() -> None:
    pipeline = _pipeline(broken=True)
    sends = pipeline.on_touchpoints([
        _record(1, "ann", key=b"ann"),
        _record(2, "ann", key=b"ann", etype="refund"),
        _record(3, "bob", key=b"bob"),
    ], NOW_MS)
    letters = [orjson.loads(s.value or b"") for s in sends if s.topic == "t-dead-letters"]
    assert [(d["reason"], d["source_offset"]) for d in letters] == [("engine_error", 2)]
    assert "RuntimeError: bug" in letters[0]["message"]
    assert "ann" not in pipeline.states.live  # back to the last written state (none)
    assert pipeline.totals.processed == 2


def test_the_in_process_run_does_not_import_faust() -> None:
    code = (
        "import sys\n"
        "from journey.pipeline.inprocess import in_process_pipeline, replay_lines\n"
        "from journey.pipeline.settings import Settings\n"
        "lines = [b'{\"event_id\":\"1\",\"customer_id\":\"a\",\"type\":\"purchase\","
        "\"occurred_at\":\"2026-01-01T00:00:00+00:00\"}']\n"
        "out = list(replay_lines(lines, in_process_pipeline(Settings())))\n"
        "assert out, 'no output'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'faust', 'mode', "
        "'aiokafka'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_a_tick_that_makes_many_customers_due_sends_in_slices_what_one_pass_sends() -> None:
    # Given two identical in-process pipelines, each with 40 customers' purchases
    def build() -> Pipeline:
        stored: dict[bytes, bytes] = {}
        return Pipeline(
            BatchProcessor(engine(JOURNEY), allowed_lateness_ms=3_600_000),
            StateCache(stored.get, TOPICS.events.partitions), Router(TOPICS),
            Settings().ingest_policy(), Metrics(), one_hop_only=True)

    whole, sliced = build(), build()
    records = [_record(n, f"c{n:02d}", key=None, partition=0) for n in range(40)]
    assert whole.on_touchpoints(records, NOW_MS) == sliced.on_touchpoints(records, NOW_MS)

    # When a tick a year later makes them all due: one pass, and slices of 6
    later = T0 + 400 * 86_400_000
    tick = [Incoming(TOPICS.touchpoints.name, 0, 41, None, encode_tick(later, "w"),
                     {TICK_HEADER: TICK_VALUE})]
    expected = whole.on_touchpoints(tick, later)
    slices = list(sliced.touchpoints_in_slices(tick, later, due_slice=6))

    # Then the slices joined are the one pass's sends, in the same order
    assert len(slices) > 40 // 6
    assert [s for part in slices for s in part] == expected
    assert "triggers" in _topics(expected)


def test_a_dead_letter_keyed_by_an_erased_customer_keeps_its_reason_but_not_its_bytes() -> None:
    # Given a customer who was erased, and one who was not
    pipeline = _pipeline()
    pipeline.on_touchpoints([_record(1, "ann", key=b"ann"),
                             _record(2, "ann", key=b"ann", etype="erasure_requested")], NOW_MS)
    assert pipeline.states.erased_at("ann") is not None
    # When a broken record keyed by each arrives, in its key's partition
    broken = b'{"customer_id": "ann", "type": "purchase", "secret": "0123 personal"'
    sends = pipeline.on_touchpoints([
        Incoming(TOPICS.touchpoints.name, partition_of(cid, 4), 10 + n, cid, broken)
        for n, cid in enumerate((b"ann", b"bob"))], NOW_MS)
    letters = {d["original_key_b64"]: d for d in
               (orjson.loads(s.value or b"") for s in sends if s.topic == "t-dead-letters")}
    ann, bob = letters["YW5u"], letters["Ym9i"]  # base64 of the keys
    # Then the erased customer's dead letter has its reason and origin, not the bytes
    assert (ann["reason"], ann["source_offset"], ann["original_value_b64"]) == (
        "invalid_json", 10, "")
    assert "original bytes withheld" in ann["message"]
    # And anyone else's keeps them, as before
    assert bob["reason"] == "invalid_json" and bob["original_value_b64"] != ""
    assert "withheld" not in bob["message"]
