"""The golden corpus: fixed inputs run through the in-process pipeline, hashed.

Each entry is a population (simulated for a preset, or the fault suite's touchpoints), the
settings it runs under and how it is fed. Its fingerprint is the sha256 of every output
topic's records (stage changes, triggers, audit, dead letters; as `journey replay` writes
them, in order), of every customer's final state, and of what the engine says is due next
for each of them (the lookup's deadlines and why a pending trigger waits). The fingerprints
of the engine as it was are committed in golden_corpus.json; tests/unit/test_golden_corpus.py
fails on any change. An engine change that means to change outputs rewrites the file with
`python -m tests.golden_corpus --write` and says why in its commit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from journey.engine import Engine, load_definitions
from journey.engine.alive import ChurnParams
from journey.engine.definitions import preset_names
from journey.lab.simulate import SimulationConfig, iter_lines, simulate
from journey.pipeline.build import build_engine
from journey.pipeline.core import Incoming, Pipeline
from journey.pipeline.inprocess import in_process_pipeline, replay_lines
from journey.pipeline.settings import Settings
from journey.pipeline.timekeeping import TICK_HEADER, TICK_VALUE, encode_tick
from tests.fault.golden import SETTINGS_FIELDS, touchpoints, with_malformed

HASHES = Path(__file__).with_name("golden_corpus.json")
#: What the presets leave out: per-rule policy, exits, every predicate family.
POLICY_DEFINITION = str(Path(__file__).with_name("golden_corpus_policy.yaml"))
#: The simulated year is 2025; by mid-2026 every dormant, lost and low-season detection of
#: it has fallen due. The fault touchpoints span January to March 2026.
SIMULATED_UNTIL = datetime(2026, 6, 1, tzinfo=UTC)
FAULT_UNTIL = datetime(2026, 9, 1, tzinfo=UTC)
#: The decoder's clock for entries that want one: future timestamps are judged against it.
NOW = datetime(2026, 4, 1, tzinfo=UTC)
#: Fitted BG/NBD parameters of the CDNOW cohort (Fader, Hardie & Lee 2005), so churn_risk runs.
CHURN = ChurnParams("bgnbd", r=0.243, alpha=4.414, a=0.793, b=2.426)

#: Settings variants, as Settings fields (the deployment defaults are the first).
DEFAULTS: dict[str, Any] = {}
HOLDOUT_DROP: dict[str, Any] = {
    "holdout_share": 0.15, "late_policy": "drop", "allowed_lateness_s": 86_400,
    "offer_code_secret": "corpus", "contact_budget": "2/14d",
}
OPEN: dict[str, Any] = {"quiet_hours": None, "contact_budget": None, "trigger_hold_s": 0}
VARIANTS = (DEFAULTS, HOLDOUT_DROP, OPEN)


class CorpusSettings(Settings):
    """The deployment settings an entry names, and no JOURNEY_* variable of the environment
    the test happens to run in."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


@dataclass(frozen=True)
class Entry:
    """One input of the corpus and how it runs."""

    name: str
    lines: Callable[[], list[bytes | None]]
    settings: dict[str, Any]
    until: datetime
    #: True: in file order, late and duplicate lines included (no sort by event time)
    file_order: bool = False
    now: datetime | None = None
    churn: ChurnParams | None = None


def _simulated(seed: int, customers: int) -> Callable[[], list[bytes | None]]:
    return lambda: list(iter_lines(simulate(SimulationConfig(seed=seed, customers=customers))))


def _fault_touchpoints(events: int, customers: int, seed: int) -> list[bytes | None]:
    return list(touchpoints(events, customers, seed))


def _with_malformed() -> list[bytes | None]:
    mixed = with_malformed(touchpoints(3000, 300), now=NOW)
    return [raw for raw, _ in mixed.records]


def _jittered(seed: int) -> list[bytes | None]:
    """The fault touchpoints with one in ten held back by up to ~12 days (late, some beyond
    the dedupe horizon) and one in thirty sent twice: the late and duplicate paths."""
    rng = random.Random(seed)
    keyed: list[tuple[float, bytes | None]] = []
    for index, line in enumerate(touchpoints(3000, 300, seed)):
        delay = rng.randint(1, 400) if rng.random() < 0.10 else 0
        keyed.append((index + delay, line))
        if rng.random() < 1 / 30:
            keyed.append((index + rng.randint(0, 60) + 0.5, line))
    keyed.sort(key=lambda item: item[0])
    return [line for _, line in keyed]


def entries() -> list[Entry]:
    """The corpus, small enough to run in seconds."""
    found = [
        Entry(f"simulate/{preset}", _simulated(seed, 400),
              {**VARIANTS[seed % len(VARIANTS)], "definitions": [preset]}, SIMULATED_UNTIL)
        for seed, preset in enumerate(preset_names(), start=1)
    ]
    found += [
        Entry("simulate/all-presets", _simulated(20, 500),
              {"definitions": preset_names()}, SIMULATED_UNTIL),
        Entry("simulate/churn-risk", _simulated(21, 500),
              {"definitions": ["classic_funnel", "wedding_photographer"]}, SIMULATED_UNTIL,
              churn=CHURN),
        Entry("fault/golden", lambda: _fault_touchpoints(3000, 300, 7), SETTINGS_FIELDS,
              FAULT_UNTIL),
        Entry("fault/malformed", _with_malformed, SETTINGS_FIELDS, FAULT_UNTIL, now=NOW,
              file_order=True),
        Entry("policy/defaults", lambda: _fault_touchpoints(3000, 300, 10),
              {"definitions": [POLICY_DEFINITION, "touchpoint_journey"]}, FAULT_UNTIL),
        Entry("policy/open", lambda: _fault_touchpoints(3000, 300, 11),
              {**OPEN, "definitions": [POLICY_DEFINITION]}, FAULT_UNTIL),
        Entry("fault/late-count-only", lambda: _jittered(8),
              {"definitions": [POLICY_DEFINITION, "touchpoint_journey"]}, FAULT_UNTIL,
              file_order=True),
        Entry("fault/late-drop", lambda: _jittered(9), HOLDOUT_DROP, FAULT_UNTIL,
              file_order=True),
    ]
    return found


def fingerprint(entry: Entry) -> dict[str, Any]:
    """Counts and sha256 of each output topic, the final states and their deadlines."""
    settings = CorpusSettings(**entry.settings)
    engine = build_engine(settings)
    if entry.churn is not None:
        engine = Engine(load_definitions(settings.definitions),
                        config=replace(engine.config, churn=entry.churn))
    pipeline = in_process_pipeline(settings, engine)
    until_ms = int(entry.until.timestamp() * 1000)
    now_ms = None if entry.now is None else int(entry.now.timestamp() * 1000)
    lines = entry.lines()
    run = _in_file_order if entry.file_order else _in_time_order
    by_topic: dict[str, list[bytes]] = {}
    for record in run(lines, pipeline, until_ms, now_ms):
        by_topic.setdefault(record["topic"], []).append(orjson.dumps(record))
    states = pipeline.states.live
    result: dict[str, Any] = {"lines": len(lines)}
    result["outputs"] = {topic: _digest(records) for topic, records in sorted(by_topic.items())}
    result["states"] = _digest(
        cid.encode() + b"\x00" + states[cid].to_bytes() for cid in sorted(states))
    result["deadlines"] = _digest(_deadlines(engine, states[cid]) for cid in sorted(states))
    return result


def _in_time_order(
    lines: list[bytes | None], pipeline: Pipeline, until_ms: int, now_ms: int | None
) -> Iterator[dict[str, Any]]:
    present = [line for line in lines if line is not None]
    if len(present) != len(lines):
        raise ValueError("a record without a value (a tombstone) needs file_order=True")
    return replay_lines(present, pipeline, until_ms=until_ms, now_ms=now_ms)


def _in_file_order(
    lines: list[bytes | None], pipeline: Pipeline, until_ms: int, now_ms: int | None
) -> Iterator[dict[str, Any]]:
    """replay_lines without its sort by event time (which would leave nothing late), in
    batches of 1000 and a last tick at until_ms; the same records as replay_lines yields."""
    records = [Incoming("file", 0, n, None, line) for n, line in enumerate(lines, start=1)]
    records.append(Incoming("file", 0, -1, None, encode_tick(until_ms, "offline", source=0),
                            {TICK_HEADER: TICK_VALUE}))
    clock_ms = 2**62 if now_ms is None else now_ms
    for start in range(0, len(records), 1000):
        for out in pipeline.on_touchpoints(records[start:start + 1000], clock_ms,
                                           dead_lettered_at_ms=0):
            yield {"topic": out.topic, "key": None if out.key is None else out.key.decode(),
                   "value": orjson.loads(out.value or b"null")}


def _deadlines(engine: Engine, state: Any) -> bytes:
    held = [[at, r.trigger_id, engine.why_held(r, at)] for at, r in state.pending]
    return orjson.dumps([state.customer_id, engine.next_deadline(state),
                         engine.deadlines(state), held])


def _digest(items: Iterable[bytes]) -> dict[str, Any]:
    sha = hashlib.sha256()
    count = 0
    for item in items:
        sha.update(item)
        sha.update(b"\n")
        count += 1
    return {"count": count, "sha256": sha.hexdigest()}


def committed() -> dict[str, dict[str, Any]]:
    """The fingerprints in golden_corpus.json, by entry name."""
    loaded: dict[str, dict[str, Any]] = json.loads(HASHES.read_text(encoding="utf-8"))
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite golden_corpus.json")
    args = parser.parse_args()
    prints = {entry.name: fingerprint(entry) for entry in entries()}
    text = json.dumps(prints, indent=2, sort_keys=True) + "\n"
    if args.write:
        HASHES.write_text(text, encoding="utf-8")
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
