"""Fault injection on the real local broker: pause, resume, stop and start it; watch a consumer
group's committed offsets; tail topics from the beginning. Black-box: nothing here imports the
worker."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from tests.support.kafka import KAFKA_SH, REPO, TEST_PORT

#: Committed offsets of a consumer group: (topic, partition) -> next offset to read.
Offsets = dict[tuple[str, int], int]


@dataclass(frozen=True)
class Broker:
    """The test broker started by deploy/kafka/kafka.sh on one port."""

    port: int = TEST_PORT

    @property
    def home(self) -> Path:
        return Path(os.environ.get("KAFKA_HOME_DIR", REPO / ".local" / "kafka"))

    def pid(self) -> int:
        return int((self.home / f"broker-{self.port}.pid").read_text().strip())

    def pause(self) -> None:
        """SIGSTOP the broker's JVM: connections stay open, nothing is answered."""
        os.kill(self.pid(), signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid(), signal.SIGCONT)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM, waited for); the data stays."""
        self._kafka_sh("stop")

    def start(self) -> None:
        self._kafka_sh("start")

    def log_path(self) -> Path:
        return self.home / f"broker-{self.port}.log"

    def _kafka_sh(self, command: str) -> None:
        env = {**os.environ, "KAFKA_PORT": str(self.port)}
        subprocess.run([str(KAFKA_SH), command], check=True, env=env, capture_output=True,
                       timeout=180)


class GroupWatch:
    """The committed offsets of one consumer group, read with the admin API."""

    def __init__(self, bootstrap: str, group_id: str) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self._admin: KafkaAdminClient | None = None

    def offsets(self) -> Offsets | None:
        """The group's committed offsets, or None when the broker does not answer."""
        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                               request_timeout_ms=5000)
            # kafka-python 3.x names it list_group_offsets; 2.x list_consumer_group_offsets
            if hasattr(self._admin, "list_group_offsets"):
                found = self._admin.list_group_offsets({self.group_id: None})[self.group_id]
            else:
                found = self._admin.list_consumer_group_offsets(group_id=self.group_id)
        except (KafkaError, OSError):
            self.close()
            return None
        return {(tp.topic, tp.partition): int(meta.offset) for tp, meta in found.items()
                if meta.offset >= 0}

    def wait_for_commit(self, since: Offsets, *, timeout_s: float, poll_s: float = 0.01,
                        every_partition_of: str | None = None) -> Offsets | None:
        """Poll until some committed offset differs from `since` (or, with
        `every_partition_of`, until every partition of that topic has moved on); the new
        offsets, or None when that did not happen in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            now = self.offsets()
            if now is not None and _moved(since, now, every_partition_of):
                return now
            time.sleep(poll_s)
        return None

    def stable_members(self) -> int | None:
        """How many members the group has once it is Stable (assignment done), else None."""
        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                               request_timeout_ms=5000)
            found = self._admin.describe_groups([self.group_id])
        except (KafkaError, OSError):
            self.close()
            return None
        info = found[self.group_id] if isinstance(found, dict) else found[0]
        info = info if isinstance(info, dict) else info._asdict()
        state = info.get("group_state", info.get("state"))
        return len(info.get("members", [])) if state == "Stable" else None

    def close(self) -> None:
        if self._admin is not None:
            with suppress(Exception):
                self._admin.close()
            self._admin = None


def _moved(since: Offsets, now: Offsets, every_partition_of: str | None) -> bool:
    if every_partition_of is None:
        return any(since.get(k) != v for k, v in now.items())
    keys = [k for k in since if k[0] == every_partition_of]
    return bool(keys) and all(now.get(k, -1) > since[k] for k in keys)


@dataclass
class TopicTail:
    """Every record of a topic from the beginning, read a little more at each `poll()`.
    It survives broker restarts (the consumer reconnects by itself)."""

    bootstrap: str
    topic: str
    records: list[Any] = field(default_factory=list)
    _consumer: KafkaConsumer | None = None

    def poll(self, rounds: int = 1) -> int:
        """Read what arrived; the number of new records."""
        consumer = self._consumer or self._open()
        if consumer is None:
            return 0
        before = len(self.records)
        for _ in range(rounds):
            try:
                batches = consumer.poll(timeout_ms=200, max_records=50_000)
            except KafkaError:
                return len(self.records) - before
            for batch in batches.values():
                self.records.extend(batch)
        return len(self.records) - before

    def drain(self, quiet_polls: int = 3) -> None:
        """Read until a few polls in a row bring nothing."""
        quiet = 0
        while quiet < quiet_polls:
            quiet = quiet + 1 if self.poll() == 0 else 0

    def _open(self) -> KafkaConsumer | None:
        # What a downstream consumer and a restore see: committed records only.
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                 auto_offset_reset="earliest",
                                 isolation_level="read_committed")
        parts = consumer.partitions_for_topic(self.topic)
        if not parts:
            consumer.close()
            return None
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        self._consumer = consumer
        return consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def wait_until(condition: Callable[[], bool], *, timeout_s: float, poll_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()
