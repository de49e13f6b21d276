"""Issue 16: crashes, broker restarts, rebalances, slow consumers and bad input lose nothing and
duplicate nothing unrecognisably. Each scenario runs `journey worker` subprocesses over a backlog
on the real broker and compares what they publish with the in-process run of the same events
(tests/fault/golden.py). Sizes: tests/fault/scenarios.py (JOURNEY_FAULT_* for the soak)."""

from __future__ import annotations

from pathlib import Path

from tests.fault import scenarios


def test_random_sigkills_with_restarts_lose_no_trigger_and_no_state(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Given a backlog of >= 30,000 touchpoints and one worker
    # When it is SIGKILLed several times at random points (some right after a commit, some
    # while or just after the broker was paused) and restarted each time
    outcome = scenarios.random_kills(kafka_bootstrap, tmp_path)
    # Then every expected trigger and state is there, and every duplicate is recognisable
    assert len(outcome.faults) == scenarios.KILLS
    assert outcome.problems() == [], outcome.summary()


def test_a_broker_restart_mid_stream_loses_nothing_and_the_worker_carries_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    outcome = scenarios.broker_restart(kafka_bootstrap, tmp_path)
    assert all(f.recovery_s is not None for f in outcome.faults), outcome.faults
    assert outcome.problems() == [], outcome.summary()


def test_partitions_moving_both_ways_between_two_workers_lose_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    outcome = scenarios.two_workers_rebalance(kafka_bootstrap, tmp_path)
    assert outcome.problems() == [], outcome.summary()


def test_a_worker_frozen_past_its_session_timeout_and_thawed_changes_nothing_it_lost(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Given two workers draining a backlog of 36,000 touchpoints of 4,500 customers
    # When one is frozen past its session timeout while it holds processed records, its
    # partitions move to the other, and it is thawed
    outcome = scenarios.zombie(kafka_bootstrap, tmp_path)
    # Then nothing is lost or rolled back: outputs equal the in-process run apart from
    # duplicates with known ids, and every state restored on a fresh worker counts every
    # input event
    assert outcome.restored_differences == 0, outcome.summary()
    assert outcome.problems() == [], outcome.summary()


def test_a_rebalance_in_the_middle_of_a_burst_of_due_detections_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Given a worker whose wall-clock ticks make every customer's due detections fire at once
    # When a second worker joins while that burst is applied, slice by slice
    outcome = scenarios.rebalance_mid_burst(kafka_bootstrap, tmp_path)
    # Then outputs and states equal the in-process run apart from known duplicates
    assert outcome.problems() == [], outcome.summary()


def test_a_slow_consumer_of_triggers_gets_every_trigger_across_a_worker_crash(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    outcome = scenarios.slow_trigger_consumer(kafka_bootstrap, tmp_path)
    assert outcome.slow_consumer_lost == 0
    assert outcome.problems() == [], outcome.summary()


def test_ten_percent_malformed_records_are_each_dead_lettered_once_and_change_nothing_else(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    outcome = scenarios.malformed_input(kafka_bootstrap, tmp_path)
    assert outcome.problems() == [], outcome.summary()
