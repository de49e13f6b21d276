"""`journey run`: the worker's pipeline over a file, in-process, with outputs written per topic.

The pipeline itself is journey.pipeline.inprocess; `pipeline_outputs` is the one call into it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from journey.engine import load_definitions
from journey.engine.definitions import JourneyDefinition
from journey.lab.facts import InputFacts, scan
from journey.lab.progress import ProgressBar
from journey.pipeline.inprocess import OfflineSummary, replay_lines
from journey.pipeline.settings import Settings

TOPICS = ("stage-changes", "triggers", "trigger-audit", "dead-letters")


@dataclass(slots=True)
class Collected:
    """The outputs of a run in compact form, in the order the pipeline produced them."""

    # (journey, customer, from_stage, to_stage, at_ms)
    stage_changes: list[tuple[str, str, str | None, str, int]] = field(default_factory=list)
    # (journey, rule, customer, at_ms, trigger_id, record, send_at_ms)
    triggers: list[tuple[str, str, str, int, str, dict[str, Any], int]] = field(
        default_factory=list)
    # (journey, rule, decision, reason, customer, at_ms, trigger_id, decided_ms): at_ms is
    # when the rule fired, decided_ms when the policy decided (the release)
    audits: list[tuple[str, str, str, str, str, int, str, int]] = field(default_factory=list)
    dead_letters: dict[str, int] = field(default_factory=dict)

    def add(self, record: dict[str, Any]) -> None:
        topic, value = record["topic"], record["value"]
        if topic == "stage-changes":
            self.stage_changes.append((value["journey"], value["customer_id"],
                                       value["from_stage"], value["to_stage"],
                                       _ms(value["occurred_at"])))
        elif topic == "triggers":
            at_ms = _ms(value["occurred_at"])
            send_at = value.get("send_at")
            self.triggers.append((value["journey"], value["rule"], value["customer_id"], at_ms,
                                  value["trigger_id"], value,
                                  _ms(send_at) if isinstance(send_at, str) else at_ms))
        elif topic == "trigger-audit":
            at_ms = _ms(value["occurred_at"])
            decided = value.get("decided_at")
            self.audits.append((value["journey"], value["rule"], value["decision"],
                                value["reason"], value["customer_id"], at_ms,
                                value["trigger_id"],
                                _ms(decided) if isinstance(decided, str) else at_ms))
        elif topic == "dead-letters":
            reason = str(value.get("reason"))
            self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1


@dataclass(slots=True)
class RunResult:
    settings: Settings
    definitions: list[JourneyDefinition]
    facts: InputFacts
    collected: Collected
    summary: OfflineSummary
    until_ms: int | None
    files: dict[str, Path] = field(default_factory=dict)


def lab_settings(settings: Settings, journeys: list[str] | None = None,
                 holdout: float | None = None, salt: str | None = None) -> Settings:
    """The deployment's settings with the chosen journeys, their custom event types accepted,
    and the holdout share and salt; the worker must be given the same to produce the same
    outputs."""
    update: dict[str, Any] = {}
    if journeys:
        update["definitions"] = journeys
    if holdout is not None:
        update["holdout_share"] = holdout
    if salt is not None:
        update["holdout_salt"] = salt
    chosen = settings.model_copy(update=update)
    custom = sorted({t for d in load_definitions(chosen.definitions) for t in d.custom_types}
                    - set(chosen.extra_event_types))
    if custom:
        chosen = chosen.model_copy(
            update={"extra_event_types": [*chosen.extra_event_types, *custom]})
    # model_copy skips validation; build a validated copy so a bad value is named now
    return Settings.model_validate(chosen.model_dump())


def pipeline_outputs(lines: Iterable[bytes], settings: Settings, *, source: str,
                     until_ms: int | None, summary: OfflineSummary,
                     on_line: Callable[[bytes], None] | None = None,
                     ) -> Iterator[dict[str, Any]]:
    """The worker's pipeline core over the lines, as output records named by their topic
    without the deployment's prefix (stage-changes, triggers, trigger-audit, dead-letters)."""
    from journey.pipeline.inprocess import in_process_pipeline

    topics = settings.topics()
    names = {topics.stage_changes.name: "stage-changes", topics.triggers.name: "triggers",
             topics.trigger_audit.name: "trigger-audit",
             topics.dead_letters.name: "dead-letters"}
    for record in replay_lines(lines, in_process_pipeline(settings), source=source,
                               until_ms=until_ms, summary=summary, on_line=on_line):
        record["topic"] = names.get(record["topic"], record["topic"])
        yield record


def run_file(
    path: Path,
    settings: Settings,
    out_dir: Path | None,
    *,
    until_ms: int | None = None,
    progress: IO[str] | None = None,
) -> RunResult:
    """Run the file through the pipeline; with out_dir, write one JSON Lines file per topic.

    Time advances to `until_ms` at the end, by default the last event's time, so detections
    due within the data fire. Raises DefinitionError on a bad journey definition.
    """
    definitions = load_definitions(settings.definitions)
    with path.open("rb") as handle:
        facts = scan(handle)
    end = until_ms if until_ms is not None else facts.last_ms
    collected, summary = Collected(), OfflineSummary()
    sinks: dict[str, IO[bytes]] = {}
    files: dict[str, Path] = {}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for topic in TOPICS:
            files[topic] = out_dir / f"{topic}.jsonl"
            sinks[topic] = files[topic].open("wb")
    bar = None if progress is None else ProgressBar(progress, path.stat().st_size, label="run")
    try:
        with path.open("rb") as handle:
            for record in pipeline_outputs(handle, settings, source=str(path), until_ms=end,
                                           summary=summary,
                                           on_line=None if bar is None else bar.step):
                collected.add(record)
                sink = sinks.get(record["topic"])
                if sink is not None:
                    sink.write(orjson.dumps(record["value"]) + b"\n")
    finally:
        for sink in sinks.values():
            sink.close()
    if bar is not None:
        bar.done()
    return RunResult(settings, definitions, facts, collected, summary, end, files)


def load_outputs(input_path: Path, settings: Settings, out_dir: Path) -> RunResult:
    """A RunResult from output files written elsewhere, e.g. a worker's topics collected by
    `journey collect`, so the same report can be drawn for a run on Kafka."""
    definitions = load_definitions(settings.definitions)
    collected, summary = Collected(), OfflineSummary()
    with input_path.open("rb") as handle:
        facts = scan(handle)
        handle.seek(0)
        summary.lines = sum(1 for line in handle if line.strip())
    latest = facts.last_ms
    for topic in TOPICS:
        path = out_dir / f"{topic}.jsonl"
        if not path.exists():
            continue
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    value = orjson.loads(line)
                    collected.add({"topic": topic, "value": value})
                    at = value.get("occurred_at")
                    if isinstance(at, str) and latest is not None:
                        latest = max(latest, _ms(at))
    files = {t: out_dir / f"{t}.jsonl" for t in TOPICS if (out_dir / f"{t}.jsonl").exists()}
    return RunResult(settings, definitions, facts, collected, summary, latest, files)


def _ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text).timestamp() * 1000)
