"""A simulated population fed to the Kafka worker ends where the in-process run ends: the same
final stage per customer and journey, and the same set of trigger ids."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from journey.cli.lab import feed_file
from journey.cli.main import main
from journey.lab.analysis import analyse
from journey.lab.report import summary_text
from journey.lab.run import RunResult, lab_settings, load_outputs, run_file
from journey.lab.simulate import SimulationConfig, simulate, write_jsonl
from journey.pipeline.settings import Settings
from journey.stream.kafka_client import ensure_topics
from tests.support.kafka import WorkerProcess, consume, settings_for

pytestmark = pytest.mark.integration

JOURNEYS = ["touchpoint_journey", "dentist"]
ENV = {
    # One partition: the worker's log order is the file's order, so detections that fall due
    # between a customer's events fire at the same point in both (see
    # test_replay_matches_worker for why partitioning matters).
    "JOURNEY_PARTITIONS": "1",
    "JOURNEY_DEFINITIONS": ",".join(JOURNEYS),
    "JOURNEY_EXTRA_EVENT_TYPES": "diagnosis",
    "JOURNEY_HOLDOUT_SHARE": "0.1",
    "JOURNEY_TICK_INTERVAL_MS": "200",
}


def final_stages(changes: list[tuple[str, str, str | None, str, int]]) -> dict[str, str]:
    last: dict[str, str] = {}
    for journey, customer, _, to_stage, _ in changes:
        last[f"{customer}/{journey}"] = to_stage
    return last


def in_process(path: Path, until: datetime) -> RunResult:
    settings = lab_settings(Settings(), JOURNEYS, holdout=0.1)
    return run_file(path, settings, None, until_ms=int(until.timestamp() * 1000))


def test_the_worker_and_the_in_process_run_agree_on_a_simulated_population(
    kafka_bootstrap: str, topic_prefix: str, worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a simulated year that ended before today, in a file
    path = tmp_path / "population.jsonl"
    events = write_jsonl(simulate(SimulationConfig(seed=9, customers=120,
                                                   start=date(2025, 1, 1), days=365)), path)
    # And the in-process answer with time moved to now, as the worker's ticks will move it;
    # nothing falls due near now (the answer an hour later is the same)
    now = datetime.now(UTC)
    expected_run = in_process(path, now)
    expected = expected_run.collected
    later = in_process(path, now + timedelta(hours=1)).collected
    assert {t[4] for t in later.triggers} == {t[4] for t in expected.triggers}
    assert expected.triggers and expected.audits

    # When the file is fed to the touchpoints topic and a worker processes it
    settings = lab_settings(settings_for(topic_prefix, kafka_bootstrap, partitions=1), JOURNEYS)
    topics = settings.topics()
    ensure_topics(settings, topics)
    assert feed_file(path, settings, rate=None, progress=False) == 0
    assert f"sent {events}" in capsys.readouterr().out
    worker = worker_factory(**ENV)

    # Then the worker's triggers have exactly the in-process trigger ids
    triggers = consume(kafka_bootstrap, topics.triggers.name, expect=len(expected.triggers),
                       timeout_s=120, settle_s=2.0)
    assert {json.loads(r.value)["trigger_id"] for r in triggers} == {
        t[4] for t in expected.triggers}
    # and every customer ends in the same stage of every journey, lifecycle included
    changes = consume(kafka_bootstrap, topics.stage_changes.name,
                      expect=len(expected.stage_changes), timeout_s=120, settle_s=2.0)
    got: list[dict[str, Any]] = [json.loads(r.value) for r in changes]
    assert final_stages([(c["journey"], c["customer_id"], c["from_stage"], c["to_stage"], 0)
                         for c in got]) == final_stages(expected.stage_changes)
    assert worker.metric("journey_events_processed_total") == events
    # and the worker's topics, collected into files, give the same report summary
    monkeypatch.setenv("JOURNEY_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("JOURNEY_TOPIC_PREFIX", topic_prefix)
    assert main(["collect", "--out-dir", str(tmp_path / "worker"), "--idle", "3"]) == 0
    settings = lab_settings(Settings(), JOURNEYS, holdout=0.1)
    from_worker = load_outputs(path, settings, tmp_path / "worker")
    # (over the same span: the worker's clock, like the in-process run's, reached now, while
    # its outputs only show the time of the last one; the lift censors by the span's end)
    from_worker.until_ms = expected_run.until_ms
    assert summary_text(analyse(from_worker, input_name=path.name)) == summary_text(
        analyse(expected_run, input_name=path.name))
