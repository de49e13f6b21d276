"""Declarative predicates over an event and a customer's counters, compiled to closures.

A predicate is a mapping; all of its keys must hold (AND). For example::

    type: purchase            # the event's type (a name or a list of names)
    amount: {gt: 500}         # a comparison on the event's amount
    purchases: {gte: 3}       # a counter of the customer, after this event
    counts: {property_viewing: {gte: 3}}   # per-type event counts
    properties: {product: crown}           # event properties: value, list or comparison
    reached: satisfied        # stages of this journey entered before (all listed)
    any: [{type: referral}, {source: referral}]
    not: {channel: sms}
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from journey.engine.vocabulary import CATEGORIES, category_of

if TYPE_CHECKING:
    from journey.engine.events import Event
    from journey.engine.state import CustomerState, JourneyPosition

#: A compiled predicate: (event, customer state, position in the journey) -> holds?
Check = Callable[["Event", "CustomerState", "JourneyPosition"], bool]
Scalar = str | int | float | bool


class Compare(BaseModel):
    """A numeric comparison; every bound given must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    eq: float | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Compare:
        if all(v is None for v in (self.gt, self.gte, self.lt, self.lte, self.eq)):
            raise ValueError("a comparison needs at least one of gt, gte, lt, lte, eq")
        return self

    def test(self, value: float | None) -> bool:
        if value is None:
            return False
        return not (
            (self.gt is not None and not value > self.gt)
            or (self.gte is not None and not value >= self.gte)
            or (self.lt is not None and not value < self.lt)
            or (self.lte is not None and not value <= self.lte)
            or (self.eq is not None and value != self.eq)
        )


OneOrMany = str | list[str]
PropertyTest = Scalar | list[Scalar] | Compare


class Predicate(BaseModel):
    """See the module docstring. An empty predicate always holds."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: OneOrMany | None = None
    category: OneOrMany | None = None
    channel: OneOrMany | None = None
    source: OneOrMany | None = None
    campaign: OneOrMany | None = None
    amount: Compare | None = None
    properties: dict[str, PropertyTest] | None = None
    touches: Compare | None = None
    purchases: Compare | None = None
    spend: Compare | None = None
    score: Compare | None = None
    referrals: Compare | None = None
    counts: dict[str, Compare] | None = None
    temperature: OneOrMany | None = None
    status: OneOrMany | None = None
    reached: OneOrMany | None = Field(
        None, description="Stages of this journey the customer has entered before (all of them)."
    )
    any_of: list[Predicate] | None = Field(None, alias="any")
    all_of: list[Predicate] | None = Field(None, alias="all")
    not_: Predicate | None = Field(None, alias="not")

    def compile(self, half_life_ms: int | None = None) -> Check:
        """A fast closure; the fields above are read once here, not per event.

        half_life_ms is the journey's score half-life, for `score` comparisons.
        """
        checks: list[Check] = []
        for name in ("type", "channel", "source", "campaign"):
            allowed = _as_set(getattr(self, name))
            if allowed is not None:
                checks.append(_event_attr_in(name, allowed))
        if (cats := _as_set(self.category)) is not None:
            checks.append(_category_in(cats))
        if self.amount is not None:
            checks.append(_amount(self.amount))
        for key, test in (self.properties or {}).items():
            checks.append(_property_check(key, test))
        for name in ("touches", "purchases", "spend", "referrals"):
            cmp = getattr(self, name)
            if cmp is not None:
                checks.append(_counter_check(name, cmp))
        if self.score is not None:
            checks.append(_score(self.score, half_life_ms))
        for event_type, cmp in (self.counts or {}).items():
            checks.append(_type_count(event_type, cmp))
        if (temps := _as_set(self.temperature)) is not None:
            checks.append(_state_attr_in("temperature", temps))
        if (statuses := _as_set(self.status)) is not None:
            checks.append(_state_attr_in("status", statuses))
        if (reached := _as_set(self.reached)) is not None:
            checks.append(_reached(reached))
        if self.any_of is not None:
            checks.append(_any([sub.compile(half_life_ms) for sub in self.any_of]))
        if self.all_of is not None:
            checks.append(_all([sub.compile(half_life_ms) for sub in self.all_of]))
        if self.not_ is not None:
            checks.append(_not(self.not_.compile(half_life_ms)))
        if not checks:
            return _always
        if len(checks) == 1:
            return checks[0]
        return _all(checks)

    def possible_types(self) -> frozenset[str] | None:
        """The event types that can satisfy this predicate, or None when any type can.

        Lets the engine skip predicates that cannot hold for an event's type.
        """
        bounds: list[frozenset[str]] = []
        if (types := _as_set(self.type)) is not None:
            bounds.append(types)
        if (cats := _as_set(self.category)) is not None and "custom" not in cats:
            bounds.append(frozenset(t for c in cats for t in CATEGORIES.get(c, ())))
        for sub in self.all_of or ():
            if (sub_types := sub.possible_types()) is not None:
                bounds.append(sub_types)
        if self.any_of is not None:
            union: set[str] = set()
            for sub in self.any_of:
                sub_types = sub.possible_types()
                if sub_types is None:
                    break
                union |= sub_types
            else:
                bounds.append(frozenset(union))
        if not bounds:
            return None
        result = bounds[0]
        for bound in bounds[1:]:
            result &= bound
        return result

    def stage_names(self) -> set[str]:
        """Stages this predicate names anywhere (for validation against the journey)."""
        found = set(_as_set(self.reached) or ())
        for sub in (self.any_of or []) + (self.all_of or []):
            found |= sub.stage_names()
        if self.not_ is not None:
            found |= self.not_.stage_names()
        return found

    def event_types(self) -> set[str]:
        """Event types this predicate names anywhere (for validation against the vocabulary)."""
        found = set(_as_set(self.type) or ())
        found |= set(self.counts or ())
        for sub in (self.any_of or []) + (self.all_of or []):
            found |= sub.event_types()
        if self.not_ is not None:
            found |= self.not_.event_types()
        return found


def _always(event: Event, state: CustomerState, position: JourneyPosition) -> bool:
    return True


def _as_set(value: OneOrMany | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value]) if isinstance(value, str) else frozenset(value)


def _event_attr_in(name: str, allowed: frozenset[str]) -> Check:
    return lambda e, s, p: getattr(e, name) in allowed


def _state_attr_in(name: str, allowed: frozenset[str]) -> Check:
    return lambda e, s, p: getattr(s, name) in allowed


def _reached(stages: frozenset[str]) -> Check:
    return lambda e, s, p: stages.issubset(p.entered_ms)


def _category_in(allowed: frozenset[str]) -> Check:
    return lambda e, s, p: category_of(e.type) in allowed


def _amount(cmp: Compare) -> Check:
    return lambda e, s, p: cmp.test(e.amount)


def _score(cmp: Compare, half_life_ms: int | None) -> Check:
    return lambda e, s, p: cmp.test(p.score_at(s.max_event_ms, half_life_ms))


def _type_count(event_type: str, cmp: Compare) -> Check:
    return lambda e, s, p: cmp.test(s.counts.get(event_type, 0))


def _any(checks: list[Check]) -> Check:
    def some(e: Event, s: CustomerState, p: JourneyPosition) -> bool:
        for f in checks:  # noqa: SIM110 - a plain loop is faster than any() over a genexpr
            if f(e, s, p):
                return True
        return False

    return some


def _all(checks: list[Check]) -> Check:
    if len(checks) == 2:
        first, second = checks
        return lambda e, s, p: first(e, s, p) and second(e, s, p)
    if len(checks) == 3:
        a, b, c = checks
        return lambda e, s, p: a(e, s, p) and b(e, s, p) and c(e, s, p)

    def every(e: Event, s: CustomerState, p: JourneyPosition) -> bool:
        for f in checks:  # noqa: SIM110 - a plain loop is faster than all() over a genexpr
            if not f(e, s, p):
                return False
        return True

    return every


def _not(check: Check) -> Check:
    return lambda e, s, p: not check(e, s, p)


def _single_bound(cmp: Compare) -> tuple[str, float] | None:
    bounds = [(op, v) for op in ("gt", "gte", "lt", "lte", "eq")
              if (v := getattr(cmp, op)) is not None]
    return bounds[0] if len(bounds) == 1 else None


def _counter_check(name: str, cmp: Compare) -> Check:
    if name == "referrals":
        return lambda e, s, p: cmp.test(s.referrals_unpaid + s.referrals_rewarded)
    get = operator.attrgetter(name)
    # Counters are never None: one bound compiles to one comparison.
    match _single_bound(cmp):
        case ("eq", v):
            return lambda e, s, p: get(s) == v
        case ("gte", v):
            return lambda e, s, p: get(s) >= v
        case ("gt", v):
            return lambda e, s, p: get(s) > v
        case ("lte", v):
            return lambda e, s, p: get(s) <= v
        case ("lt", v):
            return lambda e, s, p: get(s) < v
    return lambda e, s, p: cmp.test(get(s))


def _property_check(key: str, test: PropertyTest) -> Check:
    if isinstance(test, Compare):
        def compare(e: Event, s: CustomerState, p: JourneyPosition) -> bool:
            value: Any = e.properties.get(key)
            return isinstance(value, int | float) and not isinstance(value, bool) and test.test(
                float(value))
        return compare
    if isinstance(test, list):
        allowed = frozenset(test)
        return lambda e, s, p: _hashable(e.properties.get(key)) in allowed
    return lambda e, s, p: e.properties.get(key) == test


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) else None
