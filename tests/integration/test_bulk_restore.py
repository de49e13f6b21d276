"""The bulk restore (journey/stream/restore.py) on the real broker: a cold worker reads its
changelogs into RocksDB in bulk, keeping only committed records, and Faust's recovery finds
nothing left to read."""

from __future__ import annotations

import asyncio
import time
import urllib.error
from pathlib import Path

import pytest

from journey.engine import CustomerState
from journey.pipeline.timekeeping import partition_of
from journey.stream.kafka_client import ensure_topics
from tests.support.kafka import TxnRecord, WorkerProcess, settings_for, write_transactions

pytestmark = pytest.mark.integration


def _write_changelog(bootstrap: str, topic: str, partitions: int,
                     committed: list[str], aborted: list[str]) -> None:
    """States of `committed` in a committed transaction, then states of `aborted` in a
    transaction that is aborted after its records reached the log."""
    def states(customers: list[str]) -> list[TxnRecord]:
        return [(topic, cid.encode(), CustomerState(customer_id=cid, touches=3).to_bytes(),
                 partition_of(cid.encode(), partitions)) for cid in customers]

    asyncio.run(write_transactions(bootstrap, f"{topic}-t",
                                   [(states(committed), True), (states(aborted), False)]))


def test_a_cold_worker_restores_committed_states_in_bulk_and_never_aborted_ones(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path,
) -> None:
    # Given a changelog holding 400 customers' states committed and 50 more in an aborted
    # transaction
    settings = settings_for(topic_prefix, kafka_bootstrap)
    topics = settings.topics()
    ensure_topics(settings, topics)
    committed = [f"kept-{i}" for i in range(400)]
    aborted = [f"aborted-{i}" for i in range(50)]
    _write_changelog(kafka_bootstrap, topics.state_changelog.name,
                     topics.state_changelog.partitions, committed, aborted)

    # When a worker with an empty RocksDB store starts, bulk restore on for any tail
    worker = WorkerProcess(bootstrap=kafka_bootstrap, prefix=topic_prefix,
                           data_dir=tmp_path / "w",
                           extra_env={"JOURNEY_STORE": "rocksdb://",
                                      "JOURNEY_BULK_RESTORE_MIN_RECORDS": "1"}).start()
    try:
        deadline = time.monotonic() + 90
        while (worker.metric("journey_customers_tracked") or 0) < len(committed):
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.3)

        # Then it tracks exactly the committed customers, restored by the bulk read (every
        # record counted once: Faust's recovery read none again)
        time.sleep(1.0)
        assert worker.metric("journey_customers_tracked") == len(committed)
        assert worker.metric("journey_state_restored_records_total") == len(committed)
        assert worker.log_path is not None
        assert f"bulk restore: {len(committed)} changelog records" in \
            worker.log_path.read_text(errors="replace")
        assert worker.get_json(f"/customers/{committed[7]}")["touches"] == 3
        with pytest.raises(urllib.error.HTTPError) as missing:
            worker.get_json(f"/customers/{aborted[0]}")
        assert missing.value.code == 404
    finally:
        worker.stop()
