"""From a transactions file to fitted BG/NBD and MBG/NBD parameters, checked on CDNOW."""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from journey.churn.models import FitError, fit, log_likelihood
from journey.churn.transactions import (
    CustomerHistory,
    TransactionError,
    TransactionFormat,
    read_summary,
)
from journey.cli.churn import register
from journey.engine.alive import MODELS, ChurnParams, ModelName, read_params_file
from journey.pipeline.settings import Settings
from tests.datasets import cdnow_file

# Fader, Hardie & Lee (2005): BG/NBD on the 2357-customer CDNOW sample, weeks, calibration of
# 39 weeks ending 1997-09-30.
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CDNOW_END = date(1997, 9, 30)
CDNOW_RAW = TransactionFormat(
    customer_column="2",  # the sample's own id, 1..2357, as in the published summary
    date_column="3",
    amount_column="5",
    date_format="YYYYMMDD",
    delimiter=None,
    header=False,
)

History = tuple[list[float], list[float], list[float]]


@pytest.fixture(scope="module")
def cdnow_published_summary() -> dict[int, tuple[int, float, float]]:
    """ID -> (x, t_x, T) as published, in weeks rounded to 2 decimals."""
    with cdnow_file("cdnow_customers_summary.csv").open(encoding="utf-8") as handle:
        return {
            int(row["ID"]): (int(row["frequency"]), float(row["recency"]), float(row["T"]))
            for row in csv.DictReader(handle)
        }


@pytest.fixture(scope="module")
def cdnow_raw_histories() -> tuple[CustomerHistory, ...]:
    summary = read_summary(cdnow_file("CDNOW_sample.txt"), CDNOW_RAW, calibration_end=CDNOW_END)
    return summary.customers


def columns(rows: list[tuple[int, float, float]]) -> History:
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def assert_published_bgnbd(params: ChurnParams) -> None:
    fitted = {name: round(getattr(params, name), 3) for name in PUBLISHED_BGNBD}
    assert fitted == PUBLISHED_BGNBD


def test_bgnbd_on_the_published_cdnow_summary_reproduces_the_published_estimates(
    cdnow_published_summary: dict[int, tuple[int, float, float]],
) -> None:
    x, t_x, age = columns(list(cdnow_published_summary.values()))

    params = fit("bgnbd", x, t_x, age)

    assert_published_bgnbd(params)
    assert params.customers == 2357


def test_raw_cdnow_transactions_summarise_to_the_published_summary(
    cdnow_raw_histories: tuple[CustomerHistory, ...],
    cdnow_published_summary: dict[int, tuple[int, float, float]],
) -> None:
    ours = {int(h.customer_id): (h.x, h.t_x, h.age) for h in cdnow_raw_histories}

    assert ours.keys() == cdnow_published_summary.keys()
    for customer, (x, t_x, age) in ours.items():
        published = cdnow_published_summary[customer]
        assert (x, round(t_x, 2), round(age, 2)) == published, customer


def test_raw_cdnow_mean_repeat_spend_matches_the_published_zbar(
    cdnow_raw_histories: tuple[CustomerHistory, ...],
) -> None:
    path = cdnow_file("cdnow_customers_summary_with_transactions.csv")
    with path.open(encoding="utf-8") as handle:
        zbar = {int(row["ID"]): float(row["zbar"]) for row in csv.DictReader(handle)}

    for history in cdnow_raw_histories:
        ours = history.mean_repeat_amount or 0.0
        assert ours == pytest.approx(zbar[int(history.customer_id)], abs=0.005 + 1e-9)


def test_bgnbd_from_raw_cdnow_transactions_reproduces_the_published_estimates(
    cdnow_raw_histories: tuple[CustomerHistory, ...],
) -> None:
    # Unrounded ages move the estimates only in the fifth significant digit.
    x, t_x, age = columns([(h.x, h.t_x, h.age) for h in cdnow_raw_histories])

    params = fit("bgnbd", x, t_x, age)

    assert_published_bgnbd(params)


def test_mbgnbd_on_cdnow_agrees_with_two_other_implementations(
    cdnow_published_summary: dict[int, tuple[int, float, float]],
) -> None:
    # Not a published number: the value the lifetimes test suite holds its MBG/NBD fitter to
    # (tests/test_estimation.py, test_params_out_is_close_to_BTYDplus), from the R BTYDplus.
    reference = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}
    x, t_x, age = columns(list(cdnow_published_summary.values()))

    params = fit("mbgnbd", x, t_x, age)

    assert {name: round(getattr(params, name), 3) for name in reference} == reference


@pytest.mark.parametrize("model", MODELS)
def test_fitted_parameters_are_a_maximum_of_the_likelihood(
    model: ModelName, cdnow_published_summary: dict[int, tuple[int, float, float]]
) -> None:
    x, t_x, age = columns(list(cdnow_published_summary.values()))

    params = fit(model, x, t_x, age)

    assert params.log_likelihood is not None
    assert params.log_likelihood == pytest.approx(float(log_likelihood(params, x, t_x, age).sum()))
    for name in ("r", "alpha", "a", "b"):
        for factor in (0.99, 1.01):
            moved = replace(params, **{name: getattr(params, name) * factor})
            assert log_likelihood(moved, x, t_x, age).sum() < params.log_likelihood


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("x", "t_x", "age"), [(0, 0.0, 38.86), (1, 1.71, 38.86), (2, 30.43, 38.86), (7, 20.0, 31.5)]
)
def test_log_likelihood_is_the_papers_formula(
    model: ModelName, x: int, t_x: float, age: float
) -> None:
    params = ChurnParams(model=model, r=0.7, alpha=3.0, a=0.9, b=2.2)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    k = 0 if model == "bgnbd" else 1

    def beta(p: float, q: float) -> float:
        return math.gamma(p) * math.gamma(q) / math.gamma(p + q)

    poisson = math.gamma(r + x) * alpha**r / math.gamma(r)
    alive = beta(a, b + x + k) / beta(a, b) * poisson / (alpha + age) ** (r + x)
    dropped = beta(a + 1, b + x + k - 1) / beta(a, b) * poisson / (alpha + t_x) ** (r + x)
    expected = alive + (dropped if x > 0 or model == "mbgnbd" else 0.0)

    ours = log_likelihood(params, [x], [t_x], [age])

    assert math.exp(float(ours[0])) == pytest.approx(expected, rel=1e-10)


def simulate(model: ModelName, truth: ChurnParams, customers: int, seed: int) -> History:
    """Histories drawn from the model itself: gamma rates, beta drop-out, ages of 26-52."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(truth.r, 1 / truth.alpha, customers)
    drops = rng.beta(truth.a, truth.b, customers)
    ages = rng.uniform(26.0, 52.0, customers)
    xs, t_xs = [0.0] * customers, [0.0] * customers
    for i in range(customers):
        if model == "mbgnbd" and rng.random() < drops[i]:
            continue  # gone right after the first purchase
        t = rng.exponential(1 / rates[i])
        while t <= ages[i]:
            xs[i], t_xs[i] = xs[i] + 1, t
            if rng.random() < drops[i]:
                break
            t += rng.exponential(1 / rates[i])
    return xs, t_xs, list(ages)


@pytest.mark.parametrize("model", MODELS)
def test_fit_recovers_the_parameters_of_simulated_customers(model: ModelName) -> None:
    truth = ChurnParams(model=model, r=0.8, alpha=5.0, a=0.6, b=2.5)
    x, t_x, age = simulate(model, truth, customers=10_000, seed=7)

    params = fit(model, x, t_x, age)

    assert params.log_likelihood is not None
    assert params.log_likelihood >= log_likelihood(truth, x, t_x, age).sum()
    for name in ("r", "alpha", "a", "b"):
        assert getattr(params, name) == pytest.approx(getattr(truth, name), rel=0.25), name


def test_fit_on_too_little_data_says_so_instead_of_returning_runaway_parameters() -> None:
    # Four customers: the likelihood keeps rising as r, alpha and b run off to infinity.
    with pytest.raises(FitError, match="too little information"):
        fit("bgnbd", [1, 0, 2, 0], [38.0, 0.0, 57.0, 0.0], [87.0, 70.0, 58.0, 0.0])


def test_fit_refuses_histories_that_cannot_happen() -> None:
    with pytest.raises(ValueError, match="t_x <= age"):
        fit("bgnbd", [1, 2], [3.0, 9.0], [5.0, 8.0])


# --- reading transactions -------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "transactions.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_purchases_on_the_same_day_count_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "customer_id,date\nc1,2024-01-01\nc1,2024-01-08\nc1,2024-01-08T18:30:00+01:00\n",
    )

    (history,) = read_summary(path, unit="days").customers

    assert (history.x, history.t_x, history.age) == (1, 7.0, 7.0)


def test_purchases_after_the_calibration_end_are_counted_and_left_out(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "customer_id,date\na,2024-01-01\na,2024-01-15\nb,2024-01-10\na,2024-02-01\nc,2024-03-01\n",
    )

    summary = read_summary(path, calibration_end=date(2024, 1, 29), unit="weeks")

    assert summary.transactions == 5
    assert summary.transactions_after_end == 2
    assert [(h.customer_id, h.x, h.t_x, h.age) for h in summary.customers] == [
        ("a", 1, 2.0, 4.0),
        ("b", 0, 0.0, 19 / 7),
    ]


def test_calibration_ends_on_the_last_transaction_by_default(tmp_path: Path) -> None:
    path = write(tmp_path, "who;when;spend\nx;03/01/2024;10\nx;10/01/2024;5.5\ny;31/01/2024;1\n")
    fmt = TransactionFormat("who", "when", "spend", date_format="%d/%m/%Y", delimiter=";")

    summary = read_summary(path, fmt, unit="days")

    assert summary.calibration_end == date(2024, 1, 31)
    assert summary.customers[0].age == 28.0
    assert summary.customers[0].mean_repeat_amount == 5.5


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("customer_id,date\na,2024-01-01\nb,2024-13-01\n", TransactionFormat(), "line 3: date"),
        ("customer_id,date\n\na,2024-01-01\nb\n", TransactionFormat(), "line 4: 1 fields"),
        ("id,date\na,2024-01-01\n", TransactionFormat(), "line 1: no column 'customer_id'"),
        (
            "customer_id,date,amount\na,2024-01-01,9\na,2024-01-02,lots\n",
            TransactionFormat(amount_column="amount"),
            "line 3: amount 'lots' is not a number",
        ),
        (
            "a 19970101\na 1997011\n",
            TransactionFormat("1", "2", date_format="YYYYMMDD", delimiter=None, header=False),
            "line 2: date '1997011' is not YYYYMMDD",
        ),
        ("a,2024-01-01\n", TransactionFormat(header=False), "must be a position"),
        ("customer_id,date\n,2024-01-01\n", TransactionFormat(), "line 2: the customer id"),
    ],
)
def test_a_bad_file_is_refused_naming_the_line_and_the_problem(
    tmp_path: Path, text: str, fmt: TransactionFormat, message: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(TransactionError, match=message):
        read_summary(path, fmt)


# --- the command ----------------------------------------------------------------------------


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="journey")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.handler(args, Settings())
    return status


def test_churn_fit_command_writes_both_models_for_the_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "params.json"
    argv = ["churn", "fit", "--transactions", str(cdnow_file()), "--model", "both"]
    argv += ["--no-header", "--delimiter", "whitespace", "--customer-column", "2"]
    argv += ["--date-column", "3", "--date-format", "YYYYMMDD", "--calibration-end", "19970930"]

    status = run([*argv, "--out", str(out)])

    assert status == 0
    printed = capsys.readouterr().out
    assert "2357 customers, 6919 transactions (1959 after 1997-09-30 left out)" in printed
    assert "bgnbd: r=0.2426 alpha=4.4136 a=0.7929 b=2.4259 (weeks)" in printed
    bgnbd = read_params_file(out, "bgnbd")
    assert_published_bgnbd(bgnbd)
    assert (bgnbd.customers, bgnbd.unit, bgnbd.calibration_end) == (2357, "weeks", "1997-09-30")
    assert {m["model"] for m in json.loads(out.read_text())["models"]} == set(MODELS)


def test_churn_fit_command_reports_a_bad_line_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "customer_id,date\na,2024-01-01\na,yesterday\n")

    status = run(["churn", "fit", "--transactions", str(path), "--out", str(tmp_path / "p.json")])

    assert status == 2
    assert f"{path}: line 3: date 'yesterday'" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
