"""Benchmark: the journey worker side by side with the bare consumer, Faust's own cap, the
in-process run and Quix Streams, all on one generated backlog on the real broker.

Run (starts the broker of deploy/kafka/kafka.sh on --kafka-port unless one answers there,
and makes .local/bench-venv with Quix Streams on first use):

    .venv/bin/python -m tests.bench.compare                     # a few minutes
    .venv/bin/python -m tests.bench.compare --events 200000 --customers 20000

It prints a table and writes it, with the machine, the versions and the command, to
docs/benchmarks.md. How each figure is measured is written next to the table (DEFINITIONS);
the worker and Quix are black boxes seen only through their topics and consumer group.
Benchmarks are not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka import KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as SyncTopicPartition
from kafka.admin import NewTopic

from journey.pipeline.build import build_engine
from journey.pipeline.settings import Settings
from journey.stream.kafka_client import ensure_topics
from tests.bench.engine_bench import engine_run
from tests.bench.generate import touchpoint_lines
from tests.bench.worker_bench import (
    BenchWorker,
    delete_topics,
    load,
    produce_backlog,
    raw_consume,
    worker_env,
)
from tests.support.kafka import KAFKA_SH, REPO, app_id_for, settings_for, unique_prefix

BENCH_VENV = REPO / ".local" / "bench-venv"
DOC = REPO / "docs" / "benchmarks.md"
POLL_S = 0.1
LATENCY_HEADER = "bench-sent-ns"

DEFINITIONS = """\
- **events/s** is the backlog size N divided by the measured seconds; medians over repeats.
- **bare aiokafka loop**: one AIOKafkaConsumer reads the backlog from the beginning with
  `getmany`, `orjson.loads` each value and counts it per customer in a dict; timed from the
  first `getmany` call to the last record (the ceiling).
- **Faust no-op agent**: a Faust app (memory store, no web server) whose agent does nothing;
  `per event` is `async for value in stream`, `take_events` is
  `stream.take_events(TAKE, within=0.05)`, `below the stream API` reads the agent's channel
  queue in batches of up to TAKE with the fetch-at-a-time consumer, as the journey worker
  does (journey/stream/agents.py `drain`, journey/stream/faust_internals.py); timed inside the agent
  from the first event (or batch) to the Nth, and the first event (or batch) is not
  counted (Faust's own cap).
- **in-process, whole process**: `journey replay FILE --in-process --out /dev/null` on the
  backlog as a JSON Lines file, wall time of the process including interpreter start-up;
  **less start-up** subtracts the wall time of the same command on an empty file.
  **engine only**: `event_from_bytes` + `engine.apply` per event in a loop
  (tests/bench/engine_bench.py), nothing else.
- **worker end to end** (`journey worker` subprocesses, 1 or 2 in one consumer group) and
  **Quix Streams**: the processes are started first and the run waits until their consumer
  group is Stable with every member. Then the backlog is produced to their input topic.
  t0 = the moment the benchmark sends the first backlog record; t1 = the first poll (every
  0.1 s) at which the output topics have reached their final size, where final means: the
  group has committed every backlog record on the input topic and the output topics have not
  grown for QUIET seconds since. events/s = N / (t1 - t0). Outputs are stage-changes,
  triggers and trigger-audit for the worker and the one output topic of the Quix app,
  counted as the sum of their end offsets: for the worker that includes one commit marker
  per transaction per output partition it wrote (a few hundred), which is why its count
  moves from run to run while the records do not. Worker
  ticks are off (JOURNEY_TICK_INTERVAL_MS = 1 h) so that, as in-process and in Quix, the
  wall clock fires no detections. `commit` is when the group's commits first covered the
  backlog, in seconds after t0.
- **Quix Streams**: `app.dataframe(topic).apply(step, stateful=True, expand=True)
  .to_topic(out)` with RocksDB state and its changelog topic (Quix defaults), where `step` is
  journey's strict decode, the customer's state loaded from the Quix state, `engine.apply`,
  the state saved, every output encoded as its contract record (tests/bench/quix_app.py);
  run in .local/bench-venv. A stateful apply sees only the current key's state, so the Quix
  app cannot fire the detections that fall due for other customers as event time passes
  (the worker's and the in-process run's due index); it emits a few fewer outputs
  (`outputs` in the detail column). **Trivial step**: the same app with a step that parses
  the JSON, counts the record in the customer's state and produces one small record: Quix
  Streams' own cost with state.
- **latency**: a fresh 1-process worker; touchpoints of new customers are produced at a
  steady rate, half the measured 1-process worker rate, in small bursts every 5 ms, each
  with its send time in the `bench-sent-ns` header and in a table by event id. A consumer of
  stage-changes in the same process matches each record's `cause_event_id` and takes
  receive time - send time, in the order received. The last column compares the p50 of the
  first and the last quarter of the samples: when it grows, the worker did not keep up.
- **peak RSS**: VmHWM of each worker process (/proc/PID/status) just before it is stopped.
"""


# ---------------------------------------------------------------------------- pure helpers


def scale_figures() -> str:
    """The figures table of docs/scale.md (tests/bench/scale.py's last committed run), so this
    page carries the state-at-scale figures too."""
    text = (REPO / "docs" / "scale.md").read_text()
    figures = text.split("## Figures", 1)[1].split("\n## ", 1)[0].split("<!--", 1)[0].strip()
    return ("RocksDB store, bytes per customer and recovery, from the last committed run of "
            "`tests/bench/scale.py` ([scale.md](scale.md) has the command, the method and "
            "where the time goes):\n\n" + figures)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by the nearest-rank method; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats drifting
    return ordered[min(len(ordered), int(rank)) - 1]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def covered(committed: dict[int, int], ends: dict[int, int]) -> int:
    """How many backlog records a group's commits cover: per partition, the committed offset
    up to the backlog's end offset (records appended after the backlog do not count)."""
    return sum(min(max(committed.get(p, 0), 0), end) for p, end in ends.items())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


# ---------------------------------------------------------------------------- the machine


def machine_facts(bootstrap: str) -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {
        "commit": f"`{short_commit() or '?'}`",
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "CPU": cpu,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "faust-streaming": metadata.version("faust-streaming"),
        "aiokafka": metadata.version("aiokafka"),
        "kafka-python": metadata.version("kafka-python"),
        "orjson": metadata.version("orjson"),
        "Kafka broker": kafka_version(bootstrap),
        "quixstreams": quix_version(),
    }


def kafka_version(bootstrap: str) -> str:
    jars = sorted((REPO / ".local" / "kafka" / "jars").glob("kafka_2.13-*.jar"))
    name = jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else "?"
    return f"{name} (KRaft, single node, {bootstrap})"


def quix_version() -> str:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        return "not installed"
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                          "print(m.version('quixstreams'))"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def ensure_bench_venv() -> Path:
    """.local/bench-venv with Quix Streams and this package: the peer's own environment."""
    python = BENCH_VENV / "bin" / "python"
    stamp = BENCH_VENV / ".journey-bench-ready"
    if not stamp.exists():
        print(f"making {BENCH_VENV} (quixstreams + this package) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "quixstreams>=3.28,<4",
                        "-e", str(REPO)], check=True)
        stamp.touch()
    return python


def broker_up(port: int) -> bool:
    """Start deploy/kafka/kafka.sh on this port unless a broker answers; True if started."""
    env = {**os.environ, "KAFKA_PORT": str(port)}
    if subprocess.run([str(KAFKA_SH), "status"], env=env, capture_output=True).returncode == 0:
        return False
    subprocess.run([str(KAFKA_SH), "start"], env=env, check=True)
    return True


# ---------------------------------------------------------------------------- broker helpers


def admin_for(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap)


def create_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    admin = admin_for(bootstrap)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if new:
            admin.create_topics(new)
    finally:
        admin.close()


def retrying(call: Callable[[], Any], tries: int = 50) -> Any:
    """The broker's group coordinator may not be ready on a fresh broker: retry a while."""
    for attempt in range(tries):
        try:
            return call()
        except Exception:
            if attempt == tries - 1:
                raise
            time.sleep(0.2)
    return None


def wait_group_stable(bootstrap: str, group: str, members: int, timeout_s: float = 180.0,
                      alive: Callable[[], bool] = lambda: True) -> None:
    admin = admin_for(bootstrap)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError(f"a process of group {group} exited while joining")
            info = retrying(lambda: admin.describe_groups([group]))[group]
            if info["group_state"] == "Stable" and len(info["members"]) == members:
                time.sleep(1.0)  # let the members finish assignment and fetch positions
                return
            time.sleep(0.25)
        raise TimeoutError(f"group {group} not Stable with {members} members in {timeout_s}s")
    finally:
        admin.close()


def wait_ready(worker: BenchWorker, timeout_s: float = 120.0) -> None:
    """Until the worker's /ready answers 200 (every assigned partition recovered and its
    due index rebuilt)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(worker.url("/ready"), timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:  # not listening yet, or 503 (an HTTPError is an OSError)
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the worker was not ready within {timeout_s:.0f}s")


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [SyncTopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def produce_in_background(bootstrap: str, topic: str, lines: list[bytes]
                          ) -> tuple[threading.Thread, dict[str, float]]:
    """Produce the backlog from a thread. The returned dict gets "t0" (perf_counter just
    before the first send) and "seconds" (until every record was acknowledged)."""
    done: dict[str, float] = {}

    def sending() -> None:
        done["t0"] = time.perf_counter()

    def run() -> None:
        done["seconds"] = asyncio.run(produce_backlog(bootstrap, topic, lines, sending))

    thread = threading.Thread(target=run, name="backlog-producer", daemon=True)
    thread.start()
    return thread, done


# ---------------------------------------------------------------------------- draining


@dataclass
class Drain:
    """What a poller saw while a consumer group drained the backlog (times after t0)."""

    events: int
    seconds: float | None = None
    commit_s: float | None = None
    outputs: int = 0
    produce_s: float | None = None
    note: str = ""
    rss_kb: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return None if not self.seconds else self.events / self.seconds


def watch_drain(bootstrap: str, group: str, input_topic: str,
                ends: Callable[[], dict[int, int] | None], n: int, outputs: Sequence[str],
                partitions: int, t0: Callable[[], float], *, quiet_s: float,
                timeout_s: float, alive: Callable[[], bool]) -> Drain:
    """Poll the output topics' end offsets and the group's commits until the backlog is
    committed and the outputs have been still for quiet_s; see DEFINITIONS. Polling starts
    while the backlog is still being produced; `ends` is None until it has been."""
    drain = Drain(events=n)
    admin = admin_for(bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    out_tps = [SyncTopicPartition(t, p) for t in outputs for p in range(partitions)]
    last_size, grown_at = 0, None
    began = time.perf_counter()
    try:
        while True:
            now = time.perf_counter()
            size = sum(consumer.end_offsets(out_tps).values())
            if size != last_size:
                last_size, grown_at = size, now
            backlog = ends()
            done = 0
            if backlog is not None:
                offsets = retrying(lambda: admin.list_group_offsets({group: None}))[group]
                committed = {tp.partition: om.offset for tp, om in offsets.items()
                             if tp.topic == input_topic}
                done = covered(committed, backlog)
                if drain.commit_s is None and done >= n:
                    drain.commit_s = now - t0()
            if drain.commit_s is not None and grown_at is not None and now - grown_at >= quiet_s:
                drain.seconds, drain.outputs = grown_at - t0(), last_size
                return drain
            if now - began > timeout_s or not alive():
                drain.note = ("a process exited" if not alive() else "timed out") + (
                    f" with {done:,} of {n:,} committed, {size:,} outputs")
                drain.outputs = size
                return drain
            time.sleep(POLL_S)
    finally:
        consumer.close()
        admin.close()


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------- the systems


def run_bare(args: argparse.Namespace, topic: str) -> float:
    rate, seen = asyncio.run(raw_consume(args.bootstrap, topic, args.partitions, args.events))
    if seen < args.events:
        print(f"  bare loop read only {seen:,} of {args.events:,}")
    return rate


def run_faust_noop(args: argparse.Namespace, topic: str, mode: str, work: Path) -> float | None:
    result = work / f"faust-{mode}-{time.monotonic_ns()}.json"
    log = result.with_suffix(".log")
    cmd = [sys.executable, "-m", "tests.bench.faust_noop", "--bootstrap", args.bootstrap,
           "--topic", topic, "--partitions", str(args.partitions), "--events",
           str(args.events), "--mode", mode, "--take", str(args.take), "--app-id",
           f"{unique_prefix()}noop", "--datadir", str(work / result.stem), "--result",
           str(result), *(f"--conf={item}" for item in args.faust_conf)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + args.timeout
        while not result.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL_S)
    finally:
        stop(proc)
    if not result.exists():
        print(f"  faust no-op {mode} gave no result; log {log}")
        return None
    found = orjson.loads(result.read_bytes())
    return float(found["events"] - found["first"]) / float(found["seconds"])


def run_in_process(lines_file: Path, env: dict[str, str]) -> float:
    """Seconds of `journey replay FILE --in-process`, the whole process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "journey.cli", "replay", str(lines_file),
                    "--in-process", "--out", os.devnull], cwd=REPO, check=True,
                   env={**os.environ, **env}, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_engine_only(args: argparse.Namespace, lines: list[bytes], env: dict[str, str]) -> float:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        settings = Settings()  # the worker's settings, from the same environment
    finally:
        os.environ.clear()
        os.environ.update(saved)
    seconds, _, _ = engine_run(lines, build_engine(settings))
    return len(lines) / seconds


def run_workers(args: argparse.Namespace, lines: list[bytes], env: dict[str, str],
                processes: int, work: Path, tree: Path = REPO) -> Drain:
    prefix = unique_prefix()
    settings = settings_for(prefix, args.bootstrap, partitions=args.partitions)
    topics = settings.topics()
    ensure_topics(settings, topics)
    workers = [BenchWorker(args.bootstrap, prefix, work / f"{prefix}{i}", extra_env=env,
                           tree=tree) for i in range(processes)]
    try:
        # One after the other: the backlog is produced only once the group is Stable with all.
        for worker in workers:
            worker.start()

        def alive() -> bool:
            return all(w.proc is not None and w.proc.poll() is None for w in workers)

        wait_group_stable(args.bootstrap, app_id_for(prefix), processes, alive=alive)
        drain = drain_backlog(args, lines, topics.touchpoints.name, app_id_for(prefix),
                              [topics.stage_changes.name, topics.triggers.name,
                               topics.trigger_audit.name], alive)
        drain.rss_kb = [peak_rss_kb(w.worker_pid()) for w in workers if alive()]
        if drain.note:
            for worker in workers:
                print(worker.log_tail(15))
        return drain
    finally:
        for worker in workers:
            worker.stop()
        if not args.keep_topics:
            delete_topics(settings, prefix)


def drain_backlog(args: argparse.Namespace, lines: list[bytes], topic: str, group: str,
                  outputs: Sequence[str], alive: Callable[[], bool]) -> Drain:
    thread, produced = produce_in_background(args.bootstrap, topic, lines)
    found: dict[str, dict[int, int]] = {}

    def ends() -> dict[int, int] | None:
        if thread.is_alive():
            return None
        if "ends" not in found:
            found["ends"] = end_offsets(args.bootstrap, topic, args.partitions)
        return found["ends"]

    while "t0" not in produced and thread.is_alive():
        time.sleep(0.001)
    drain = watch_drain(args.bootstrap, group, topic, ends, len(lines), outputs,
                        args.partitions, lambda: produced["t0"], quiet_s=args.quiet,
                        timeout_s=args.timeout, alive=alive)
    thread.join()
    drain.produce_s = produced.get("seconds")
    return drain


def run_quix(args: argparse.Namespace, lines: list[bytes], env: dict[str, str],
             python: Path, work: Path, *, trivial: bool = False) -> Drain:
    prefix = unique_prefix()
    source, sink, group = f"{prefix}touchpoints", f"{prefix}quix-outputs", f"{prefix}quix"
    create_topics(args.bootstrap, [source, sink], args.partitions)
    log = work / f"{prefix}quix.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(python), "-m", "tests.bench.quix_app", "--bootstrap", args.bootstrap,
             "--input", source, "--output", sink, "--group", group, "--state-dir",
             str(work / f"{prefix}quix-state"), *(["--trivial"] if trivial else [])],
            cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)

    def alive() -> bool:
        return proc.poll() is None

    try:
        wait_group_stable(args.bootstrap, group, 1, alive=alive)
        drain = drain_backlog(args, lines, source, group, [sink], alive)
        if alive():
            drain.rss_kb = [peak_rss_kb(proc.pid)]
        if drain.note:
            print(log.read_text(errors="replace")[-3000:])
        return drain
    finally:
        stop(proc)
        if not args.keep_topics:
            admin = admin_for(args.bootstrap)
            try:
                names = [t for t in admin.list_topics() if prefix in t]
                if names:
                    admin.delete_topics(names)
            finally:
                admin.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------- latency


@dataclass
class Latency:
    rate: float
    sent: int
    samples_ms: list[float]
    rss_kb: int = 0

    HEADER = ("rate (events/s)", "events sent", "stage changes matched", "p50 ms", "p99 ms",
              "p99.9 ms", "max ms", "p50 first / last quarter ms")

    def row(self) -> list[str]:
        s = self.samples_ms
        quarter = max(1, len(s) // 4)
        # A p50 that grows from the first quarter to the last means the worker fell behind.
        trend = f"{percentile(s[:quarter], 50):,.1f} / {percentile(s[-quarter:], 50):,.1f}"
        return [f"{self.rate:,.0f}", f"{self.sent:,}", f"{len(s):,}",
                *(f"{percentile(s, q):,.1f}" for q in (50, 99, 99.9)),
                f"{max(s):,.1f}" if s else "n/a", trend]


async def steady_latency(bootstrap: str, touchpoints: str, stage_changes: str,
                         partitions: int, lines: list[bytes], rate: float, quiet_s: float
                         ) -> list[float]:
    """Produce lines at `rate`/s, each stamped; match stage changes by cause_event_id."""
    docs = [orjson.loads(line) for line in lines]
    keyed = [(str(d["event_id"]), str(d["customer_id"]).encode(), line)
             for d, line in zip(docs, lines, strict=True)]
    sent_at: dict[str, float] = {}
    samples: list[float] = []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1)
    await consumer.start()
    await producer.start()
    try:
        tps = [TopicPartition(stage_changes, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        finished = asyncio.Event()

        async def receive() -> None:
            quiet_until = None
            while True:
                batches = await consumer.getmany(timeout_ms=20)
                now = time.perf_counter()
                got = False
                for records in batches.values():
                    for record in records:
                        cause = orjson.loads(record.value).get("cause_event_id")
                        if cause in sent_at:
                            samples.append((now - sent_at[cause]) * 1000)
                            got = True
                if finished.is_set():
                    if got or quiet_until is None:
                        quiet_until = now + quiet_s
                    elif now >= quiet_until:
                        return

        receiver = asyncio.create_task(receive())
        started = time.perf_counter()
        i = 0
        while i < len(keyed):
            due = min(len(keyed), int((time.perf_counter() - started) * rate) + 1)
            while i < due:
                event_id, key, value = keyed[i]
                now = time.perf_counter()
                sent_at[event_id] = now
                await producer.send(touchpoints, value=value, key=key, headers=[
                    (LATENCY_HEADER, str(time.time_ns()).encode())])
                i += 1
            await asyncio.sleep(0.005)
        await producer.flush()
        finished.set()
        await receiver
        return samples
    finally:
        await producer.stop()
        await consumer.stop()


def run_latency(args: argparse.Namespace, env: dict[str, str], rate: float,
                work: Path) -> Latency:
    prefix = unique_prefix()
    settings = settings_for(prefix, args.bootstrap, partitions=args.partitions)
    topics = settings.topics()
    ensure_topics(settings, topics)
    n = max(1, int(rate * args.latency_seconds))
    lines = list(touchpoint_lines(n, max(1, n // 10), seed=11))
    worker = BenchWorker(args.bootstrap, prefix, work / f"{prefix}lat", extra_env=env)
    try:
        worker.start()
        wait_group_stable(args.bootstrap, app_id_for(prefix), 1,
                          alive=lambda: worker.proc is not None and worker.proc.poll() is None)
        wait_ready(worker)  # recovered and indexed: latency in service, not at start-up
        samples = asyncio.run(steady_latency(
            args.bootstrap, topics.touchpoints.name, topics.stage_changes.name,
            args.partitions, lines, rate, args.quiet))
        return Latency(rate, n, samples, peak_rss_kb(worker.worker_pid()))
    finally:
        worker.stop()
        if not args.keep_topics:
            delete_topics(settings, prefix)


# ---------------------------------------------------------------------------- report


@dataclass
class Results:
    bare: list[float] = field(default_factory=list)
    noop_event: list[float] = field(default_factory=list)
    noop_take: list[float] = field(default_factory=list)
    noop_drain: list[float] = field(default_factory=list)
    inprocess: list[float] = field(default_factory=list)
    #: seconds of the same in-process command on an empty file
    startup: list[float] = field(default_factory=list)
    engine: list[float] = field(default_factory=list)
    worker1: list[Drain] = field(default_factory=list)
    worker2: list[Drain] = field(default_factory=list)
    #: one process of the --baseline checkout's worker
    baseline: list[Drain] = field(default_factory=list)
    quix: list[Drain] = field(default_factory=list)
    quix_trivial: list[Drain] = field(default_factory=list)
    latency: Latency | None = None


def drain_rate(drains: Sequence[Drain]) -> float | None:
    return median([d.rate for d in drains if d.rate is not None])


def drain_note(drains: Sequence[Drain]) -> str:
    if not drains:
        return "not run"
    parts = []
    for d in drains:
        if d.note:
            parts.append(d.note)
            continue
        rss = ", ".join(f"{kb / 1024:,.0f}" for kb in d.rss_kb)
        parts.append(f"{d.seconds:.1f} s, commit at {d.commit_s or 0:.1f} s, {d.outputs:,} "
                     f"outputs, produce {d.produce_s or 0:.1f} s, peak RSS {rss} MiB")
    return "; ".join(parts)


def target(name: str, figure: str, met: bool | None) -> list[str]:
    """A row of the targets table."""
    return [name, figure, "n/a" if met is None else ("yes" if met else "no")]


def at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None or math.isnan(value) else value >= bound


def report(args: argparse.Namespace, r: Results, facts: dict[str, str], command: str,
           started: datetime, loads: tuple[str, str]) -> str:
    bare = median(r.bare)
    w1, w2, quix = drain_rate(r.worker1), drain_rate(r.worker2), drain_rate(r.quix)
    inproc, engine = median(r.inprocess), median(r.engine)
    startup = median(r.startup)
    net = None
    if inproc and startup is not None and args.events / inproc > startup:
        net = args.events / (args.events / inproc - startup)
    take = f"take_events({args.take})"
    faust_conf = ", ".join(args.faust_conf) or "Faust's default settings"
    rows = [
        ("bare aiokafka loop (consume, orjson, dict update)", bare, ""),
        ("Faust no-op agent, per event", median(r.noop_event), faust_conf),
        (f"Faust no-op agent, {take}", median(r.noop_take), faust_conf),
        (f"Faust no-op agent, below the stream API (batches of up to {args.take})",
         median(r.noop_drain), faust_conf),
        ("in-process run, whole process", inproc, "" if not inproc else
         f"{args.events / inproc:.1f} s wall, of which start-up "
         f"{startup or 0:.1f} s (the same command on an empty file)"),
        ("in-process run, whole process less start-up", net, ""),
        ("in-process run, engine only", engine, ""),
        ("journey worker, 1 process", w1, drain_note(r.worker1)),
        ("journey worker, 2 processes", w2, drain_note(r.worker2)),
        *([(f"journey worker, 1 process, baseline {baseline_name(args.baseline)}",
            drain_rate(r.baseline), drain_note(r.baseline))] if args.baseline else []),
        ("Quix Streams, trivial stateful step (parse, count per customer, one record out)",
         drain_rate(r.quix_trivial), drain_note(r.quix_trivial)),
        ("Quix Streams + journey engine, stateful apply", quix, drain_note(r.quix)),
    ]
    table = markdown_table(
        ["system", "events/s", "/ bare loop", "detail"],
        [[name, fmt_rate(rate), fmt_ratio(ratio(rate, bare)), note]
         for name, rate, note in rows])
    ratios = markdown_table(["ratio", "value"], [
        ["worker (1 process) / bare loop", fmt_ratio(ratio(w1, bare))],
        ["worker (1 process) / in-process whole", fmt_ratio(ratio(w1, inproc))],
        ["worker (1 process) / in-process less start-up", fmt_ratio(ratio(w1, net))],
        ["worker (1 process) / in-process engine only", fmt_ratio(ratio(w1, engine))],
        ["worker 2 processes / 1 process", fmt_ratio(ratio(w2, w1))],
        ["worker (1 process) / Quix Streams + journey engine", fmt_ratio(ratio(w1, quix))],
        ["Quix Streams + journey engine / Quix Streams trivial",
         fmt_ratio(ratio(quix, drain_rate(r.quix_trivial)))],
        ["Faust no-op take_events / per event",
         fmt_ratio(ratio(median(r.noop_take), median(r.noop_event)))],
        ["Faust no-op below the stream API / per event",
         fmt_ratio(ratio(median(r.noop_drain), median(r.noop_event)))],
        ["worker (1 process) / Faust no-op below the stream API",
         fmt_ratio(ratio(w1, median(r.noop_drain)))],
    ])
    if r.latency is not None:
        latency = markdown_table(Latency.HEADER, [r.latency.row()])
        latency += f"\n\nWorker peak RSS during the latency run: {r.latency.rss_kb / 1024:,.0f} MiB"
    else:
        latency = "not run"
    p99 = percentile(r.latency.samples_ms, 99) if r.latency else None
    targets = markdown_table(["issue 22 target", "this run", "met"], [
        target("engine only (decode + apply) >= 100,000 events/s (10 µs per event)",
               fmt_rate(engine), at_least(engine, 100_000)),
        target("worker (1 process) >= 1.25 x Quix Streams + journey engine",
               fmt_ratio(ratio(w1, quix)), at_least(ratio(w1, quix), 1.25)),
        target("worker (1 process) >= 0.6 x in-process whole",
               fmt_ratio(ratio(w1, inproc)), at_least(ratio(w1, inproc), 0.6)),
        target("2 processes >= 1.7 x 1 process", fmt_ratio(ratio(w2, w1)),
               at_least(ratio(w2, w1), 1.7)),
        target("p99 produce to stage change <= 100 ms at half the 1-process rate",
               "n/a" if p99 is None else f"{p99:,.1f} ms",
               None if p99 is None or math.isnan(p99) else p99 <= 100),
    ])
    peaks = [kb for d in r.worker1 + r.worker2 for kb in d.rss_kb]
    facts_rows = [[k, v] for k, v in facts.items()]
    facts_rows += [["load average before / after", f"{loads[0]} / {loads[1]}"],
                   ["started", started.isoformat(timespec="seconds")]]
    return "\n".join([
        "# Benchmarks",
        "",
        "Written by `tests/bench/compare.py`; every figure below comes from one run of:",
        "",
        f"    {command}",
        "",
        f"{args.events:,} generated touchpoints (tests/bench/generate.py), {args.customers:,} "
        f"customers, {args.partitions} partitions, keyed by customer_id; definitions "
        f"`{args.definitions}`; worker batch {args.batch_max}; "
        f"median of {args.repeats} repeat(s).",
        "",
        "## State at scale",
        "",
        scale_figures(),
        "",
        "## Throughput",
        "",
        table,
        "",
        f"Worker peak RSS (VmHWM), largest process: "
        f"{(max(peaks) / 1024 if peaks else 0):,.0f} MiB.",
        "",
        "## Ratios",
        "",
        ratios,
        "",
        targets,
        "",
        "## Latency, produce to stage change, at half the 1-process worker rate",
        "",
        latency,
        "",
        "## Machine",
        "",
        markdown_table(["", ""], facts_rows),
        "",
        "## How each figure is measured",
        "",
        DEFINITIONS.replace("TAKE", str(args.take)).replace("QUIET", f"{args.quiet:g}"),
    ]) + "\n"


# ---------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", help="an existing broker; default: start kafka.sh")
    parser.add_argument("--kafka-port", type=int, default=19092,
                        help="port of the kafka.sh broker when --bootstrap is not given")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--take", type=int, default=2000, help="take_events size, Faust no-op")
    parser.add_argument("--faust-conf", action="append", default=[], metavar="NAME=VALUE",
                        help="a Faust setting of the no-op agents (repeatable)")
    parser.add_argument("--batch-max", type=int, default=2000, help="JOURNEY_BATCH_MAX_EVENTS")
    parser.add_argument("--definitions", default="touchpoint_journey")
    parser.add_argument("--log-level", default="INFO", help="JOURNEY_LOG_LEVEL")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment of the worker (repeatable)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="also run one worker process of another checkout (e.g. `git "
                             "worktree add /tmp/base COMMIT`), for a before/after")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--latency-rate", type=float,
                        help="events/s of the latency run (default: half the 1-process rate)")
    parser.add_argument("--quiet", type=float, default=3.0,
                        help="seconds without output growth that mean a drain is over")
    parser.add_argument("--timeout", type=float, default=900.0, help="per drain, seconds")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["bare", "faust", "inprocess", "worker", "worker2", "quix",
                                 "latency", "baseline"], help="leave a system out (repeatable)")
    parser.add_argument("--no-write", action="store_true", help="do not write the doc")
    parser.add_argument("--keep-topics", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    command = "python -m tests.bench.compare " + shlex.join(
        sys.argv[1:] if argv is None else list(argv))
    started_broker = False
    if args.bootstrap is None:
        started_broker = broker_up(args.kafka_port)
        args.bootstrap = f"127.0.0.1:{args.kafka_port}"
    try:
        run(args, command.strip())
    finally:
        if started_broker:
            subprocess.run([str(KAFKA_SH), "stop"], check=False,
                           env={**os.environ, "KAFKA_PORT": str(args.kafka_port)})


def run(args: argparse.Namespace, command: str) -> None:
    started, load_before = datetime.now(UTC), load()
    python = ensure_bench_venv() if "quix" not in args.skip else None
    facts = machine_facts(args.bootstrap)
    # No ticks: the wall clock would fire every customer's detections, which neither the
    # in-process run nor Quix do (an --env JOURNEY_TICK_INTERVAL_MS=... overrides this).
    env = {"JOURNEY_TICK_INTERVAL_MS": str(3_600_000), **worker_env(args)}
    lines = list(touchpoint_lines(args.events, args.customers))
    r = Results()
    with tempfile.TemporaryDirectory(prefix="journey-compare-") as tmp:
        work = Path(tmp)
        lines_file = work / "backlog.jsonl"
        lines_file.write_bytes(b"\n".join(lines) + b"\n")
        empty_file = work / "empty.jsonl"
        empty_file.write_bytes(b"")
        backlog = f"{unique_prefix()}backlog"
        create_topics(args.bootstrap, [backlog], args.partitions)
        asyncio.run(produce_backlog(args.bootstrap, backlog, lines))
        for repeat in range(1, args.repeats + 1):
            print(f"repeat {repeat}/{args.repeats} (load {load()})", flush=True)
            step(args, "bare", "bare aiokafka loop",
                 lambda: r.bare.append(run_bare(args, backlog)))
            step(args, "faust", "Faust no-op, per event", lambda: append_some(
                r.noop_event, run_faust_noop(args, backlog, "per-event", work)))
            step(args, "faust", "Faust no-op, take_events", lambda: append_some(
                r.noop_take, run_faust_noop(args, backlog, "take", work)))
            step(args, "faust", "Faust no-op, below the stream API", lambda: append_some(
                r.noop_drain, run_faust_noop(args, backlog, "drain", work)))
            step(args, "inprocess", "in-process, whole process", lambda: r.inprocess.append(
                args.events / run_in_process(lines_file, env)))
            step(args, "inprocess", "in-process, start-up only",
                 lambda: r.startup.append(run_in_process(empty_file, env)))
            step(args, "inprocess", "in-process, engine only",
                 lambda: r.engine.append(run_engine_only(args, lines, env)))
            step(args, "worker", "worker, 1 process",
                 lambda: r.worker1.append(run_workers(args, lines, env, 1, work)))
            step(args, "worker2", "worker, 2 processes",
                 lambda: r.worker2.append(run_workers(args, lines, env, 2, work)))
            if args.baseline:
                step(args, "baseline", f"baseline worker ({baseline_name(args.baseline)})",
                     lambda: r.baseline.append(run_workers(args, lines, env, 1, work,
                                                           tree=args.baseline)))
            if python is not None:
                step(args, "quix", "Quix Streams, trivial step",
                     lambda: r.quix_trivial.append(run_quix(args, lines, env, python, work,
                                                            trivial=True)))
                step(args, "quix", "Quix Streams + journey engine",
                     lambda: r.quix.append(run_quix(args, lines, env, python, work)))
        w1 = drain_rate(r.worker1)
        rate = args.latency_rate or (w1 / 2 if w1 else None)
        if rate and "latency" not in args.skip:
            step(args, "latency", f"latency at {rate:,.0f} events/s",
                 lambda: setattr(r, "latency", run_latency(args, env, rate, work)))
        if not args.keep_topics:
            admin = admin_for(args.bootstrap)
            try:
                admin.delete_topics([backlog])
            finally:
                admin.close()
    text = report(args, r, facts, command, started, (load_before, load()))
    print(text)
    if not args.no_write:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text)
        print(f"written to {DOC.relative_to(REPO)}")


def short_commit(tree: Path = REPO) -> str:
    """The short commit a checkout is at ("" when git cannot tell)."""
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip()


def baseline_name(tree: Path) -> str:
    """The short commit of a checkout, for the table."""
    return f"`{short_commit(tree) or tree}`"


def step(args: argparse.Namespace, key: str, label: str, action: Callable[[], Any]) -> None:
    if key in args.skip:
        return
    began = time.perf_counter()
    print(f"  {label} ...", end=" ", flush=True)
    action()
    print(f"{time.perf_counter() - began:.1f} s", flush=True)


def append_some(values: list[float], value: float | None) -> None:
    if value is not None:
        values.append(value)


if __name__ == "__main__":
    main()
