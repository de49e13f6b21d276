"""Scenario helpers for preset tests: a customer's touches in event time, and what came out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from journey.engine import (
    CustomerState,
    Engine,
    EngineConfig,
    Event,
    JourneyDefinition,
    Output,
    StageChange,
    TriggerRequest,
    TriggerSuppressed,
    load_preset,
)
from journey.engine.detections import DETECTION_RULES

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
#: Every scenario starts here; event time only, never the wall clock.
START_MS = int(datetime(2026, 10, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


class Customer:
    """One customer's touches, applied to the engine one at a time in event time."""

    def __init__(self, engine: Engine, customer_id: str, start_ms: int = START_MS) -> None:
        self.engine = engine
        self.id = customer_id
        self.state: CustomerState | None = None
        self.now_ms = start_ms
        self.outputs: list[Output] = []
        self._sent = 0

    def touch(self, event_type: str, *, after_ms: int = HOUR_MS, **fields: Any) -> list[Output]:
        """Apply one event `after_ms` after the previous one; the outputs it caused."""
        self.now_ms += after_ms
        self._sent += 1
        event = Event(f"{self.id}-{self._sent}", self.id, event_type, self.now_ms, **fields)
        step = self.engine.apply(self.state, event)
        assert step.note is None, f"{event_type} was not fully applied: {step.note}"
        self.state = step.state
        self.outputs.extend(step.outputs)
        return step.outputs

    def stage(self, journey: str) -> str | None:
        assert self.state is not None
        position = self.state.journeys.get(journey)
        return None if position is None else position.stage

    def score(self, journey: str, half_life_ms: int | None) -> float:
        assert self.state is not None
        return self.state.journeys[journey].score_at(self.state.max_event_ms, half_life_ms)


def engine_for(preset: str) -> tuple[Engine, JourneyDefinition]:
    """The preset alone, with no allowed lateness: a marketing trigger is decided only once
    no opt-out stamped before its release can still arrive, so with none allowed each touch
    shows the triggers it fired (the scenarios are about the preset's rules, not lateness)."""
    definition = load_preset(preset)
    return Engine([definition], config=EngineConfig(allowed_lateness_ms=0)), definition


def moves(outputs: Iterable[Output], journey: str) -> list[tuple[str | None, str]]:
    """The journey's stage changes as (from, to); lifecycle status changes are left out."""
    return [(o.from_stage, o.to_stage) for o in outputs
            if isinstance(o, StageChange) and o.journey == journey]


def fired(outputs: Iterable[Output]) -> list[str]:
    """Names of the preset's own rules whose triggers went out, in order. Time-driven
    detections (a customer quiet for months between sessions is dormant meanwhile) are
    tested in tests/unit/test_detections.py, not here."""
    return [o.rule for o in triggers(outputs)]


def triggers(outputs: Iterable[Output]) -> list[TriggerRequest]:
    return [o for o in outputs
            if isinstance(o, TriggerRequest) and o.rule not in DETECTION_RULES]


def suppressed(outputs: Iterable[Output]) -> list[str]:
    return [o.request.rule for o in outputs if isinstance(o, TriggerSuppressed)]


def walk(
    customer: Customer, journey: str, touches: Iterable[tuple[str, dict[str, Any]]]
) -> list[tuple[str, str | None, list[str]]]:
    """For each touch: its type, the journey's stage after it, and the rules it fired."""
    seen = []
    for event_type, fields in touches:
        out = customer.touch(event_type, **fields)
        seen.append((event_type, customer.stage(journey), fired(out)))
    return seen


def path(stages: list[str]) -> list[tuple[str | None, str]]:
    """The stage changes of a customer who enters `stages` one after another."""
    return list(zip([None, *stages[:-1]], stages, strict=True))


def reached(customers: Iterable[Customer], definition: JourneyDefinition) -> dict[str, int]:
    """Per stage, how many customers got at least that far (skipped stages count as passed).

    Right for journeys without backward moves, where a customer's stage is their furthest.
    """
    names = [s.name for s in definition.stages]
    counts = dict.fromkeys(names, 0)
    for customer in customers:
        stage = customer.stage(definition.name)
        if stage is None:
            continue
        for name in names[: names.index(stage) + 1]:
            counts[name] += 1
    return counts
