"""Issue 17: an offset is never committed before the records it caused are confirmed by the
broker. Pause the broker (SIGSTOP its JVM for 2-5 s, then SIGCONT) and SIGKILL the worker right
after its next offset commit, JOURNEY_FAULT_ROUNDS times (default 5), restarting it each time.

Before the fix this fails: Faust's producer flush returns after 0.1 s without progress, so the
commit after a stall covers records still in Faust's buffer. Measured on commit 317c31c's worker
(36,000 touchpoints, 4,500 customers, 15,760 expected triggers, 5 rounds): 5 runs out of 5
failed, losing 166, 189, 78, 28 and 178 triggers, with 50, 97, 37, 10 and 65 trigger records of
ids the reference never gives and 388, 398, 211, 78 and 457 customers in a wrong final state."""

from __future__ import annotations

from pathlib import Path

from tests.fault import scenarios


def test_killing_the_worker_right_after_a_commit_that_followed_a_broker_stall_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Given a backlog of >= 30,000 touchpoints and one worker
    # When, round after round, the broker stalls and the worker dies right after its next commit
    outcome = scenarios.pause_then_kill_after_commit(kafka_bootstrap, tmp_path)
    # Then no expected trigger id is missing, no trigger has an id the reference never gives,
    # and every customer's final state equals the in-process run of the same events
    assert len(outcome.faults) == scenarios.ROUNDS
    assert all("no commit seen" not in f.kind for f in outcome.faults), outcome.faults
    assert outcome.lost_triggers == 0, outcome.summary()
    assert outcome.unrecognisable_duplicates == 0, outcome.summary()
    assert outcome.state_differences == 0, outcome.summary()
    assert outcome.problems() == [], outcome.summary()
