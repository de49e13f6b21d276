"""The numbers of a backtest: funnels, populations over time, triggers, holdout lift, economics."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from journey.engine.definitions import LIFECYCLE
from journey.lab.economics import Censoring, ChannelEconomics, censoring, channel_economics
from journey.lab.lift import Lift, Unit, lifts, units
from journey.lab.run import RunResult

WEEK_MS = 7 * 86_400_000
#: Lifecycle statuses in the order a reader expects them.
STATUS_ORDER = ("lead", "inactive_lead", "customer", "regular", "loyal", "reactivated",
                "at_risk", "dormant", "lost")
AT_RISK_STATUSES = ("inactive_lead", "at_risk", "dormant", "lost")


@dataclass(frozen=True, slots=True)
class FunnelStep:
    stage: str
    reached: int
    conversion: float | None  # reached / reached at the step before
    lost: int  # reached the step before but not this one


@dataclass(frozen=True, slots=True)
class Funnel:
    journey: str
    title: str
    steps: tuple[FunnelStep, ...]
    loss_peak: str | None  # the stage whose entry loses the most customers


@dataclass(slots=True)
class Analysis:
    input_name: str
    journeys: list[str]
    customers: int
    events: int
    dead_letters: dict[str, int]
    weeks: list[str]  # the first day of each week, ISO
    funnels: list[Funnel]
    populations: dict[str, dict[str, list[int]]]  # journey -> stage -> count per week
    triggers_by_rule: dict[str, list[int]]  # rule -> triggers per week
    audits_by_reason: dict[str, int]  # "decision: reason" -> count
    economics: list[ChannelEconomics]
    lifts: list[Lift]
    currency: str
    margin: float
    conversion_window_days: int
    holdout_share: float = 0.0
    holdout_salt: str = ""
    churn_cut: Censoring | None = None
    churn_model: bool = False  # the run was given churn parameters (engine and model LTV)
    lift_units: list[Unit] = field(default_factory=list)  # one row per customer and rule
    totals: dict[str, int] = field(default_factory=dict)


def analyse(result: RunResult, *, input_name: str, margin: float = 0.3,
            conversion_window_days: int = 30, primary_rule: str | None = None) -> Analysis:
    """Everything the report and the terminal summary show, from one run."""
    collected, facts = result.collected, result.facts
    start = _week_start(facts.first_ms or 0)
    end = result.until_ms or facts.last_ms or start
    week_starts = list(range(start, end + 1, WEEK_MS)) or [start]
    weeks = [datetime.fromtimestamp(ms / 1000, UTC).date().isoformat() for ms in week_starts]
    changes = sorted(collected.stage_changes, key=lambda c: c[4])  # stable: ties keep order
    funnels = [_funnel(d.name, d.title or d.name, [s.name for s in d.stages], changes)
               for d in result.definitions]
    orders = {d.name: [s.name for s in d.stages] for d in result.definitions}
    orders[LIFECYCLE] = list(STATUS_ORDER)
    populations = _populations(changes, week_starts, orders)
    triggers: dict[str, list[int]] = defaultdict(lambda: [0] * len(week_starts))
    for _, rule, _, at_ms, _, _, _ in collected.triggers:
        triggers[rule][_bucket(week_starts, at_ms)] += 1
    audits = Counter(f"{decision}: {reason}" for _, _, decision, reason, _, _, _, _
                     in collected.audits)
    lost_at: dict[str, int] = {}
    for journey, customer, _, to_stage, at_ms in changes:
        if journey == LIFECYCLE and to_stage == "lost":
            lost_at.setdefault(customer, at_ms)
    economics = channel_economics(facts, lost_at, margin=margin,
                                  churn_params=result.settings.churn_params)
    lift_units = _units(result, conversion_window_days * 86_400_000)
    return Analysis(
        input_name=input_name,
        journeys=[d.name for d in result.definitions],
        customers=len(facts.customers),
        events=result.summary.lines,
        dead_letters=dict(sorted(collected.dead_letters.items())),
        weeks=weeks,
        funnels=funnels,
        populations=populations,
        triggers_by_rule=dict(sorted(triggers.items())),
        audits_by_reason=dict(sorted(audits.items())),
        economics=economics,
        lifts=lifts(lift_units, primary=primary_rule),
        lift_units=lift_units,
        currency=facts.currency or "",
        margin=margin,
        conversion_window_days=conversion_window_days,
        holdout_share=result.settings.holdout_share,
        holdout_salt=result.settings.holdout_salt,
        churn_cut=censoring(facts, lost_at),
        churn_model=result.settings.churn_params is not None,
        totals={"stage_changes": len(collected.stage_changes),
                "triggers": len(collected.triggers), "audits": len(collected.audits),
                "dead_letters": sum(collected.dead_letters.values())},
    )


def _funnel(journey: str, title: str, stages: list[str],
            changes: list[tuple[str, str, str | None, str, int]]) -> Funnel:
    index = {name: i for i, name in enumerate(stages)}
    deepest: dict[str, int] = {}
    for j, customer, _, to_stage, _ in changes:
        if j == journey and to_stage in index:
            deepest[customer] = max(deepest.get(customer, -1), index[to_stage])
    depth = Counter(deepest.values())
    reached, running = [], 0
    for i in reversed(range(len(stages))):
        running += depth.get(i, 0)
        reached.append(running)
    reached.reverse()
    steps = []
    for i, stage in enumerate(stages):
        before = reached[i - 1] if i else None
        conversion = reached[i] / before if before else None
        steps.append(FunnelStep(stage, reached[i], conversion,
                                (before - reached[i]) if before is not None else 0))
    losses = [(s.lost, -i) for i, s in enumerate(steps) if i and s.lost > 0]
    peak = steps[-max(losses)[1]].stage if losses else None
    return Funnel(journey, title, tuple(steps), peak)


def _populations(changes: list[tuple[str, str, str | None, str, int]], week_starts: list[int],
                 orders: dict[str, list[str]]) -> dict[str, dict[str, list[int]]]:
    """Customers in each stage at the end of each week."""
    current: dict[tuple[str, str], str] = {}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    result: dict[str, dict[str, list[int]]] = {
        j: {s: [0] * len(week_starts) for s in stages} for j, stages in orders.items()}
    position = 0
    for w, start in enumerate(week_starts):
        week_end = start + WEEK_MS
        while position < len(changes) and changes[position][4] < week_end:
            journey, customer, _, to_stage, _ = changes[position]
            previous = current.get((journey, customer))
            if previous is not None:
                counts[journey][previous] -= 1
            current[(journey, customer)] = to_stage
            counts[journey][to_stage] += 1
            position += 1
        for journey, stages in result.items():
            for stage in stages:
                stages[stage][w] = counts[journey][stage]
    return result


def _units(result: RunResult, window_ms: int) -> list[Unit]:
    """Per customer and rule, by intention to treat from first eligibility (journey.lab.lift)."""
    collected = result.collected
    purchases = {cid: [at for at, _ in f.purchases] for cid, f in result.facts.customers.items()}
    sent = [(j, r, c, send_ms) for j, r, c, _, _, _, send_ms in collected.triggers]
    decided = [(j, r, d, why, c, decided_ms)
               for j, r, d, why, c, _, _, decided_ms in collected.audits]
    end = result.until_ms if result.until_ms is not None else (result.facts.last_ms or 0)
    return units(sent, decided, purchases, window_ms=window_ms, end_ms=end)


def _week_start(ms: int) -> int:
    day = datetime.fromtimestamp(ms / 1000, UTC).date()
    monday = day - timedelta(days=day.weekday())
    return int(datetime(monday.year, monday.month, monday.day, tzinfo=UTC).timestamp() * 1000)


def _bucket(week_starts: list[int], at_ms: int) -> int:
    return max(0, min(len(week_starts) - 1, (at_ms - week_starts[0]) // WEEK_MS))


def lifecycle_at_risk(analysis: Analysis) -> dict[str, list[int]]:
    """Dormant, at-risk, lost and inactive-lead customers per week."""
    statuses = analysis.populations.get(LIFECYCLE, {})
    return {s: statuses.get(s, [0] * len(analysis.weeks)) for s in AT_RISK_STATUSES}
