"""Journey definitions: data (YAML) that names stages, entry criteria, moves and rules.

A definition with an error is rejected at load time; the message names the file, the
path inside it and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from journey.engine.detections import DETECTION_RULES
from journey.engine.duration import DurationMs
from journey.engine.predicates import Predicate
from journey.engine.vocabulary import BUILTIN_TYPES

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]

#: The engine's own journey: lifecycle statuses. Definitions may not use this name.
LIFECYCLE = "lifecycle"


class DefinitionError(ValueError):
    """A journey definition is invalid. The message says where and what."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StageSpec(_Spec):
    name: Name
    description: str = ""
    entry: Predicate = Field(
        default_factory=Predicate, description="When a customer enters; empty: any event."
    )


class BackwardMove(_Spec):
    from_stage: Name = Field(alias="from")
    to_stage: Name = Field(alias="to")


class TriggerSpec(_Spec):
    reason: Name
    kind: Literal["marketing", "service"] = "marketing"
    valid_for: DurationMs | None = Field(None, description="Offer lifetime, e.g. 7d.")
    channel: str | None = Field(None, description="Default: the customer's last channel.")
    priority: int = Field(50, ge=0, le=100, description="Higher wins when triggers compete.")


class QuietHoursSpec(_Spec):
    """Local quiet hours; marketing triggers inside them are deferred (or dropped)."""

    enabled: bool = True
    start: time = Field(time(21, 0), description="Local start, e.g. 21:00.")
    end: time = Field(time(8, 0), description="Local end, e.g. 08:00; before start wraps.")
    action: Literal["defer", "drop"] = "defer"


class RulePolicySpec(_Spec):
    cooldown: DurationMs | None = Field(None, description="Least time between two sends.")
    once: bool = Field(False, description="Send at most once per customer, ever (re-entry).")
    quiet_hours: Literal["defer", "drop"] | None = None


class PolicySpec(_Spec):
    """How this journey's triggers are sent. Unset values take the deployment's defaults."""

    hold: DurationMs | None = Field(
        None, description="Wait before release so late opt-outs are honoured (marketing)."
    )
    quiet_hours: QuietHoursSpec | None = None
    holdout: float | None = Field(None, ge=0.0, lt=1.0, description="Share held out, 0-1.")
    cooldown: DurationMs | None = Field(None, description="Default cooldown of every rule.")
    rules: dict[Name, RulePolicySpec] = Field(default_factory=dict)


class RuleSpec(_Spec):
    name: Name
    description: str = ""
    when: Predicate
    trigger: TriggerSpec
    once: bool = Field(True, description="Fire at most once per customer in this journey.")
    every: DurationMs | None = Field(
        None, description="With once: false, the least event time between two firings."
    )
    stages: list[Name] | None = Field(None, description="Only while in one of these stages.")
    delay: DurationMs = Field(0, description="Release the trigger this long after it fires.")


class ExitSpec(_Spec):
    """Exit criteria / conversion goal: an event that ends what is pending for the customer
    in this journey. Its pending triggers (all, or the rules named in `cancel`) fired at or
    before the event are cancelled; each goes to trigger-audit as `cancelled` with the
    exit's name as the reason."""

    name: Name
    description: str = ""
    when: Predicate
    cancel: list[Name] | None = Field(
        None, description="Rules whose pending triggers it cancels; omitted: every rule of "
        "this journey. Detection rules (e.g. win_back) name the customer's lifecycle triggers.",
    )
    stages: list[Name] | None = Field(None, description="Only while in one of these stages.")


class ScoringSpec(_Spec):
    points: dict[Name, float] = Field(default_factory=dict)
    half_life: DurationMs | None = Field(None, description="Score halves after this long.")


class DetectionSpec(_Spec):
    enabled: bool = True
    valid_for: DurationMs | None = Field(14 * 86_400_000, description="Offer lifetime.")
    priority: int = Field(50, ge=0, le=100)
    channel: str | None = None


class InactiveLeadSpec(DetectionSpec):
    """seed 004: a lead who does not buy within one month becomes inactive."""

    after: DurationMs = Field(30 * 86_400_000, description="seed 004: one month (30d).")


class DormantSpec(DetectionSpec):
    """A customer sleeps when the time since their last purchase exceeds k times their own
    typical gap; with too few purchases to have a gap, after a global threshold (choice)."""

    gap_multiplier: float = Field(2.0, gt=1.0, description="k (choice: 2).")
    min_purchases: int = Field(3, ge=2, description="Purchases needed to trust the gap.")
    min_quiet: DurationMs = Field(7 * 86_400_000, description="Never sooner than this.")
    fallback: DurationMs = Field(90 * 86_400_000, description="Without a gap (choice: 90d).")
    priority: int = Field(60, ge=0, le=100)


class ChurnRiskSpec(DetectionSpec):
    """BG/NBD or MBG/NBD P(alive) below a threshold (needs fitted parameters)."""

    threshold: float = Field(0.3, gt=0.0, lt=1.0, description="P(alive) below this: at risk.")
    priority: int = Field(65, ge=0, le=100)


class ComplaintSpec(DetectionSpec):
    """seed 004: a customer turns toxic when the response is missing, not at the incident."""

    respond_within: DurationMs = Field(48 * 3_600_000, description="choice: 48h.")
    valid_for: DurationMs | None = Field(2 * 86_400_000)
    priority: int = Field(95, ge=0, le=100)


class LostSpec(DetectionSpec):
    """No reaction within this period after the last reactivation attempt: lost (history kept)."""

    after: DurationMs = Field(60 * 86_400_000, description="choice: 60d.")
    valid_for: DurationMs | None = Field(30 * 86_400_000)
    priority: int = Field(40, ge=0, le=100)


class LowSeasonSpec(DetectionSpec):
    """seed 003: low seasons (e.g. November-February for a photographer) are the time to
    invite regular customers back, asleep or not. Off unless a journey turns it on."""

    enabled: bool = False
    months: list[Annotated[int, Field(ge=1, le=12)]] = Field(
        default_factory=lambda: [11, 12, 1, 2], min_length=1, max_length=11
    )
    min_purchases: int = Field(
        3, ge=1, description="Who counts as a regular customer (seed 001: from 3 purchases)."
    )
    valid_for: DurationMs | None = Field(30 * 86_400_000)
    priority: int = Field(45, ge=0, le=100)


class DetectionsSpec(_Spec):
    """Time-driven detections of this journey; each fires a status change and a trigger.
    One field per entry of journey.engine.detections.DETECTIONS, named by its kind."""

    inactive_lead: InactiveLeadSpec = Field(default_factory=InactiveLeadSpec)
    dormant: DormantSpec = Field(default_factory=DormantSpec)
    churn_risk: ChurnRiskSpec = Field(default_factory=ChurnRiskSpec)
    complaint: ComplaintSpec = Field(default_factory=ComplaintSpec)
    lost: LostSpec = Field(default_factory=LostSpec)
    low_season: LowSeasonSpec = Field(default_factory=LowSeasonSpec)


class JourneyDefinition(_Spec):
    name: Name
    title: str = ""
    description: str = ""
    source: str = Field("", description="Where the model comes from (seed, book, practice).")
    in_order: bool = Field(
        True, description="Stages are entered one after another; no stage is skipped."
    )
    stages: list[StageSpec] = Field(min_length=1)
    backward: list[BackwardMove] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
    exits: list[ExitSpec] = Field(
        default_factory=list, description="Exit criteria and conversion goals."
    )
    scoring: ScoringSpec = Field(default_factory=ScoringSpec)
    detections: DetectionsSpec = Field(default_factory=DetectionsSpec)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    custom_types: list[Name] = Field(
        default_factory=list, description="Event types this journey uses beyond the vocabulary."
    )

    @model_validator(mode="after")
    def _consistent(self) -> JourneyDefinition:
        if self.name == LIFECYCLE:
            raise ValueError(f"the name {LIFECYCLE!r} is reserved for lifecycle statuses")
        names = [s.name for s in self.stages]
        _no_duplicates("stage", names)
        _no_duplicates("rule", [r.name for r in self.rules])
        index = {n: i for i, n in enumerate(names)}
        for move in self.backward:
            for end in (move.from_stage, move.to_stage):
                if end not in index:
                    raise ValueError(f"backward move names unknown stage {end!r}")
            if index[move.to_stage] >= index[move.from_stage]:
                raise ValueError(
                    f"backward move {move.from_stage} -> {move.to_stage} does not go backward"
                )
        for rule in self.rules:
            for stage in rule.stages or ():
                if stage not in index:
                    raise ValueError(f"rule {rule.name!r} names unknown stage {stage!r}")
        _no_duplicates("exit", [e.name for e in self.exits])
        cancellable = {r.name for r in self.rules} | DETECTION_RULES
        for exit_spec in self.exits:
            for stage in exit_spec.stages or ():
                if stage not in index:
                    raise ValueError(f"exit {exit_spec.name!r} names unknown stage {stage!r}")
            if unknown_cancel := sorted(set(exit_spec.cancel or ()) - cancellable):
                raise ValueError(f"exit {exit_spec.name!r} cancels unknown rules {unknown_cancel}")
        named = set()
        for stage_spec in self.stages:
            named |= stage_spec.entry.stage_names()
        for rule in self.rules:
            named |= rule.when.stage_names()
        for exit_spec in self.exits:
            named |= exit_spec.when.stage_names()
        if unknown_stages := sorted(named - set(index)):
            raise ValueError(f"'reached' names unknown stages {unknown_stages}")
        known_rules = {r.name for r in self.rules} | DETECTION_RULES
        if unknown_rules := sorted(set(self.policy.rules) - known_rules):
            raise ValueError(f"policy names unknown rules {unknown_rules}")
        known = BUILTIN_TYPES | set(self.custom_types)
        unknown = sorted(self.event_types() - known)
        if unknown:
            raise ValueError(
                f"unknown event types {unknown}; fix the spelling or list them in custom_types"
            )
        return self

    def event_types(self) -> set[str]:
        """Every event type this definition names: in stages, rules, exits and scoring."""
        used = set(self.scoring.points) | set(self.custom_types)
        for stage_spec in self.stages:
            used |= stage_spec.entry.event_types()
        for rule in self.rules:
            used |= rule.when.event_types()
        for exit_spec in self.exits:
            used |= exit_spec.when.event_types()
        return used


def _no_duplicates(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} {name!r} is defined twice")
        seen.add(name)


def parse_definition(text: str, origin: str) -> JourneyDefinition:
    """Parse and validate YAML text; errors name `origin`, the path inside it, and the problem."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise DefinitionError(f"{origin}: a journey definition is a mapping at the top level")
    try:
        return JourneyDefinition.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(f"{origin}: {where}: {err['msg']}")
        raise DefinitionError("\n".join(problems)) from None


def load_definition(path: Path) -> JourneyDefinition:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_definition(text, str(path))


def preset_names() -> list[str]:
    folder = resources.files("journey.presets")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> JourneyDefinition:
    folder = resources.files("journey.presets")
    resource = folder.joinpath(f"{name}.yaml")
    if not resource.is_file():
        raise DefinitionError(f"no preset named {name!r}; presets: {', '.join(preset_names())}")
    return parse_definition(resource.read_text(encoding="utf-8"), f"preset:{name}")


def load_definitions(specs: Iterable[str]) -> list[JourneyDefinition]:
    """Load each spec: a preset name, or a path to a YAML file. Names must be unique."""
    loaded: list[JourneyDefinition] = []
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        path = Path(spec)
        is_file = spec.endswith((".yaml", ".yml")) or path.exists()
        loaded.append(load_definition(path) if is_file else load_preset(spec))
    names = [d.name for d in loaded]
    for name in set(names):
        if names.count(name) > 1:
            raise DefinitionError(f"two definitions are named {name!r}")
    return loaded
