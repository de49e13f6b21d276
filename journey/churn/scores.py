"""Per-customer value scores: P(alive), expected purchases, expected spend and CLV."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from journey.churn.models import expected_purchases, p_alive
from journey.churn.spend import SpendParams, clv, expected_spend
from journey.churn.transactions import Summary
from journey.engine.alive import ChurnParams


@dataclass(frozen=True, slots=True)
class Score:
    customer_id: str
    p_alive: float
    expected_purchases: float
    expected_spend: float | None = None
    clv: float | None = None


@dataclass(frozen=True, slots=True)
class Scores:
    rows: tuple[Score, ...]
    horizon: int
    unit: str
    with_spend: bool


def score_customers(
    summary: Summary,
    churn: ChurnParams,
    spend: SpendParams | None = None,
    *,
    horizon: int = 39,
    margin: float = 1.0,
    discount_rate: float = 0.0,
) -> Scores:
    """Scores of every customer of the summary, in the summary's order (first purchase seen)."""
    if summary.unit != churn.unit:
        raise ValueError(f"the summary is in {summary.unit}, the model in {churn.unit}")
    customers = summary.customers
    x = np.array([c.x for c in customers], dtype=np.float64)
    t_x = np.array([c.t_x for c in customers], dtype=np.float64)
    age = np.array([c.age for c in customers], dtype=np.float64)
    alive = p_alive(churn, x, t_x, age)
    purchases = expected_purchases(churn, float(horizon), x, t_x, age)
    if spend is None:
        rows = tuple(Score(c.customer_id, float(a), float(e))
                     for c, a, e in zip(customers, alive, purchases, strict=True))
        return Scores(rows, horizon, churn.unit, with_spend=False)
    means = np.array([c.mean_repeat_amount or 0.0 for c in customers], dtype=np.float64)
    spends = expected_spend(spend, x, means)
    values = clv(churn, spend, horizon, x, t_x, age, means, margin=margin,
                 discount_rate=discount_rate)
    rows = tuple(Score(c.customer_id, float(a), float(e), float(s), float(v))
                 for c, a, e, s, v in zip(customers, alive, purchases, spends, values,
                                          strict=True))
    return Scores(rows, horizon, churn.unit, with_spend=True)


def write_scores_csv(scores: Scores, out: TextIO) -> None:
    """One row per customer; numbers with 6 decimals, so the file is stable run to run."""
    writer = csv.writer(out, lineterminator="\n")
    header = ["customer_id", "p_alive", "expected_purchases"]
    if scores.with_spend:
        header += ["expected_spend", "clv"]
    writer.writerow(header)
    for row in scores.rows:
        fields = [row.customer_id, f"{row.p_alive:.6f}", f"{row.expected_purchases:.6f}"]
        if scores.with_spend:
            fields += [f"{row.expected_spend or 0.0:.6f}", f"{row.clv or 0.0:.6f}"]
        writer.writerow(fields)
