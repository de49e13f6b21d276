"""Benchmark: what the metrics hooks cost per event, next to the batch processor they observe.

Run: .venv/bin/python -m tests.bench.metrics_bench [--events 50000] [--customers 5000]
Prints events per second of the processor alone and with every hook the shell will call
(populations.track/commit, observe_batch, observe_accepted), and microseconds per event in
the hooks.
"""

from __future__ import annotations

import argparse
import time

from prometheus_client import CollectorRegistry

from journey.contract import codec
from journey.contract.decode import decode
from journey.contract.records import Touchpoint
from journey.pipeline.build import build_engine
from journey.pipeline.metrics import Metrics, position_of
from journey.pipeline.processor import BatchProcessor, StateCache
from journey.pipeline.settings import Settings
from tests.bench.generate import touchpoint_lines

BATCH = 500


def run(lines: list[bytes], settings: Settings, hooks: bool) -> tuple[float, float]:
    """(seconds in total, seconds in the hooks)."""
    engine = build_engine(settings)
    processor = BatchProcessor(engine, allowed_lateness_ms=settings.allowed_lateness_s * 1000)
    metrics = Metrics(CollectorRegistry())
    metrics.describe_engine(engine)
    states = StateCache(lambda key: None, 1, position=position_of if hooks else None)
    batches = [[(0, codec.event_from_bytes(line)) for line in lines[i:i + BATCH]]
               for i in range(0, len(lines), BATCH)]
    in_hooks = 0.0
    started = time.perf_counter()
    for batch in batches:
        result = processor.process(batch, states)
        if hooks:
            mark = time.perf_counter()
            metrics.populations.follow(states.take_before(), states.live, lambda cid: 0)
            metrics.observe_batch(result, size=len(batch))
            in_hooks += time.perf_counter() - mark
    return time.perf_counter() - started, in_hooks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=5_000)
    args = parser.parse_args()
    settings = Settings()
    lines = list(touchpoint_lines(args.events, args.customers))
    bare, _ = run(lines, settings, hooks=False)
    total, in_hooks = run(lines, settings, hooks=True)
    policy = settings.ingest_policy()
    decoded = [d for d in (decode(line, policy=policy, now_ms=2**62) for line in lines)
               if isinstance(d, Touchpoint)]
    metrics = Metrics(CollectorRegistry())
    mark = time.perf_counter()
    for touchpoint in decoded:
        metrics.observe_accepted(touchpoint)
    accepted = time.perf_counter() - mark
    n = len(lines)
    print(f"processor alone:      {n / bare:10.0f} events/s")
    print(f"processor with hooks: {n / total:10.0f} events/s "
          f"(advance hooks {in_hooks / n * 1e6:.1f} us/event)")
    print(f"observe_accepted:     {accepted / max(len(decoded), 1) * 1e6:10.1f} us/touchpoint")


if __name__ == "__main__":
    main()
