"""The trigger policy: one place that decides, before anything is emitted, if a trigger goes out."""

from __future__ import annotations

from typing import Protocol

from journey.engine.outputs import TriggerRequest, TriggerSuppressed
from journey.engine.state import CustomerState


class TriggerPolicy(Protocol):
    """Pure: given the customer's state and a request, emit it or say why not."""

    def decide(
        self, state: CustomerState, request: TriggerRequest
    ) -> TriggerRequest | TriggerSuppressed: ...


class ConsentPolicy:
    """Opted-out customers receive no marketing trigger; service triggers are exempt."""

    def decide(
        self, state: CustomerState, request: TriggerRequest
    ) -> TriggerRequest | TriggerSuppressed:
        if state.opted_out and request.kind == "marketing":
            return TriggerSuppressed(request, "opted_out")
        return request
