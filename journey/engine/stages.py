"""Stage moves: each journey's stages, rules and exits over one event, and the customer's
lifecycle status (a stage change of the built-in journey "lifecycle").

A definition is compiled once (CompiledJourney); per event type, what can match is worked
out once too (CompiledJourney.plan), so an event meets only the predicates it can satisfy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from journey.engine.config import EngineConfig, journey_policy
from journey.engine.counters import ENGAGEMENT_TYPES
from journey.engine.definitions import LIFECYCLE, ExitSpec, JourneyDefinition, RuleSpec
from journey.engine.events import Event
from journey.engine.outputs import Output, StageChange, TriggerRequest, TriggerSuppressed
from journey.engine.policy import JourneyPolicy
from journey.engine.predicates import Check
from journey.engine.release import remember, schedule
from journey.engine.state import CustomerState, JourneyPosition

#: Statuses a touch brings a customer back from.
_ASLEEP = frozenset({"dormant", "lost"})
_RANK = {"lead": 0, "inactive_lead": 0, "customer": 1, "reactivated": 1, "regular": 2,
         "loyal": 3}


@dataclass(frozen=True, slots=True)
class _Rule:
    spec: RuleSpec
    check: Check
    stages: frozenset[str] | None
    types: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class _Exit:
    spec: ExitSpec
    check: Check
    stages: frozenset[str] | None
    types: frozenset[str] | None
    #: rule names whose pending triggers it cancels; None: every rule of the journey
    cancel: frozenset[str] | None


#: Per event type: each stage's entry check (None where the type cannot match), the rules
#: that can fire on that type, the exits it can meet, and (index, check) of the stages it
#: can enter, last stage first.
_Plan = tuple[tuple[Check | None, ...], tuple[_Rule, ...], tuple[_Exit, ...],
              tuple[tuple[int, Check], ...]]


@dataclass(frozen=True, slots=True)
class CompiledJourney:
    """A definition with its predicates compiled once."""

    definition: JourneyDefinition
    names: tuple[str, ...]
    entries: tuple[Check, ...]
    entry_types: tuple[frozenset[str] | None, ...]
    backward: dict[str, tuple[int, ...]]
    rules: tuple[_Rule, ...]
    points: dict[str, float]
    half_life_ms: int | None
    policy: JourneyPolicy
    delays: dict[str, int]
    exits: tuple[_Exit, ...] = ()
    plans: dict[str, _Plan] = field(default_factory=dict)

    def plan(self, event_type: str) -> _Plan:
        """What can match an event of this type; computed once per type."""
        found = self.plans.get(event_type)
        if found is None:
            entries = tuple(
                check if types is None or event_type in types else None
                for check, types in zip(self.entries, self.entry_types, strict=True)
            )
            rules = tuple(r for r in self.rules if r.types is None or event_type in r.types)
            exits = tuple(x for x in self.exits if x.types is None or event_type in x.types)
            enterable = tuple((idx, check) for idx, check in reversed(list(enumerate(entries)))
                              if check is not None)
            found = self.plans[event_type] = (entries, rules, exits, enterable)
        return found

    @classmethod
    def compile(cls, d: JourneyDefinition, config: EngineConfig) -> CompiledJourney:
        hl = d.scoring.half_life
        names = tuple(s.name for s in d.stages)
        backward: dict[str, list[int]] = {}
        for move in d.backward:
            backward.setdefault(move.from_stage, []).append(names.index(move.to_stage))
        return cls(
            definition=d,
            names=names,
            entries=tuple(s.entry.compile(hl) for s in d.stages),
            entry_types=tuple(s.entry.possible_types() for s in d.stages),
            backward={k: tuple(sorted(v)) for k, v in backward.items()},
            rules=tuple(
                _Rule(r, r.when.compile(hl), None if r.stages is None else frozenset(r.stages),
                      r.when.possible_types())
                for r in d.rules
            ),
            points=dict(d.scoring.points),
            half_life_ms=hl,
            policy=journey_policy(d, config),
            delays={r.name: r.delay for r in d.rules if r.delay},
            exits=tuple(
                _Exit(x, x.when.compile(hl), None if x.stages is None else frozenset(x.stages),
                      x.when.possible_types(), None if x.cancel is None else frozenset(x.cancel))
                for x in d.exits
            ),
        )


# ----- journeys -------------------------------------------------------------------------
def advance_journey(
    j: CompiledJourney, state: CustomerState, event: Event, outputs: list[Output]
) -> None:
    """One event in one journey: its score, the exits it meets, a stage move, the rules
    that fire."""
    name = j.definition.name
    position = state.journeys.get(name)
    if position is None:
        position = state.journeys[name] = JourneyPosition()
    points = j.points.get(event.type)
    if points:
        position.add_points(points, event.at_ms, j.half_life_ms)
    entries, rules, exits, enterable = j.plan(event.type)
    for exit_ in exits:
        # Before the rules: a trigger this very event fires is not cancelled by it.
        in_stage = exit_.stages is None or position.stage in exit_.stages
        if in_stage and exit_.check(event, state, position):
            _cancel(j, exit_, state, event, outputs)
    target = _next_stage(j, entries, enterable, state, event, position)
    if target is not None:
        _move(j, state, position, target, event, outputs)
    fired = position.fired
    for rule in rules:
        if rule.spec.once and rule.spec.name in fired:
            continue
        _maybe_fire(j, rule, state, event, position, outputs)


def _cancel(
    j: CompiledJourney, exit_: _Exit, state: CustomerState, event: Event, outputs: list[Output]
) -> None:
    """Cancel the journey's pending triggers the exit names, fired at or before the event."""
    if not state.pending:
        return
    name = j.definition.name
    names = exit_.cancel

    def hit(r: TriggerRequest) -> bool:
        if r.at_ms > event.at_ms:
            return False
        if r.journey == name:
            return names is None or r.rule in names
        return r.journey == LIFECYCLE and names is not None and r.rule in names

    if not any(hit(r) for _, r in state.pending):
        return
    kept: list[tuple[int, TriggerRequest]] = []
    for item in state.pending:
        if hit(item[1]):
            outputs.append(remember(state, TriggerSuppressed(
                item[1], exit_.spec.name, "cancelled", event.at_ms)))
        else:
            kept.append(item)
    state.pending = kept


def _next_stage(
    j: CompiledJourney,
    entries: tuple[Check | None, ...],
    enterable: tuple[tuple[int, Check], ...],
    state: CustomerState,
    event: Event,
    position: JourneyPosition,
) -> int | None:
    """The stage the event moves the customer to: the next one (in order), the furthest
    one it enters (not in order), or a backward move; None: stays."""
    current = -1 if position.stage is None else j.names.index(position.stage)
    if j.definition.in_order:
        nxt = current + 1
        if nxt < len(entries):
            check = entries[nxt]
            if check is not None and check(event, state, position):
                return nxt
    else:
        for idx, check in enterable:
            if idx <= current:
                break
            if check(event, state, position):
                return idx
    if position.stage is not None:
        for idx in j.backward.get(position.stage, ()):
            check = entries[idx]
            if check is not None and check(event, state, position):
                return idx
    return None


def _move(
    j: CompiledJourney,
    state: CustomerState,
    position: JourneyPosition,
    idx: int,
    event: Event,
    outputs: list[Output],
) -> None:
    previous = position.stage
    to_stage = j.names[idx]
    spent = None
    if previous is not None:
        spent = max(0, event.at_ms - position.entered_ms.get(previous, event.at_ms))
    position.stage = to_stage
    position.entered_ms[to_stage] = event.at_ms
    outputs.append(StageChange(state.customer_id, j.definition.name, previous, to_stage,
                               event.event_id, event.at_ms, spent))


def _maybe_fire(
    j: CompiledJourney,
    rule: _Rule,
    state: CustomerState,
    event: Event,
    position: JourneyPosition,
    outputs: list[Output],
) -> None:
    spec = rule.spec
    if rule.stages is not None and position.stage not in rule.stages:
        return
    fired = position.fired.get(spec.name)
    if fired is not None:
        if spec.once:
            return
        if spec.every is not None and event.at_ms - fired[1] < spec.every:
            return
    if not rule.check(event, state, position):
        return
    position.fired[spec.name] = [(fired[0] if fired else 0) + 1, event.at_ms]
    episode = "once" if spec.once else event.event_id
    score = position.score_at(event.at_ms, j.half_life_ms)
    request = TriggerRequest(
        customer_id=state.customer_id,
        journey=j.definition.name,
        rule=spec.name,
        reason=spec.trigger.reason,
        episode=episode,
        at_ms=event.at_ms,
        kind=spec.trigger.kind,
        priority=spec.trigger.priority,
        stage=position.stage,
        status=state.status,
        temperature=state.temperature,
        score=round(score, 6),
        channel=spec.trigger.channel or state.last_channel,
        valid_for_ms=spec.trigger.valid_for,
        details={
            "cause_event_id": event.event_id,
            "cause_event_type": event.type,
            "touches": state.touches,
            "purchases": state.purchases,
            "spend": round(state.spend, 2),
        },
    )
    schedule(state, request, j.delays.get(spec.name, 0), j.policy.hold_ms)


# ----- lifecycle status -----------------------------------------------------------------
def commercial_status(state: CustomerState, config: EngineConfig) -> str:
    """The status a customer's purchases alone earn them."""
    if state.purchases >= config.loyal_from_purchases or state.counts.get("loyalty_joined"):
        return "loyal"
    if state.purchases >= config.regular_from_purchases:
        return "regular"
    if state.purchases >= 1:
        return "customer"
    return "lead"


def advance_status(
    state: CustomerState, event: Event, config: EngineConfig, outputs: list[Output]
) -> None:
    """The lifecycle status after an event: earned by purchases, or woken up by a touch."""
    current = state.status
    earned = commercial_status(state, config)
    if current is None:
        target = earned
    elif current in _ASLEEP:
        target = "reactivated"
    elif current == "reactivated":
        target = earned if event.type == "purchase" else current
    elif current == "at_risk":
        target = earned if state.open_complaint_ms is None else current
    elif current == "inactive_lead":
        target = earned if earned != "lead" or event.type in ENGAGEMENT_TYPES else current
    else:
        target = earned if _RANK.get(earned, 0) > _RANK.get(current, 0) else current
    if target != current:
        set_status(state, target, event.event_id, event.at_ms, outputs)


def set_status(
    state: CustomerState, status: str, cause: str, at_ms: int, outputs: list[Output]
) -> None:
    """Move the lifecycle status, as a stage change of the built-in lifecycle journey."""
    previous = state.status
    spent = None if state.status_ms is None else max(0, at_ms - state.status_ms)
    state.status = status
    state.status_ms = at_ms
    outputs.append(StageChange(state.customer_id, LIFECYCLE, previous, status, cause, at_ms,
                               spent))
