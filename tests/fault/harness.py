"""One fault run: a backlog of touchpoints on the real broker, `journey worker` subprocesses,
faults injected from outside, and the verdict against the golden reference. Black-box: the
worker is only started, killed and read through its topics and its consumer group."""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from journey.pipeline.processor import SOURCES_KEY
from journey.pipeline.stateindex import INDEX_KEY
from journey.stream.kafka_client import ensure_topics
from tests.fault.golden import SETTINGS_FIELDS, WORKER_ENV, Golden
from tests.support.faults import Broker, GroupWatch, Offsets, TopicTail, wait_until
from tests.support.kafka import WorkerProcess, app_id_for, settings_for, unique_prefix

#: State fields allowed to differ between the worker and the golden run: none. (Every field
#: of CustomerState is a function of the customer's events and of detections that fire at
#: their deadlines, not at the tick that noticed them, so an exact comparison holds.)
IGNORED_STATE_FIELDS: frozenset[str] = frozenset()


@dataclass
class Fault:
    """One injected fault and how the deployment came back from it."""

    kind: str
    started: float
    ended: float = 0.0
    #: seconds from the end of the fault until the group committed offsets again
    recovery_s: float | None = None
    #: worker log lines written from the start of the fault until recovery
    log_lines: int = 0
    log_warnings: int = 0
    #: whether unprocessed touchpoints were still waiting when it hit
    mid_stream: bool = True
    #: warnings and errors written meanwhile, without time stamps and numbers
    warning_kinds: Counter[str] = field(default_factory=Counter)


@dataclass
class Outcome:
    """The verdict of one run against the golden reference."""

    scenario: str
    events: int
    expected_triggers: int
    faults: list[Fault] = field(default_factory=list)
    lost_triggers: int = 0
    unrecognisable_duplicates: int = 0
    recognisable_duplicates: int = 0
    lost_stage_changes: int = 0
    unexpected_stage_changes: int = 0
    state_differences: int = 0
    differing_fields: Counter[str] = field(default_factory=Counter)
    unexpected_dead_letters: int = 0
    malformed_not_dead_lettered: int = 0
    malformed_dead_lettered_twice: int = 0
    slow_consumer_lost: int | None = None
    #: customers whose state, restored from the changelog on a fresh worker, counts other
    #: events than the reference (None: not checked)
    restored_differences: int | None = None
    recovered: bool = True
    run_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Everything that breaks the guarantee; empty when the run is clean."""
        checks = [
            (self.lost_triggers, "expected trigger ids never published"),
            (self.unrecognisable_duplicates, "trigger records with an id the reference never "
                                             "gives"),
            (self.lost_stage_changes, "expected stage changes never published"),
            (self.unexpected_stage_changes, "stage changes the reference never gives"),
            (self.state_differences, f"customers whose final state differs from the reference "
                                     f"(fields: {dict(self.differing_fields.most_common(8))})"),
            (self.unexpected_dead_letters, "dead letters the input did not call for"),
            (self.malformed_not_dead_lettered, "malformed records missing from dead-letters"),
            (self.malformed_dead_lettered_twice, "malformed records dead-lettered more than "
                                                 "once"),
            (self.slow_consumer_lost or 0, "expected trigger ids the slow consumer never got"),
            (self.restored_differences or 0, "customers whose state restored on a fresh "
                                             "worker counts other events than the reference"),
        ]
        found = [f"{n} {what}" for n, what in checks if n]
        if not self.recovered:
            found.append("the deployment did not recover by itself: " + "; ".join(self.notes))
        return found

    def summary(self) -> str:
        return (f"{self.scenario}: {len(self.faults)} faults over {self.events} events; "
                f"lost triggers {self.lost_triggers}/{self.expected_triggers}, unrecognisable "
                f"duplicates {self.unrecognisable_duplicates}, recognisable duplicates "
                f"{self.recognisable_duplicates}, lost stage changes {self.lost_stage_changes}, "
                f"state differences {self.state_differences}"
                + "".join(f"; {note}" for note in self.notes))


class FaultRun:
    """A deployment of one app (own topic prefix and group) over a backlog of touchpoints."""

    def __init__(self, bootstrap: str, work_dir: Path, golden: Golden, *,
                 scenario: str, seed: int = 17, extra_env: dict[str, str] | None = None) -> None:
        self.bootstrap = bootstrap
        self.golden = golden
        self.scenario = scenario
        self.rng = random.Random(seed)
        self.broker = Broker()
        self.prefix = unique_prefix()
        self.data_dir = work_dir / self.prefix
        self.env = {**WORKER_ENV, **(extra_env or {})}
        self.settings = settings_for(self.prefix, bootstrap, **SETTINGS_FIELDS)
        self.topics = self.settings.topics()
        self.watch = GroupWatch(bootstrap, app_id_for(self.prefix))
        self.workers: list[WorkerProcess] = []
        self.faults: list[Fault] = []
        self.data_end: dict[int, int] = {}
        self.malformed: dict[tuple[int, int], str] = {}
        self.events = 0
        self.started = time.monotonic()
        changelog = f"{app_id_for(self.prefix)}-customer-state-changelog"
        self.tails = {name: TopicTail(bootstrap, topic) for name, topic in (
            ("triggers", self.topics.triggers.name),
            ("stage-changes", self.topics.stage_changes.name),
            ("dead-letters", self.topics.dead_letters.name),
            ("changelog", changelog))}

    def say(self, what: str) -> None:
        """Progress on stderr with JOURNEY_FAULT_VERBOSE=1 (the report sets it)."""
        if os.environ.get("JOURNEY_FAULT_VERBOSE"):
            print(f"[{time.monotonic() - self.started:7.1f}s {self.scenario}] {what}",
                  file=sys.stderr, flush=True)

    # ----- set-up ---------------------------------------------------------------------------
    def produce(self, records: list[tuple[bytes | None, str | None]] | None = None) -> None:
        """Write the backlog, keyed by customer, in order (one request in flight)."""
        ensure_topics(self.settings, self.topics)
        if records is None:
            records = [(line, None) for line in self.golden.lines]
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=20,
                                 max_in_flight_requests_per_connection=1)
        try:
            futures = [(producer.send(self.topics.touchpoints.name, key=_key(raw), value=raw),
                        reason) for raw, reason in records]
            producer.flush()
        finally:
            producer.close()
        for future, reason in futures:
            meta = future.get(timeout=30)
            self.data_end[meta.partition] = max(self.data_end.get(meta.partition, 0),
                                                meta.offset + 1)
            if reason is not None:
                self.malformed[(meta.partition, meta.offset)] = reason
        self.events = len(records)
        self.say(f"produced {self.events} touchpoints")

    def start_worker(self, env: dict[str, str] | None = None) -> WorkerProcess:
        """A worker of the run, with `env` on top of the run's environment."""
        worker = WorkerProcess(bootstrap=self.bootstrap, prefix=self.prefix,
                               data_dir=self.data_dir, extra_env={**self.env, **(env or {})}
                               ).start()
        self.workers.append(worker)
        return worker

    # ----- observation ------------------------------------------------------------------------
    def committed(self) -> Offsets:
        """The group's committed offsets, waiting for the broker to answer."""
        while True:
            found = self.watch.offsets()
            if found is not None:
                return found
            time.sleep(0.2)

    def backlog_left(self, offsets: Offsets | None = None) -> int:
        """Touchpoints of the backlog whose offsets the group has not committed yet."""
        offsets = self.committed() if offsets is None else offsets
        name = self.topics.touchpoints.name
        return sum(max(0, end - offsets.get((name, p), 0)) for p, end in self.data_end.items())

    def wait_for_progress(self, min_s: float, max_s: float) -> None:
        """Let the worker process for a random while (after its first commit)."""
        self.watch.wait_for_commit(self.committed(), timeout_s=90)
        time.sleep(self.rng.uniform(min_s, max_s))

    def log_mark(self) -> dict[Path, int]:
        """How many lines each worker log of this run has so far."""
        return {path: len(path.read_text(errors="replace").splitlines())
                for path in self.data_dir.glob("worker-*.log")}

    def log_since(self, mark: dict[Path, int]) -> list[str]:
        """The worker log lines written since `mark`, all workers together."""
        lines: list[str] = []
        for path in self.data_dir.glob("worker-*.log"):
            lines += path.read_text(errors="replace").splitlines()[mark.get(path, 0):]
        return lines

    # ----- faults -----------------------------------------------------------------------------
    def begin(self, kind: str) -> tuple[Fault, dict[Path, int]]:
        fault = Fault(kind, time.monotonic())
        left = self.backlog_left()
        fault.mid_stream = left > 0
        self.say(f"{kind}: {left} touchpoints of the backlog left")
        self.faults.append(fault)
        return fault, self.log_mark()

    def recovered_from(self, fault: Fault, mark: dict[Path, int], since: Offsets,
                       timeout_s: float = 120.0) -> None:
        """Measure the time from the end of the fault until the group has committed new
        offsets on every touchpoints partition: each is owned and processed again (ticks
        keep arriving on every partition, so this holds after the backlog too)."""
        fault.ended = fault.ended or time.monotonic()
        if self.watch.wait_for_commit(since, timeout_s=timeout_s, poll_s=0.05,
                                      every_partition_of=self.topics.touchpoints.name
                                      ) is not None:
            fault.recovery_s = time.monotonic() - fault.ended
        lines = self.log_since(mark)
        warnings = [_gist(line) for line in lines if any(
            level in line for level in ("[WARNING]", "[ERROR]", "[CRITICAL]"))]
        fault.log_lines, fault.log_warnings = len(lines), len(warnings)
        fault.warning_kinds.update(warnings)
        self.say(f"{fault.kind}: recovered in {fault.recovery_s}s, {fault.log_lines} log lines")

    def kill(self, worker: WorkerProcess, kind: str = "sigkill") -> WorkerProcess:
        """SIGKILL a worker now, start another in its place, and wait until it commits."""
        fault, mark = self.begin(kind)
        worker.kill()
        fault.ended = time.monotonic()
        since = self.committed()
        replacement = self.start_worker()
        self.recovered_from(fault, mark, since)
        return replacement

    def kill_after_commit(self, worker: WorkerProcess, *, pause_s: float = 0.0,
                          kind: str = "") -> WorkerProcess:
        """Optionally pause the broker (SIGSTOP) for pause_s, resume it, then SIGKILL the
        worker the moment its next offset commit is visible; restart it."""
        fault, mark = self.begin(kind or ("pause+kill-after-commit" if pause_s
                                          else "kill-after-commit"))
        before = self.committed()
        if pause_s:
            self.broker.pause()
            try:
                time.sleep(pause_s)
            finally:
                self.broker.resume()
        committed = self.watch.wait_for_commit(before, timeout_s=60, poll_s=0.005)
        worker.kill()
        fault.ended = time.monotonic()
        if committed is None:
            fault.recovery_s = None
            fault.kind += " (no commit seen)"
        since = self.committed()
        replacement = self.start_worker()
        self.recovered_from(fault, mark, since)
        return replacement

    def kill_during_pause(self, worker: WorkerProcess, pause_s: float) -> WorkerProcess:
        """SIGKILL the worker while the broker is paused, then resume the broker."""
        fault, mark = self.begin("kill-while-broker-paused")
        self.broker.pause()
        try:
            time.sleep(pause_s / 2)
            worker.kill()
            time.sleep(pause_s / 2)
        finally:
            self.broker.resume()
        fault.ended = time.monotonic()
        since = self.committed()
        replacement = self.start_worker()
        self.recovered_from(fault, mark, since)
        return replacement

    def freeze(self, worker: WorkerProcess, frozen_s: float) -> None:
        """SIGSTOP a worker for `frozen_s` (past its session timeout: a long GC pause, CPU
        throttling, a paused VM), then SIGCONT it: a zombie that still holds processed
        records and believes it owns its partitions."""
        fault, mark = self.begin("freeze-past-session-timeout")
        since = self.committed()
        worker.freeze()
        try:
            time.sleep(frozen_s)
        finally:
            worker.thaw()
        fault.ended = time.monotonic()
        self.recovered_from(fault, mark, since)

    def restored_differences(self, timeout_s: float = 180.0) -> int:
        """Stop every worker, restore every state on a fresh worker (empty data directory)
        from the changelog, and count the customers whose restored state counts other
        events (per type, and touches in all) than the reference. Restored twice: by the
        bulk restore (journey/stream/restore.py) and by Faust's own recovery; the count
        is the sum of both."""
        for worker in self.workers:
            worker.stop()
        differing = 0
        for way, min_records in (("bulk", "1"), ("faust", "1000000000")):
            differing += self._restored_differences(way, min_records, timeout_s)
        return differing

    def _restored_differences(self, way: str, min_records: str, timeout_s: float) -> int:
        fresh = WorkerProcess(bootstrap=self.bootstrap, prefix=self.prefix,
                              data_dir=self.data_dir / f"restore-{way}",
                              extra_env={**self.env,
                                         "JOURNEY_BULK_RESTORE_MIN_RECORDS": min_records})
        fresh.start()
        self.workers.append(fresh)
        expected = self.golden.states
        assert wait_until(lambda: (fresh.metric("journey_customers_tracked") or 0)
                          >= len(expected), timeout_s=timeout_s), \
            f"the fresh worker tracks {fresh.metric('journey_customers_tracked')} customers"
        differing = 0
        for cid, state in expected.items():
            profile = fresh.get_json(f"/customers/{cid}")
            if (profile.get("counts") != state.get("counts")
                    or profile.get("touches") != state.get("touches")):
                differing += 1
        fresh.stop()
        self.say(f"restored on a fresh worker ({way} restore): {differing} of "
                 f"{len(expected)} customers differ")
        return differing

    def restart_broker(self, down_s: float) -> None:
        """A clean broker stop, `down_s` seconds down, start; the workers are left alone."""
        fault, mark = self.begin("broker-restart")
        since = self.committed()
        self.broker.stop()
        time.sleep(down_s)
        self.broker.start()
        fault.ended = time.monotonic()
        self.recovered_from(fault, mark, since)

    # ----- verdict ------------------------------------------------------------------------------
    def finish(self, *, timeout_s: float = 300.0, quiet_s: float = 15.0,
               alive: list[WorkerProcess] | None = None,
               slow: Any = None) -> Outcome:
        """Wait until the outputs match the reference, or until the group has consumed the
        whole backlog and nothing new has appeared for `quiet_s`; then judge."""
        outcome = Outcome(self.scenario, self.events, len(self.golden.trigger_ids),
                          faults=self.faults)
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        caught_up = False
        checked = 0.0
        while time.monotonic() < deadline:
            if sum(tail.poll() for tail in self.tails.values()):
                last_new = time.monotonic()
            offsets = self.watch.offsets()
            caught_up = offsets is not None and self.backlog_left(offsets) == 0
            if caught_up and time.monotonic() - checked > 3:
                # Outputs matching is not enough: recovery means the group has committed
                # the whole backlog too (commits trail the outputs by a flush and a commit).
                checked = time.monotonic()
                if self._matches():
                    break
            if caught_up and time.monotonic() - last_new > quiet_s:
                break
        for tail in self.tails.values():
            tail.drain()
        self.say(f"finished waiting: caught up {caught_up}")
        if not caught_up:
            outcome.recovered = False
            outcome.notes.append(f"{self.backlog_left()} touchpoints never committed")
        never = [f.kind for f in self.faults if f.recovery_s is None]
        if never:
            outcome.recovered = False
            outcome.notes.append(f"no commits on every partition after {never}")
        for worker in alive if alive is not None else self.workers[-1:]:
            if worker.proc is None or worker.proc.poll() is not None:
                outcome.recovered = False
                outcome.notes.append(f"a worker exited by itself:\n{worker.log_tail(20)}")
        self._judge(outcome)
        if slow is not None:
            outcome.slow_consumer_lost = slow.finish(self.golden.trigger_ids)
        outcome.run_seconds = time.monotonic() - self.started
        return outcome

    def _trigger_ids(self) -> Counter[str]:
        return Counter(json.loads(r.value)["trigger_id"] for r in self.tails["triggers"].records)

    def _states(self) -> dict[str, dict[str, Any]]:
        last: dict[str, bytes | None] = {}
        for record in self.tails["changelog"].records:
            last[record.key.decode()] = record.value
        # The customer's state, without the input offsets and the index entry the worker
        # keeps beside it (journey.pipeline.processor.SOURCES_KEY,
        # journey.pipeline.stateindex.INDEX_KEY): the in-process run has neither.
        return {cid: {k: v for k, v in json.loads(value).items()
                      if k not in (SOURCES_KEY, INDEX_KEY)}
                for cid, value in last.items() if value is not None}

    def _matches(self) -> bool:
        if not self.golden.trigger_ids <= set(self._trigger_ids()):
            return False
        return self._states() == self.golden.states

    def _judge(self, outcome: Outcome) -> None:
        expected = self.golden.trigger_ids
        got = self._trigger_ids()
        outcome.lost_triggers = len(expected - set(got))
        outcome.unrecognisable_duplicates = sum(n for i, n in got.items() if i not in expected)
        outcome.recognisable_duplicates = sum(n - 1 for i, n in got.items() if i in expected)
        changes = {json.loads(r.value)["change_id"]
                   for r in self.tails["stage-changes"].records}
        outcome.lost_stage_changes = len(self.golden.change_ids - changes)
        outcome.unexpected_stage_changes = len(changes - self.golden.change_ids)
        states = self._states()
        examples: dict[str, dict[str, Any]] = {}
        for cid in sorted(set(states) | set(self.golden.states)):
            mine, theirs = states.get(cid), self.golden.states.get(cid)
            fields = _differing(mine, theirs)
            if fields:
                outcome.state_differences += 1
                outcome.differing_fields.update(fields)
                if len(examples) < 5:
                    examples[cid] = {f: {"worker": (mine or {}).get(f),
                                         "reference": (theirs or {}).get(f)} for f in fields}
        if examples or outcome.lost_triggers:
            # For whoever reads a failure: which customers, which fields, which ids.
            path = self.data_dir / "differences.json"
            path.write_text(json.dumps({
                "states": examples,
                "lost_trigger_ids": sorted(expected - set(got))[:20],
                "unrecognisable_trigger_ids": sorted(i for i in got if i not in expected)[:20],
            }, indent=1, default=str))
            outcome.notes.append(f"examples of the differences: {path}")
        letters = Counter((d["source_partition"], d["source_offset"]) for d in
                          (json.loads(r.value) for r in self.tails["dead-letters"].records))
        outcome.unexpected_dead_letters = sum(n for at, n in letters.items()
                                              if at not in self.malformed)
        outcome.malformed_not_dead_lettered = sum(1 for at in self.malformed if at not in letters)
        outcome.malformed_dead_lettered_twice = sum(1 for at, n in letters.items()
                                                    if at in self.malformed and n > 1)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        for tail in self.tails.values():
            tail.close()
        self.watch.close()


def _differing(mine: dict[str, Any] | None, theirs: dict[str, Any] | None) -> list[str]:
    if mine is None or theirs is None:
        return ["<missing>" if mine is None else "<extra>"]
    keys = (set(mine) | set(theirs)) - IGNORED_STATE_FIELDS
    return sorted(k for k in keys if mine.get(k) != theirs.get(k))


def _gist(line: str) -> str:
    """A log line without its time stamp, pid and numbers, so repeats count as one kind."""
    text = re.sub(r"^(\[[^\]]*\] ){2}", "", line)
    return re.sub(r"\d+(\.\d+)?", "N", text)[:160]


def _key(raw: bytes | None) -> bytes | None:
    """The customer id as the key, as the contract asks platforms to; None when unreadable."""
    if raw is None:
        return b"tombstone"  # a record needs a key or a value
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    cid = doc.get("customer_id") if isinstance(doc, dict) else None
    return cid.encode() if isinstance(cid, str) and cid else None
