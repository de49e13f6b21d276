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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from journey.engine.config import EngineConfig, lifecycle_detections, lifecycle_policy
from journey.engine.counters import apply_consent, count, remember_id
from journey.engine.deadlines import Detector
from journey.engine.definitions import LIFECYCLE, JourneyDefinition
from journey.engine.detections import Context
from journey.engine.events import Event
from journey.engine.outputs import Output, TriggerRequest
from journey.engine.policy import TriggerPolicy
from journey.engine.release import Releaser, next_release
from journey.engine.stages import (
    CompiledJourney,
    advance_journey,
    advance_status,
    commercial_status,
)
from journey.engine.state import CustomerState
from journey.engine.temperature import TEMPERATURE, TemperatureRules

__all__ = ["Engine", "EngineConfig", "Note", "Step"]

#: Why an event was not fully applied: seen before, or older than the allowed lateness.
Note = Literal["duplicate", "late"]


@dataclass(slots=True)
class Step:
    """The result of applying one event: the new state, the outputs in order, and a note
    when the event was not fully applied."""

    state: CustomerState
    outputs: list[Output] = field(default_factory=list)
    note: Note | None = None


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
        #: the customer's lifecycle detections: one owner, whatever journeys run
        self.lifecycle = lifecycle_detections(definitions)
        policies = {j.definition.name: j.policy for j in self.journeys}
        policies[LIFECYCLE] = lifecycle_policy(definitions, cfg)
        self.releaser = Releaser(self.policy, policies,
                                 {j.definition.name: j.delays for j in self.journeys},
                                 cfg.contact_budget, cfg.offer_secret)
        self.detector = Detector(self.lifecycle, self.journeys,
                                 Context(cfg.churn, cfg.default_timezone), self.releaser)
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
            apply_consent(state, event)
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
        remember_id(state, event, cfg.dedupe_horizon_ms, cfg.dedupe_max_ids)
        count(state, event, cfg.engagement_half_life_ms)
        if late:
            return Step(state, outputs, note="late")
        self.temperature.update(state, event.at_ms, event.event_id, outputs)
        advance_status(state, event, cfg, outputs)
        for journey in self.journeys:
            advance_journey(journey, state, event, outputs)
        # The customer's own event proves its time has come: release what is due by then
        # (marketing only once no opt-out stamped before its release can still arrive).
        if state.pending and state.pending[0][0] <= event.at_ms:
            self.releaser.release_until(state, settled_ms, event.at_ms, outputs)
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

    def commercial_status(self, state: CustomerState) -> str:
        """The status a customer's purchases alone earn them."""
        return commercial_status(state, self.config)

    # ----- time: detections in event time -----------------------------------------------
    def next_deadline(self, state: CustomerState) -> int | None:
        """The earliest event time at which on_time() would change this customer, or None."""
        first = self.detector.earliest(state)
        temp = self.temperature.next_change_ms(state)
        if temp is not None and (first is None or temp < first):
            first = temp
        if state.pending and (first is None or state.pending[0][0] < first):
            first = state.pending[0][0]
        return first

    def deadlines(self, state: CustomerState) -> list[tuple[int, str, str]]:
        """(event time, what fires then, journey) of every upcoming deadline, earliest
        first: detections, the temperature change and pending trigger releases."""
        owner = self.detector.owner_name
        found: list[tuple[int, str, str]] = [
            (due.at_ms, due.kind, owner(idx)) for idx, due in self.detector.dues(state)]
        temp = self.temperature.next_change_ms(state)
        if temp is not None:
            found.append((temp, "temperature", TEMPERATURE))
        found.extend((at, f"release:{r.rule}", r.journey) for at, r in state.pending)
        return sorted(found)

    def why_held(self, request: TriggerRequest, release_ms: int) -> list[str]:
        """Why a pending trigger waits until release_ms: its rule's delay, the hold that
        lets a late opt-out be seen (marketing), or a deferral by the policy."""
        return self.releaser.why_held(request, release_ms)

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
        # Firing a detection changes only what detections read, a temperature change only
        # what the temperature reads, and a release neither: each is worked out again only
        # after what can change it.
        detector, temperature = self.detector, self.temperature
        detection = detector.first_due(state, detect_ms)
        temp_at = temperature.next_change_ms(state)
        for _ in range(256):  # bounded: each round fires one detection or release, or stops
            release_at = next_release(state.pending, marketing_ms, release_ms)
            # Same instant: the temperature change first, then the detection, then releases.
            at, what = None, _RELEASE
            if temp_at is not None and temp_at <= detect_ms:
                at, what = temp_at, _TEMPERATURE
            if detection is not None and (at is None or detection[0] < at):
                at, what = detection[0], _DETECTION
            if release_at is not None and (at is None or release_at < at):
                at, what = release_at, _RELEASE
            if at is None:
                break
            if what == _DETECTION and detection is not None:
                detector.fire(detection[2], state, detection[3], outputs)
                detection = detector.first_due(state, detect_ms)
            elif what == _RELEASE:
                self.releaser.release_at(state, at, outputs, marketing_ms)
            else:
                temperature.update(state, at, f"detection:temperature:{at}", outputs)
                temp_at = temperature.next_change_ms(state)


# What the detection loop does next.
_TEMPERATURE, _DETECTION, _RELEASE = 0, 1, 2
