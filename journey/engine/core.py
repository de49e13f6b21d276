"""The engine: applies one event to one customer's state and says what to publish."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from journey.engine.events import Event
from journey.engine.outputs import Output, StageChange, TriggerRequest
from journey.engine.state import CustomerState, JourneyPosition

LIFECYCLE = "lifecycle"


@dataclass(slots=True)
class Step:
    """The result of applying one event: the new state and the outputs, in order."""

    state: CustomerState
    outputs: list[Output] = field(default_factory=list)


class Engine:
    """Pure and deterministic: no I/O, no wall clock; time comes from the events."""

    def apply(self, state: CustomerState | None, event: Event) -> Step:
        if state is None:
            state = CustomerState(customer_id=event.customer_id)
        outputs: list[Output] = []
        state.touches += 1
        if state.first_touch_ms is None:
            state.first_touch_ms = event.at_ms
        if state.last_touch_ms is None or event.at_ms > state.last_touch_ms:
            state.last_touch_ms = event.at_ms
        position = state.journeys.setdefault(LIFECYCLE, JourneyPosition())
        if position.stage is None:
            self._move(state, position, "lead", event, outputs)
        if event.type == "purchase":
            state.purchases += 1
            state.spend += event.amount or 0.0
            if state.purchases == 1:
                self._move(state, position, "customer", event, outputs)
                outputs.append(
                    TriggerRequest(
                        customer_id=state.customer_id,
                        journey=LIFECYCLE,
                        rule="first_purchase_follow_up",
                        reason="first_purchase",
                        episode=event.event_id,
                        at_ms=event.at_ms,
                        stage=position.stage,
                        channel=event.channel,
                        details={"amount": event.amount},
                    )
                )
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

    @staticmethod
    def _move(
        state: CustomerState,
        position: JourneyPosition,
        to_stage: str,
        event: Event,
        outputs: list[Output],
    ) -> None:
        previous = position.stage
        spent = None
        if previous is not None:
            spent = event.at_ms - position.entered_ms[previous]
        position.stage = to_stage
        position.entered_ms[to_stage] = event.at_ms
        outputs.append(
            StageChange(
                customer_id=state.customer_id,
                journey=LIFECYCLE,
                from_stage=previous,
                to_stage=to_stage,
                cause_event_id=event.event_id,
                at_ms=event.at_ms,
                ms_in_previous_stage=spent,
            )
        )
