"""Benchmark: the cost of one tick that finds 1,000 customers due, among few or many tracked.

Run: .venv/bin/python -m tests.bench.tick_bench [--tracked 10000 1000000] [--due 1000] [--repeat 7]

Requirement (issue): a tick with 1,000 customers due among 1,000,000 tracked costs at most
2x the same tick among 10,000. Every tracked customer made one purchase through the engine
(touchpoint_journey), so the engine itself puts their deadline (dormancy fallback and
cooling) 90 days later. Cohort k of `due` customers bought on day k, everyone else after the
last cohort, so the tick on day 90 + k + 1/2 finds exactly cohort k due: each measured tick
fires a fresh cohort, and the index keeps its size. As in the worker, states are stored as
bytes and decoded on load, and the due index is built by `BatchProcessor.rebuild`. All sizes
are prepared first and then ticked in turn, so load elsewhere on the machine hits them alike.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
import tracemalloc
from array import array
from dataclasses import dataclass, field

from journey.engine import CustomerState, Engine, Event, load_preset
from journey.engine.duration import DAY_MS
from journey.pipeline.processor import BatchProcessor, StateCache, Tick
from journey.pipeline.timekeeping import DueIndex
from tests.bench.generate import T0_MS

DEFINITION = "touchpoint_journey"
#: touchpoint_journey, one purchase: dormant (fallback) and cooling are both 90 days later.
QUIET_DAYS = 90
#: Empty ticks cost microseconds, so take many of them for a stable median.
EMPTY_TICKS = 101
#: The customers after the cohorts buy over this many days, so their deadlines spread out.
REST_SPREAD_DAYS = 40


@dataclass
class SizeResult:
    """What was measured for one tracked population."""

    tracked: int
    populate_s: float = 0.0
    rebuild_s: float = 0.0
    rebuild_rss: int | None = None
    arm_s: float = 0.0
    index_bytes: int = 0
    due_ticks: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    empty_ticks: list[float] = field(default_factory=list)


def customer_id(i: int) -> str:
    return f"cust-{i:07d}"


def purchase_ms(i: int, tracked: int, due: int, cohorts: int) -> int:
    """Cohort k (customers k*due to k*due + due - 1) buys in the first half of day k; the
    rest buy over the days after the last cohort, so their deadlines follow every tick."""
    in_cohorts = due * cohorts
    if i < in_cohorts:
        k, j = divmod(i, due)
        return T0_MS + k * DAY_MS + j * (DAY_MS // 2 // due)
    rest = max(tracked - in_cohorts, 1)
    return T0_MS + (cohorts + 1) * DAY_MS + (i - in_cohorts) * (REST_SPREAD_DAYS * DAY_MS // rest)


def populate(engine: Engine, tracked: int, due: int, cohorts: int) -> tuple[dict[str, bytes],
                                                                          array[int]]:
    """Stored state (bytes) of every customer after one purchase, and each one's deadline."""
    store: dict[str, bytes] = {}
    deadlines: array[int] = array("q")
    apply, next_deadline = engine.apply, engine.next_deadline
    for i in range(tracked):
        cid = customer_id(i)
        event = Event(f"bench-{i}", cid, "purchase", purchase_ms(i, tracked, due, cohorts),
                      channel="web", amount=49.0, currency="EUR")
        state = apply(None, event).state
        deadline = next_deadline(state)
        if deadline is None:
            raise RuntimeError(f"{DEFINITION}: a one-purchase customer has no deadline")
        deadlines.append(deadline)
        store[cid] = stored(state)
    return store, deadlines


def stored(state: CustomerState) -> bytes:
    """The state's bytes as a table keeps them. orjson leaves each result in an oversized
    buffer (about 16 KB for a 1 KB state), which a store that keeps the object itself holds
    whole; RocksDB copies. Copy, so that the store here costs what the data does."""
    return bytes(memoryview(state.to_bytes()))


def loader(store: dict[str, bytes]) -> StateCache:
    """The worker's states: read through from a table of bytes, decoded on first use."""
    return StateCache(lambda key: store.get(key.decode()), 1)


def rss_bytes() -> int | None:
    """Resident set size from /proc (Linux), or None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def build_index(engine: Engine, store: dict[str, bytes], result: SizeResult) -> BatchProcessor:
    """Rebuild the due index from the stored bytes, as the worker does after a rebalance."""
    processor = BatchProcessor(engine, allowed_lateness_ms=engine.config.allowed_lateness_ms)
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    armed = processor.rebuild([0], ((0, CustomerState.from_bytes(raw)) for raw in store.values()))
    result.rebuild_s = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    result.rebuild_rss = None if before is None or after is None else after - before
    if armed != result.tracked:
        raise RuntimeError(f"rebuild armed {armed:,} of {result.tracked:,} customers")
    return processor


def _arm_all(deadlines: array[int]) -> DueIndex:
    index = DueIndex()
    for i, deadline in enumerate(deadlines):
        index.arm(customer_id(i), deadline)
    return index


def measure_index_alone(deadlines: array[int], result: SizeResult) -> None:
    """The bare DueIndex with the same deadlines: its build time, then (traced, so slower,
    in a second pass) the memory it keeps: ids, deadlines, heap entries, the armed dict."""
    gc.collect()
    started = time.perf_counter()
    _arm_all(deadlines)
    result.arm_s = time.perf_counter() - started
    gc.collect()
    tracemalloc.start()
    index = _arm_all(deadlines)
    result.index_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del index


def tick_record(at_ms: int) -> tuple[int, Tick]:
    return 0, Tick(at_ms, 0)


def timed_tick(processor: BatchProcessor, store: dict[str, bytes], at_ms: int,
               expect_due: int) -> tuple[float, float]:
    """Seconds for processor.process([tick]), then seconds to write the dirty states back."""
    record, states = tick_record(at_ms), loader(store)
    started = time.perf_counter()
    result = processor.process([record], states)
    elapsed = time.perf_counter() - started
    if result.detections_due != expect_due:
        raise RuntimeError(f"tick at {at_ms}: {result.detections_due} due, not {expect_due}")
    started = time.perf_counter()
    for cid, _, value in states.take_dirty():
        if value is None:  # an erased customer's tombstone
            store.pop(cid, None)
        else:
            store[cid] = value
    return elapsed, time.perf_counter() - started


@dataclass
class Bench:
    """One tracked population, ready to tick: its store, its processor, its figures."""

    result: SizeResult
    store: dict[str, bytes]
    processor: BatchProcessor


def prepare(engine: Engine, tracked: int, due: int, repeat: int) -> Bench:
    result = SizeResult(tracked)
    started = time.perf_counter()
    store, deadlines = populate(engine, tracked, due, repeat)
    result.populate_s = time.perf_counter() - started
    processor = build_index(engine, store, result)
    measure_index_alone(deadlines, result)
    return Bench(result, store, processor)


def run_ticks(benches: list[Bench], due: int, repeat: int) -> None:
    """Tick every population in turn, so that a burst of load elsewhere on the machine
    hits all sizes alike rather than skewing their ratio."""
    quiet = T0_MS + (QUIET_DAYS - 1) * DAY_MS  # before any deadline; a tick a second after
    for b in benches:
        timed_tick(b.processor, b.store, quiet - DAY_MS, 0)  # warm-up
    # Collect once per series, not per tick: a collection empties the free lists, which
    # would add tens of microseconds to the next tick.
    gc.collect()
    for m in range(EMPTY_TICKS):
        for b in benches:
            b.result.empty_ticks.append(timed_tick(b.processor, b.store, quiet + m * 1000, 0)[0])
    gc.collect()
    for k in range(repeat):
        at = T0_MS + (QUIET_DAYS + k) * DAY_MS + DAY_MS // 2
        for b in benches:
            tick_s, write_s = timed_tick(b.processor, b.store, at, due)
            b.result.due_ticks.append(tick_s)
            b.result.writes.append(write_s)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:9.3f} ms"


def report(r: SizeResult, due: int) -> None:
    n = r.tracked
    rss = "n/a" if r.rebuild_rss is None else f"{r.rebuild_rss / 2**20:,.1f} MB"
    mid = statistics.median(r.due_ticks)
    print(f"tracked {n:,}")
    print(f"  populate (engine, 1 purchase each) {r.populate_s:9.2f} s   "
          f"{r.populate_s / n * 1e6:7.1f} us/customer")
    print(f"  index build (rebuild from bytes)   {r.rebuild_s:9.2f} s   "
          f"{r.rebuild_s / n * 1e6:7.1f} us/customer   RSS +{rss}")
    print(f"  index alone (DueIndex.arm)         {r.arm_s:9.2f} s   "
          f"{r.arm_s / n * 1e6:7.1f} us/customer   retained {r.index_bytes / 2**20:,.1f} MB "
          f"({r.index_bytes / n:,.0f} B/customer, tracemalloc)")
    print(f"  tick, {due:,} due   median {_ms(mid)}   min {_ms(min(r.due_ticks))}   "
          f"{mid / due * 1e6:.1f} us/due customer")
    print(f"  write-back of the dirty states (not in the tick)   median "
          f"{_ms(statistics.median(r.writes))}")
    empty = r.empty_ticks
    print(f"  tick, none due    median {_ms(statistics.median(empty))}   "
          f"min {_ms(min(empty))}   ({len(empty)} ticks)")


def report_ratio(small: SizeResult, large: SizeResult) -> None:
    def ratio(a: list[float], b: list[float]) -> str:
        return (f"median {statistics.median(b) / statistics.median(a):5.2f}x   "
                f"min {min(b) / min(a):5.2f}x")

    met = statistics.median(large.due_ticks) <= 2 * statistics.median(small.due_ticks)
    print(f"ratio {large.tracked:,} / {small.tracked:,} tracked")
    print(f"  tick with due customers  {ratio(small.due_ticks, large.due_ticks)}   "
          f"(requirement, on the medians: <= 2x; {'met' if met else 'NOT MET'})")
    print(f"  tick with none due       {ratio(small.empty_ticks, large.empty_ticks)}")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracked", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.due < 1 or not 1 <= args.repeat <= 50:
        parser.error("--due must be positive and --repeat between 1 and 50")
    if min(args.tracked) < args.due * args.repeat:
        parser.error("every --tracked must hold --due x --repeat customers (one cohort a tick)")

    engine = Engine([load_preset(DEFINITION)])
    print(f"load average {load_average()} (start)")
    print(f"due {args.due:,} per tick, {args.repeat} ticks per size, definition {DEFINITION}")
    benches = [prepare(engine, tracked, args.due, args.repeat) for tracked in args.tracked]
    run_ticks(benches, args.due, args.repeat)
    results = [b.result for b in benches]
    for result in results:
        report(result, args.due)
    if len(results) > 1:
        report_ratio(results[0], results[-1])
    rss_now = rss_bytes()
    if rss_now is not None:
        print(f"process RSS       {rss_now / 2**20:,.0f} MB (all populations held at once)")
    print(f"load average {load_average()} (end)")


if __name__ == "__main__":
    main()
