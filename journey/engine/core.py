"""The engine: applies one event to one customer's state and says what to publish.

Pure and deterministic: no I/O and no wall clock. Time is the events' time.

Late events. An event older than the customer's newest event time minus the allowed
lateness is late. Policy ``count_only`` (default) lets it update counters, attribution,
consent and scores (they do not depend on order) but never moves a stage or fires a
trigger, since those would act on a past that has already been acted on; policy ``drop``
ignores it except for consent. A late event older than the dedupe horizon is always
dropped: its id may have been forgotten, and counting a re-sent purchase twice is worse
than missing it. Either way it is counted in ``late_events``. Opt-outs are always applied,
however late (the latest decision by event time wins): no marketing trigger may follow.

Late opt-outs are honoured. A marketing trigger released at R is decided only once no
opt-out stamped before R can still arrive within the allowed lateness: when the customer's
own newest event, or the watermark, is at R + allowed lateness (the watermark already is
event time minus the lateness). Service triggers are exempt from opt-out and go at R.

Lifecycle detections (complaint, inactive_lead, churn_risk, dormant, lost) belong to the
customer, not to a journey: one episode fires one trigger, of journey ``lifecycle``, however
many journeys run. Their settings come from the definitions' ``detections`` blocks, which
must agree. The low-season invitation stays a journey's own choice.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from journey.engine.alive import ChurnParams
from journey.engine.definitions import (
    LIFECYCLE,
    DefinitionError,
    DetectionsSpec,
    ExitSpec,
    JourneyDefinition,
    RulePolicySpec,
    RuleSpec,
)
from journey.engine.detections import (
    DETECTIONS,
    KINDS,
    LIFECYCLE_KINDS,
    LIFECYCLE_RULES,
    Context,
    Due,
    TemperatureRules,
    journey_dues,
    lifecycle_dues,
)
from journey.engine.duration import DAY_MS
from journey.engine.events import Event
from journey.engine.outputs import (
    Decision,
    Output,
    StageChange,
    TriggerRequest,
    TriggerSuppressed,
)
from journey.engine.policy import (
    ContactBudget,
    JourneyPolicy,
    QuietHours,
    RulePolicy,
    TriggerPolicy,
    offer_code,
)
from journey.engine.predicates import Check
from journey.engine.state import (
    DECISION_HISTORY,
    PURCHASE_HISTORY,
    CustomerState,
    JourneyPosition,
    Touch,
    decay,
)
from journey.engine.vocabulary import CATEGORIES

#: Events that count as interacting with content (temperature "hot" needs them regularly).
ENGAGEMENT_TYPES = frozenset(
    {"email_opened", "email_clicked", "content_view", "site_visit", "webinar_attended",
     "minibook_downloaded", "paid_link_clicked", "live_event_attended", "survey_answered",
     "consultation", "messenger_message", "lead_magnet_download"}
)
LEAD_CAPTURE_TYPES = frozenset(CATEGORIES["lead_capture"])
#: The built-in journey whose stages are the temperature (cold, warm, hot).
TEMPERATURE = "temperature"
#: Statuses a touch brings a customer back from.
_ASLEEP = frozenset({"dormant", "lost"})


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Engine-wide choices, each a documented default (DOMAIN.md marks seed vs choice)."""

    allowed_lateness_ms: int = DAY_MS
    late_policy: Literal["count_only", "drop"] = "count_only"
    dedupe_horizon_ms: int = 7 * DAY_MS
    dedupe_max_ids: int = 512
    #: seed 001: "regular customer from 3 purchases"
    regular_from_purchases: int = 3
    #: choice: loyal from 10 purchases, or on joining a loyalty programme
    loyal_from_purchases: int = 10
    #: choice: "interacts regularly" = decayed engagement of 3+ with a 14-day half-life
    hot_engagement: float = 3.0
    engagement_half_life_ms: int = 14 * DAY_MS
    #: choice: 90 days without any touch and a contact has gone cold again
    cold_after_ms: int = 90 * DAY_MS
    #: fitted BG/NBD or MBG/NBD parameters; without them the churn_risk detection is off
    churn: ChurnParams | None = None
    # Trigger policy defaults; each journey's `policy:` block may override the first four.
    # The library defaults send at once; a deployment's settings choose safer ones.
    trigger_hold_ms: int = 0
    quiet_hours: QuietHours | None = None
    holdout: float = 0.0
    cooldown_ms: int | None = None
    contact_budget: ContactBudget | None = None
    default_timezone: str = "UTC"
    holdout_salt: str = "journey"
    offer_secret: str = field(default="", repr=False)


#: Why an event was not fully applied: seen before, or older than the allowed lateness.
Note = Literal["duplicate", "late"]


@dataclass(slots=True)
class Step:
    """The result of applying one event: the new state, the outputs in order, and a note
    when the event was not fully applied."""

    state: CustomerState
    outputs: list[Output] = field(default_factory=list)
    note: Note | None = None


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
#: that can fire on that type, and the exits it can meet.
_Plan = tuple[tuple[Check | None, ...], tuple[_Rule, ...], tuple[_Exit, ...]]
#: The trigger owner of the customer's lifecycle detections, in the detection loop.
_LIFECYCLE_IDX = -2


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
            found = self.plans[event_type] = (entries, rules, exits)
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
            policy=_journey_policy(d, config),
            delays={r.name: r.delay for r in d.rules if r.delay},
            exits=tuple(
                _Exit(x, x.when.compile(hl), None if x.stages is None else frozenset(x.stages),
                      x.when.possible_types(), None if x.cancel is None else frozenset(x.cancel))
                for x in d.exits
            ),
        )


class Engine:
    """Runs every configured journey definition over a customer's events."""

    def __init__(
        self,
        definitions: Sequence[JourneyDefinition] = (),
        *,
        config: EngineConfig | None = None,
        policy: TriggerPolicy | None = None,
    ) -> None:
        self.config = cfg = config or EngineConfig()
        self.policy = policy or TriggerPolicy(
            budget=cfg.contact_budget, default_timezone=cfg.default_timezone,
            holdout_salt=cfg.holdout_salt, offer_secret=cfg.offer_secret,
        )
        self.journeys = tuple(CompiledJourney.compile(d, cfg) for d in definitions)
        self._by_name = {j.definition.name: j for j in self.journeys}
        #: the customer's lifecycle detections: one owner, whatever journeys run
        self.lifecycle = lifecycle_detections(definitions)
        self._policies = {j.definition.name: j.policy for j in self.journeys}
        self._policies[LIFECYCLE] = lifecycle_policy(definitions, cfg)
        self._context = Context(cfg.churn, cfg.default_timezone)
        self.temperature = TemperatureRules(cfg.hot_engagement, cfg.engagement_half_life_ms,
                                            cfg.cold_after_ms)

    # ----- public -------------------------------------------------------------------------
    def apply(self, state: CustomerState | None, event: Event) -> Step:
        if state is None:
            state = CustomerState(customer_id=event.customer_id)
        if event.event_id in state.recent_ids:
            return Step(state, note="duplicate")
        cfg = self.config
        late = state.touches > 0 and event.at_ms < state.max_event_ms - cfg.allowed_lateness_ms
        if late:
            state.late_events += 1
            self._apply_consent(state, event)
            # Older than the dedupe horizon, it could be a re-sent event whose id was
            # forgotten: counting it could count a purchase twice, so it is dropped.
            beyond_horizon = event.at_ms < state.max_event_ms - cfg.dedupe_horizon_ms
            if cfg.late_policy == "drop" or beyond_horizon:
                return Step(state, note="late")
        outputs: list[Output] = []
        # Nothing stamped before this bound can still arrive within the allowed lateness.
        settled_ms = max(event.at_ms, state.max_event_ms) - cfg.allowed_lateness_ms
        if state.touches > 0:
            # The customer's own event proves time has moved on: first fire what fell due
            # before it (detections and marketing triggers up to the allowed lateness, so a
            # late opt-out is still honoured; service triggers up to the event), so the
            # result does not depend on which other customers share the partition.
            self._run_until(state, settled_ms, event.at_ms - 1, outputs, settled_ms)
        self._remember_id(state, event)
        self._count(state, event)
        if late:
            return Step(state, outputs, note="late")
        self._update_temperature(state, event.at_ms, event.event_id, outputs)
        self._advance_status(state, event, outputs)
        for journey in self.journeys:
            self._advance_journey(journey, state, event, outputs)
        # The customer's own event proves its time has come: release what is due by then
        # (marketing only once no opt-out stamped before its release can still arrive).
        if state.pending and state.pending[0][0] <= event.at_ms:
            self._release_until(state, settled_ms, event.at_ms, outputs)
        return Step(state, outputs)

    def apply_all(
        self, states: dict[str, CustomerState], events: Iterable[Event]
    ) -> list[Output]:
        """Apply events in order, updating `states` in place; the outputs in order."""
        outputs: list[Output] = []
        for event in events:
            step = self.apply(states.get(event.customer_id), event)
            states[event.customer_id] = step.state
            outputs.extend(step.outputs)
        return outputs

    # ----- counters, attribution, consent ------------------------------------------------
    def _remember_id(self, state: CustomerState, event: Event) -> None:
        ids = state.recent_ids
        ids[event.event_id] = event.at_ms
        horizon = max(state.max_event_ms, event.at_ms) - self.config.dedupe_horizon_ms
        if len(ids) > self.config.dedupe_max_ids:
            keep = sorted(((t, i) for i, t in ids.items() if t >= horizon), reverse=True)
            state.recent_ids = {i: t for t, i in sorted(keep[: self.config.dedupe_max_ids])}
            return
        # Ids arrive (nearly) in time order: forget the oldest from the front, no sort.
        while ids:
            oldest = next(iter(ids))
            if ids[oldest] >= horizon:
                break
            del ids[oldest]

    def _count(self, state: CustomerState, event: Event) -> None:
        at = event.at_ms
        newest = at >= state.max_event_ms
        state.touches += 1
        state.counts[event.type] = state.counts.get(event.type, 0) + 1
        if state.first_touch is None or at < state.first_touch.at_ms:
            state.first_touch = Touch(at, event.type, event.channel, event.source, event.campaign)
            state.referred = state.referred or event.source == "referral"
        if newest:
            state.max_event_ms = at
            state.last_touch_ms = at
            state.last_channel = event.channel or state.last_channel
            state.timezone = event.timezone or state.timezone
        etype = event.type
        if etype == "purchase":
            self._count_purchase(state, event)
        elif etype in LEAD_CAPTURE_TYPES:
            state.has_contact = True
            if state.lead_ms is None or at < state.lead_ms:
                state.lead_ms = at
            if etype == "newsletter_subscribe" and not state.opted_out:
                state.subscribed = True
        elif etype == "referral":
            if event.properties.get("rewarded"):
                state.referrals_rewarded += 1
            else:
                state.referrals_unpaid += 1
        elif etype == "complaint":
            if state.open_complaint_ms is None:
                state.open_complaint_ms = at
        elif etype == "complaint_response":
            state.open_complaint_ms = None
        if etype in ENGAGEMENT_TYPES:
            hl = self.config.engagement_half_life_ms
            if at >= state.engagement_ms:
                state.engagement = decay(state.engagement, state.engagement_ms, at, hl) + 1.0
                state.engagement_ms = at
            else:
                state.engagement += decay(1.0, at, state.engagement_ms, hl)
        self._apply_consent(state, event)

    def _count_purchase(self, state: CustomerState, event: Event) -> None:
        at = event.at_ms
        state.purchases += 1
        state.spend += event.amount or 0.0
        state.has_contact = True
        if state.first_purchase_ms is None or at < state.first_purchase_ms:
            state.first_purchase_ms = at
        if state.last_purchase_ms is None or at > state.last_purchase_ms:
            state.last_purchase_ms = at
        bisect.insort(state.purchase_times, at)
        del state.purchase_times[:-PURCHASE_HISTORY]

    @staticmethod
    def _apply_consent(state: CustomerState, event: Event) -> None:
        if event.type not in ("opt_out", "opt_in"):
            return
        # The latest decision by event time wins, whatever order they arrive in.
        if state.consent_ms is not None and event.at_ms < state.consent_ms:
            return
        state.consent_ms = event.at_ms
        state.opted_out = event.type == "opt_out"
        if state.opted_out:
            state.subscribed = False

    def _update_temperature(
        self, state: CustomerState, at_ms: int, cause: str, outputs: list[Output]
    ) -> None:
        """Temperature changes come out as stage changes of the built-in journey "temperature"."""
        now = self.temperature.at(state, at_ms)
        if now == state.temperature and state.temperature_ms is not None:
            return
        previous = None if state.temperature_ms is None else state.temperature
        spent = None if state.temperature_ms is None else max(0, at_ms - state.temperature_ms)
        state.temperature = now
        state.temperature_ms = at_ms
        outputs.append(StageChange(state.customer_id, TEMPERATURE, previous, now, cause, at_ms,
                                   spent))

    # ----- time: detections in event time -----------------------------------------------
    def next_deadline(self, state: CustomerState) -> int | None:
        """The earliest event time at which on_time() would change this customer, or None."""
        moments = [due.at_ms for _, due in self._dues(state)]
        temp = self.temperature.next_change_ms(state)
        if temp is not None:
            moments.append(temp)
        if state.pending:
            moments.append(state.pending[0][0])
        return min(moments) if moments else None

    def deadlines(self, state: CustomerState) -> list[tuple[int, str, str]]:
        """(event time, what fires then, journey) of every upcoming deadline, earliest
        first: detections, the temperature change and pending trigger releases."""
        found: list[tuple[int, str, str]] = [
            (due.at_ms, due.kind,
             LIFECYCLE if idx == _LIFECYCLE_IDX else self.journeys[idx].definition.name)
            for idx, due in self._dues(state)]
        temp = self.temperature.next_change_ms(state)
        if temp is not None:
            found.append((temp, "temperature", TEMPERATURE))
        found.extend((at, f"release:{r.rule}", r.journey) for at, r in state.pending)
        return sorted(found)

    def why_held(self, request: TriggerRequest, release_ms: int) -> list[str]:
        """Why a pending trigger waits until release_ms: its rule's delay, the hold that
        lets a late opt-out be seen (marketing), or a deferral by the policy."""
        reasons: list[str] = []
        journey = self._by_name.get(request.journey)
        delay = journey.delays.get(request.rule, 0) if journey is not None else 0
        hold = self._policies[request.journey].hold_ms if request.journey in self._policies \
            else 0
        planned = request.at_ms + delay + (hold if request.kind == "marketing" else 0)
        if delay:
            reasons.append("rule_delay")
        if request.kind == "marketing" and hold:
            reasons.append("opt_out_hold")
        if release_ms != planned:
            reasons.append("deferred")
        return reasons

    def on_time(self, state: CustomerState, now_ms: int) -> Step:
        """Fire every detection whose deadline is at or before now_ms (the watermark), in
        deadline order. Each happens at its own deadline, not at now_ms, so the outcome
        does not depend on when the watermark got there."""
        outputs: list[Output] = []
        self._run_until(state, now_ms, now_ms, outputs, now_ms)
        return Step(state, outputs)

    def _run_until(
        self, state: CustomerState, detect_ms: int, release_ms: int, outputs: list[Output],
        marketing_ms: int,
    ) -> None:
        """Fire detections and temperature changes due by detect_ms and release triggers
        due by release_ms (marketing ones by marketing_ms), in time order."""
        # Same instant: the temperature change first, then detections in KINDS order, then
        # releases. A temperature change or a release carries no Due.
        temperature, release = -1, len(KINDS)
        for _ in range(256):  # bounded: each round fires one detection or release, or stops
            dues: list[tuple[int, int, int, Due | None]] = [
                (at, KINDS.index(due.kind), idx, due) for idx, due in self._dues(state)
                if (at := due.at_ms) <= detect_ms]
            temp_at = self.temperature.next_change_ms(state)
            if temp_at is not None and temp_at <= detect_ms:
                dues.append((temp_at, temperature, -1, None))
            release_at = _next_release(state.pending, marketing_ms, release_ms)
            if release_at is not None:
                dues.append((release_at, release, -1, None))
            if not dues:
                break
            at, order, idx, due = min(dues, key=lambda d: (d[0], d[1], d[2]))
            if due is not None:
                self._fire_detection(idx, state, due, outputs)
            elif order == release:
                self._release_at(state, at, outputs, marketing_ms)
            else:
                self._update_temperature(state, at, f"detection:temperature:{at}", outputs)

    def _dues(self, state: CustomerState) -> list[tuple[int, Due]]:
        if state.touches == 0:
            return []
        ctx = self._context
        found = [(_LIFECYCLE_IDX, due) for due in lifecycle_dues(self.lifecycle, state, ctx)]
        for idx, j in enumerate(self.journeys):
            position = state.journeys.get(j.definition.name)
            if position is not None:
                found.extend((idx, due) for due in journey_dues(
                    j.definition.detections, state, position, ctx))
        return found

    def _fire_detection(
        self, idx: int, state: CustomerState, due: Due, outputs: list[Output]
    ) -> None:
        """A lifecycle detection (idx _LIFECYCLE_IDX) or one of journey idx's own."""
        j = None if idx == _LIFECYCLE_IDX else self.journeys[idx]
        spec = self.lifecycle if j is None else j.definition.detections
        position = None if j is None else state.journeys[j.definition.name]
        record = state.detected if position is None else position.fired
        fired = record.get(due.kind)
        record[due.kind] = [(fired[0] if fired else 0) + 1, due.anchor]
        cause = f"detection:{due.kind}:{due.anchor}"
        detection = DETECTIONS[due.kind]
        d = detection.settings(spec)
        details: dict[str, object] = {"anchor_ms": due.anchor}
        details.update(detection.details(spec, state, self._context, due))
        if detection.reactivates:
            state.reactivation_ms = due.at_ms
        status = detection.status
        if status is not None and state.status != status:
            set_status(state, status, cause, due.at_ms, outputs)
        request = TriggerRequest(
            customer_id=state.customer_id,
            journey=LIFECYCLE if j is None else j.definition.name,
            rule=detection.rule,
            reason=detection.reason,
            episode=f"{due.kind}:{due.anchor}",
            at_ms=due.at_ms,
            kind=detection.trigger,
            priority=d.priority,
            stage=state.status if position is None else position.stage,
            status=state.status,
            temperature=state.temperature,
            score=None if j is None or position is None else round(
                position.score_at(due.at_ms, j.half_life_ms), 6),
            channel=d.channel or state.last_channel,
            valid_for_ms=d.valid_for,
            details=details,
        )
        hold = self._policies[request.journey].hold_ms
        self._schedule(state, request, 0, hold)

    # ----- trigger policy -------------------------------------------------------------------
    @staticmethod
    def _schedule(
        state: CustomerState, request: TriggerRequest, delay_ms: int, hold_ms: int
    ) -> None:
        """A fired trigger waits until its release time: its rule's delay, plus for marketing
        the hold that lets a late opt-out be seen first."""
        release = request.at_ms + delay_ms
        if request.kind == "marketing":
            release += hold_ms
        bisect.insort(state.pending, (release, request), key=_pending_order)

    def _release_until(
        self, state: CustomerState, marketing_ms: int, release_ms: int, outputs: list[Output]
    ) -> None:
        while (at := _next_release(state.pending, marketing_ms, release_ms)) is not None:
            self._release_at(state, at, outputs, marketing_ms)

    def _release_at(
        self, state: CustomerState, at_ms: int, outputs: list[Output], marketing_ms: int
    ) -> None:
        """Decide every trigger released at at_ms, higher priority first (they compete for
        the contact budget). Marketing ones wait while at_ms is after marketing_ms."""
        settled = at_ms <= marketing_ms
        due = [r for t, r in state.pending
               if t == at_ms and (settled or r.kind != "marketing")]
        state.pending = [(t, r) for t, r in state.pending
                         if t != at_ms or not (settled or r.kind != "marketing")]
        due.sort(key=lambda r: (-r.priority, r.trigger_id))
        for request in due:
            jpolicy = self._policies.get(request.journey) or _NO_POLICY
            decision = self.policy.decide(state, request, jpolicy, at_ms)
            if decision.kind == "send":
                outputs.append(self._send(state, request, at_ms))
            elif decision.kind == "defer" and decision.until_ms is not None:
                bisect.insort(state.pending, (decision.until_ms, request), key=_pending_order)
                outputs.append(_remember(state, TriggerSuppressed(
                    request, decision.reason, "deferred", at_ms, decision.until_ms)))
            else:
                label: Decision = "held_out" if decision.kind == "hold_out" else "suppressed"
                outputs.append(_remember(state, TriggerSuppressed(
                    request, decision.reason, label, at_ms)))

    def _send(self, state: CustomerState, request: TriggerRequest, at_ms: int) -> TriggerRequest:
        send_at = at_ms
        if request.kind == "marketing":
            # Contacts are recorded in time order, so the budget holds in every window.
            if state.contacts:
                send_at = max(send_at, state.contacts[-1])
            state.contacts.append(send_at)
            budget = self.config.contact_budget
            if budget is not None:
                state.contacts = [t for t in state.contacts if t > send_at - budget.window_ms]
            else:
                del state.contacts[:-16]
        state.sent[f"{request.journey}/{request.rule}"] = send_at
        _record_decision(state, [send_at, request.journey, request.rule, request.trigger_id,
                                 "sent", request.reason, request.details])
        return request.released(send_at, offer_code(request.trigger_id, self.config.offer_secret))

    # ----- lifecycle status -----------------------------------------------------------------
    def commercial_status(self, state: CustomerState) -> str:
        """The status a customer's purchases alone earn them."""
        cfg = self.config
        if state.purchases >= cfg.loyal_from_purchases or state.counts.get("loyalty_joined"):
            return "loyal"
        if state.purchases >= cfg.regular_from_purchases:
            return "regular"
        if state.purchases >= 1:
            return "customer"
        return "lead"

    def _advance_status(self, state: CustomerState, event: Event, outputs: list[Output]) -> None:
        current = state.status
        earned = self.commercial_status(state)
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
            target = earned if _rank(earned) > _rank(current) else current
        if target != current:
            set_status(state, target, event.event_id, event.at_ms, outputs)

    # ----- journeys -----------------------------------------------------------------------
    def _advance_journey(
        self, j: CompiledJourney, state: CustomerState, event: Event, outputs: list[Output]
    ) -> None:
        name = j.definition.name
        position = state.journeys.get(name)
        if position is None:
            position = state.journeys[name] = JourneyPosition()
        points = j.points.get(event.type)
        if points:
            position.add_points(points, event.at_ms, j.half_life_ms)
        entries, rules, exits = j.plan(event.type)
        for exit_ in exits:
            # Before the rules: a trigger this very event fires is not cancelled by it.
            in_stage = exit_.stages is None or position.stage in exit_.stages
            if in_stage and exit_.check(event, state, position):
                self._cancel(j, exit_, state, event, outputs)
        target = self._next_stage(j, entries, state, event, position)
        if target is not None:
            self._move(j, state, position, target, event, outputs)
        fired = position.fired
        for rule in rules:
            if rule.spec.once and rule.spec.name in fired:
                continue
            self._maybe_fire(j, rule, state, event, position, outputs)

    @staticmethod
    def _cancel(
        j: CompiledJourney, exit_: _Exit, state: CustomerState, event: Event,
        outputs: list[Output],
    ) -> None:
        """Cancel the journey's pending triggers the exit names, fired at or before the event."""
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
                outputs.append(_remember(state, TriggerSuppressed(
                    item[1], exit_.spec.name, "cancelled", event.at_ms)))
            else:
                kept.append(item)
        state.pending = kept

    @staticmethod
    def _next_stage(
        j: CompiledJourney,
        entries: tuple[Check | None, ...],
        state: CustomerState,
        event: Event,
        position: JourneyPosition,
    ) -> int | None:
        current = -1 if position.stage is None else j.names.index(position.stage)
        if j.definition.in_order:
            nxt = current + 1
            if nxt < len(entries):
                check = entries[nxt]
                if check is not None and check(event, state, position):
                    return nxt
        else:
            for idx in range(len(entries) - 1, current, -1):
                check = entries[idx]
                if check is not None and check(event, state, position):
                    return idx
        if position.stage is not None:
            for idx in j.backward.get(position.stage, ()):
                check = entries[idx]
                if check is not None and check(event, state, position):
                    return idx
        return None

    @staticmethod
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
        self,
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
        self._schedule(state, request, j.delays.get(spec.name, 0), j.policy.hold_ms)


_NO_POLICY = JourneyPolicy()
_S = TypeVar("_S")


def _record_decision(state: CustomerState, decision: list[Any]) -> None:
    state.decisions.append(decision)
    del state.decisions[:-DECISION_HISTORY]


def _remember(state: CustomerState, withheld: TriggerSuppressed) -> TriggerSuppressed:
    """Keep a withheld trigger's decision in the state (for the lookup) and pass it on."""
    r = withheld.request
    details: dict[str, Any] = dict(r.details)
    if withheld.until_ms is not None:
        details["deferred_until_ms"] = withheld.until_ms
    _record_decision(state, [withheld.at_ms if withheld.at_ms is not None else r.at_ms,
                             r.journey, r.rule, r.trigger_id, withheld.decision,
                             withheld.reason, details])
    return withheld


def _pending_order(item: tuple[int, TriggerRequest]) -> tuple[int, str]:
    return item[0], item[1].trigger_id


def _next_release(
    pending: list[tuple[int, TriggerRequest]], marketing_ms: int, release_ms: int
) -> int | None:
    """The earliest release time due: service triggers by release_ms, marketing ones by
    marketing_ms (once no opt-out stamped before it can still arrive)."""
    for at, request in pending:
        if at > release_ms and at > marketing_ms:
            return None
        if at <= marketing_ms if request.kind == "marketing" else at <= release_ms:
            return at
    return None


def lifecycle_detections(definitions: Sequence[JourneyDefinition]) -> DetectionsSpec:
    """The customer's lifecycle detection settings: what the definitions set, which must
    agree (a detection belongs to the customer, so it has one setting); defaults otherwise."""
    return DetectionsSpec(**_agreed(definitions, lambda d: [
        (kind, DETECTIONS[kind].settings(d.detections)) for kind in LIFECYCLE_KINDS
        if kind in d.detections.model_fields_set], "detections", "detections"))


def lifecycle_policy(
    definitions: Sequence[JourneyDefinition], config: EngineConfig
) -> JourneyPolicy:
    """The policy of the lifecycle triggers: the deployment's defaults, with the per-rule
    settings definitions give detection rules (which must agree)."""
    rules = _agreed(definitions, lambda d: [
        (name, spec) for name, spec in d.policy.rules.items() if name in LIFECYCLE_RULES],
        "policy.rules", "triggers")
    return JourneyPolicy(
        hold_ms=config.trigger_hold_ms,
        quiet_hours=config.quiet_hours,
        holdout=config.holdout,
        cooldown_ms=config.cooldown_ms,
        rules=_rule_policies(rules, config.cooldown_ms),
    )


def _agreed(
    definitions: Sequence[JourneyDefinition],
    settings: Callable[[JourneyDefinition], Iterable[tuple[str, _S]]],
    path: str,
    what: str,
) -> dict[str, _S]:
    """Settings of the customer's lifecycle, by name, as the definitions that give them
    give them; two that differ are an error naming both."""
    chosen: dict[str, tuple[str, _S]] = {}
    for d in definitions:
        for name, spec in settings(d):
            have = chosen.get(name)
            if have is not None and have[1] != spec:
                raise DefinitionError(
                    f"journeys {have[0]!r} and {d.name!r} set {path}.{name} differently; "
                    f"lifecycle {what} belong to the customer, so set them alike (or in one)"
                )
            chosen.setdefault(name, (d.name, spec))
    return {name: spec for name, (_, spec) in chosen.items()}


def _rule_policies(
    rules: Mapping[str, RulePolicySpec], cooldown_ms: int | None
) -> dict[str, RulePolicy]:
    return {
        name: RulePolicy(
            cooldown_ms=r.cooldown if r.cooldown is not None else cooldown_ms,
            once=r.once, quiet_action=r.quiet_hours,
        )
        for name, r in rules.items()
    }


def _journey_policy(d: JourneyDefinition, config: EngineConfig) -> JourneyPolicy:
    spec = d.policy
    quiet = config.quiet_hours
    if spec.quiet_hours is not None:
        q = spec.quiet_hours
        quiet = QuietHours(q.start, q.end, q.action) if q.enabled else None
    cooldown = spec.cooldown if spec.cooldown is not None else config.cooldown_ms
    return JourneyPolicy(
        hold_ms=spec.hold if spec.hold is not None else config.trigger_hold_ms,
        quiet_hours=quiet,
        holdout=spec.holdout if spec.holdout is not None else config.holdout,
        cooldown_ms=cooldown,
        rules=_rule_policies(spec.rules, cooldown),
    )


_RANK = {"lead": 0, "inactive_lead": 0, "customer": 1, "reactivated": 1, "regular": 2,
         "loyal": 3}


def _rank(status: str) -> int:
    return _RANK.get(status, 0)


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
