"""Benchmark: the engine in-process over generated touchpoints, next to a bare orjson.loads loop.

Run: .venv/bin/python -m tests.bench.engine_bench [--events 1000000] [--customers 100000]
Prints events per second for both and the ratio (target: engine >= 0.5 x bare parse).
With --profile it also prints the engine run's top functions by own time (cProfile), and
the CPU microseconds per event of engine.apply alone (events decoded beforehand).
"""

from __future__ import annotations

import argparse
import gc
import time

import orjson

from journey.contract.codec import event_from_bytes
from journey.engine import CustomerState, Engine, load_definitions
from tests.bench.generate import touchpoint_lines


def bare_parse(lines: list[bytes]) -> float:
    loads = orjson.loads
    started = time.perf_counter()
    for line in lines:
        loads(line)
    return time.perf_counter() - started


def engine_run(lines: list[bytes], engine: Engine) -> tuple[float, int, int]:
    states: dict[str, CustomerState] = {}
    outputs = 0
    apply = engine.apply
    started = time.perf_counter()
    for line in lines:
        event = event_from_bytes(line)
        step = apply(states.get(event.customer_id), event)
        states[event.customer_id] = step.state
        outputs += len(step.outputs)
    return time.perf_counter() - started, outputs, len(states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--definitions", default="touchpoint_journey")
    parser.add_argument("--profile", action="store_true",
                        help="also profile engine.apply per event (cProfile, top 25)")
    args = parser.parse_args()

    lines = list(touchpoint_lines(args.events, args.customers))
    engine = Engine(load_definitions(args.definitions.split(",")))
    gc.collect()
    parse_s = bare_parse(lines)
    gc.collect()
    engine_s, outputs, customers = engine_run(lines, engine)
    n = len(lines)
    print(f"events            {n:>12,}")
    print(f"customers         {customers:>12,}")
    print(f"definitions       {args.definitions}")
    print(f"outputs           {outputs:>12,}")
    print(f"bare orjson.loads {n / parse_s:>12,.0f} events/s  ({parse_s:.2f} s)")
    print(f"engine in-process {n / engine_s:>12,.0f} events/s  ({engine_s:.2f} s)")
    print(f"ratio             {parse_s / engine_s:>12.3f}  (engine / bare parse; target >= 0.5)")
    if args.profile:
        profile_apply(lines, args.definitions)


def profile_apply(lines: list[bytes], definitions: str) -> None:
    """CPU µs per event of engine.apply alone, then where that time goes."""
    import cProfile
    import pstats

    def run() -> None:
        engine = Engine(load_definitions(definitions.split(",")))
        states: dict[str, CustomerState] = {}
        apply = engine.apply
        for event in events:
            step = apply(states.get(event.customer_id), event)
            states[event.customer_id] = step.state

    events = [event_from_bytes(line) for line in lines]
    gc.collect()
    started = time.process_time()
    run()
    print(f"engine.apply      {(time.process_time() - started) / len(events) * 1e6:>12.2f} "
          "CPU µs/event")
    events = [event_from_bytes(line) for line in lines]
    profiler = cProfile.Profile()
    profiler.runcall(run)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
