"""Benchmark: one journey worker draining a touchpoint backlog on a real broker, next to a bare
aiokafka consumer loop reading the same records.

Run (the broker first; any port):

    KAFKA_PORT=19492 deploy/kafka/kafka.sh start
    .venv/bin/python -m tests.bench.worker_bench --bootstrap 127.0.0.1:19492 [--events 200000]

N generated touchpoints (tests/bench/generate.py), keyed by customer_id, are produced to a
fresh touchpoints topic before anything reads them. A bare aiokafka loop then reads them from
the beginning (raw records/s), and one `journey worker` process starts on the backlog. Its
/metrics is polled: the ingest rate is measured on journey_events_accepted_total and the
pipeline rate on journey_events_processed_total, each from the first poll that sees the
counter move to the poll that sees all N (the count at the first poll is subtracted), so
start-up and group join are not counted. Target: the worker at >= 0.25 x the raw loop.

`--wrap "py-spy record -o /tmp/worker.svg --"` runs the worker under a profiler; RSS is then
read from the wrapped worker process, not the wrapper.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka import KafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from journey.pipeline.settings import Settings
from journey.stream.kafka_client import client_config, ensure_topics
from tests.bench.generate import touchpoint_lines
from tests.support.kafka import REPO, WorkerProcess, settings_for, unique_prefix

ACCEPTED = "journey_events_accepted_total"
PROCESSED = "journey_events_processed_total"
POLL_S = 0.2


@dataclass
class Stage:
    """When a counter was first seen moving and when it was first seen at the target."""

    name: str
    first_at: float | None = None
    first_value: float = 0.0
    done_at: float | None = None
    done_value: float = 0.0
    last_value: float = 0.0

    def observe(self, now: float, value: float, target: int) -> None:
        self.last_value = value
        if self.first_at is None and value > 0:
            self.first_at, self.first_value = now, value
        if self.done_at is None and value >= target:
            self.done_at, self.done_value = now, value

    def rate(self) -> float | None:
        if self.first_at is None or self.done_at is None or self.done_at <= self.first_at:
            return None
        return (self.done_value - self.first_value) / (self.done_at - self.first_at)

    def seconds(self) -> float | None:
        if self.first_at is None or self.done_at is None:
            return None
        return self.done_at - self.first_at


@dataclass
class BenchWorker(WorkerProcess):
    """A WorkerProcess whose command may be wrapped (py-spy record ... --)."""

    wrap: tuple[str, ...] = ()
    samples: dict[str, float] = field(default_factory=dict)
    #: the checkout whose `journey` package runs (another commit's, for a before/after)
    tree: Path = REPO

    def start(self) -> BenchWorker:
        self.log_path = self.data_dir / f"worker-{self.web_port}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.wrap, sys.executable, "-m", "journey.cli", "worker"],
                env={**self.env, "PYTHONPATH": str(self.tree)}, stdout=log,
                stderr=subprocess.STDOUT, cwd=self.tree,
            )
        self.wait_healthy(timeout_s=120.0)
        return self

    def worker_pid(self) -> int:
        """The Python worker's pid: the process itself, or the wrapper's child."""
        assert self.proc is not None
        if not self.wrap:
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])

    def poll(self) -> dict[str, float]:
        """Every unlabelled-or-summed sample of /metrics, by sample name."""
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as resp:
            text = resp.read().decode()
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = sample.name
                if name.endswith("_created"):
                    continue
                if name.endswith("_bucket"):
                    name = f"{name}{{le={sample.labels['le']}}}"
                samples[name] = samples.get(name, 0.0) + float(sample.value)
        self.samples = samples
        return samples


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="127.0.0.1:19492")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-max", type=int, default=2000, help="JOURNEY_BATCH_MAX_EVENTS")
    parser.add_argument("--definitions", default="touchpoint_journey")
    # Not WARNING: at WARNING and above Faust's worker keeps its terminal spinner, sets the
    # root logger to DEBUG and so builds a LogRecord for every library debug call (aiokafka
    # logs one per message sent), which costs the worker more than a tenth of its time.
    parser.add_argument("--log-level", default="INFO", help="JOURNEY_LOG_LEVEL")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="give up when the worker has not processed all events by then")
    parser.add_argument("--stall", type=float, default=90.0,
                        help="give up when no counter moved for this many seconds")
    parser.add_argument("--wrap", default="",
                        help="command prefix for the worker, e.g. 'py-spy record -o f.svg --'")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment of the worker (repeatable)")
    parser.add_argument("--keep-topics", action="store_true",
                        help="do not delete the run's topics at the end")
    parser.add_argument("--tree", type=Path, default=REPO,
                        help="the checkout whose worker runs (another commit's, for a "
                             "before/after; default: this one)")
    return parser.parse_args(argv)


def load() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def produce_backlog(bootstrap: str, topic: str, lines: list[bytes],
                          sending: Callable[[], None] | None = None) -> float:
    """Send every line keyed by its customer_id; returns the seconds until all were acked.
    `sending` is called just before the first record is sent."""
    keys = [str(orjson.loads(line)["customer_id"]).encode() for line in lines]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        if sending is not None:
            sending()
        started = time.perf_counter()
        pending = []
        for key, line in zip(keys, lines, strict=True):
            pending.append(await producer.send(topic, value=line, key=key))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, topic: str, partitions: int, n: int) -> tuple[float, int]:
    """The bare aiokafka loop, the ceiling: read from the beginning, orjson-decode each value
    and count it per customer in a dict. (records/s from the first fetch call to the last
    record, records)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        per_customer: dict[str, int] = {}
        loads = orjson.loads
        started = time.perf_counter()
        deadline = time.monotonic() + 300
        while seen < n and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                seen += len(records)
                for record in records:
                    cid = loads(record.value)["customer_id"]
                    per_customer[cid] = per_customer.get(cid, 0) + 1
        elapsed = time.perf_counter() - started
        return seen / elapsed if elapsed > 0 else 0.0, seen
    finally:
        await consumer.stop()


def worker_env(args: argparse.Namespace) -> dict[str, str]:
    """The worker's environment from the benchmark's options (shared with compare.py)."""
    return {
        "JOURNEY_LOG_LEVEL": args.log_level,
        "JOURNEY_PARTITIONS": str(args.partitions),
        "JOURNEY_BATCH_MAX_EVENTS": str(args.batch_max),
        "JOURNEY_DEFINITIONS": args.definitions,
        "JOURNEY_QUIET_HOURS": "",
        "JOURNEY_OFFER_CODE_SECRET": "bench",
        **{name: value for name, _, value in (item.partition("=") for item in args.env)},
    }


def watch(worker: BenchWorker, n: int, timeout_s: float, stall_s: float) -> tuple[Stage, Stage]:
    ingest, pipeline = Stage("ingest"), Stage("pipeline")
    deadline = time.monotonic() + timeout_s
    last_move, last_total = time.monotonic(), -1.0
    while time.monotonic() < deadline:
        assert worker.proc is not None
        if worker.proc.poll() is not None:
            print(f"worker exited with {worker.proc.returncode}:\n{worker.log_tail()}")
            break
        samples = worker.poll()
        now = time.perf_counter()
        ingest.observe(now, samples.get(ACCEPTED, 0.0), n)
        pipeline.observe(now, samples.get(PROCESSED, 0.0), n)
        if pipeline.done_at is not None:
            break
        total = ingest.last_value + pipeline.last_value
        if total != last_total:
            last_move, last_total = time.monotonic(), total
        elif time.monotonic() - last_move > stall_s:
            print(f"stalled: accepted {ingest.last_value:.0f}, processed "
                  f"{pipeline.last_value:.0f} of {n}; worker log:\n{worker.log_tail()}")
            break
        time.sleep(POLL_S)
    return ingest, pipeline


def rss(pid: int) -> str:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return f"{fields.get('VmRSS', '?')} (peak {fields.get('VmHWM', '?')})"


def histogram(samples: dict[str, float], name: str) -> list[str]:
    """Count, mean and the share of observations in each bucket (non-cumulative)."""
    count = samples.get(f"{name}_count", 0.0)
    total = samples.get(f"{name}_sum", 0.0)
    if not count:
        return [f"{name}: no observations"]
    rows = [f"{name}: count {count:,.0f}, mean {total / count:,.4g}"]
    below = 0.0
    buckets = sorted(
        ((float(k.split("le=")[1].rstrip("}")), v) for k, v in samples.items()
         if k.startswith(f"{name}_bucket")),
    )
    for le, cumulative in buckets:
        if cumulative > below:
            rows.append(f"    <= {le:<8g} {cumulative - below:>9,.0f}  "
                        f"({(cumulative - below) / count:6.1%})")
        below = cumulative
    return rows


def delete_topics(settings: Settings, prefix: str) -> None:
    """Remove the run's topics, Faust's own included (the app id starts with the prefix)."""
    admin = KafkaAdminClient(**client_config(settings))
    try:
        names = [t for t in admin.list_topics() if t.startswith(prefix)]
        if names:
            admin.delete_topics(names)
    finally:
        admin.close()


def rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:>12,.0f} events/s"


def report(args: argparse.Namespace, produce_s: float, raw: tuple[float, int],
           ingest: Stage, pipeline: Stage, worker: BenchWorker, worker_rss: str,
           buffer_full: int) -> None:
    raw_rate, raw_seen = raw
    n = args.events
    s = worker.samples
    print(f"events            {n:>12,}")
    print(f"customers         {args.customers:>12,}")
    print(f"partitions        {args.partitions:>12}")
    print(f"batch max         {args.batch_max:>12}")
    print(f"worker log level  {args.log_level:>12}")
    print(f"produce           {produce_s:>12.2f} s  ({n / produce_s:,.0f} records/s)")
    print(f"bare aiokafka loop {raw_rate:>11,.0f} records/s  ({raw_seen:,} read)")
    for stage in (ingest, pipeline):
        seconds = stage.seconds()
        took = "" if seconds is None else (
            f"  ({seconds:.2f} s, {stage.done_value - stage.first_value:,.0f} events)")
        print(f"worker {stage.name:<10} {rate(stage.rate())}{took}")
    worker_rate = pipeline.rate()
    if worker_rate is not None and raw_rate:
        print(f"ratio             {worker_rate / raw_rate:>12.4f}  "
              f"(worker pipeline / raw loop; target >= 0.25)")
    print(f"worker RSS        {worker_rss}")
    print(f"dead letters      {s.get('journey_events_dead_lettered_total', 0):>12,.0f}")
    print(f"outputs           stage changes {s.get('journey_stage_changes_total', 0):,.0f}, "
          f"triggers {s.get('journey_triggers_emitted_total', 0):,.0f}, "
          f"withheld {s.get('journey_triggers_withheld_total', 0):,.0f}, "
          f"detections due {s.get('journey_detections_due_total', 0):,.0f}")
    busy = s.get("journey_batch_seconds_sum", 0.0)
    seconds = pipeline.seconds()
    if seconds:
        print(f"advance busy      {busy:>12.2f} s in batches ({busy / seconds:.0%} of the "
              f"pipeline time)")
    print(f"'producer buffer full' warnings {buffer_full:,}")
    for row in histogram(s, "journey_batch_events"):
        print(row)
    for row in histogram(s, "journey_batch_seconds"):
        print(row)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    prefix = unique_prefix()
    settings = settings_for(prefix, args.bootstrap, partitions=args.partitions)
    topics = settings.topics()
    print(f"load before       {load()}  prefix {prefix}")
    ensure_topics(settings, topics)
    lines = list(touchpoint_lines(args.events, args.customers))
    produce_s = asyncio.run(produce_backlog(args.bootstrap, topics.touchpoints.name, lines))
    del lines
    print(f"load after produce {load()}")
    raw = asyncio.run(raw_consume(args.bootstrap, topics.touchpoints.name, args.partitions,
                                  args.events))
    print(f"load after raw    {load()}")
    env = worker_env(args)
    data_dir = Path(tempfile.mkdtemp(prefix="worker-bench-"))
    worker = BenchWorker(args.bootstrap, prefix, data_dir, extra_env=env, tree=args.tree,
                         wrap=tuple(shlex.split(args.wrap)))
    try:
        worker.start()
        print(f"worker pid        {worker.worker_pid()}  (log {worker.log_path})")
        ingest, pipeline = watch(worker, args.events, args.timeout, args.stall)
        worker_rss = rss(worker.worker_pid())
        print(f"load at the end   {load()}")
    finally:
        worker.stop()
    assert worker.log_path is not None
    buffer_full = worker.log_path.read_text(errors="replace").count("producer buffer full")
    report(args, produce_s, raw, ingest, pipeline, worker, worker_rss, buffer_full)
    if not args.keep_topics:
        delete_topics(settings, prefix)


if __name__ == "__main__":
    main()
