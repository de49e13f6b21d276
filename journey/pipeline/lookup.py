"""Answers of the web API, free of Faust: a customer's profile and journeys with populations.

Times in the answers are ISO 8601 (UTC); "time in stage" and decayed scores are taken at
as_of: the event time the customer's partition has reached (its watermark), or the
customer's own latest event when later. Like the engine, the answer is in event time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from journey.contract.api import (
    Attribution,
    CustomerProfile,
    Deadline,
    Detection,
    JourneyStanding,
    JourneyView,
    PendingTrigger,
    SentTrigger,
    StagePopulation,
    TriggerDecision,
)
from journey.engine import CustomerState, Engine
from journey.engine.events import from_epoch_ms


def customer_profile(
    engine: Engine, state: CustomerState, watermark_ms: int | None = None
) -> CustomerProfile:
    """`watermark_ms`: event time the customer's partition has reached, when known; the
    answer is taken at the later of it and the customer's latest event."""
    as_of = max(state.max_event_ms, watermark_ms or 0)
    half_lives = {j.definition.name: j.half_life_ms for j in engine.journeys}
    standings = []
    for name, position in sorted(state.journeys.items()):
        entered = position.entered_ms.get(position.stage) if position.stage else None
        standings.append(JourneyStanding(
            journey=name, stage=position.stage,
            entered_at=None if entered is None else from_epoch_ms(entered),
            seconds_in_stage=None if entered is None else max(0, as_of - entered) / 1000,
            score=round(position.score_at(as_of, half_lives.get(name)), 6),
        ))
    first = state.first_touch
    pending = [PendingTrigger(
        trigger_id=r.trigger_id, journey=r.journey, rule=r.rule, kind=r.kind, reason=r.reason,
        fired_at=from_epoch_ms(r.at_ms), release_at=from_epoch_ms(at),
        held_because=engine.why_held(r, at), details=r.details,
    ) for at, r in state.pending]
    sent = []
    for key, at in sorted(state.sent.items()):
        journey, _, rule = key.partition("/")
        sent.append(SentTrigger(journey=journey, rule=rule, sent_at=from_epoch_ms(at)))
    return CustomerProfile(
        customer_id=state.customer_id,
        as_of=from_epoch_ms(as_of),
        status=state.status,
        status_since=None if state.status_ms is None else from_epoch_ms(state.status_ms),
        temperature=state.temperature,
        opted_out=state.opted_out,
        touches=state.touches,
        purchases=state.purchases,
        spend=state.spend,
        late_events=state.late_events,
        counts=dict(sorted(state.counts.items())),
        first_touch=None if first is None else Attribution(
            at=from_epoch_ms(first.at_ms), type=first.type, channel=first.channel,
            source=first.source, campaign=first.campaign),
        journeys=standings,
        pending_triggers=pending,
        next_deadlines=[Deadline(at=from_epoch_ms(at), fires=fires, journey=journey)
                        for at, fires, journey in engine.deadlines(state)[:10]],
        last_sent=sent,
        recent_decisions=[TriggerDecision(
            at=from_epoch_ms(at), journey=journey, rule=rule, trigger_id=tid, outcome=outcome,
            reason=reason, details=details,
        ) for at, journey, rule, tid, outcome, reason, details in state.decisions],
        detections=[Detection(kind=k, times=times, last_anchor=from_epoch_ms(anchor))
                    for k, (times, anchor) in sorted(state.detected.items())],
    )


#: Stage counts one worker reports: partition -> [[journey, stage, customers], ...]
PartitionCounts = Mapping[int, list[list[Any]]]


def journey_views(
    engine: Engine, counts: PartitionCounts, partitions: int, only: str | None = None
) -> list[JourneyView]:
    """Every journey (or the one named) with its stage populations summed over the
    partitions that were counted; each partition counted once."""
    totals: dict[tuple[str, str], int] = {}
    for rows in counts.values():
        for journey, stage, n in rows:
            totals[(journey, stage)] = totals.get((journey, stage), 0) + int(n)
    counted = sorted(counts)
    missing = [p for p in range(partitions) if p not in counts]
    views = []
    for compiled in engine.journeys:
        d = compiled.definition
        if only is not None and d.name != only:
            continue
        stages = [s.name for s in d.stages]
        views.append(JourneyView(
            name=d.name, description=d.description or d.title or None, stages=stages,
            populations=[StagePopulation(stage=s, customers=totals.get((d.name, s), 0))
                         for s in stages],
            partitions_counted=counted, partitions_missing=missing,
        ))
    return views


def merge_counts(answers: Iterable[Mapping[str, list[list[Any]]]]) -> dict[int, list[list[Any]]]:
    """Per-partition counts from several workers' answers (JSON: partition keys are
    strings); a partition reported twice (a rebalance in between) is counted once."""
    merged: dict[int, list[list[Any]]] = {}
    for answer in answers:
        for partition, rows in answer.items():
            merged.setdefault(int(partition), rows)
    return merged
