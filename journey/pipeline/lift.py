"""Live holdout lift: per rule and arm, the customers assigned at their first eligibility and
those who bought within the window after it, as the report counts them (journey.lab.lift).

Read from the engine's outputs, which carry each decision: a held_out decision assigns the
customer to the held-out arm; a send, a deferral or a suppression by a check after the
holdout (cooldown, once, quiet hours, contact budget) to the treated arm. Expired, opted-out
and cancelled triggers assign nobody. Each customer is assigned once per rule, and converts
once per rule; the memory of both rides in the customer's state (`CustomerState.lift`), so a
restart or a rebalance counts nobody twice. Only deployments with a holdout keep it.
"""

from __future__ import annotations

from collections.abc import Iterable

from journey.engine import CustomerState, Engine, Output, TriggerRequest
from journey.engine.outputs import TriggerSuppressed

#: A purchase this long after first eligibility counts as converted (the report's default).
LIFT_WINDOW_MS = 30 * 86_400_000
#: Reasons of the checks made before the holdout: the trigger assigns nobody.
BEFORE_HOLDOUT = frozenset({"expired", "opted_out"})
HELD_OUT, TREATED = 1, 0
ARMS = {HELD_OUT: "held_out", TREATED: "treated"}
#: (journey, rule, arm, "assigned" or "converted")
Count = tuple[str, str, str, str]


def holdout_configured(engine: Engine) -> bool:
    """Whether any journey of the engine holds customers out."""
    return engine.config.holdout > 0 or any(
        (j.definition.policy.holdout or 0) > 0 for j in engine.journeys)


class LiftTracker:
    """Assignments and conversions of one customer's step, appended to `counts`."""

    def __init__(self, window_ms: int = LIFT_WINDOW_MS) -> None:
        self.window_ms = window_ms

    def observe(self, state: CustomerState, outputs: Iterable[Output],
                purchase_ms: int | None, counts: list[Count]) -> None:
        window = self.window_ms
        for output in outputs:
            assigned = _assignment(output)
            if assigned is None:
                continue
            journey, rule, arm, at_ms = assigned
            key = f"{journey}/{rule}"
            if key in state.lift:
                continue
            # A purchase may have been applied before the decision (it waits for the
            # allowed lateness): the recent purchases say whether it falls in the window.
            bought = int(any(at_ms < t <= at_ms + window for t in state.purchase_times))
            state.lift[key] = [at_ms, arm, bought]
            counts.append((journey, rule, ARMS[arm], "assigned"))
            if bought:
                counts.append((journey, rule, ARMS[arm], "converted"))
        if purchase_ms is None:
            return
        for key, entry in state.lift.items():
            at_ms, arm, bought = entry
            if not bought and at_ms < purchase_ms <= at_ms + window:
                entry[2] = 1
                journey, rule = key.split("/", 1)
                counts.append((journey, rule, ARMS[arm], "converted"))


def _assignment(output: Output) -> tuple[str, str, int, int] | None:
    """(journey, rule, arm, decision time) of an output that assigns, else None."""
    if isinstance(output, TriggerRequest):
        at_ms = output.send_at_ms if output.send_at_ms is not None else output.at_ms
        return output.journey, output.rule, TREATED, at_ms
    if isinstance(output, TriggerSuppressed):
        request = output.request
        at = output.at_ms if output.at_ms is not None else request.at_ms
        if output.decision == "held_out":
            return request.journey, request.rule, HELD_OUT, at
        if output.decision in ("deferred", "suppressed") and output.reason not in BEFORE_HOLDOUT:
            return request.journey, request.rule, TREATED, at
    return None
