"""The batch processor: ticks advance event time, detections wait for the watermark,
each changed customer is handed over once per write, and the due index is rebuilt from
state."""

from __future__ import annotations

from collections.abc import Sequence

from journey.engine import CustomerState, Event, StageChange, TriggerRequest
from journey.engine.duration import DAY_MS
from journey.pipeline.processor import BatchProcessor, BatchResult, Item, StateCache, Tick
from journey.pipeline.timekeeping import DueIndex
from tests.unit.engine_helpers import T0, definition, engine

JOURNEY = definition("name: j\nstages: [{name: s, entry: {}}]\n")


Record = tuple[int, Item]


def event(n: int, cid: str, etype: str, day: float, partition: int = 0) -> Record:
    return partition, Event(f"e{n}", cid, etype, T0 + int(day * DAY_MS))


def tick(day: float, partition: int = 0) -> Record:
    return partition, Tick(T0 + int(day * DAY_MS), 0)


def cache(stored: dict[str, CustomerState] | None = None) -> StateCache:
    """Live states over a store of already written ones."""
    found = stored or {}
    return StateCache(lambda key: found[key.decode()].to_bytes() if key.decode() in found
                      else None, 1)


def processor() -> BatchProcessor:
    return BatchProcessor(engine(JOURNEY, allowed_lateness_ms=DAY_MS),
                          allowed_lateness_ms=DAY_MS)


def _dormant(outputs: Sequence[object]) -> list[str]:
    return [o.customer_id for o in outputs
            if isinstance(o, TriggerRequest) and o.rule == "dormant_wake_up"]


def test_detection_waits_for_a_tick_past_the_deadline() -> None:
    proc = processor()
    store = cache()

    def run(records: list[Record]) -> list[object]:
        return list(proc.process(records, store).outputs)

    run([event(1, "a", "purchase", 0), event(2, "b", "purchase", 50)])
    assert _dormant(run([tick(89)])) == []
    assert _dormant(run([tick(91)])) == ["a"]
    assert _dormant(run([tick(139)])) == []
    assert _dormant(run([tick(141)])) == ["b"]


def test_events_advance_the_watermark_minus_the_allowed_lateness() -> None:
    proc = processor()
    store = cache()
    result = proc.process([event(1, "a", "purchase", 0), event(2, "b", "site_visit", 90.5)],
                          store)
    assert _dormant(result.outputs) == []  # watermark 89.5 < deadline 90
    result = proc.process([event(3, "b", "site_visit", 91.5)], store)
    assert _dormant(result.outputs) == ["a"]  # watermark 90.5 passes a's deadline
    proc = processor()
    result = proc.process([event(1, "a", "purchase", 0), event(2, "b", "site_visit", 91.5)],
                          cache())
    assert _dormant(result.outputs) == ["a"]


def test_each_partition_has_its_own_clock() -> None:
    proc = processor()
    result = proc.process([event(1, "a", "purchase", 0, partition=0), tick(200, partition=1)],
                          cache())
    assert _dormant(result.outputs) == []
    assert proc.clock(0).watermark_ms < proc.clock(1).watermark_ms


def test_each_customer_is_handed_over_once_per_write_with_its_last_state() -> None:
    proc = processor()
    store = cache()
    result = proc.process([event(i, "a", "site_visit", i) for i in range(5)], store)
    dirty = store.take_dirty()
    assert [(cid, partition) for cid, partition, _ in dirty] == [("a", 0)]
    encoded = dirty[0][2]
    assert encoded is not None  # a state, not an erased customer's tombstone
    assert CustomerState.from_bytes(encoded).touches == 5
    assert result.processed == 5
    assert store.take_dirty() == []


def test_duplicates_are_counted_not_fatal() -> None:
    proc = processor()
    result = proc.process([event(1, "a", "site_visit", 0), event(1, "a", "site_visit", 0)],
                          cache())
    assert (result.processed, result.duplicates) == (1, 1)


def test_rebuild_re_arms_customers_from_stored_state() -> None:
    first = processor()
    written = cache()
    first.process([event(1, "a", "purchase", 0), event(2, "b", "purchase", 10)], written)
    stored = dict(written.live)
    # A new worker takes over partition 0 with nothing in memory.
    second = processor()
    armed = second.rebuild([0], [(0, s) for s in stored.values()])
    assert armed == 2
    out = second.process([tick(95)], cache(stored)).outputs
    assert _dormant(out) == ["a"]
    assert [o.to_stage for o in out if isinstance(o, StageChange)
            and o.journey == "lifecycle"] == ["dormant"]


def test_rebuild_drops_partitions_no_longer_owned() -> None:
    proc = processor()
    proc.process([event(1, "a", "purchase", 0, partition=3)], cache())
    proc.rebuild([0, 1], [])
    assert sorted(proc.clocks) == [0, 1]


def test_due_index_pops_only_due_customers_in_deadline_order_and_honours_re_arming() -> None:
    index = DueIndex()
    index.arm("a", 30)
    index.arm("b", 10)
    index.arm("c", 20)
    index.arm("a", 5)  # re-armed earlier; the old entry is stale
    index.arm("c", None)  # disarmed
    assert index.pop_due(15) == ["a", "b"]
    assert index.pop_due(100) == []
    assert len(index) == 0


def test_arming_many_at_once_pops_as_arming_each_does() -> None:
    pairs = [(30, "a"), (10, "b"), (20, "c"), (10, "d"), (40, "e")]
    one_by_one, at_once = DueIndex(), DueIndex()
    one_by_one.arm("z", 15)
    at_once.arm("z", 15)
    for deadline, customer in pairs:
        one_by_one.arm(customer, deadline)
    at_once.arm_many(pairs)
    at_once.arm("e", 5)  # re-armed afterwards, as a processed event would
    one_by_one.arm("e", 5)
    assert len(at_once) == len(one_by_one) == 6
    assert at_once.pop_due(25) == one_by_one.pop_due(25) == ["e", "b", "d", "z", "c"]
    assert at_once.pop_due(100) == one_by_one.pop_due(100) == ["a"]


def test_detections_do_not_depend_on_which_customers_share_a_partition() -> None:
    def run(b_partition: int) -> list[str]:
        proc = processor()
        result = proc.process([event(1, "a", "purchase", 0, partition=0),
                               event(2, "b", "site_visit", 92, partition=b_partition),
                               event(3, "a", "purchase", 93, partition=0)], cache())
        return [f"{o.customer_id}:{o.rule}" for o in result.outputs
                if isinstance(o, TriggerRequest) and o.rule == "dormant_wake_up"]

    assert run(0) == run(1) == ["a:dormant_wake_up"]


def test_recorded_events_and_ticks_detect_exactly_these_customers_at_these_times() -> None:
    # A recorded log of two partitions: events, then ticks a day apart for 200 days.
    log = [
        event(1, "ann", "lead_magnet_download", 0, partition=0),   # never buys: inactive lead
        event(2, "bob", "purchase", 1, partition=0),               # one purchase: 90-day rule
        event(3, "cat", "purchase", 2, partition=1),
        event(4, "cat", "purchase", 12, partition=1),
        event(5, "cat", "purchase", 22, partition=1),              # gap 10 days: dormant at 42
        event(6, "dan", "purchase", 5, partition=1),
        event(7, "dan", "complaint", 6, partition=1),              # unanswered: at risk at 8
        event(8, "eve", "purchase", 3, partition=0),
        event(9, "eve", "purchase", 80, partition=0),              # re-armed before day 93
    ] + [tick(day, partition=p) for day in range(25, 200) for p in (0, 1)]

    def run() -> list[tuple[str, str, float]]:
        proc = processor()
        store = cache()
        found: list[tuple[str, str, float]] = []
        for start in range(0, len(log), 7):  # batches of 7 records, as a worker might take
            result = proc.process(log[start:start + 7], store)
            found += [(o.customer_id, o.rule, (o.at_ms - T0) / DAY_MS) for o in result.outputs
                      if isinstance(o, TriggerRequest) and o.kind in ("marketing", "service")
                      and o.rule in {"inactive_lead_reactivation", "dormant_wake_up",
                                     "complaint_escalation", "win_back"}]
        return found

    first = run()
    assert sorted(first) == sorted([
        ("ann", "inactive_lead_reactivation", 30.0),
        ("ann", "win_back", 90.0),
        ("bob", "dormant_wake_up", 91.0),
        ("bob", "win_back", 151.0),
        ("cat", "dormant_wake_up", 42.0),
        ("cat", "win_back", 102.0),
        ("dan", "complaint_escalation", 8.0),
        ("dan", "dormant_wake_up", 95.0),
        ("dan", "win_back", 155.0),
        ("eve", "dormant_wake_up", 170.0),
    ])
    assert run() == first


def test_new_customers_are_counted_once_as_they_appear_and_stored_ones_never() -> None:
    # Given one customer already stored, in a cache that counts new ones
    stored = {"old": CustomerState("old")}
    states = StateCache(lambda key: stored[key.decode()].to_bytes() if key.decode() in stored
                        else None, 1, count_created=True)
    proc = processor()

    # When the stored customer and two new ones (one of them twice) have events
    proc.process([event(1, "old", "site_visit", 1), event(2, "new-a", "site_visit", 1),
                  event(3, "new-b", "site_visit", 1), event(4, "new-a", "site_visit", 2)],
                 states)

    # Then only the two new ones are counted, once, and the count is handed over once
    assert states.take_created() == {0: 2}
    assert states.take_created() == {}


def test_a_new_customer_forgotten_after_an_error_is_not_counted() -> None:
    states = StateCache(lambda key: None, 1, count_created=True)
    states.get("x")
    states.put("x", CustomerState("x"))
    states.forget("x")
    assert states.take_created() == {}


def test_keeping_partitions_leaves_the_kept_clocks_and_resetting_one_empties_it() -> None:
    # Given customers armed on partitions 0 and 1
    proc = processor()
    states = cache()
    proc.process([event(1, "a", "site_visit", 1, partition=0),
                  event(2, "b", "site_visit", 1, partition=1)], states)
    kept = proc.clocks[0]
    armed = len(kept.due)

    # When partition 1 is given away, and partition 2 is assigned fresh
    proc.keep_partitions([0])
    fresh = proc.reset_partition(2)

    # Then partition 0 keeps its clock and due index, 1 is forgotten, 2 starts empty
    assert proc.clocks[0] is kept and len(kept.due) == armed
    assert set(proc.clocks) == {0, 2}
    assert len(fresh.due) == 0


def test_a_burst_of_due_detections_in_slices_gives_the_outputs_of_one_pass() -> None:
    # Given 60 customers armed at different deadlines, in two identical processors
    records = [event(n, f"c{n:02d}", "purchase", n % 9) for n in range(60)]
    whole, sliced = processor(), processor()
    whole_states, sliced_states = cache(), cache()
    whole.process(records, whole_states)
    sliced.process(records, sliced_states)

    # When ticks far ahead make them all due (twice: some re-arm with a deadline already
    # passed), applied in one pass by one and in slices of 7 by the other
    ticks = [tick(400), tick(900)]
    expected = whole.process(ticks, whole_states).outputs
    result = BatchResult()
    pauses = sum(1 for _ in sliced.run(ticks, sliced_states, result, due_slice=7))

    # Then the sliced run paused between slices, and gave the same outputs in the same
    # order, and the same states to write
    assert pauses >= 60 // 7
    assert len(_dormant(expected)) == 60
    assert result.outputs == expected
    assert sorted(sliced_states.take_dirty()) == sorted(whole_states.take_dirty())


def test_an_erased_stored_customer_counts_minus_one_and_a_new_one_erased_at_once_zero() -> None:
    # Given one customer stored, in a cache that counts customers
    stored = {"old": CustomerState("old")}
    states = StateCache(lambda key: stored[key.decode()].to_bytes() if key.decode() in stored
                        else None, 1, count_created=True)

    # When the stored one is erased, and a new one appears and is erased in the same stretch
    states.erase("old", T0)
    states.get("new")
    states.put("new", CustomerState("new"))
    states.erase("new", T0)
    # Then the partition has one customer less
    assert states.take_created() == {0: -1}

    # And an erased customer that comes back (an event after its erasure) counts again
    states.get("old")
    states.put("old", CustomerState("old"))
    assert states.take_created() == {0: 1}
