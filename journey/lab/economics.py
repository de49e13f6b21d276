"""Unit economics per acquisition channel, with the formulas of the seeds (DOMAIN.md section 6).

- cost per lead = channel cost / leads; CAC = channel cost / new customers (seed 004);
- LTV (seed 003) = profit per transaction x transactions per customer;
- LTV (seed 004) = margin per customer per month / monthly churn rate, where churn is a
  customer's first move to "lost" (our reading), per customer-month observed;
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
    channels: dict[str, list[str]] = {}
    for customer_id, f in facts.customers.items():
        channels.setdefault(f.source, []).append(customer_id)
    rows = [_row(name, ids, facts, lost_at, margin, model_ltv)
            for name, ids in sorted(channels.items())]
    if len(rows) > 1:
        rows.append(_row("all", list(facts.customers), facts, lost_at, margin, model_ltv))
    return rows


def _row(name: str, ids: list[str], facts: InputFacts, lost_at: dict[str, int], margin: float,
         model_ltv: dict[str, float] | None) -> ChannelEconomics:
    end = facts.last_ms or 0
    buyers = [i for i in ids if facts.customers[i].purchases]
    cost = sum(facts.customers[i].cost for i in ids)
    revenue = sum(a for i in buyers for _, a in facts.customers[i].purchases)
    transactions = sum(len(facts.customers[i].purchases) for i in buyers)
    n = len(buyers)
    cpl = cost / len(ids) if ids and cost > 0 else None
    cac = cost / n if n and cost > 0 else None
    ltv003 = margin * revenue / n if n else None  # (margin x check) x (transactions / n)
    months = sum(
        max(((lost_at.get(i) or end) - facts.customers[i].purchases[0][0]) / MONTH_MS, 0.0)
        for i in buyers)
    churned = sum(1 for i in buyers if i in lost_at)
    monthly_margin = margin * revenue / months if months > 0 else None
    churn_rate = churned / months if months > 0 else None
    ltv004 = (monthly_margin / churn_rate
              if monthly_margin is not None and churn_rate else None)
    ltv_model = None
    if model_ltv is not None and n:
        ltv_model = sum(model_ltv.get(i, 0.0) for i in buyers) / n
    best = ltv_model if ltv_model is not None else ltv003
    ratio = best / cac if best is not None and cac else None
    payback = cac / monthly_margin if cac is not None and monthly_margin else None
    return ChannelEconomics(name, len(ids), n, cost, revenue, transactions, cpl, cac, ltv003,
                            ltv004, ltv_model, ratio, payback)


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
