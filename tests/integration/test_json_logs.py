"""JOURNEY_LOG_FORMAT=json on the real broker: every line a worker writes, from start to
SIGTERM, through a broker outage with the client libraries' tracebacks, is one JSON object,
and none names a customer."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from tests.support.kafka import WorkerProcess, cuttable_worker, produce_json, settings_for

pytestmark = pytest.mark.integration

CUSTOMER = "json-log-customer-7f3a"


def test_every_line_of_a_json_logging_worker_is_a_json_object_without_customer_ids(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # Given a worker logging JSON, whose network to the broker the test can cut
    worker, cut = cuttable_worker(kafka_bootstrap, topic_prefix, tmp_path,
                                  JOURNEY_LOG_FORMAT="json", JOURNEY_HEALTH_BROKER_S="3")
    try:
        worker.start()
        # When it processes a customer's events, loses the broker for a while (the Kafka
        # clients log errors with tracebacks), gets it back and is stopped by SIGTERM
        produce_json(kafka_bootstrap, settings_for(topic_prefix).topics().touchpoints.name, [
            {"event_id": "j-1", "customer_id": CUSTOMER, "type": "purchase", "amount": 5.0,
             "currency": "EUR", "occurred_at": "2026-03-01T10:00:00+00:00", "channel": "web"}])
        _wait(lambda: worker.metric("journey_events_processed_total") == 1.0, "processed")
        cut.touch()
        _wait(lambda: not _ready(worker), "not ready: the broker does not answer")
        _wait(lambda: worker.metric_total("journey_connection_errors_total") > 5,
              "connection errors")
        cut.unlink()
        _wait(lambda: _ready(worker), "ready again: the broker answers")
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGTERM)
        # (a clean stop, or the shutdown bound's forced exit: its last line is checked too)
        assert worker.proc.wait(30) in (0, 3)
    finally:
        worker.stop()
    # Then every line is one JSON object with the time, level, logger, message and worker
    assert worker.log_path is not None
    lines = worker.log_path.read_text().splitlines()
    records = [_parsed(n, line) for n, line in enumerate(lines, 1)]
    assert {"time", "level", "logger", "message", "worker"} <= set.intersection(
        *(set(r) for r in records))
    assert {r["worker"] for r in records} == {f"127.0.0.1:{worker.web_port}"}
    # And they come from every library: Faust, mode, aiokafka, kafka-python and ours
    assert {"faust", "mode", "aiokafka", "kafka", "journey"} <= {
        r["logger"].split(".")[0] for r in records}
    # And the outage's errors are among them, tracebacks inside their one line
    assert any(r["logger"].startswith("aiokafka") and r["level"] in {"WARNING", "ERROR"}
               for r in records)
    # And no line names the customer
    assert not [line for line in lines if CUSTOMER in line]


def _parsed(number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError:
        raise AssertionError(f"line {number} is not JSON: {line[:300]!r}") from None
    assert isinstance(record, dict), f"line {number} is not an object: {line[:300]!r}"
    return record


def _ready(worker: WorkerProcess) -> bool:
    try:
        return bool(worker.get_json("/ready")["status"] == "ok")
    except urllib.error.HTTPError as exc:
        exc.close()
        return False


def _wait(check: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        time.sleep(0.3)
