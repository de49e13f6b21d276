"""Scale run: N customers' states in the changelog, then a worker on RocksDB recovers them.

    python -m tests.bench.scale --customers 100000
    python -m tests.bench.scale --customers 1000000

Starts the test broker (deploy/kafka/kafka.sh on JOURNEY_TEST_KAFKA_PORT) unless --bootstrap
is given. States are a realistic mix of histories, made by the engine itself: three template
populations run in process (light: ~2 events per customer, medium: ~10, heavy: ~40), each
final state then stamped with a new customer id and its own event ids for every customer
loaded. They are written to the compacted changelog topic exactly as a worker writes them.

Prints: bytes per customer in the changelog (broker log segments) and in the RocksDB store
(files on disk after a clean stop), cold recovery (empty store: the whole changelog), warm
recovery (restart on the store: the tail only), and the due index rebuild, each from the
process start until the worker reports every customer tracked.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from journey.engine import CustomerState
from journey.pipeline.build import build_engine
from journey.pipeline.inprocess import in_process_pipeline, replay_lines
from journey.pipeline.settings import Settings
from journey.pipeline.stateindex import StateIndex, encode
from journey.stream.kafka_client import ensure_topics
from journey.stream.tables import STANDBY_BUFFER
from tests.bench.compare import peak_rss_kb, short_commit
from tests.bench.generate import touchpoint_lines
from tests.support.kafka import (
    REPO,
    TEST_PORT,
    WorkerProcess,
    broker_start,
    broker_stop,
    end_offsets,
    settings_for,
    unique_prefix,
)

#: (customers, events) of each template population: light, medium, heavy histories
POPULATIONS = [(3000, 6000), (1500, 15000), (500, 20000)]


def templates() -> list[dict[str, Any]]:
    """Final states of the template populations, as dicts."""
    found: list[dict[str, Any]] = []
    for seed, (customers, events) in enumerate(POPULATIONS, start=1):
        pipeline = in_process_pipeline(Settings(quiet_hours="", contact_budget=""))
        for _ in replay_lines(touchpoint_lines(events, customers, seed=seed), pipeline):
            pass
        found.extend(state.to_dict() for state in pipeline.states.live.values())
    return found


def stamped(template: dict[str, Any], index: int, entry: list[object]) -> tuple[bytes, bytes]:
    """The template's state as customer `index`'s own: its id and event ids made unique, its
    index entry in front as the worker writes it (neither id changes its deadline)."""
    cid = f"c{index:09d}"
    state = dict(template)
    state["customer_id"] = cid
    state["recent_ids"] = {f"{k}.{index}": v for k, v in template.get("recent_ids", {}).items()}
    return cid.encode(), encode(state, entry)


def load(bootstrap: str, topic: str, customers: int, pool: list[dict[str, Any]],
         index: StateIndex, compression: str | None) -> int:
    """Write one state per customer to the changelog, every delivery checked, and read the
    end offsets back; returns the bytes of the values. Fails loudly when the changelog does
    not hold what was written (an unchecked loader once left 855,356 of 1,000,000).
    `index`: the worker's, so each state carries the entry the worker would write;
    `compression`: the codec the worker's changelog producer uses."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                             batch_size=512 * 1024, compression_type=compression)
    entries = [index.entry(CustomerState.from_dict(t)) for t in pool]
    total = failed = 0
    try:
        futures = []
        for i in range(customers):
            key, value = stamped(pool[i % len(pool)], i, entries[i % len(pool)])
            total += len(value)
            futures.append(producer.send(topic, key=key, value=value))
        producer.flush()
        failed = sum(1 for future in futures if not future.succeeded())
    finally:
        producer.close()
    held = end_offsets(bootstrap, topic)
    if failed or held != customers:
        raise SystemExit(f"scale: the changelog holds {held:,} of the {customers:,} states "
                         f"written ({failed:,} deliveries failed)")
    return total


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def changelog_bytes(topic: str) -> int:
    data = Path(os.environ.get("KAFKA_HOME_DIR", REPO / ".local" / "kafka")) / f"data-{TEST_PORT}"
    # log segments only: the offset and time indexes are preallocated sparse files
    return sum(f.stat().st_size for d in data.glob(f"{topic}-*") if d.is_dir()
               for f in d.glob("*.log"))


def recover(worker: WorkerProcess, customers: int, timeout_s: float = 1800.0
            ) -> dict[str, float]:
    """Start the worker; seconds until Faust's recovery completed and until every customer
    is tracked (recovery plus the due index rebuild). Gives up after `timeout_s`, saying
    how many customers it reached. Meanwhile /health is asked every 0.1 s: the longest gap
    between two answers, from the first (the page shares the event loop with recovery)."""
    started = time.monotonic()
    worker.start()
    answered: float | None = None
    longest_silence = 0.0
    tracked = 0.0
    asked_tracked = 0.0
    while True:
        assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
        now = time.monotonic()
        if now - started > timeout_s:
            raise SystemExit(f"scale: {tracked:,.0f} of {customers:,} customers tracked "
                             f"after {timeout_s:.0f}s; giving up")
        try:
            with urllib.request.urlopen(worker.url("/health"), timeout=30) as resp:
                resp.read()
        except urllib.error.HTTPError:
            pass  # an answer all the same (503 while the worker is not healthy)
        except OSError:
            time.sleep(0.1)
            continue
        now = time.monotonic()
        if answered is not None:
            longest_silence = max(longest_silence, now - answered)
        answered = now
        if now - asked_tracked >= 0.5:
            tracked, asked_tracked = worker.metric("journey_customers_tracked") or 0, now
            if tracked >= customers:
                break
        time.sleep(0.1)
    tracked_s = time.monotonic() - started
    assert worker.log_path is not None
    log = worker.log_path.read_text(errors="replace")
    return {
        "ready_s": tracked_s,
        "rss_mib": peak_rss_kb(worker.proc.pid) / 1024,
        "rebuild_sum_s": worker.metric("journey_index_rebuild_seconds_sum") or 0.0,
        "restored": worker.metric("journey_state_restored_records_total") or 0.0,
        "rebalances": float(len(re.findall(r"Heartbeat failed|rebalancing", log))),
        "longest_silence_s": longest_silence,
    }


def run(customers: int, bootstrap: str, keep: Path | None) -> dict[str, float]:
    prefix = unique_prefix()
    settings = settings_for(prefix, bootstrap)
    topics = settings.topics()
    ensure_topics(settings, topics)
    started = time.monotonic()
    pool = templates()
    events = sum(len(t.get("recent_ids", {})) for t in pool) / len(pool)
    print(f"{len(pool)} template states (mean {events:.1f} remembered event ids) in "
          f"{time.monotonic() - started:.1f}s", flush=True)
    started = time.monotonic()
    index = StateIndex(build_engine(settings))
    value_bytes = load(bootstrap, topics.state_changelog.name, customers, pool, index,
                       settings.compression_type())
    print(f"loaded {customers} states ({value_bytes / customers:.0f} B mean value) in "
          f"{time.monotonic() - started:.1f}s", flush=True)
    base = keep or Path(tempfile.mkdtemp(prefix="journey-scale-"))
    # No ticks: the template histories are months old, so the first tick would make every
    # armed customer due at once; this run measures recovery, not that burst.
    env = {"JOURNEY_STORE": "rocksdb://", "JOURNEY_SESSION_TIMEOUT_S": "30",
           "JOURNEY_TICK_INTERVAL_MS": "3600000"}
    worker = WorkerProcess(bootstrap=bootstrap, prefix=prefix, data_dir=base / "w",
                           extra_env=env)
    try:
        cold = recover(worker, customers)
        worker.stop(timeout_s=120)
        store = du(base / "w" / "v1") if (base / "w" / "v1").exists() else du(base / "w")
        worker = WorkerProcess(bootstrap=bootstrap, prefix=prefix, data_dir=base / "w",
                               extra_env=env)
        warm = recover(worker, customers)
        worker.stop(timeout_s=120)
        takeover = standby_takeover(bootstrap, prefix, base, env, customers)
    finally:
        worker.stop()
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
    figures = {
        "customers": customers,
        "value_bytes_per_customer": value_bytes / customers,
        "changelog_bytes_per_customer": changelog_bytes(topics.state_changelog.name) / customers,
        "store_bytes_per_customer": store / customers,
        "cold_s": cold["ready_s"], "cold_rebuild_s": cold["rebuild_sum_s"],
        "cold_restored": cold["restored"], "cold_rebalances": cold["rebalances"],
        "cold_longest_silence_s": cold["longest_silence_s"],
        "warm_s": warm["ready_s"], "warm_rebuild_s": warm["rebuild_sum_s"],
        "warm_restored": warm["restored"], "warm_rebalances": warm["rebalances"],
        "warm_longest_silence_s": warm["longest_silence_s"],
        "cold_rss_mib": cold["rss_mib"], "warm_rss_mib": warm["rss_mib"],
        **takeover,
    }
    return figures


def _metric(worker: WorkerProcess, name: str) -> float:
    try:
        return worker.metric(name) or 0.0
    except OSError:
        return 0.0


def standby_takeover(bootstrap: str, prefix: str, base: Path, env: dict[str, str],
                     customers: int, timeout_s: float = 900.0) -> dict[str, float]:
    """Two workers with JOURNEY_STANDBY_REPLICAS=1: A on the store the warm run left, B on
    an empty one. Once B holds its own partitions and a standby copy of A's (it has then
    restored the whole changelog once), A is stopped (SIGTERM); the take-over is the time
    until B tracks every customer, and the changelog records B restored meanwhile."""
    standby = {**env, "JOURNEY_STANDBY_REPLICAS": "1"}
    a = WorkerProcess(bootstrap=bootstrap, prefix=prefix, data_dir=base / "w", extra_env=standby)
    b = WorkerProcess(bootstrap=bootstrap, prefix=prefix, data_dir=base / "s", extra_env=standby)
    try:
        a.start()
        b.start()
        deadline = time.monotonic() + timeout_s
        # A standby applies what it reads every STANDBY_BUFFER records of a partition: up to
        # that many of each partition's last records wait in its buffer.
        copied = customers - 4 * STANDBY_BUFFER
        while (_metric(a, "journey_customers_tracked") + _metric(b, "journey_customers_tracked")
               < customers or _metric(b, "journey_state_restored_records_total") < copied):
            if time.monotonic() > deadline:
                raise SystemExit("scale: the two standby workers never held everything")
            time.sleep(0.5)
        before = _metric(b, "journey_state_restored_records_total")
        started = time.monotonic()
        a.stop(timeout_s=120)
        while _metric(b, "journey_customers_tracked") < customers:
            if time.monotonic() - started > timeout_s:
                raise SystemExit("scale: the standby never took everything over")
            time.sleep(0.1)
        return {"takeover_s": time.monotonic() - started,
                "takeover_restored": _metric(b, "journey_state_restored_records_total") - before}
    finally:
        a.stop()
        b.stop()


DOC = REPO / "docs" / "scale.md"


BEGIN, END = "<!-- scale.py figures: begin -->", "<!-- scale.py figures: end -->"


def write(figures: dict[str, float], command: str, commit: str) -> None:
    """Put one run's figures between the markers of docs/scale.md; the rest of the page (the
    history of earlier rounds, where the time goes) is written by hand."""
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n{report(figures, command, commit)}{END}{tail}")


def report(figures: dict[str, float], command: str, commit: str = "") -> str:
    """The figures section of docs/scale.md from one run."""
    f = figures
    n = int(f["customers"])
    return "\n".join([
        "## Figures",
        "",
        f"Written by `tests/bench/scale.py` from one run, on commit `{commit}`, of:",
        "",
        f"    {command}",
        "",
        f"{n:,} customers' states in the compacted changelog, 4 partitions, one worker on "
        "RocksDB (`JOURNEY_STORE=rocksdb://`), on the project's shared 2-core test machine. "
        "The states are a mix of histories made by the engine itself (template populations "
        "with about 2, 10 and 40 events per customer over 90 days, each state stamped with "
        "its own customer id and event ids).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| state value, mean (JSON) | {f['value_bytes_per_customer']:,.0f} B per customer |",
        f"| changelog (broker log segments, {Settings().producer_compression}) | "
        f"{f['changelog_bytes_per_customer']:,.0f} B per customer |",
        f"| RocksDB store (files after a clean stop) | "
        f"{f['store_bytes_per_customer']:,.0f} B per customer |",
        f"| cold recovery: empty store, whole changelog, until every customer is tracked | "
        f"{f['cold_s']:,.1f} s ({f['cold_restored']:,.0f} records restored) |",
        f"| of which the due index rebuild (4 partitions) | {f['cold_rebuild_s']:,.1f} s |",
        f"| warm recovery: restart on the store, until every customer is tracked | "
        f"{f['warm_s']:,.1f} s ({f['warm_restored']:,.0f} records restored) |",
        f"| of which the due index rebuild (4 partitions) | {f['warm_rebuild_s']:,.1f} s |",
        f"| longest gap between answers of /health, asked every 0.1 s (cold / warm) | "
        f"{f['cold_longest_silence_s']:,.1f} s / {f['warm_longest_silence_s']:,.1f} s |",
        f"| rebalances during recovery (cold / warm) | {f['cold_rebalances']:,.0f} / "
        f"{f['warm_rebalances']:,.0f} |",
        f"| worker peak RSS, VmHWM (cold / warm) | {f['cold_rss_mib']:,.0f} MiB / "
        f"{f['warm_rss_mib']:,.0f} MiB |",
        f"| standby take-over: one of two workers with JOURNEY_STANDBY_REPLICAS=1 stopped, "
        f"until the other tracks every customer | {f['takeover_s']:,.1f} s "
        f"({f['takeover_restored']:,.0f} records restored meanwhile) |",
        "",
        "How each figure is measured: the changelog is the sum of the `.log` segment files of "
        "its partitions in the broker's data directory (the preallocated index files are left "
        "out); the store is every file under the worker's data directory after it stopped; "
        "recovery times run from starting the worker process (about 2 s of it is Python and "
        "Faust start-up) until `journey_customers_tracked` reports every customer, so they "
        "include Faust's restore and the due index rebuild; the rebuild is the sum of "
        "`journey_index_rebuild_seconds`; records restored is "
        "`journey_state_restored_records_total`.",
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--bootstrap", help="a running broker (default: start the test one)")
    parser.add_argument("--keep", type=Path, help="keep the worker's data here")
    parser.add_argument("--write", action="store_true", help=f"write {DOC.name}")
    args = parser.parse_args(argv)
    bootstrap = args.bootstrap or broker_start()
    try:
        figures = run(args.customers, bootstrap, args.keep)
    finally:
        if not args.bootstrap:
            broker_stop()
    for name, value in figures.items():
        print(f"{name:32} {value:,.2f}")
    if args.write:
        command = f"python -m tests.bench.scale --customers {args.customers} --write"
        write(figures, command, short_commit())
        print(f"written to {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
