"""Test support: a real local Kafka broker (deploy/kafka/kafka.sh) and journey worker processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from journey.pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
TEST_PORT = int(os.environ.get("JOURNEY_TEST_KAFKA_PORT", "19192"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_start() -> str:
    """A fresh test broker: earlier runs' topics are removed first."""
    env = {**os.environ, "KAFKA_PORT": str(TEST_PORT)}
    subprocess.run([str(KAFKA_SH), "reset"], check=True, env=env)
    subprocess.run([str(KAFKA_SH), "start"], check=True, env=env)
    return f"127.0.0.1:{TEST_PORT}"


def broker_stop() -> None:
    subprocess.run([str(KAFKA_SH), "stop"], check=False, env={**os.environ,
                   "KAFKA_PORT": str(TEST_PORT)})


def settings_for(prefix: str, bootstrap: str | None = None, **overrides: Any) -> Settings:
    """The settings of the test deployment a WorkerProcess with this prefix runs."""
    extra: dict[str, Any] = {"kafka_bootstrap": bootstrap} if bootstrap else {}
    return Settings(topic_prefix=prefix, app_id=app_id_for(prefix), **extra, **overrides)


def app_id_for(prefix: str) -> str:
    return f"{prefix}app"


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}-"


@dataclass
class WorkerProcess:
    """A `journey worker` subprocess with its own topic prefix, app id and web port."""

    bootstrap: str
    prefix: str
    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    web_port: int = field(default_factory=free_port)
    #: the address the test reaches the web API at (JOURNEY_WEB_HOST binds it)
    web_address: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    #: the interpreter's arguments: the CLI's worker command unless a test needs a variant
    command: tuple[str, ...] = ("-m", "journey.cli", "worker")

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "JOURNEY_KAFKA_BOOTSTRAP": self.bootstrap,
            "JOURNEY_TOPIC_PREFIX": self.prefix,
            "JOURNEY_APP_ID": app_id_for(self.prefix),
            "JOURNEY_WEB_PORT": str(self.web_port),
            "JOURNEY_DATA_DIR": str(self.data_dir),
            # the production default is rocksdb://; tests that need it ask for it
            "JOURNEY_STORE": "memory://",
            **self.extra_env,
        }

    def start(self) -> WorkerProcess:
        self.log_path = self.data_dir / f"worker-{self.web_port}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, *self.command],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            )
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            with suppress(OSError), urllib.request.urlopen(self.url("/health"), timeout=1) as r:
                if r.status == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"worker not healthy after {timeout_s}s:\n{self.log_tail()}")

    def url(self, path: str) -> str:
        return f"http://{self.web_address}:{self.web_port}{path}"

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The value of one sample read from /metrics, or None when absent."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name and (labels or {}) == {
                    k: v for k, v in sample.labels.items() if k in (labels or {})
                }:
                    return float(sample.value)
        return None

    def metric_total(self, name: str) -> float:
        """The sum of every sample of one metric read from /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        return sum(float(sample.value)
                   for family in text_string_to_metric_families(self.metrics_text())
                   for sample in family.samples if sample.name == name)

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url(path), timeout=10) as resp:
            return json.loads(resp.read())

    def freeze(self) -> None:
        """SIGSTOP: the process stops where it is, sockets open, as in a long GC pause."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def produce(bootstrap: str, topic: str, values: list[bytes], key: bytes | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for value in values:
            producer.send(topic, value=value, key=key)
        producer.flush()
    finally:
        producer.close()


def produce_json(bootstrap: str, topic: str, docs: list[dict[str, Any]]) -> None:
    """Send documents keyed by their customer_id, as the contract asks platforms to."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for doc in docs:
            key = str(doc.get("customer_id", "")).encode() or None
            producer.send(topic, value=json.dumps(doc).encode(), key=key)
        producer.flush()
    finally:
        producer.close()


def consume(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float = 60.0, settle_s: float = 1.0
) -> list[Any]:
    """Read a topic from the beginning until `expect` records arrived or the time is up."""
    return consume_until(bootstrap, topic, lambda got: len(got) >= expect,
                         timeout_s=timeout_s, settle_s=settle_s)


def consume_until(
    bootstrap: str, topic: str, done: Callable[[list[Any]], bool], *,
    timeout_s: float = 60.0, settle_s: float = 0.0,
) -> list[Any]:
    """Read a topic from the beginning until done(records so far) or the time is up; then
    `settle_s` longer, so that a late duplicate is still seen and tests can say "exactly"."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
    )
    try:
        consumer.subscribe([topic])
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while not done(records) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        settle = time.monotonic() + settle_s
        while time.monotonic() < settle:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def read_to_end(bootstrap: str, topic: str, partitions: Iterable[int] | None = None, *,
                isolation: str = "read_committed", timeout_s: float = 60.0) -> list[Any]:
    """Every record of `topic` (or of its `partitions`) from the start to the end it had when
    asked, in partition order. `read_committed` by default, as a restore and the
    downstream consumers read: the worker writes in transactions."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation,
                             enable_auto_commit=False)
    try:
        if partitions is None:
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        found: dict[int, list[Any]] = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"{topic} was not read to its end"
            for tp, batch in consumer.poll(timeout_ms=500).items():
                found[tp.partition].extend(batch)
        return [record for tp in tps for record in found[tp.partition]]
    finally:
        consumer.close()


def committed_records(bootstrap: str, topic: str) -> int:
    """How many records of `topic` a `read_committed` consumer is handed: the worker writes
    in transactions, whose markers take offsets but are no records."""
    return len(read_to_end(bootstrap, topic))


def iter_json(records: list[Any]) -> Iterator[dict[str, Any]]:
    for record in records:
        yield json.loads(record.value)


def cuttable_worker(bootstrap: str, prefix: str, work: Path, **env: str
                    ) -> tuple[WorkerProcess, Path]:
    """A worker (not started) whose connections to the broker the test cuts by creating the
    file returned beside it, and mends by removing it (tests/support/cut_worker.py); the
    shared broker itself keeps running."""
    cut = work / "cut"
    worker = WorkerProcess(bootstrap=bootstrap, prefix=prefix, data_dir=work / "worker",
                           command=("-m", "tests.support.cut_worker"),
                           extra_env={**env, "JOURNEY_TEST_CUT_FILE": str(cut)})
    return worker, cut


#: A record for `write_transactions`: (topic, key, value, partition).
TxnRecord = tuple[str, bytes, bytes, int]


async def write_transactions(bootstrap: str, transactional_id: str,
                             writes: Sequence[tuple[Sequence[TxnRecord], bool]]) -> None:
    """Each (records, commit) of `writes` in a transaction of its own, in order: every record
    is on the log (delivered) before its transaction commits, or aborts when commit is False
    (aborted records stay in the log, which read_committed readers skip)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id,
                                enable_idempotence=True)
    await producer.start()
    try:
        for records, commit in writes:
            await producer.begin_transaction()
            for topic, key, value, partition in records:
                await producer.send_and_wait(topic, value, key=key, partition=partition)
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()
