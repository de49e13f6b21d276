"""The report's lift on simulated populations: none where there is no effect, found where one
is planted.

Simulated customers never react to triggers, so every rule's true lift is zero. Over many
populations (a new seed and holdout salt each), the share of runs in which any rule is called
significant must stay near the nominal 5% (Holm across rules), with the default policy and with
a contact budget tight enough to suppress many treated customers' triggers. The default is
sized for a slow machine (20 runs of 400 customers, about 1 s each); JOURNEY_LIFT_RUNS=100
runs a larger version. Measured: with 20 runs, 0 runs with a significant rule, 0 of 160
adjusted intervals without zero, 6 of 160 unadjusted p < 0.05; with 100 runs, 4 runs (4%),
5 of 800 adjusted intervals (0.6%), 31 of 800 unadjusted (3.9%). The budget gives the same
counts: it suppresses after the holdout check, which no longer moves anyone between arms.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from journey.lab.analysis import analyse
from journey.lab.lift import Lift
from journey.lab.run import lab_settings, run_file
from journey.lab.simulate import SimulationConfig, simulate, write_jsonl
from journey.pipeline.settings import Settings

RUNS = int(os.environ.get("JOURNEY_LIFT_RUNS", "20"))
CUSTOMERS = int(os.environ.get("JOURNEY_LIFT_CUSTOMERS", "400"))
HOLDOUT = 0.5


@dataclass
class Tally:
    runs: int = 0
    runs_with_a_significant_rule: int = 0
    cells: int = 0
    cells_excluding_zero: int = 0  # adjusted interval
    cells_unadjusted_below_5pct: int = 0
    lowest_send_rate: float = 1.0  # of the treated arm, over rules and runs

    def add(self, rows: list[Lift]) -> None:
        tested = [x for x in rows if x.p_value is not None]
        self.runs += 1
        self.runs_with_a_significant_rule += any(x.significant for x in tested)
        self.cells += len(tested)
        self.cells_excluding_zero += sum(
            1 for x in tested if (x.low or 0) > 0 or (x.high or 0) < 0)
        self.cells_unadjusted_below_5pct += sum(1 for x in tested if (x.p_value or 1) < 0.05)
        self.lowest_send_rate = min([self.lowest_send_rate,
                                     *(x.send_rate for x in tested if x.send_rate is not None)])

    def __str__(self) -> str:
        return (f"{self.runs_with_a_significant_rule}/{self.runs} runs with a significant rule, "
                f"{self.cells_excluding_zero}/{self.cells} adjusted intervals without zero, "
                f"{self.cells_unadjusted_below_5pct}/{self.cells} unadjusted p < 0.05, "
                f"lowest send rate {self.lowest_send_rate:.0%}")


@pytest.fixture(scope="module")
def populations(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("populations")
    paths = []
    for run in range(RUNS):
        path = folder / f"population-{run}.jsonl"
        write_jsonl(simulate(SimulationConfig(seed=5000 + run, customers=CUSTOMERS)), path)
        paths.append(path)
    return paths


def null_tally(populations: list[Path], base: Settings) -> Tally:
    tally = Tally()
    for run, path in enumerate(populations):
        settings = lab_settings(base, None, HOLDOUT, f"null-{run}")
        tally.add(analyse(run_file(path, settings, None), input_name=path.name).lifts)
    return tally


@pytest.mark.parametrize("budget", [None, "1/30d"], ids=["default-policy", "budget-1-per-30d"])
def test_with_no_effect_a_rule_is_called_significant_in_about_5_percent_of_runs(
    populations: list[Path], budget: str | None
) -> None:
    # Given populations that never react to triggers, under the default policy or a tight
    # contact budget (which suppresses treated customers' triggers after the holdout check)
    base = Settings(contact_budget=budget)

    # When each is run and its lift read as an analyst would
    tally = null_tally(populations, base)

    # Then some run may show a significant rule, but not more often than about 5% of runs
    print(f"\nno effect, budget {budget}: {tally}")
    assert tally.cells >= 6 * RUNS, tally
    assert tally.runs_with_a_significant_rule / tally.runs <= 0.10, tally
    assert tally.cells_excluding_zero / tally.cells <= 0.05, tally
    # and the budget did keep many treated customers from being sent anything
    assert (tally.lowest_send_rate < 0.8) == (budget is not None), tally


def test_a_planted_effect_is_found(tmp_path: Path) -> None:
    # Given a population, and the same population in which 20% of the dormant customers
    # sent a wake-up buy within a week of it
    source = tmp_path / "population.jsonl"
    write_jsonl(simulate(SimulationConfig(seed=77, customers=600)), source)
    settings = lab_settings(Settings(), None, HOLDOUT, "planted")
    first = run_file(source, settings, None)
    planted = tmp_path / "planted.jsonl"
    events = [*simulate(SimulationConfig(seed=77, customers=600)),
              *reactions(first.collected.triggers, "dormant_wake_up", share=0.2)]
    write_jsonl(events, planted)

    # When the lift is read on both
    before = by_rule(analyse(first, input_name="population").lifts)
    after = by_rule(analyse(run_file(planted, settings, None), input_name="planted").lifts)

    # Then the rule with the planted effect is significant, its interval holds the planted
    # 20 points (the held-out arm barely buys), and it was not significant before
    rule = after["dormant_wake_up"]
    print(f"\nplanted: {rule}")
    assert not before["dormant_wake_up"].significant
    assert rule.significant and 0 < (rule.low or 0) < 0.2 < (rule.high or 0)
    assert rule.treated == before["dormant_wake_up"].treated


def reactions(triggers: list[tuple[str, str, str, int, str, dict[str, Any], int]], rule: str, *,
              share: float) -> list[dict[str, Any]]:
    """A purchase one to seven days after a sent trigger of the rule, for `share` of them."""
    rng = random.Random(rule)
    events = []
    for _, name, customer, _, trigger_id, _, send_ms in sorted(triggers, key=lambda t: t[4]):
        if name != rule or rng.random() >= share:
            continue
        at = datetime.fromtimestamp(send_ms / 1000, UTC) + timedelta(days=rng.uniform(1, 7))
        events.append({"event_id": f"reaction-{trigger_id}", "customer_id": customer,
                       "type": "purchase", "occurred_at": at.isoformat(), "channel": "web",
                       "amount": 25.0, "currency": "EUR"})
    return events


def by_rule(rows: list[Lift]) -> dict[str, Lift]:
    return {x.rule: x for x in rows}
