"""The scenarios of issues 16 and 17, shared by the tests and by the report
(`python -m tests.fault.report`). Each returns the Outcome of one run.

Sizes come from the environment, so the same code is the CI suite and the soak:

- JOURNEY_FAULT_EVENTS     touchpoints in the backlog of the kill scenarios (default 36000;
                           issue 16 asks >= 30000), over JOURNEY_FAULT_CUSTOMERS (4500)
- JOURNEY_FAULT_SMALL_EVENTS  the backlog of the other scenarios (broker restart, rebalance,
                           slow consumer, malformed input; default 12000 over 1500 customers),
                           to keep the default suite near ten minutes on two cores
- JOURNEY_FAULT_ROUNDS     pause+kill rounds of the issue-17 scenario (default 5)
- JOURNEY_FAULT_KILLS      kills in the kill scenario (default 4)
- JOURNEY_FAULT_FREEZES    freezes in the zombie scenario (default 1), each
                           JOURNEY_FAULT_FREEZE_S long (20)
- JOURNEY_FAULT_SOAK=1     larger defaults for manual runs: 120000 events over 12000
                           customers everywhere, 15 rounds, 12 kills, 3 broker restarts
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer

from tests.fault.golden import Golden, golden, with_malformed
from tests.fault.harness import FaultRun, Outcome
from tests.support.faults import wait_until

SOAK = os.environ.get("JOURNEY_FAULT_SOAK", "") not in ("", "0")


def _env_int(name: str, default: int, soak: int) -> int:
    return int(os.environ.get(name, soak if SOAK else default))


EVENTS = _env_int("JOURNEY_FAULT_EVENTS", 36_000, 120_000)
CUSTOMERS = _env_int("JOURNEY_FAULT_CUSTOMERS", 4_500, 12_000)
SMALL_EVENTS = _env_int("JOURNEY_FAULT_SMALL_EVENTS", 12_000, 120_000)
SMALL_CUSTOMERS = max(1, SMALL_EVENTS * CUSTOMERS // EVENTS)
BROKER_RESTARTS = _env_int("JOURNEY_FAULT_BROKER_RESTARTS", 1, 3)
ROUNDS = _env_int("JOURNEY_FAULT_ROUNDS", 5, 15)
KILLS = _env_int("JOURNEY_FAULT_KILLS", 4, 12)
#: Small batches and commits every second (the worker's setting): many commits per run, each
#: covering a few hundred events, as under load.
BATCH_ENV = {"JOURNEY_BATCH_MAX_EVENTS": "500"}


def reference(small: bool = False) -> Golden:
    return golden(SMALL_EVENTS, SMALL_CUSTOMERS) if small else golden(EVENTS, CUSTOMERS)


def _small_run(bootstrap: str, work: Path, scenario: str, seed: int) -> FaultRun:
    return FaultRun(bootstrap, work, reference(small=True), scenario=scenario, seed=seed,
                    extra_env=BATCH_ENV)


def pause_then_kill_after_commit(bootstrap: str, work: Path, rounds: int = ROUNDS,
                                 seed: int = 17) -> Outcome:
    """Issue 17: pause the broker 2-5 s, SIGKILL the worker right after its next commit,
    restart it; `rounds` times while the backlog is processed."""
    run = FaultRun(bootstrap, work, reference(), scenario="pause+kill-after-commit",
                   seed=seed, extra_env=BATCH_ENV)
    try:
        run.produce()
        worker = run.start_worker()
        for _ in range(rounds):
            run.wait_for_progress(0.5, 2.0)
            worker = run.kill_after_commit(worker, pause_s=run.rng.uniform(2.0, 5.0))
        return run.finish()
    finally:
        run.close()


def random_kills(bootstrap: str, work: Path, kills: int = KILLS, seed: int = 23) -> Outcome:
    """SIGKILL at random points, restarting each time; the kinds rotate: a plain kill at a
    random moment, a kill right after a commit, a kill while the broker is paused, and a kill
    right after the first commit once a broker pause is over."""
    run = FaultRun(bootstrap, work, reference(), scenario="random-sigkill", seed=seed,
                   extra_env=BATCH_ENV)
    try:
        run.produce()
        worker = run.start_worker()
        for n in range(kills):
            run.wait_for_progress(0.5, 3.0)
            kind = n % 4
            if kind == 0:
                worker = run.kill(worker)
            elif kind == 1:
                worker = run.kill_after_commit(worker)
            elif kind == 2:
                worker = run.kill_during_pause(worker, run.rng.uniform(2.0, 5.0))
            else:
                worker = run.kill_after_commit(worker, pause_s=run.rng.uniform(2.0, 5.0))
        return run.finish()
    finally:
        run.close()


def broker_restart(bootstrap: str, work: Path, restarts: int = BROKER_RESTARTS,
                   seed: int = 29) -> Outcome:
    """Stop the broker cleanly mid-stream, keep it down a few seconds, start it; the worker
    is never touched and must carry on by itself."""
    run = _small_run(bootstrap, work, "broker-restart", seed)
    try:
        run.produce()
        worker = run.start_worker()
        for _ in range(restarts):
            run.wait_for_progress(1.0, 3.0)
            run.restart_broker(down_s=run.rng.uniform(2.0, 6.0))
        return run.finish(alive=[worker])
    finally:
        run.close()


def two_workers_rebalance(bootstrap: str, work: Path, seed: int = 31) -> Outcome:
    """Two workers share the partitions; one is killed (its partitions move to the other),
    then started again (partitions move back)."""
    run = _small_run(bootstrap, work, "two-workers-kill-and-rejoin", seed)
    try:
        run.produce()
        first = run.start_worker()
        second = run.start_worker()
        # both hold partitions before one dies, so they move both ways
        assert wait_until(lambda: run.watch.stable_members() == 2, timeout_s=90), \
            "the two workers never formed a stable group"
        run.wait_for_progress(1.0, 3.0)
        fault, mark = run.begin("kill-one-of-two")
        second.kill()
        fault.ended = time.monotonic()
        # recovered once the survivor has taken the dead worker's partitions (its session
        # expires) and commits on every partition
        run.recovered_from(fault, mark, run.committed())
        fault, mark = run.begin("rejoin")
        fault.ended = time.monotonic()
        third = run.start_worker()
        # recovered: the group is stable with both again, and commits on every partition
        wait_until(lambda: run.watch.stable_members() == 2, timeout_s=90)
        run.recovered_from(fault, mark, run.committed())
        return run.finish(alive=[first, third])
    finally:
        run.close()


#: How long the zombie scenario freezes a worker: well past the fault workers' 6 s session
#: timeout, long enough for the new owner to write the zombie's customers before the thaw.
FREEZE_S = _env_int("JOURNEY_FAULT_FREEZE_S", 20, 25)
FREEZES = _env_int("JOURNEY_FAULT_FREEZES", 1, 3)
#: The worker frozen first holds everything it processed (its flushes are far apart), as a
#: loaded worker whose flushes fall behind does: when it thaws, all of it is still unwritten.
HOLDING_ENV = {"JOURNEY_FLUSH_INTERVAL_MS": "60000", "JOURNEY_FLUSH_MAX_HELD": "1000000"}


def zombie(bootstrap: str, work: Path, freezes: int = FREEZES, seed: int = 43) -> Outcome:
    """Two workers share the partitions; one is frozen (SIGSTOP) past its session timeout
    while it holds processed records, then thawed (SIGCONT): its partitions went to the
    other meanwhile, and whatever it still writes must not be seen. At the end every state
    is restored from the changelog on a fresh worker and compared."""
    run = FaultRun(bootstrap, work, reference(), scenario="zombie", seed=seed,
                   extra_env=BATCH_ENV)
    try:
        run.produce()
        first = run.start_worker()
        second = run.start_worker(HOLDING_ENV)
        assert wait_until(lambda: run.watch.stable_members() == 2, timeout_s=90), \
            "the two workers never formed a stable group"
        for n in range(freezes):
            run.wait_for_progress(1.0, 3.0)
            run.freeze(second if n % 2 == 0 else first, FREEZE_S)
        outcome = run.finish(alive=[first, second])
        outcome.restored_differences = run.restored_differences()
        return outcome
    finally:
        run.close()


def rebalance_mid_burst(bootstrap: str, work: Path, seed: int = 47) -> Outcome:
    """One worker drains the backlog; as soon as the wall-clock ticks behind it make every
    customer's due detections fire (a burst, applied five customers a slice, with the event
    loop let run between slices), a second worker joins, so the partitions move while the
    burst is under way."""
    run = FaultRun(bootstrap, work, reference(), scenario="rebalance-mid-burst", seed=seed,
                   extra_env={**BATCH_ENV, "JOURNEY_DUE_SLICE_CUSTOMERS": "5"})
    try:
        run.produce()
        first = run.start_worker()

        def due() -> float:
            return first.metric_total("journey_detections_due_total")

        assert wait_until(lambda: run.backlog_left() == 0, timeout_s=240), \
            "the backlog was never consumed"
        start = due()
        assert wait_until(lambda: due() > start, timeout_s=60, poll_s=0.05), "no burst"
        fault, mark = run.begin("join-mid-burst")
        at_join = due()
        since = run.committed()
        second = run.start_worker()
        fault.ended = time.monotonic()
        run.recovered_from(fault, mark, since)
        fault.kind += f" (due detections {start:.0f} -> {at_join:.0f} -> {due():.0f})"
        return run.finish(alive=[first, second])
    finally:
        run.close()


@dataclass
class SlowConsumer:
    """A consumer of the triggers topic in its own group that reads slowly (20 records a
    poll, 0.1 s pause after each: at most 200 a second, well behind a burst of the worker),
    committing as it goes."""

    bootstrap: str
    topic: str
    group: str
    pause_s: float = 0.1

    def __post_init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SlowConsumer:
        self._thread.start()
        return self

    def _run(self) -> None:
        import json

        consumer = KafkaConsumer(self.topic, bootstrap_servers=self.bootstrap,
                                 group_id=self.group, auto_offset_reset="earliest",
                                 enable_auto_commit=True, max_poll_records=20)
        try:
            while not self._stop.is_set():
                for batch in consumer.poll(timeout_ms=200).values():
                    self.seen.update(json.loads(r.value)["trigger_id"] for r in batch)
                    time.sleep(self.pause_s)
        finally:
            consumer.close()

    def finish(self, expected: frozenset[str], timeout_s: float = 180.0) -> int:
        """Wait until it has every expected id (or the time is up); how many it never got."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not expected <= set(self.seen):
            time.sleep(0.5)
        self._stop.set()
        self._thread.join(timeout=10)
        return len(expected - set(self.seen))


def slow_trigger_consumer(bootstrap: str, work: Path, seed: int = 37) -> Outcome:
    """A slow downstream consumer of the triggers topic, while the worker is killed once."""
    run = _small_run(bootstrap, work, "slow-trigger-consumer", seed)
    try:
        run.produce()
        worker = run.start_worker()
        slow = SlowConsumer(bootstrap, run.topics.triggers.name, f"{run.prefix}slow").start()
        run.wait_for_progress(1.0, 3.0)
        run.kill(worker)
        return run.finish(slow=slow)
    finally:
        run.close()


def malformed_input(bootstrap: str, work: Path, seed: int = 41) -> Outcome:
    """10% malformed records of every reason code mixed into the backlog, no other fault."""
    mixed = with_malformed(reference(small=True).lines)
    run = _small_run(bootstrap, work, "ten-percent-malformed", seed)
    try:
        run.produce(list(mixed.records))
        run.start_worker()
        return run.finish()
    finally:
        run.close()


SCENARIOS: dict[str, Callable[[str, Path], Outcome]] = {
    "pause+kill-after-commit": pause_then_kill_after_commit,
    "random-sigkill": random_kills,
    "broker-restart": broker_restart,
    "two-workers-kill-and-rejoin": two_workers_rebalance,
    "zombie": zombie,
    "rebalance-mid-burst": rebalance_mid_burst,
    "slow-trigger-consumer": slow_trigger_consumer,
    "ten-percent-malformed": malformed_input,
}
