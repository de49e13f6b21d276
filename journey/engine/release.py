"""Release: fired triggers wait in the state until their time, then the policy decides.

A fired trigger is released after its rule's delay, plus, for marketing, the hold that lets
a late opt-out be seen first. At release the trigger policy (journey/engine/policy.py) says
send, defer, hold out or suppress; every decision is kept in the state for the lookup.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from journey.engine.outputs import Decision, Output, TriggerRequest, TriggerSuppressed
from journey.engine.policy import ContactBudget, JourneyPolicy, TriggerPolicy, offer_code
from journey.engine.state import DECISION_HISTORY, CustomerState

_NO_POLICY = JourneyPolicy()


class Releaser:
    """Releases a customer's pending triggers through the trigger policy."""

    def __init__(
        self,
        policy: TriggerPolicy,
        policies: Mapping[str, JourneyPolicy],
        delays: Mapping[str, Mapping[str, int]],
        budget: ContactBudget | None,
        offer_secret: str,
    ) -> None:
        """`policies` and `delays` by journey name (delays: each rule's, where it has one)."""
        self.policy = policy
        self.policies = policies
        self.delays = delays
        self.budget = budget
        self.offer_secret = offer_secret

    def hold_ms(self, journey: str) -> int:
        """How long the journey's marketing triggers are held before release."""
        found = self.policies.get(journey)
        return 0 if found is None else found.hold_ms

    def release_until(
        self, state: CustomerState, marketing_ms: int, release_ms: int, outputs: list[Output]
    ) -> None:
        """Release every trigger due: service ones by release_ms, marketing by marketing_ms."""
        while (at := next_release(state.pending, marketing_ms, release_ms)) is not None:
            self.release_at(state, at, outputs, marketing_ms)

    def release_at(
        self, state: CustomerState, at_ms: int, outputs: list[Output], marketing_ms: int
    ) -> None:
        """Decide every trigger released at at_ms, higher priority first (they compete for
        the contact budget). Marketing ones wait while at_ms is after marketing_ms."""
        settled = at_ms <= marketing_ms
        due: list[TriggerRequest] = []
        kept: list[tuple[int, TriggerRequest]] = []
        for item in state.pending:
            if item[0] == at_ms and (settled or item[1].kind != "marketing"):
                due.append(item[1])
            else:
                kept.append(item)
        state.pending = kept
        if len(due) > 1:
            due.sort(key=lambda r: (-r.priority, r.trigger_id))
        for request in due:
            jpolicy = self.policies.get(request.journey) or _NO_POLICY
            decision = self.policy.decide(state, request, jpolicy, at_ms)
            if decision.kind == "send":
                outputs.append(self._send(state, request, at_ms))
            elif decision.kind == "defer" and decision.until_ms is not None:
                bisect.insort(state.pending, (decision.until_ms, request), key=pending_order)
                outputs.append(remember(state, TriggerSuppressed(
                    request, decision.reason, "deferred", at_ms, decision.until_ms)))
            else:
                label: Decision = "held_out" if decision.kind == "hold_out" else "suppressed"
                outputs.append(remember(state, TriggerSuppressed(
                    request, decision.reason, label, at_ms)))

    def _send(self, state: CustomerState, request: TriggerRequest, at_ms: int) -> TriggerRequest:
        send_at = at_ms
        if request.kind == "marketing":
            # Contacts are recorded in time order, so the budget holds in every window.
            if state.contacts:
                send_at = max(send_at, state.contacts[-1])
            state.contacts.append(send_at)
            budget = self.budget
            if budget is not None:
                state.contacts = [t for t in state.contacts if t > send_at - budget.window_ms]
            else:
                del state.contacts[:-16]
        state.sent[f"{request.journey}/{request.rule}"] = send_at
        record_decision(state, [send_at, request.journey, request.rule, request.trigger_id,
                                "sent", request.reason, request.details])
        return request.released(send_at, offer_code(request.trigger_id, self.offer_secret))

    def why_held(self, request: TriggerRequest, release_ms: int) -> list[str]:
        """Why a pending trigger waits until release_ms: its rule's delay, the hold that
        lets a late opt-out be seen (marketing), or a deferral by the policy."""
        reasons: list[str] = []
        delays = self.delays.get(request.journey)
        delay = delays.get(request.rule, 0) if delays is not None else 0
        hold = self.hold_ms(request.journey)
        planned = request.at_ms + delay + (hold if request.kind == "marketing" else 0)
        if delay:
            reasons.append("rule_delay")
        if request.kind == "marketing" and hold:
            reasons.append("opt_out_hold")
        if release_ms != planned:
            reasons.append("deferred")
        return reasons


def schedule(state: CustomerState, request: TriggerRequest, delay_ms: int, hold_ms: int) -> None:
    """A fired trigger waits until its release time: its rule's delay, plus for marketing
    the hold that lets a late opt-out be seen first."""
    release = request.at_ms + delay_ms
    if request.kind == "marketing":
        release += hold_ms
    bisect.insort(state.pending, (release, request), key=pending_order)


def next_release(
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


def pending_order(item: tuple[int, TriggerRequest]) -> tuple[int, str]:
    return item[0], item[1].trigger_id


def record_decision(state: CustomerState, decision: list[Any]) -> None:
    state.decisions.append(decision)
    del state.decisions[:-DECISION_HISTORY]


def remember(state: CustomerState, withheld: TriggerSuppressed) -> TriggerSuppressed:
    """Keep a withheld trigger's decision in the state (for the lookup) and pass it on."""
    r = withheld.request
    details: dict[str, Any] = dict(r.details)
    if withheld.until_ms is not None:
        details["deferred_until_ms"] = withheld.until_ms
    record_decision(state, [withheld.at_ms if withheld.at_ms is not None else r.at_ms,
                            r.journey, r.rule, r.trigger_id, withheld.decision,
                            withheld.reason, details])
    return withheld
