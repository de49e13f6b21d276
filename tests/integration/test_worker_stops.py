"""How a worker ends, on the real broker: asked to stop, it leaves cleanly and at once; when
its processing fails, it exits with an error within the shutdown bound (a supervisor restarts
it) and the record it failed on is processed by the next start, not lost."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.support.kafka import WorkerProcess, consume, iter_json, produce_json, settings_for

pytestmark = pytest.mark.integration

SHUTDOWN_S = 10

#: The worker, with the pipeline's touchpoint step failing as a bug in it would.
FAILING_WORKER = (
    "import sys\n"
    "from journey.pipeline.core import Pipeline\n"
    "def failing(self, *args, **kwargs):\n"
    "    raise RuntimeError('injected: the pipeline failed')\n"
    "Pipeline.touchpoints_in_slices = failing\n"
    "from journey.cli.main import main\n"
    "sys.exit(main(['worker']))\n"
)


def _visit(customer_id: str, event_id: str) -> dict[str, str]:
    return {"event_id": event_id, "customer_id": customer_id, "type": "site_visit",
            "occurred_at": "2026-03-01T10:00:00+00:00", "channel": "web"}


def _wait_exit(worker: WorkerProcess, timeout_s: float) -> tuple[int, float]:
    assert worker.proc is not None
    started = time.monotonic()
    code = worker.proc.wait(timeout_s)
    return code, time.monotonic() - started


def test_a_worker_asked_to_stop_leaves_cleanly_without_waiting_for_the_bound(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path,
) -> None:
    # Given a worker that has processed a touchpoint
    topics = settings_for(topic_prefix).topics()
    worker = WorkerProcess(bootstrap=kafka_bootstrap, prefix=topic_prefix,
                           data_dir=tmp_path / "w",
                           extra_env={"JOURNEY_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_S)}).start()
    try:
        produce_json(kafka_bootstrap, topics.touchpoints.name, [_visit("cust-1", "e-1")])
        consume(kafka_bootstrap, topics.stage_changes.name, expect=2)

        # When it is sent SIGTERM
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGTERM)
        code, took = _wait_exit(worker, SHUTDOWN_S + 20)
    finally:
        worker.stop()

    # Then it exits 0, well before the shutdown bound, with no agent crashing on the way
    log = worker.log_path.read_text(errors="replace") if worker.log_path else ""
    assert code == 0, worker.log_tail()
    assert took < SHUTDOWN_S / 2, f"took {took:.1f}s"
    assert "not stopped cleanly" not in log
    assert "Crashed reason" not in log, worker.log_tail(80)


def test_a_worker_whose_processing_fails_exits_with_an_error_and_the_next_start_replays(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path,
) -> None:
    # Given a worker whose pipeline fails on every touchpoint
    topics = settings_for(topic_prefix).topics()
    env = {"JOURNEY_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_S)}
    failing = WorkerProcess(bootstrap=kafka_bootstrap, prefix=topic_prefix,
                            data_dir=tmp_path / "w", extra_env=env,
                            command=("-c", FAILING_WORKER)).start()
    try:
        # When a touchpoint arrives
        produce_json(kafka_bootstrap, topics.touchpoints.name, [_visit("cust-1", "e-1")])

        # Then the worker stops by itself with an error, within the bound, saying why
        code, _ = _wait_exit(failing, 60 + SHUTDOWN_S)
    finally:
        failing.stop()
    assert code != 0
    log = failing.log_path.read_text(errors="replace") if failing.log_path else ""
    assert "processing" in log and "injected: the pipeline failed" in log

    # And a healthy start processes the touchpoint the failed one did not acknowledge
    healthy = WorkerProcess(bootstrap=kafka_bootstrap, prefix=topic_prefix,
                            data_dir=tmp_path / "w", extra_env=env).start()
    try:
        changes = list(iter_json(consume(kafka_bootstrap, topics.stage_changes.name,
                                         expect=2)))
        assert {c["cause_event_id"] for c in changes} == {"e-1"}
    finally:
        healthy.stop()
