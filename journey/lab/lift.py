"""Holdout lift per rule by intention to treat, with intervals adjusted for many rules at once.

The unit is the customer, not the trigger: one row per customer and rule, counted from the
moment the customer first became eligible for the rule, in either arm. Eligible means the rule
fired and its trigger passed the policy's checks that come before the holdout (not expired,
not opted out), which is exactly when the policy assigns the customer to an arm: a held_out
decision puts them in the held-out arm; a send, a deferral, or a suppression by a later check
(cooldown, once, quiet hours, contact budget) puts them in the treated arm, and they stay there
whatever later suppression does. Both arms are therefore counted from the same moment, and the
treated arm's actual-send rate is shown beside the lift.

Converted = bought within (eligibility, eligibility + window]. A customer who became eligible
less than a window before the data ends is left out (right-censored) in both arms alike.

Many rules are read together, so the intervals are simultaneous (Bonferroni: each at
1 - 0.05 / m for m rules) and the p-values Holm-adjusted; "significant" means the Holm-adjusted
p-value is below 0.05, so across all the rules of one report the chance that any rule without
a real effect is called significant is at most 5%. A primary rule named in advance is tested
on its own at 95% and kept out of the family.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Literal

import orjson

from journey.engine.events import from_epoch_ms

#: Audit decisions and reasons of checks made before the holdout: not eligible.
BEFORE_HOLDOUT = frozenset({"expired", "opted_out"})
ALPHA = 0.05
Arm = Literal["treated", "held_out"]


@dataclass(frozen=True, slots=True)
class Assignment:
    """One customer's place in one rule's experiment."""

    arm: Arm
    eligible_ms: int


@dataclass(frozen=True, slots=True)
class Lift:
    journey: str
    rule: str
    treated: int
    treated_converted: int
    treated_sent: int  # treated customers the rule actually sent to
    held_out: int
    held_out_converted: int
    too_recent: int  # eligible less than a window before the data ends, both arms
    lift: float | None  # conversion of the treated minus that of the held-out
    low: float | None  # the adjusted (simultaneous) interval; the primary rule's is 95%
    high: float | None
    p_value: float | None  # unadjusted, two-sided
    p_adjusted: float | None  # Holm; the primary rule's is its own
    primary: bool = False

    @property
    def significant(self) -> bool:
        return self.p_adjusted is not None and self.p_adjusted < ALPHA

    @property
    def send_rate(self) -> float | None:
        return self.treated_sent / self.treated if self.treated else None


Key = tuple[str, str]  # (journey, rule)
#: (journey, rule, customer, send_at_ms)
Sent = tuple[str, str, str, int]
#: (journey, rule, decision, reason, customer, decided_ms)
Decided = tuple[str, str, str, str, str, int]


def assign(sent: Iterable[Sent], decided: Iterable[Decided]) -> dict[Key, dict[str, Assignment]]:
    """Per rule and customer: the arm and the first moment of eligibility."""
    first: dict[Key, dict[str, Assignment]] = {}

    def note(key: Key, customer: str, arm: Arm, at_ms: int) -> None:
        rule = first.setdefault(key, {})
        known = rule.get(customer)
        if known is None or at_ms < known.eligible_ms:
            rule[customer] = Assignment(arm, at_ms)

    for journey, rule, customer, at_ms in sent:
        note((journey, rule), customer, "treated", at_ms)
    for journey, rule, decision, reason, customer, at_ms in decided:
        if decision == "held_out":
            note((journey, rule), customer, "held_out", at_ms)
        elif decision in ("deferred", "suppressed") and reason not in BEFORE_HOLDOUT:
            note((journey, rule), customer, "treated", at_ms)
    return first


@dataclass(frozen=True, slots=True)
class Unit:
    """One customer in one rule's experiment: the row the lift counts."""

    journey: str
    rule: str
    customer_id: str
    arm: Arm
    eligible_ms: int
    sent: bool  # the rule sent this customer a trigger (treated arm only)
    converted: bool | None  # None: eligible less than a window before the data ends


def units(
    sent: Sequence[Sent], decided: Sequence[Decided], purchases: Mapping[str, list[int]], *,
    window_ms: int, end_ms: int,
) -> list[Unit]:
    """Every customer of every rule that held someone out, by rule, journey and customer;
    `purchases` per customer must be sorted (event time)."""
    sent_to = {(j, r, c) for j, r, c, _ in sent}
    out = []
    for key, customers in sorted(assign(sent, decided).items(), key=lambda kv: kv[0][::-1]):
        if not any(a.arm == "held_out" for a in customers.values()):
            continue
        for customer, a in sorted(customers.items()):
            converted = (None if a.eligible_ms + window_ms > end_ms else
                         _bought(purchases.get(customer, []), a.eligible_ms, window_ms))
            out.append(Unit(*key, customer, a.arm, a.eligible_ms,
                            (*key, customer) in sent_to, converted))
    return out


def lifts(rows: Iterable[Unit], *, primary: str | None = None) -> list[Lift]:
    """One row per rule, in the order of the units, adjusted for many rules."""
    tallies: dict[Key, list[int]] = {}
    for u in rows:
        # treated, treated converted, treated sent, held out, held out converted, too recent
        t = tallies.setdefault((u.journey, u.rule), [0] * 6)
        if u.converted is None:
            t[5] += 1
        elif u.arm == "treated":
            t[0], t[1], t[2] = t[0] + 1, t[1] + u.converted, t[2] + u.sent
        else:
            t[3], t[4] = t[3] + 1, t[4] + u.converted
    return adjust([_row(key, t, primary) for key, t in tallies.items()])


def write_units(rows: Iterable[Unit], path: Path) -> None:
    """The rows the lift counts, one JSON object per customer and rule, for re-analysis."""
    with path.open("wb") as handle:
        for u in rows:
            handle.write(orjson.dumps({
                "journey": u.journey, "rule": u.rule, "customer_id": u.customer_id,
                "arm": u.arm, "eligible_at": from_epoch_ms(u.eligible_ms).isoformat(),
                "sent": u.sent, "converted": u.converted}) + b"\n")


def _bought(times: list[int], after_ms: int, window_ms: int) -> bool:
    i = bisect.bisect_right(times, after_ms)
    return i < len(times) and times[i] <= after_ms + window_ms


def _row(key: Key, t: list[int], primary: str | None) -> Lift:
    n1, s1, reached, n2, s2, too_recent = t
    d = p = None
    if n1 and n2:
        d, p = s1 / n1 - s2 / n2, newcombe_p(s1, n1, s2, n2)
    return Lift(key[0], key[1], n1, s1, reached, n2, s2, too_recent, d, None, None, p, None,
                primary in (key[1], f"{key[0]}/{key[1]}"))


def adjust(rows: list[Lift]) -> list[Lift]:
    """Holm-adjusted p-values and Bonferroni intervals over the rules with both arms; the
    primary rule keeps its own p-value and a 95% interval."""
    family = [x for x in rows if x.p_value is not None and not x.primary]
    m = len(family)
    holm = dict(zip((id(x) for x in family),
                    holm_adjust([x.p_value or 0.0 for x in family]), strict=True))
    out = []
    for x in rows:
        if x.p_value is None:
            out.append(x)
            continue
        level = 1 - ALPHA if x.primary else 1 - ALPHA / m
        _, low, high = newcombe(x.treated_converted, x.treated, x.held_out_converted,
                                x.held_out, level=level)
        adjusted = x.p_value if x.primary else holm[id(x)]
        out.append(Lift(x.journey, x.rule, x.treated, x.treated_converted, x.treated_sent,
                        x.held_out, x.held_out_converted, x.too_recent, x.lift, low, high,
                        x.p_value, adjusted, x.primary))
    return out


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (valid whatever the dependence between rules)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def _bounds(s1: int, n1: int, s2: int, n2: int, z: float) -> tuple[float, float]:
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson(s1, n1, z)
    l2, u2 = wilson(s2, n2, z)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def newcombe(s1: int, n1: int, s2: int, n2: int, *,
             level: float = 0.95) -> tuple[float, float, float]:
    """Difference of two proportions with Newcombe's hybrid score interval (1998, method
    10): honest for small groups and for 0 or 100% conversion, unlike the normal one."""
    low, high = _bounds(s1, n1, s2, n2, _z(level))
    return s1 / n1 - s2 / n2, low, high


def newcombe_p(s1: int, n1: int, s2: int, n2: int) -> float:
    """The two-sided p-value that matches the interval: the smallest 1 - level at which
    Newcombe's interval holds zero (found by bisection on z)."""
    d = s1 / n1 - s2 / n2
    if d == 0:
        return 1.0
    side = 0 if d > 0 else 1  # the bound that moves towards zero
    low_z, high_z = 0.0, 40.0
    for _ in range(60):
        mid = (low_z + high_z) / 2
        bound = _bounds(s1, n1, s2, n2, mid)[side]
        if (bound > 0) == (d > 0):
            low_z = mid
        else:
            high_z = mid
    return math.erfc(low_z / math.sqrt(2))
