"""Unit economics per acquisition channel, with the formulas of the seeds (DOMAIN.md section 6).

- cost per lead = channel cost / leads; CAC = channel cost / new customers (seed 004);
- churn per month, right-censored: a customer departs at their last purchase once the engine
  has marked them lost (and they never bought again). Months are 30.4375-day periods from the
  first purchase in the data; only months that end before the censoring point count (the
  data's end minus the longest lag seen from a last purchase to "lost": a departure after it
  cannot be seen yet). Monthly churn = customers who departed during a month / customers
  active at its start (bought before it, not departed), summed over the months counted;
- LTV (seed 003) = profit per transaction x transactions per customer
  = margin x average check x purchases per year x expected years, where purchases per year
  are those of the active customer-months and expected years = 1 / (12 x monthly churn);
- LTV (seed 004) = margin per customer per month / monthly churn, the margin of the
  purchases active customers made in the months counted. With the same churn the two seeds
  differ only in the average check (all purchases, against the active months' purchases);
- LTV (model) = mean CLV from BG/NBD or MBG/NBD and Gamma-Gamma, when the churn parameters
  include a spend model (`journey churn fit --amount-column ...`);
- LTV:CAC should be above 3:1 (seed 004); CAC payback = CAC / monthly margin per customer,
  in months, should be under 12 (seed 004).
Costs come from acquisition events' properties.cost (see journey.lab.simulate).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from journey.churn.scores import score_customers
from journey.churn.spend import read_spend_params
from journey.churn.transactions import Transaction, summarise
from journey.engine.alive import read_params_file
from journey.lab.facts import InputFacts

MONTH_MS = 30.4375 * 86_400_000
YEAR_MONTHS = 12.0
#: LTV:CAC above this is healthy (seed 004); CAC payback under this many months (seed 004).
LTV_CAC_TARGET = 3.0
PAYBACK_TARGET_MONTHS = 12.0


@dataclass(frozen=True, slots=True)
class ChannelEconomics:
    channel: str
    leads: int
    customers: int
    cost: float
    revenue: float
    transactions: int
    cost_per_lead: float | None
    cac: float | None
    ltv_seed003: float | None
    ltv_seed004: float | None
    ltv_model: float | None
    ltv_cac: float | None  # the model's LTV when there is one, else seed 003's
    payback_months: float | None
    # the inputs, printed under the table
    average_check: float | None = None
    purchases_per_year: float | None = None
    expected_years: float | None = None
    monthly_margin: float | None = None  # per customer, of the months counted
    departures: int = 0  # in the months counted
    active_months: int = 0  # customer-months active at the start, in the months counted
    monthly_churn: float | None = None


@dataclass(frozen=True, slots=True)
class Censoring:
    """Where churn stops being visible: the data's end minus the longest lag to "lost"."""

    end_ms: int
    lag_ms: int

    @property
    def at_ms(self) -> int:
        return self.end_ms - self.lag_ms


def censoring(facts: InputFacts, lost_at: dict[str, int]) -> Censoring:
    lags = [at - facts.customers[c].purchases[-1][0] for c, at in lost_at.items()
            if c in facts.customers and facts.customers[c].purchases]
    return Censoring(facts.last_ms or 0, max([0, *lags]))


def channel_economics(
    facts: InputFacts,
    lost_at: dict[str, int],
    *,
    margin: float,
    churn_params: Path | None = None,
    model_horizon_months: float = 12.0,
) -> list[ChannelEconomics]:
    """One row per first-touch source, sorted by name; the last row is all channels."""
    model_ltv = _model_ltv(facts, churn_params, margin, model_horizon_months)
    cut = censoring(facts, lost_at)
    channels: dict[str, list[str]] = {}
    for customer_id, f in facts.customers.items():
        channels.setdefault(f.source, []).append(customer_id)
    rows = [_row(name, ids, facts, lost_at, margin, model_ltv, cut)
            for name, ids in sorted(channels.items())]
    if len(rows) > 1:
        rows.append(_row("all", list(facts.customers), facts, lost_at, margin, model_ltv, cut))
    return rows


def _departed_ms(facts: InputFacts, customer: str, lost_at: dict[str, int]) -> int | None:
    """The last purchase of a customer marked lost who never bought after it, else None."""
    lost = lost_at.get(customer)
    last = facts.customers[customer].purchases[-1][0]
    return last if lost is not None and last <= lost else None


def _row(name: str, ids: list[str], facts: InputFacts, lost_at: dict[str, int], margin: float,
         model_ltv: dict[str, float] | None, cut: Censoring) -> ChannelEconomics:
    buyers = [i for i in ids if facts.customers[i].purchases]
    cost = sum(facts.customers[i].cost for i in ids)
    revenue = sum(a for i in buyers for _, a in facts.customers[i].purchases)
    transactions = sum(len(facts.customers[i].purchases) for i in buyers)
    n = len(buyers)
    cpl = cost / len(ids) if ids and cost > 0 else None
    cac = cost / n if n and cost > 0 else None
    periods = _periods(facts, buyers, lost_at, cut)
    check = revenue / transactions if transactions else None
    months = periods.active_months
    per_year = periods.purchases / months * YEAR_MONTHS if months else None
    monthly_margin = margin * periods.revenue / months if months else None
    churn = periods.departures / months if months else None
    years = 1 / (churn * YEAR_MONTHS) if churn else None
    ltv003 = (margin * check * per_year * years
              if check is not None and per_year is not None and years is not None else None)
    ltv004 = monthly_margin / churn if monthly_margin is not None and churn else None
    ltv_model = None
    if model_ltv is not None and n:
        ltv_model = sum(model_ltv.get(i, 0.0) for i in buyers) / n
    best = ltv_model if ltv_model is not None else ltv003
    ratio = best / cac if best is not None and cac else None
    payback = cac / monthly_margin if cac is not None and monthly_margin else None
    return ChannelEconomics(name, len(ids), n, cost, revenue, transactions, cpl, cac, ltv003,
                            ltv004, ltv_model, ratio, payback, check, per_year, years,
                            monthly_margin, periods.departures, months, churn)


@dataclass(slots=True)
class Periods:
    """Sums over the months counted: customers active at a month's start (customer-months),
    those who departed during it, and the active customers' purchases in it."""

    active_months: int = 0
    departures: int = 0
    purchases: int = 0
    revenue: float = 0.0


def _periods(facts: InputFacts, buyers: list[str], lost_at: dict[str, int],
             cut: Censoring) -> Periods:
    starts = [f.purchases[0][0] for f in facts.customers.values() if f.purchases]
    out = Periods()
    if not starts:
        return out
    origin = min(starts)
    counted = int((cut.at_ms - origin) // MONTH_MS)  # months 0 .. counted-1 end in time

    def month(ms: int) -> int:
        return int((ms - origin) // MONTH_MS)

    for i in buyers:
        purchases = facts.customers[i].purchases
        departed = _departed_ms(facts, i, lost_at)
        first = month(purchases[0][0]) + 1  # the first month they are active at the start
        last = counted - 1 if departed is None else min(counted - 1, month(departed))
        if last < first:
            continue
        out.active_months += last - first + 1
        out.departures += departed is not None and month(departed) == last
        begin, end = origin + first * MONTH_MS, origin + (last + 1) * MONTH_MS
        inside = [a for at, a in purchases if begin <= at < end]
        out.purchases += len(inside)
        out.revenue += sum(inside)
    return out


def _model_ltv(facts: InputFacts, churn_params: Path | None, margin: float,
               horizon_months: float) -> dict[str, float] | None:
    """Each buyer's CLV over the horizon, scored at the end of the data; None without models."""
    if churn_params is None:
        return None
    churn = read_params_file(churn_params)
    spend = read_spend_params(churn_params)
    if spend is None or spend.q <= 1 or not any(f.purchases for f in facts.customers.values()):
        return None
    transactions = (
        Transaction(0, cid, datetime.fromtimestamp(at / 1000, UTC).date(), amount)
        for cid, f in facts.customers.items() for at, amount in f.purchases)
    summary = summarise(transactions, unit=churn.unit)
    horizon = round(horizon_months * 30.4375 / churn.unit_days)
    scores = score_customers(summary, churn, spend, horizon=horizon, margin=margin)
    return {s.customer_id: s.clv or 0.0 for s in scores.rows}
