"""The engine's settings: the deployment's choices, and what the definitions must agree on.

Resolved once, when an engine is built: the lifecycle detections' settings and the trigger
policy of every journey (its `policy:` block over the deployment's defaults).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from journey.engine.alive import ChurnParams
from journey.engine.definitions import (
    DefinitionError,
    DetectionsSpec,
    JourneyDefinition,
    RulePolicySpec,
)
from journey.engine.detections import DETECTIONS, LIFECYCLE_KINDS, LIFECYCLE_RULES
from journey.engine.duration import DAY_MS
from journey.engine.policy import ContactBudget, JourneyPolicy, QuietHours, RulePolicy

_S = TypeVar("_S")


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


def journey_policy(d: JourneyDefinition, config: EngineConfig) -> JourneyPolicy:
    """One journey's trigger policy: its `policy:` block over the deployment's defaults."""
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
