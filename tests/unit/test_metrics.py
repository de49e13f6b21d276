"""The metrics module: what each hook counts, stage populations that sum across workers,
watermark delay and lag, bounded labels, all read back from a fresh registry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from journey.contract import codec
from journey.contract.decode import IngestPolicy, decode
from journey.contract.records import Touchpoint
from journey.engine import CustomerState, StageChange, TriggerRequest
from journey.engine.duration import DAY_MS
from journey.engine.events import from_epoch_ms
from journey.engine.outputs import TriggerSuppressed
from journey.pipeline.metrics import (
    FREE_LABEL_LIMIT,
    OTHER,
    Metrics,
    Position,
    StagePopulations,
    position_of,
)
from journey.pipeline.processor import BatchProcessor, BatchResult, Item, StateCache, Tick
from tests.unit.engine_helpers import T0, definition, engine

FUNNEL = definition("""
name: funnel
in_order: false
stages:
  - {name: visit, entry: {}}
  - {name: lead, entry: {type: signup}}
  - {name: buyer, entry: {type: purchase}}
rules:
  - name: welcome
    when: {type: signup}
    trigger: {reason: welcome, channel: email}
""")


def touchpoint(**fields: Any) -> Touchpoint:
    doc = {"event_id": "e1", "customer_id": "c1", "type": "site_visit",
           "occurred_at": "2026-01-01T00:00:00+00:00", **fields}
    return Touchpoint.model_validate(doc)


Record = tuple[int, Item]


def record(n: int, cid: str, etype: str, day: float, partition: int = 0,
           **fields: Any) -> Record:
    doc = {"event_id": f"e{n}", "customer_id": cid, "type": etype,
           "occurred_at": from_epoch_ms(T0 + int(day * DAY_MS)).isoformat(), **fields}
    return partition, codec.event_from_bytes(orjson.dumps(doc))


def tick(day: float, partition: int = 0) -> Record:
    return partition, Tick(T0 + int(day * DAY_MS), 0)


def fresh(now_ms: int = T0) -> Metrics:
    return Metrics(CollectorRegistry(), now_ms=lambda: now_ms)


def value(m: Metrics, name: str, **labels: str) -> float:
    found = m.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


class Worker:
    """A processor, a store and metrics wired as the shell wires them."""

    def __init__(self, metrics: Metrics | None = None, hold_ms: int = 0,
                 lateness_ms: int = DAY_MS) -> None:
        eng = engine(FUNNEL, allowed_lateness_ms=lateness_ms, trigger_hold_ms=hold_ms)
        self.processor = BatchProcessor(eng, allowed_lateness_ms=lateness_ms)
        self.metrics = metrics or fresh()
        self.metrics.describe_engine(eng)
        self.metrics.watch_clocks(lambda: self.processor.clocks)
        self.cache = StateCache(lambda key: None, 1, position=position_of)
        self.partition_of: dict[str, int] = {}

    @property
    def store(self) -> dict[str, CustomerState]:
        return self.cache.live

    def run(self, records: list[Record], now_ms: int = T0) -> BatchResult:
        for partition, item in records:
            if not isinstance(item, Tick):
                self.partition_of[item.customer_id] = partition
        result = self.processor.process(records, self.cache)
        self.metrics.populations.follow(self.cache.take_before(), self.cache.live,
                                        self.partition_of.__getitem__)
        self.metrics.observe_batch(result, now_ms, size=len(records))
        return result


# ----- ingest ----------------------------------------------------------------------------------

def test_accepted_touchpoints_are_counted_by_type_and_channel() -> None:
    m = fresh()
    m.observe_accepted(touchpoint(channel="facebook"))
    m.observe_accepted(touchpoint(channel="facebook"))
    m.observe_accepted(touchpoint(type="ad_click", channel="google"))
    m.observe_accepted(touchpoint())
    assert value(m, "journey_touchpoints_accepted_total", type="site_visit",
                 channel="facebook") == 2
    assert value(m, "journey_touchpoints_accepted_total", type="ad_click", channel="google") == 1
    assert value(m, "journey_touchpoints_accepted_total", type="site_visit", channel="none") == 1
    assert value(m, "journey_events_accepted_total") == 4


def test_revenue_refunds_and_cost_are_added_to_the_channel_in_their_currency() -> None:
    m = fresh()
    m.observe_accepted(touchpoint(type="purchase", channel="store", amount=120.5,
                                  currency="EUR"))
    m.observe_accepted(touchpoint(type="purchase", channel="store", amount=80, currency="EUR"))
    m.observe_accepted(touchpoint(type="refund", channel="store", amount=30, currency="EUR"))
    m.observe_accepted(touchpoint(type="ad_click", channel="google",
                                  properties={"cost": 2.5}, currency="USD"))
    m.observe_accepted(touchpoint(type="ad_click", channel="google",
                                  properties={"cost": "a lot"}))
    m.observe_accepted(touchpoint(type="site_visit", channel="store", amount=99.0))
    assert value(m, "journey_revenue_total", channel="store", currency="EUR") == 200.5
    assert value(m, "journey_refunds_total", channel="store", currency="EUR") == 30
    assert value(m, "journey_acquisition_cost_total", channel="google", currency="USD") == 2.5
    assert value(m, "journey_acquisition_cost_total", channel="google", currency="none") == 0
    assert value(m, "journey_revenue_total", channel="store", currency="none") == 0


def test_event_delay_is_observed_from_occurred_at_to_acceptance() -> None:
    occurred = datetime(2026, 1, 1, tzinfo=UTC)
    m = fresh()
    m.observe_accepted(touchpoint(occurred_at=occurred.isoformat()),
                       now_ms=int(occurred.timestamp() * 1000) + 90_000)
    assert value(m, "journey_event_delay_seconds_sum") == 90.0
    assert value(m, "journey_event_delay_seconds_bucket", le="60.0") == 0
    assert value(m, "journey_event_delay_seconds_bucket", le="300.0") == 1


def test_a_batch_of_accepted_events_gives_the_figures_of_observing_each_alone() -> None:
    docs: list[dict[str, Any]] = [
        {"channel": "facebook"}, {"channel": "facebook"},
        {"type": "ad_click", "channel": "google", "properties": {"cost": 2.5}, "currency": "USD"},
        {"type": "purchase", "channel": "store", "amount": 120.5, "currency": "EUR"},
        {"type": "refund", "channel": "store", "amount": 30, "currency": "EUR"}, {}]
    touchpoints = [touchpoint(event_id=f"e{i}", **doc) for i, doc in enumerate(docs)]
    now = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000) + 90_000
    one_by_one, batched = fresh(), fresh()
    for t in touchpoints:
        one_by_one.observe_accepted(t, now_ms=now)
    batched.observe_events([codec.event_from_bytes(codec.touchpoint_to_bytes(t))
                            for t in touchpoints], now_ms=now)
    assert _journey_samples(batched) == _journey_samples(one_by_one)
    assert value(batched, "journey_events_accepted_total") == 6


def _journey_samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(generate_latest(m.registry).decode())
            for s in family.samples
            if s.name.startswith("journey_") and not s.name.endswith("_created")}


def test_free_form_channels_beyond_the_limit_fold_into_other() -> None:
    m = fresh()
    for n in range(FREE_LABEL_LIMIT + 5):
        m.observe_accepted(touchpoint(channel=f"channel{n}"))
    channels = {s.labels["channel"] for s in _samples(m, "journey_touchpoints_accepted_total")}
    assert len(channels) == FREE_LABEL_LIMIT + 1
    assert value(m, "journey_touchpoints_accepted_total", type="site_visit", channel=OTHER) == 5
    assert value(m, "journey_touchpoints_accepted_total", type="site_visit",
                 channel="channel0") == 1


def test_rejections_are_counted_by_reason() -> None:
    m = fresh()
    rejected = decode(b"{not json", policy=IngestPolicy(), now_ms=T0)
    assert not isinstance(rejected, Touchpoint)
    m.observe_rejection(rejected.reason)
    m.observe_rejection(rejected.reason)
    assert value(m, "journey_events_dead_lettered_total", reason=rejected.reason) == 2


# ----- batches ----------------------------------------------------------------------------------

def test_a_batch_counts_transitions_reached_stages_and_time_in_stage() -> None:
    w = Worker()
    w.run([record(1, "a", "site_visit", 0), record(2, "a", "purchase", 2),
           record(3, "b", "signup", 0)])
    m = w.metrics
    assert value(m, "journey_stage_transitions_total", journey="funnel", from_stage="",
                 to_stage="visit") == 1
    assert value(m, "journey_stage_transitions_total", journey="funnel", from_stage="visit",
                 to_stage="buyer") == 1
    assert value(m, "journey_stage_transitions_total", journey="funnel", from_stage="",
                 to_stage="lead") == 1
    # a skips lead on its way to buyer, b enters at lead: both reached what they passed
    assert value(m, "journey_stage_reached_total", journey="funnel", stage="visit") == 2
    assert value(m, "journey_stage_reached_total", journey="funnel", stage="lead") == 2
    assert value(m, "journey_stage_reached_total", journey="funnel", stage="buyer") == 1
    assert value(m, "journey_stage_changes_total", journey="funnel", to_stage="buyer") == 1
    assert value(m, "journey_time_in_stage_seconds_count", journey="funnel", stage="visit") == 1
    assert value(m, "journey_time_in_stage_seconds_sum", journey="funnel",
                 stage="visit") == 2 * DAY_MS / 1000
    assert value(m, "journey_events_processed_total") == 3
    assert value(m, "journey_batch_events_count") == 1
    assert value(m, "journey_batch_events_sum") == 3


def test_lifecycle_status_changes_are_transitions_of_the_lifecycle_journey() -> None:
    w = Worker()
    result = w.run([record(1, "a", "signup", 0)])
    statuses = [o for o in result.outputs if isinstance(o, StageChange)
                and o.journey == "lifecycle"]
    assert statuses, "the engine gives a new contact a lifecycle status"
    first = statuses[0]
    assert value(w.metrics, "journey_stage_transitions_total", journey="lifecycle",
                 from_stage="", to_stage=first.to_stage) == 1
    assert value(w.metrics, "journey_stage_reached_total", journey="lifecycle",
                 stage=first.to_stage) == 1


def test_triggers_are_counted_by_journey_rule_and_channel_with_their_delay() -> None:
    # No allowed lateness: a marketing trigger is decided with the event that fires it
    # (otherwise only once no late opt-out can still arrive).
    w = Worker(lateness_ms=0)
    cause_ms = T0
    result = w.run([record(1, "a", "signup", 0)], now_ms=cause_ms + 5_000)
    sent = [o for o in result.outputs if isinstance(o, TriggerRequest) and o.rule == "welcome"]
    assert len(sent) == 1
    m = w.metrics
    assert value(m, "journey_triggers_by_channel_total", journey="funnel", rule="welcome",
                 channel="email") == 1
    assert value(m, "journey_triggers_emitted_total", journey="funnel", rule="welcome") == 1
    assert value(m, "journey_trigger_delay_seconds_sum") == 5.0


def test_withheld_triggers_are_counted_by_decision_and_reason() -> None:
    w = Worker(hold_ms=DAY_MS)
    # the opt-out happened before the sign-up but arrives after it, within the hold
    w.run([record(1, "a", "signup", 0.5), record(2, "a", "opt_out", 0.49)])
    result = w.run([tick(3)])
    withheld = [o for o in result.outputs if isinstance(o, TriggerSuppressed)]
    assert [(o.request.rule, o.decision, o.reason) for o in withheld] == [
        ("welcome", "suppressed", "opted_out")]
    assert value(w.metrics, "journey_triggers_withheld_total", journey="funnel", rule="welcome",
                 decision="suppressed", reason="opted_out") == 1
    assert value(w.metrics, "journey_triggers_emitted_total", journey="funnel",
                 rule="welcome") == 0


def test_detections_are_counted_by_kind_when_the_watermark_passes_the_deadline() -> None:
    w = Worker()
    w.run([record(1, "a", "purchase", 0)])
    assert value(w.metrics, "journey_detections_total", journey="lifecycle",
                 kind="dormant_wake_up") == 0
    result = w.run([tick(200)])
    kinds = {(o.journey, o.rule) for o in result.outputs if isinstance(o, TriggerRequest)}
    assert kinds, "a purchase 200 days ago makes a customer dormant"
    for journey, rule in kinds:
        assert value(w.metrics, "journey_detections_total", journey=journey, kind=rule) == 1
    assert value(w.metrics, "journey_detections_due_total") >= 1
    assert value(w.metrics, "journey_ticks_received_total") == 1


def test_stage_info_lists_each_journeys_stages_in_order() -> None:
    w = Worker()
    info = {(s.labels["stage"], s.labels["position"], s.labels["next_stage"])
            for s in _samples(w.metrics, "journey_stage_info") if s.labels["journey"] == "funnel"}
    assert info == {("visit", "0", "lead"), ("lead", "1", "buyer"), ("buyer", "2", "")}


def test_no_label_carries_a_customer_or_event_id() -> None:
    w = Worker()
    records = [record(n, f"customer-{n}", t, n / 10, channel="email")
               for n, t in enumerate(["site_visit", "signup", "purchase"] * 5)]
    w.run(records)
    w.run([tick(400)])
    ids = {f"customer-{n}" for n in range(len(records))} | {f"e{n}" for n in range(len(records))}
    values = {v for s in _all_samples(w.metrics) for v in s.labels.values()}
    assert values
    assert not values & ids


# ----- populations -------------------------------------------------------------------------------

def test_populations_follow_customers_from_stage_to_stage() -> None:
    w = Worker()
    w.run([record(1, "a", "site_visit", 0), record(2, "b", "site_visit", 0)])
    assert w.metrics.populations.stages()[("funnel", "visit")] == 2
    w.run([record(3, "a", "signup", 1)])
    w.run([record(4, "a", "purchase", 2), record(5, "b", "purchase", 2)])
    stages = w.metrics.populations.stages()
    assert stages[("funnel", "buyer")] == 2
    assert ("funnel", "visit") not in stages
    assert ("funnel", "lead") not in stages
    assert sum(w.metrics.populations.statuses().values()) == 2
    assert value(w.metrics, "journey_customers_in_stage", journey="funnel", stage="buyer") == 2


def test_a_tally_of_positions_added_at_once_counts_as_moving_each_customer() -> None:
    positions = [((("funnel", "lead"),), "prospect"), ((("funnel", "lead"),), None),
                 ((("funnel", "buyer"), ("other", "x")), "customer"), ((), None)]
    moved, added = StagePopulations(), StagePopulations()
    tally: dict[Position, int] = {}
    for position in positions * 3:
        moved.move(2, ((), None), position)
        tally[position] = tally.get(position, 0) + 1
    added.add(2, tally)
    assert added.by_partition() == moved.by_partition()
    assert added.statuses() == moved.statuses()


def test_populations_match_a_recount_of_the_stored_states() -> None:
    w = Worker()
    w.run([record(n, f"c{n % 7}", t, n / 5) for n, t in
           enumerate(["site_visit", "signup", "email_opened", "purchase", "refund"] * 6)])
    w.run([tick(300)])
    recount = StagePopulations()
    recount.reset_partition(0, w.store.values())
    assert w.metrics.populations.stages() == recount.stages()
    assert w.metrics.populations.statuses() == recount.statuses()


def test_populations_of_two_workers_sum_to_the_whole_after_a_rebalance() -> None:
    one, two = Worker(), Worker()
    one.run([record(1, "a", "site_visit", 0, ), record(2, "b", "signup", 0)])
    two.run([record(3, "c", "signup", 0, partition=1)])
    # partition 0 moves from worker one to worker two
    two.metrics.populations.reset_partition(0, one.store.values())
    one.metrics.populations.drop_partition(0)
    total: dict[tuple[str, str], float] = {}
    for w in (one, two):
        for s in _samples(w.metrics, "journey_customers_in_stage"):
            key = (s.labels["journey"], s.labels["stage"])
            total[key] = total.get(key, 0) + s.value
    assert total == {("funnel", "visit"): 1, ("funnel", "lead"): 2}
    assert _samples(one.metrics, "journey_customers_in_stage") == []


def test_recount_after_a_rebalance_counts_owned_partitions_in_the_same_pass_as_rebuild() -> None:
    w = Worker()
    w.run([record(1, "a", "site_visit", 0), record(2, "b", "signup", 0, partition=1),
           record(3, "c", "signup", 0, partition=2)])
    stored = [(p, s) for p, s in zip((0, 1, 2), (w.store["a"], w.store["b"], w.store["c"]),
                                     strict=True)]
    # Given a fresh worker that now owns partitions 0 and 1
    fresh_worker = Worker()
    fresh_worker.metrics.populations.reset_partition(2, [w.store["c"]])  # owned before
    armed = fresh_worker.processor.rebuild(
        {0, 1}, fresh_worker.metrics.populations.recount({0, 1}, iter(stored)))
    assert armed == 1  # the processor saw the states too: b is armed (inactive lead)
    assert fresh_worker.metrics.populations.stages() == {("funnel", "visit"): 1,
                                                         ("funnel", "lead"): 1}


# ----- pipeline health ---------------------------------------------------------------------------

def test_watermark_delay_is_reported_per_partition_owned() -> None:
    now = T0 + 10 * DAY_MS
    w = Worker(fresh(now_ms=now))
    w.run([tick(9, partition=0), record(1, "a", "signup", 9.5, partition=1)])
    delays = {s.labels["partition"]: s.value
              for s in _samples(w.metrics, "journey_watermark_delay_seconds")}
    assert delays == {"0": DAY_MS / 1000, "1": 1.5 * DAY_MS / 1000}
    armed = {s.labels["partition"]: s.value
             for s in _samples(w.metrics, "journey_customers_armed_by_partition")}
    assert armed == {"0": 0, "1": 1}


def test_lag_is_set_per_partition_and_forgotten_on_revoke() -> None:
    m = fresh()
    m.set_lag("events", 0, 120)
    m.set_lag("events", 1, 0)
    m.forget_lag("events", 1)
    m.forget_lag("events", 7)  # never set: nothing to forget, no error
    assert value(m, "journey_consumer_lag", topic="events", partition="0") == 120
    assert m.registry.get_sample_value("journey_consumer_lag",
                                       {"topic": "events", "partition": "1"}) is None


def test_the_process_collector_reports_this_process() -> None:
    m = fresh()
    assert value(m, "process_cpu_seconds_total") > 0
    assert value(m, "process_resident_memory_bytes") > 0


def _all_samples(m: Metrics) -> list[Any]:
    text = generate_latest(m.registry).decode()
    return [s for f in text_string_to_metric_families(text) for s in f.samples]


def _samples(m: Metrics, name: str) -> list[Any]:
    return [s for s in _all_samples(m) if s.name == name]
