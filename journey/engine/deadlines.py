"""Detections in the engine: which are pending for a customer, and firing one.

The registry (what each detection kind is, and how its deadline is computed) is
journey/engine/detections.py; this module runs it over a customer: the lifecycle ones that
belong to the customer, and each journey's own (the low-season invitation).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from journey.engine.definitions import LIFECYCLE, DetectionsSpec
from journey.engine.detections import (
    DETECTIONS,
    JOURNEY_KINDS,
    LIFECYCLE_KINDS,
    ORDER,
    Context,
    Deadline,
    DetectionKind,
    Due,
    enabled,
)
from journey.engine.outputs import Output, TriggerRequest
from journey.engine.release import Releaser, schedule
from journey.engine.stages import CompiledJourney, set_status
from journey.engine.state import CustomerState

#: The trigger owner of the customer's lifecycle detections, in the detection loop.
LIFECYCLE_IDX = -2
#: A due detection as the detection loop orders them: (deadline, ORDER of its kind, owner).
Ranked = tuple[int, int, int, Due]
_Owner = tuple[int, str | None, DetectionsSpec, tuple[tuple[DetectionKind, Deadline], ...]]


class Detector:
    """The customer's detections: lifecycle ones (owner LIFECYCLE_IDX) and each journey's
    own (owner: the journey's index)."""

    def __init__(
        self,
        lifecycle: DetectionsSpec,
        journeys: Sequence[CompiledJourney],
        context: Context,
        releaser: Releaser,
    ) -> None:
        self.lifecycle = lifecycle
        self.journeys = tuple(journeys)
        self.context = context
        self.releaser = releaser
        # What each owner turned on, worked out once: (owner, journey name or None for the
        # lifecycle, its settings, its kinds with their deadline functions), in owner order.
        owners: list[_Owner] = [
            (LIFECYCLE_IDX, None, lifecycle, enabled(lifecycle, LIFECYCLE_KINDS, context))]
        for idx, j in enumerate(self.journeys):
            spec = j.definition.detections
            if kinds := enabled(spec, JOURNEY_KINDS, context):
                owners.append((idx, j.definition.name, spec, kinds))
        self._owners = tuple(owners)

    def owner_name(self, idx: int) -> str:
        """The journey whose trigger a detection of this owner fires."""
        return LIFECYCLE if idx == LIFECYCLE_IDX else self.journeys[idx].definition.name

    def dues(self, state: CustomerState) -> list[tuple[int, Due]]:
        """(owner, detection) of every detection that has not fired for its current anchor."""
        return list(self._pending(state))

    def earliest(self, state: CustomerState) -> int | None:
        """The earliest deadline of a detection that has not fired yet, or None."""
        return min((due.at_ms for _, due in self._pending(state)), default=None)

    def first_due(self, state: CustomerState, by_ms: int) -> Ranked | None:
        """The detection the loop fires next, if one is due by by_ms: the earliest, and at
        the same instant the first in KINDS order, then the lower owner."""
        first: Ranked | None = None
        for idx, due in self._pending(state):
            at = due.at_ms
            if at <= by_ms and (first is None or (at, ORDER[due.kind], idx) < first[:3]):
                first = (at, ORDER[due.kind], idx, due)
        return first

    def _pending(self, state: CustomerState) -> Iterator[tuple[int, Due]]:
        # Conditions read the customer's facts, not the lifecycle status; the anchor of
        # each episode stops repeats.
        if state.touches == 0:
            return
        ctx = self.context
        for idx, name, spec, kinds in self._owners:
            if name is None:
                fired_by_kind = state.detected
            else:
                position = state.journeys.get(name)
                if position is None:
                    continue
                fired_by_kind = position.fired
            for kind, deadline in kinds:
                fired = fired_by_kind.get(kind)
                due = deadline(spec, state, ctx, None if fired is None else fired[1])
                if due is not None and (fired is None or fired[1] != due.anchor):
                    yield idx, due

    def fire(self, idx: int, state: CustomerState, due: Due, outputs: list[Output]) -> None:
        """Fire a detection: record its anchor, move the status, schedule its trigger."""
        j = None if idx == LIFECYCLE_IDX else self.journeys[idx]
        spec = self.lifecycle if j is None else j.definition.detections
        position = None if j is None else state.journeys[j.definition.name]
        record = state.detected if position is None else position.fired
        fired = record.get(due.kind)
        record[due.kind] = [(fired[0] if fired else 0) + 1, due.anchor]
        cause = f"detection:{due.kind}:{due.anchor}"
        detection = DETECTIONS[due.kind]
        d = detection.settings(spec)
        details: dict[str, object] = {"anchor_ms": due.anchor}
        details.update(detection.details(spec, state, self.context, due))
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
        schedule(state, request, 0, self.releaser.hold_ms(request.journey))
