"""Durable state on RocksDB and scale-out: a restarted worker reads only the changelog tail;
two workers in one group split the partitions, and stopping and restarting one mid-stream
changes neither the final states nor the trigger ids."""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from journey.engine import CustomerState
from journey.pipeline.inprocess import in_process_pipeline, replay_lines
from journey.stream.kafka_client import ensure_topics
from tests.support.kafka import (
    WorkerProcess,
    committed_records,
    consume_until,
    end_offsets,
    iter_json,
    produce_json,
    read_to_end,
    settings_for,
)

pytestmark = pytest.mark.integration

ENV = {
    "JOURNEY_STORE": "rocksdb://",
    "JOURNEY_TICK_INTERVAL_MS": "300",
    "JOURNEY_BATCH_MAX_EVENTS": "50",
    "JOURNEY_SESSION_TIMEOUT_S": "8",
    "JOURNEY_FLUSH_INTERVAL_MS": "100",
    # No quiet hours or budget: the comparison with the in-process run stays exact.
    "JOURNEY_QUIET_HOURS": "",
    "JOURNEY_CONTACT_BUDGET": "",
}
TYPES = ["site_visit", "lead_magnet_download", "purchase", "email_opened", "referral",
         "incident", "newsletter_subscribe", "content_view", "purchase", "refund"]


def _touchpoints(n: int, customers: int, *, seed: int, first: int = 0,
                 spacing_s: float = 30.0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=4)  # the last one ends the day before
    docs = []
    for i in range(first, first + n):
        doc: dict[str, Any] = {
            "event_id": f"d-{i}", "customer_id": f"cust-{rng.randrange(customers)}",
            "type": rng.choice(TYPES), "channel": "web",
            "occurred_at": (start + timedelta(seconds=spacing_s * i)).isoformat()}
        if doc["type"] == "purchase":
            doc["amount"] = 20.0
            doc["properties"] = {"tier": rng.choice(["tripwire", "core"])}
        docs.append(doc)
    return docs


#: Every worker a test of this module made, stopped after it whatever its outcome (a failed
#: assertion left them running, loading the machine for the tests after it).
_MADE: list[WorkerProcess] = []


@pytest.fixture(autouse=True)
def _stop_workers_after_each_test() -> Iterator[None]:
    yield
    while _MADE:
        _MADE.pop().stop()


def _worker(bootstrap: str, prefix: str, data_dir: Path, **env: str) -> WorkerProcess:
    worker = WorkerProcess(bootstrap=bootstrap, prefix=prefix, data_dir=data_dir,
                           extra_env={**ENV, **env})
    _MADE.append(worker)
    return worker


def _wait_for(metric: Callable[[], float | None], value: float, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while (metric() or 0) < value:
        assert time.monotonic() < deadline, f"waited for {value}, have {metric()}"
        time.sleep(0.3)


def _settled_changelog(bootstrap: str, topic: str, quiet_s: float = 2.0) -> int:
    """The changelog's records once nothing was appended for `quiet_s`."""
    last, since = -1, time.monotonic()
    while True:
        now = end_offsets(bootstrap, topic)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return committed_records(bootstrap, topic)
        time.sleep(0.3)


@pytest.mark.parametrize("restore", ["faust", "bulk"])
def test_a_worker_restarted_on_its_rocksdb_store_restores_only_the_changelog_tail(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, restore: str,
) -> None:
    # Faust's recovery reads a tail shorter than JOURNEY_BULK_RESTORE_MIN_RECORDS, the bulk
    # restore (journey/stream/restore.py) a longer one: each is made to read everything.
    env = {"JOURNEY_BULK_RESTORE_MIN_RECORDS": "1000000" if restore == "faust" else "1"}
    # Given worker A on RocksDB that has applied a first stream and stopped cleanly
    settings = settings_for(topic_prefix, kafka_bootstrap)
    topics = settings.topics()
    changelog = topics.state_changelog.name
    ensure_topics(settings, topics)
    first_docs = _touchpoints(600, 200, seed=3)
    produce_json(kafka_bootstrap, topics.touchpoints.name, first_docs)
    a = _worker(kafka_bootstrap, topic_prefix, tmp_path / "a", **env).start()
    _wait_for(lambda: a.metric("journey_events_processed_total"), len(first_docs))
    assert a.metric("journey_state_restored_records_total") == 0  # a fresh store
    a.stop()
    after_a = _settled_changelog(kafka_bootstrap, changelog)
    assert after_a >= 150, "the first stream should have written most customers"

    # And worker B, on an empty store, which restored the whole changelog and went on
    more_docs = _touchpoints(300, 200, seed=4, first=len(first_docs))
    produce_json(kafka_bootstrap, topics.touchpoints.name, more_docs)
    b = _worker(kafka_bootstrap, topic_prefix, tmp_path / "b", **env).start()
    _wait_for(lambda: b.metric("journey_events_processed_total"), len(more_docs))
    assert b.metric("journey_state_restored_records_total") == after_a
    assert b.log_path is not None
    bulk_lines = [line for line in b.log_path.read_text(errors="replace").splitlines()
                  if "bulk restore: " in line]
    assert bool(bulk_lines) == (restore == "bulk"), bulk_lines
    _rebuilt_from_index_entries(b)
    b.stop()
    after_b = _settled_changelog(kafka_bootstrap, changelog)
    assert after_b > after_a

    # When A starts again on its own store
    a = _worker(kafka_bootstrap, topic_prefix, tmp_path / "a", **env).start()
    _wait_for(lambda: a.metric("journey_customers_tracked"), 1)

    # Then it restored exactly the records B wrote after A's store was last written, and
    # still knows every customer
    assert a.metric("journey_state_restored_records_total") == after_b - after_a
    customers = {d["customer_id"] for d in first_docs + more_docs}
    assert a.metric("journey_customers_tracked") == len(customers)
    # from the index entries kept apart from the states, complete through the barrier's
    # writes and the restore of the tail (journey/stream/indexfamily.py)
    _rebuilt_from_index_entries(a)
    a.stop()


def _rebuilt_from_index_entries(worker: WorkerProcess) -> None:
    assert worker.log_path is not None
    lines = [line for line in worker.log_path.read_text(errors="replace").splitlines()
             if "due index rebuilt from" in line]
    assert lines and all("stored index entries" in line for line in lines), lines


def _unconsumed(bootstrap: str, group: str, topic: str) -> int:
    """Records of `topic` the group has not committed yet."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        committed = {tp: meta.offset for tp, meta in
                     admin.list_group_offsets(group)[group].items() if tp.topic == topic}
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(end - max(committed.get(tp, 0), 0)
                   for tp, end in consumer.end_offsets(tps).items())
    finally:
        consumer.close()
        admin.close()


def _final_states(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    """The last value per key of the changelog, read to its end as a restore reads it
    (committed records only): what the deployment remembers."""
    last = {record.key.decode(): record.value for record in read_to_end(bootstrap, topic)}
    return {cid: CustomerState.from_bytes(value).to_dict() for cid, value in last.items()}


def test_two_workers_with_one_stopped_and_restarted_mid_stream_end_as_the_in_process_run(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given two workers on RocksDB in one consumer group, fed a stream that fires triggers
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    settings = settings_for(topic_prefix, kafka_bootstrap)
    topics = settings.topics()
    ensure_topics(settings, topics)
    # Enough that a worker stopped after the first thousand stops mid-stream (about 3
    # days of touchpoints).
    docs = _touchpoints(36_000, 300, seed=11, spacing_s=7.5)
    lines = [json.dumps(d).encode() for d in docs]
    now_ms = int(time.time() * 1000)
    expected = in_process_pipeline(settings.model_copy(update={"topic_prefix": ""}))
    expected_ids = {r["value"]["trigger_id"]
                    for r in replay_lines(lines, expected, until_ms=now_ms)
                    if r["topic"] == "triggers"}
    # The touchpoints (days old) are all written before any worker runs, so the workers'
    # ticks (wall-clock time) queue behind them, as behind a live stream.
    produce_json(kafka_bootstrap, topics.touchpoints.name, docs)
    one = _worker(kafka_bootstrap, topic_prefix, tmp_path / "one").start()
    two = _worker(kafka_bootstrap, topic_prefix, tmp_path / "two").start()
    workers = [one, two]

    def processed() -> float:
        return sum(w.metric("journey_events_processed_total") or 0 for w in (one, two))

    try:
        _wait_for(processed, 1000)
        # (both have taken their partitions over and processed some of them)
        _wait_for(lambda: two.metric("journey_events_processed_total"), 1000)

        # When one stops mid-stream (its partitions move to the other) and starts again
        left = _unconsumed(kafka_bootstrap, settings.app_id, topics.touchpoints.name)
        print(f"stopping a worker with {left} touchpoints not yet committed")
        assert left > 0, "the stop came after the stream"
        two.stop()
        two = _worker(kafka_bootstrap, topic_prefix, tmp_path / "two").start()
        workers.append(two)

        # Then every expected trigger arrives, duplicates only repeat known ids
        records = list(iter_json(consume_until(
            kafka_bootstrap, topics.triggers.name,
            lambda got: expected_ids <= {r["trigger_id"] for r in iter_json(got)},
            timeout_s=150, settle_s=2.0)))
        ids_of: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
        for r in records:
            ids_of[(r["customer_id"], r["journey"], r["rule"], r["episode"])].add(r["trigger_id"])
        assert expected_ids <= {r["trigger_id"] for r in records}
        assert all(len(ids) == 1 for ids in ids_of.values())
        extra = [(r["customer_id"], r["rule"], r["episode"], r["occurred_at"]) for r in records
                 if r["trigger_id"] not in expected_ids]
        assert extra == []
        # and the restarted worker gets partitions back, with their customers' states: the
        # two own disjoint partitions, so their tracked customers add up to everyone
        customers = {d["customer_id"] for d in docs}
        _wait_for(lambda: two.metric("journey_customers_tracked"), 1)
        deadline = time.monotonic() + 60  # each worker updates its gauge as it takes over
        while (tracked := [w.metric("journey_customers_tracked") or 0 for w in (one, two)]
               ) and sum(tracked) != len(customers) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert tracked[0] > 0 and tracked[1] > 0
        assert sum(tracked) == len(customers)
        # and the final states the changelog holds are those of the in-process run
        _settled_changelog(kafka_bootstrap, topics.state_changelog.name)
        final = _final_states(kafka_bootstrap, topics.state_changelog.name)
        want = {cid: state.to_dict() for cid, state in expected.states.live.items()}
        assert final.keys() == want.keys()
        differing = [cid for cid in want if final[cid] != want[cid]]
        assert differing == []
    finally:
        for worker in workers:
            worker.stop()
