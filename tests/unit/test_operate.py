"""Erasure in the processor and its state cache, the profile answer, and the log filter that
folds repeated library warnings."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from journey.engine import Event
from journey.engine.duration import DAY_MS
from journey.pipeline.lookup import customer_profile, journey_views, merge_counts
from journey.pipeline.metrics import Metrics
from journey.pipeline.processor import BatchProcessor, Item, StateCache
from journey.pipeline.settings import Settings
from journey.pipeline.timekeeping import partition_of
from journey.stream.app import create_app
from journey.stream.quiet import RepeatFilter
from journey.stream.web import Liveness, readiness
from tests.unit.engine_helpers import T0, definition, engine, ev

JOURNEY = definition("name: j\nstages: [{name: s, entry: {}}]\n")


def event(n: int, cid: str, etype: str, day: float) -> tuple[int, Item]:
    return 0, Event(f"e{n}", cid, etype, T0 + int(day * DAY_MS))


def setup() -> tuple[BatchProcessor, StateCache, dict[bytes, bytes], dict[bytes, bytes]]:
    """A processor over a store and a marker table, written the way the barrier writes."""
    store: dict[bytes, bytes] = {}
    markers: dict[bytes, bytes] = {}
    cache = StateCache(store.get, 1, read_marker=markers.get)
    proc = BatchProcessor(engine(JOURNEY, allowed_lateness_ms=DAY_MS), allowed_lateness_ms=DAY_MS)
    return proc, cache, store, markers


def flush(cache: StateCache, store: dict[bytes, bytes], markers: dict[bytes, bytes]) -> None:
    for cid, _, value in cache.take_dirty():
        if value is None:
            store.pop(cid.encode(), None)
        else:
            store[cid.encode()] = value
    for cid, _, value in cache.take_markers():
        markers[cid.encode()] = value
    cache.trim()


def test_an_erased_customer_is_a_tombstone_with_a_marker_and_no_armed_deadline() -> None:
    # Given a customer whose state is written
    proc, cache, store, markers = setup()
    proc.process([event(1, "a", "purchase", 0)], cache)
    flush(cache, store, markers)
    assert proc.clock(0).due.deadline_of("a") is not None
    # When an erasure request arrives
    result = proc.process([event(2, "a", "erasure_requested", 5)], cache)
    # Then the erasure is reported, the state is gone before and after the write
    assert [(e.customer_id, e.event_id) for e in result.erasures] == [("a", "e2")]
    assert cache.peek("a") is None
    taken = cache.take_dirty()
    assert taken == [("a", 0, None)]
    store.pop(b"a")
    markers.update({k.encode(): v for k, _, v in cache.take_markers()})
    cache.trim()
    assert cache.peek("a") is None
    assert markers == {b"a": str(T0 + 5 * DAY_MS).encode()}
    # And nothing fires for the customer any more
    assert proc.clock(0).due.deadline_of("a") is None


def test_events_dated_before_the_erasure_do_not_resurrect_the_profile() -> None:
    # Given an erased customer, with the marker written and the live cache forgotten
    proc, cache, store, markers = setup()
    proc.process([event(1, "a", "site_visit", 0), event(2, "a", "erasure_requested", 5)],
                 cache)
    flush(cache, store, markers)
    fresh = StateCache(store.get, 1, read_marker=markers.get)  # as after a restart
    # When an older event is replayed, and one from after the erasure arrives
    replay = proc.process([event(1, "a", "site_visit", 0), event(3, "a", "purchase", 4)], fresh)
    # Then both are dropped and counted, and there is no profile
    assert replay.dropped_erased == 2 and replay.processed == 0
    assert fresh.peek("a") is None
    # But an event after the erasure starts a new profile
    later = proc.process([event(4, "a", "site_visit", 6)], fresh)
    assert later.processed == 1
    state = fresh.peek("a")
    assert state is not None and state.touches == 1


def test_erasure_reports_the_pending_triggers_it_drops() -> None:
    proc, cache, _, _ = setup()
    proc.process([event(1, "a", "signup", 0)], cache)
    state = cache.peek("a")
    assert state is not None
    pending = len(state.pending)
    result = proc.process([event(2, "a", "erasure_requested", 0.001)], cache)
    assert [e.pending_dropped for e in result.erasures] == [pending]


def test_the_profile_says_where_the_customer_is_in_event_time() -> None:
    eng = engine(JOURNEY, allowed_lateness_ms=DAY_MS)
    state = eng.apply(None, Event("e1", "a", "purchase", T0, channel="store",
                                  source="google")).state
    profile = customer_profile(eng, state, watermark_ms=T0 + 2 * DAY_MS)
    assert profile.customer_id == "a"
    assert profile.first_touch is not None and profile.first_touch.source == "google"
    [standing] = profile.journeys
    assert (standing.journey, standing.stage, standing.seconds_in_stage) == ("j", "s", 172800)
    assert [d.at for d in profile.next_deadlines] == sorted(d.at for d in profile.next_deadlines)
    assert profile.next_deadlines, "a buyer has a dormancy deadline"


def test_populations_count_each_partition_once_and_name_the_missing_ones() -> None:
    eng = engine(JOURNEY)
    counts = merge_counts([{"0": [["j", "s", 2]]}, {"0": [["j", "s", 2]], "1": [["j", "s", 3]]}])
    [view] = journey_views(eng, counts, partitions=3)
    assert [(p.stage, p.customers) for p in view.populations] == [("s", 5)]
    assert (view.partitions_counted, view.partitions_missing) == ([0, 1], [2])


def test_repeated_library_warnings_are_logged_once_per_window_with_a_count() -> None:
    # Given a filter on a handler, with a clock we move
    now = [0.0]
    counted: list[str] = []
    repeat = RepeatFilter(30.0, count=counted.append, clock=lambda: now[0])
    shown: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            shown.append(record.getMessage())

    handler = Keep()
    handler.addFilter(repeat)
    logger = logging.getLogger("aiokafka.conn.test")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        # When the same failure is logged 1,000 times in 10 seconds, then once after 30
        for n in range(1000):
            now[0] = n / 100
            logger.warning("Unable connect to node with id %s: %s", 1, "refused")
        now[0] = 40.0
        logger.warning("Unable connect to node with id %s: %s", 1, "refused")
    finally:
        logger.removeHandler(handler)
    # Then two lines were shown, the second saying how many were not, and all were counted
    assert shown == ["Unable connect to node with id 1: refused",
                     "Unable connect to node with id 1: refused [and 999 more like this in "
                     "the last 40s, not logged]"]
    assert len(counted) == 1001 and set(counted) == {"aiokafka"}


def test_the_worker_s_own_warnings_are_never_folded() -> None:
    repeat = RepeatFilter(30.0, clock=lambda: 0.0)
    record = logging.LogRecord("journey.stream", logging.WARNING, __file__, 1, "same", None,
                               None)
    assert all(repeat.filter(record) for _ in range(5))


def _worker_view(*, recovered: bool, rebalancing: bool, owned: frozenset[int],
                 liveness: Liveness | None = None,
                 unindexed: frozenset[int] = frozenset()) -> Any:
    """What readiness reads of a worker: Faust's recovery flags, rebalancing, partitions
    (owned, and assigned but without their due index rebuilt yet)."""
    event = asyncio.Event()
    if recovered:
        event.set()
    recovery = SimpleNamespace(completed=event, in_recovery=not recovered)
    app = SimpleNamespace(tables=SimpleNamespace(recovery=recovery), rebalancing=rebalancing)
    return SimpleNamespace(app=app, owned=lambda: owned, liveness=liveness or _answering(),
                           unindexed=lambda: unindexed)


def _answering() -> Liveness:
    live = Liveness(broker_window_s=30.0)
    live.broker_answered(time.monotonic())
    return live


def test_a_worker_in_recovery_is_not_ready_and_says_why() -> None:
    ok, reason, checks = readiness(_worker_view(recovered=False, rebalancing=False,
                                                 owned=frozenset({0})), time.monotonic())
    assert (ok, reason, checks["recovery_done"]) == (False, "table recovery is not done", False)
    ok, reason, _ = readiness(_worker_view(recovered=True, rebalancing=True,
                                            owned=frozenset({0})), time.monotonic())
    assert (ok, reason) == (False, "a rebalance is under way")
    ok, reason, _ = readiness(_worker_view(recovered=True, rebalancing=False,
                                            owned=frozenset()), time.monotonic())
    assert (ok, reason) == (False, "no partitions are assigned to this worker")
    assert readiness(_worker_view(recovered=True, rebalancing=False,
                                   owned=frozenset({1, 2})), time.monotonic())[:2] == (True, None)


def test_a_worker_rebuilding_a_partition_s_due_index_is_not_ready_and_says_which() -> None:
    # Given a recovered worker whose partition 2's due index is still being rebuilt
    view = _worker_view(recovered=True, rebalancing=False, owned=frozenset({1, 2}),
                        unindexed=frozenset({2}))
    # Then it is not ready, and says which partition it waits for
    ok, reason, checks = readiness(view, time.monotonic())
    assert (ok, reason, checks["unindexed"]) == (
        False, "the due index of partitions [2] is being rebuilt", [2])


def test_a_broker_that_does_not_answer_fails_readiness_not_liveness() -> None:
    # Given a worker whose loop runs and whose broker last answered 51 s ago
    live = Liveness(broker_window_s=30.0, started=0.0, last_loop=100.0)
    live.broker_answered(50.0)
    live.broker_failed("KafkaConnectionError: no route")
    # Then it is alive (a restart would not bring the broker back) but not ready
    assert live.health(101.0)[:2] == (True, None)
    ok, reason, checks = live.broker(101.0)
    assert not ok and reason is not None and "broker has not answered for 51s" in reason
    assert checks["broker_last_error"] == "KafkaConnectionError: no route"
    ready_ok, ready_reason, _ = readiness(_worker_view(recovered=True, rebalancing=False,
                                                       owned=frozenset({0}), liveness=live), 101.0)
    assert (ready_ok, ready_reason) == (False, reason)
    # And when the broker answers again, it is ready again
    live.broker_answered(100.5)
    assert live.broker(101.0)[:2] == (True, None)


def test_a_worker_whose_loop_stopped_running_its_timer_is_not_alive() -> None:
    live = Liveness(broker_window_s=30.0, started=0.0, last_loop=80.0)
    ok, reason, _ = live.health(101.0)
    assert not ok and "event loop has not run its timer for 21s" in (reason or "")


def test_a_batch_stuck_while_the_broker_answers_fails_liveness() -> None:
    # Given a batch in progress since t=10, the broker answering since t=0
    busy: list[float | None] = [10.0]
    live = Liveness(broker_window_s=30.0, stall_window_s=60.0, started=0.0,
                    busy_since=lambda: busy[0])
    live.broker_answered(0.0)
    live.loop_ran(69.0)
    # Then it is alive within the stall window, and not beyond it
    assert live.health(70.0)[:2] == (True, None)
    live.loop_ran(71.0)
    ok, reason, checks = live.health(71.0)
    assert not ok and "processing is stuck" in (reason or "")
    assert checks["batch_seconds"] == 61.0
    # And between batches it is alive however long the worker idles
    busy[0] = None
    assert live.health(71.0)[:2] == (True, None)


def test_a_batch_waiting_on_an_absent_broker_is_not_stuck() -> None:
    # Given a batch in progress since t=10 while the broker stopped answering at t=5
    live = Liveness(broker_window_s=30.0, stall_window_s=60.0, started=0.0,
                    busy_since=lambda: 10.0)
    live.broker_answered(0.0)
    live.broker_failed("KafkaConnectionError")
    live.loop_ran(500.0)
    # Then however long the outage, the worker is alive (and not ready)
    assert live.health(500.0)[:2] == (True, None)
    assert not live.broker(500.0)[0]
    # And once the broker is back, the batch gets the whole window again to finish
    live.broker_answered(500.0)
    live.loop_ran(559.0)
    assert live.health(559.0)[:2] == (True, None)
    live.loop_ran(561.0)
    assert not live.health(561.0)[0]


PROMO = """
name: shop
stages: [{name: s, entry: {}}]
rules:
  - {name: promo, once: false, when: {type: purchase}, trigger: {reason: promo, valid_for: 7d}}
"""


def test_the_profile_says_why_a_trigger_was_held_and_then_withheld() -> None:
    # Given a purchase that fires a promo, held for an hour so a late opt-out is seen
    hour = 3_600_000
    eng = engine(definition(PROMO), trigger_hold_ms=hour, allowed_lateness_ms=hour)
    state = eng.apply(None, ev(1, "purchase", 0.4167)).state
    # Then the lookup shows it pending, with the hold as the reason
    [pending] = customer_profile(eng, state).pending_triggers
    assert (pending.rule, pending.held_because) == ("promo", ["opt_out_hold"])
    # When an opt-out stamped before it arrives, and time passes the release
    state = eng.apply(state, ev(2, "opt_out", 0.41)).state
    state = eng.on_time(state, T0 + DAY_MS).state
    # Then the lookup says it was suppressed because the customer opted out
    profile = customer_profile(eng, state)
    assert profile.pending_triggers == []
    assert [(d.rule, d.outcome, d.reason) for d in profile.recent_decisions] == [
        ("promo", "suppressed", "opted_out")]


def test_an_erasure_of_a_partition_given_away_is_left_to_its_new_owner() -> None:
    # Given an erasure applied but not yet written, in partition 1 of 2
    store: dict[bytes, bytes] = {}
    cache = StateCache(store.get, 2)
    cid = next(c for c in (f"c{n}" for n in range(100))
               if partition_of(c.encode(), 2) == 1)
    cache.erase(cid, T0)
    # When partition 1 is given away
    cache.keep_partitions({0})
    # Then neither its tombstone nor its marker is written here
    assert cache.take_dirty() == [] and cache.take_markers() == []


def test_the_app_advertises_the_advertised_url_not_the_wildcard_it_binds() -> None:
    # Given a worker listening on every interface and told the URL others reach it at
    settings = Settings(web_host="0.0.0.0", web_advertised_url="http://journey-2:6066",
                        store="memory://")
    # When its Faust app is built
    conf = create_app(settings).faust.conf
    # Then it listens on the wildcard but tells the group (and its router) its own URL
    assert conf.web_bind == "0.0.0.0"
    assert str(conf.canonical_url) == "http://journey-2:6066"
    assert (conf.canonical_url.host, conf.web_host) == ("journey-2", "journey-2")


def test_the_seconds_since_the_broker_answered_are_exported_at_each_scrape() -> None:
    # Given a worker that started at t=0 and whose broker answered at t=40, then stopped
    live = Liveness(broker_window_s=30.0, started=0.0)
    now = [10.0]
    metrics = Metrics(CollectorRegistry(), process=False)
    metrics.watch_broker(lambda: live.broker_unanswered_s(now[0]))

    def exported() -> float | None:
        return metrics.registry.get_sample_value("journey_broker_unanswered_seconds")

    # Then before any answer the gauge counts from the start, after it from the answer
    assert exported() == 10.0
    live.broker_answered(40.0)
    live.broker_failed("KafkaConnectionError")
    now[0] = 125.0
    assert exported() == 85.0
