"""Benchmark: one partition's due index rebuild from stored states, from their index entries
and by decoding every state (as before the entries, or after a configuration change).

Run: .venv/bin/python -m tests.bench.rebuild_bench [--customers 100000] [--repeat 3]

The states are tests/bench/scale.py's: the engine's own histories, stamped per customer, held
as bytes in a dict (the store's iteration is left out: it is the same for both paths).
"""

from __future__ import annotations

import argparse
import statistics
import time

from journey.engine import CustomerState
from journey.pipeline.build import build_engine
from journey.pipeline.metrics import StagePopulations
from journey.pipeline.settings import Settings
from journey.pipeline.stateindex import Rebuild, StateIndex
from journey.pipeline.timekeeping import DueIndex
from tests.bench.scale import stamped, templates


def rebuild_s(index: StateIndex, items: list[tuple[bytes, bytes]]) -> tuple[float, int]:
    """Seconds to rebuild from `items`, and how many states were decoded in full."""
    rebuild = Rebuild(index, 0, DueIndex(), StagePopulations())
    started = time.perf_counter()
    for _ in rebuild.run(iter(items), 5000):
        pass
    return time.perf_counter() - started, rebuild.decoded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    pool = templates()
    index = StateIndex(build_engine(Settings()))
    other = StateIndex(build_engine(Settings()))
    other.fingerprint = "another-config"  # every entry mismatches: the full decode
    entries = [index.entry(CustomerState.from_dict(t)) for t in pool]
    items = [stamped(pool[i % len(pool)], i, entries[i % len(pool)])
             for i in range(args.customers)]
    for name, reader in (("from entries", index), ("decoding every state", other)):
        runs = [rebuild_s(reader, items) for _ in range(args.repeat)]
        best = min(s for s, _ in runs)
        print(f"{name:22} {args.customers:,} states: best {best:.2f}s "
              f"({best / args.customers * 1e6:.1f} µs each), median "
              f"{statistics.median(s for s, _ in runs):.2f}s, decoded {runs[0][1]:,}")


if __name__ == "__main__":
    main()
