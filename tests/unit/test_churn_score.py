"""Customer value scores on CDNOW match the published BTYD results for the first customers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from journey.churn.models import expected_purchases, fit, p_alive
from journey.churn.spend import SpendParams, expected_spend, fit_spend
from journey.cli.main import main
from tests.datasets import cdnow_file

# The 39-week calibration summary of the CDNOW sample, with each customer's mean repeat spend.
SUMMARY = "cdnow_customers_summary_with_transactions.csv"
RAW_OPTIONS = [
    "--customer-column", "2", "--date-column", "3", "--amount-column", "5",
    "--date-format", "YYYYMMDD", "--delimiter", "whitespace", "--no-header",
]  # fmt: skip


def published_summary() -> tuple[list[float], list[float], list[float], list[float]]:
    with cdnow_file(SUMMARY).open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return ([float(r["x"]) for r in rows], [float(r["t_x"]) for r in rows],
            [float(r["T"]) for r in rows], [float(r["zbar"]) for r in rows])


def test_expected_purchases_in_39_weeks_of_customer_1_match_hardies_spreadsheet() -> None:
    # Given the BG/NBD fitted to the CDNOW calibration summary
    x, t_x, age, _ = published_summary()
    params = fit("bgnbd", x, t_x, age)

    # When customer 1 (x=2, t_x=30.43, T=38.86) is scored over 39 weeks
    expected = expected_purchases(params, 39, x[:1], t_x[:1], age[:1])

    # Then it is Fader, Hardie & Lee's 1.226 (their BG/NBD Excel note, used by lifetimes)
    assert abs(float(expected[0]) - 1.226) < 0.001


def test_expected_purchases_grow_with_the_horizon_and_are_zero_at_zero() -> None:
    x, t_x, age, _ = published_summary()
    params = fit("mbgnbd", x, t_x, age)
    first = slice(0, 50)

    at = [expected_purchases(params, h, x[first], t_x[first], age[first]) for h in (0, 13, 39)]

    assert np.all(at[0] == 0.0)
    assert np.all(at[1] > 0.0) and np.all(at[2] > at[1])


def test_customers_who_went_quiet_expect_fewer_purchases_than_recent_buyers() -> None:
    x, t_x, age, _ = published_summary()
    params = fit("bgnbd", x, t_x, age)

    recent, quiet = expected_purchases(params, 39, [5, 5], [37.0, 5.0], [38.0, 38.0])

    assert recent > 4 * quiet
    assert p_alive(params, [5], [5.0], [38.0])[0] < 0.1


def test_gamma_gamma_on_cdnow_reproduces_the_published_parameters_and_spend() -> None:
    # Given the 946 CDNOW customers with repeat purchases and their mean repeat spend
    x, _, _, zbar = published_summary()

    # When the spend model is fitted
    spend = fit_spend(x, zbar)

    # Then p, q, v are Fader & Hardie's 6.25, 3.74, 15.44 (note 025, lifetimes' test)
    assert spend.customers == 946
    assert (round(spend.p, 2), round(spend.q, 2)) == (6.25, 3.74)
    assert abs(spend.v - 15.44) < 0.015
    # and the expected spend of the first ten customers is the spreadsheet's, within 0.1
    published = [24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17]
    got = expected_spend(SpendParams(p=6.25, q=3.74, v=15.44), x[:10], zbar[:10])
    assert np.allclose(got, published, atol=0.1)


def test_churn_score_writes_one_row_per_customer_with_published_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given parameters fitted by `journey churn fit` on the raw CDNOW sample, with spend
    raw = str(cdnow_file("CDNOW_sample.txt"))
    params = tmp_path / "churn.json"
    assert main(["churn", "fit", "--transactions", raw, *RAW_OPTIONS,
                 "--calibration-end", "1997-09-30", "--out", str(params)]) == 0

    # When every customer is scored over 39 weeks, as of the calibration end
    out = tmp_path / "scores.csv"
    assert main(["churn", "score", "--transactions", raw, *RAW_OPTIONS,
                 "--params", str(params), "--horizon", "39", "--out", str(out)]) == 0

    # Then there is a row per customer, and customer 1 matches the published figures
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 2357
    assert list(rows[0]) == ["customer_id", "p_alive", "expected_purchases",
                             "expected_spend", "clv"]
    first = rows[0]
    assert first["customer_id"] == "0001"
    assert abs(float(first["expected_purchases"]) - 1.226) < 0.001
    assert abs(float(first["expected_spend"]) - 24.65) < 0.1
    # P(alive) agrees with the engine's scalar formula at the same history
    x, t_x, age, _ = published_summary()
    fitted = fit("bgnbd", x, t_x, age)
    assert abs(float(first["p_alive"]) - float(p_alive(fitted, [2], [30.43], [38.86])[0])) < 1e-3
    # and CLV is spend times the expected purchases over the horizon (undiscounted, margin 1)
    assert abs(float(first["clv"]) - float(first["expected_spend"])
               * float(first["expected_purchases"])) < 1e-3


def test_churn_score_without_a_spend_model_leaves_the_spend_columns_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = str(cdnow_file("CDNOW_sample.txt"))
    options = [o for o in RAW_OPTIONS]
    no_amount = options[:4] + options[6:]
    params = tmp_path / "churn.json"
    assert main(["churn", "fit", "--transactions", raw, *no_amount,
                 "--calibration-end", "1997-09-30", "--out", str(params)]) == 0
    capsys.readouterr()

    assert main(["churn", "score", "--transactions", raw, *no_amount,
                 "--params", str(params), "--horizon", "13"]) == 0

    header = capsys.readouterr().out.splitlines()[0]
    assert header == "customer_id,p_alive,expected_purchases"


def test_churn_score_names_a_missing_params_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = str(cdnow_file("CDNOW_sample.txt"))

    status = main(["churn", "score", "--transactions", raw, *RAW_OPTIONS,
                   "--params", str(tmp_path / "nope.json")])

    assert status == 2
    assert "nope.json" in capsys.readouterr().err
