"""`journey run` and `journey diff` in-process: outputs, report, determinism, diff by rule."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import orjson
import pytest

from journey.cli.main import main
from journey.lab.analysis import analyse
from journey.lab.diff import diff_runs
from journey.lab.report import summary_text
from journey.lab.run import lab_settings, run_file
from journey.lab.simulate import SimulationConfig, simulate, write_jsonl
from journey.pipeline.settings import Settings

JOURNEYS = ["--journey", "touchpoint_journey", "--journey", "dentist",
            "--journey", "wedding_photographer"]
PRESETS = Path(__file__).resolve().parents[2] / "journey" / "presets"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "population.jsonl"
    write_jsonl(simulate(SimulationConfig(seed=21, customers=600)), path)
    return path


def run_cli(simulated: Path, out: Path, *extra: str) -> int:
    return main(["run", "--input", str(simulated), *JOURNEYS, "--holdout", "0.2",
                 "--out-dir", str(out), "--no-progress", *extra])


def test_running_the_same_file_twice_gives_byte_identical_outputs_and_report(
    simulated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # When the same file runs twice
    assert run_cli(simulated, tmp_path / "one") == 0
    assert run_cli(simulated, tmp_path / "two") == 0

    # Then every file is the same, byte for byte
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == ["dead-letters.jsonl", "lift.jsonl", "report.html", "stage-changes.jsonl",
                     "summary.txt", "trigger-audit.jsonl", "triggers.jsonl"]
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    out = capsys.readouterr().out
    assert "funnel touchpoint_journey" in out and "report: " in out


def test_the_run_writes_stage_changes_triggers_and_audit_records(
    simulated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(simulated, tmp_path) == 0

    changes = [orjson.loads(x) for x in (tmp_path / "stage-changes.jsonl").read_bytes().split()]
    triggers = [orjson.loads(x) for x in (tmp_path / "triggers.jsonl").read_bytes().split()]
    audits = [orjson.loads(x) for x in (tmp_path / "trigger-audit.jsonl").read_bytes().split()]
    statuses = {c["to_stage"] for c in changes if c["journey"] == "lifecycle"}
    assert {"inactive_lead", "dormant", "lost", "regular"} <= statuses
    assert {"dormant_wake_up", "inactive_lead_reactivation", "warm_up_start",
            "complaint_escalation"} <= {t["rule"] for t in triggers}
    assert {"held_out", "deferred"} <= {a["decision"] for a in audits}
    assert ("suppressed", "opted_out") in {(a["decision"], a["reason"]) for a in audits}


def test_the_analysis_has_funnels_lift_and_economics_per_channel(simulated: Path) -> None:
    settings = lab_settings(Settings(), JOURNEYS[1::2], 0.2)

    analysis = analyse(run_file(simulated, settings, None), input_name="population.jsonl")

    funnel = analysis.funnels[0]
    assert funnel.journey == "touchpoint_journey"
    reached = [s.reached for s in funnel.steps]
    assert reached == sorted(reached, reverse=True) and reached[0] == 600
    assert funnel.loss_peak is not None
    assert max(s.lost for s in funnel.steps) == next(
        s.lost for s in funnel.steps if s.stage == funnel.loss_peak)
    assert any(lift.held_out > 0 and lift.treated > 0 for lift in analysis.lifts)
    channels = {e.channel: e for e in analysis.economics}
    assert set(channels) == {"affiliate", "facebook", "google", "instagram", "yandex", "all"}
    facebook = channels["facebook"]
    assert facebook.cost_per_lead is not None and 3.0 <= facebook.cost_per_lead <= 5.0
    assert facebook.cac is not None and facebook.cac > facebook.cost_per_lead
    assert facebook.ltv_seed003 is not None and facebook.ltv_seed004 is not None
    assert facebook.ltv_cac is not None and facebook.payback_months is not None


def test_model_ltv_appears_when_the_churn_params_carry_a_spend_model(
    simulated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given churn and spend models fitted on the simulated purchases
    purchases = tmp_path / "purchases.csv"
    with purchases.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "date", "amount"])
        for line in simulated.read_bytes().split(b"\n"):
            if b'"purchase"' in line:
                e = orjson.loads(line)
                writer.writerow([e["customer_id"], e["occurred_at"], e["amount"]])
    params = tmp_path / "churn.json"
    assert main(["churn", "fit", "--transactions", str(purchases), "--amount-column", "amount",
                 "--unit", "days", "--out", str(params)]) == 0
    assert "spend" in json.loads(params.read_text(encoding="utf-8"))

    # When the run is given them
    assert run_cli(simulated, tmp_path / "run", "--churn-params", str(params)) == 0

    # Then the model-based LTV column has values
    table = capsys.readouterr().out.split("unit economics per channel")[1]
    facebook = next(line for line in table.splitlines() if line.startswith("facebook"))
    assert facebook.split()[7] != "-"


def test_diff_reports_triggers_that_appear_with_an_earlier_paid_offer(
    simulated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a candidate version that makes the paid offer after 4 touches instead of 7
    text = (PRESETS / "touchpoint_journey.yaml").read_text(encoding="utf-8")
    assert "when: {touches: {gte: 7}, purchases: {eq: 0}}" in text
    candidate = tmp_path / "touchpoint_journey_v2.yaml"
    candidate.write_text(text.replace("when: {touches: {gte: 7}, purchases: {eq: 0}}",
                                      "when: {touches: {gte: 4}, purchases: {eq: 0}}"),
                         encoding="utf-8")

    # When both versions run over the same file
    status = main(["diff", "--input", str(simulated), "--base", "touchpoint_journey",
                   "--candidate", str(candidate), "--out-dir", str(tmp_path / "diff"),
                   "--no-progress"])

    # Then paid-offer triggers appear, by rule and by segment, in the terminal and the report
    assert status == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("paid_offer_ready"))
    assert int(row.split()[1]) > 0
    assert "status at trigger" in out and "first-touch channel" in out
    deltas = [orjson.loads(x) for x in (tmp_path / "diff" / "diff.jsonl").read_bytes().split()]
    assert {d["kind"] for d in deltas if d["rule"] == "paid_offer_ready"} >= {"appeared"}
    assert "diff-by-rule" in (tmp_path / "diff" / "diff.html").read_text(encoding="utf-8")


def test_a_journey_diffed_with_itself_changes_nothing(simulated: Path) -> None:
    settings = lab_settings(Settings(), ["touchpoint_journey"])

    diff = diff_runs(run_file(simulated, settings, None), run_file(simulated, settings, None))

    assert diff.deltas == []
    assert diff.count("unchanged") > 0


def test_run_names_a_missing_input_and_a_bad_journey(
    simulated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--input", str(tmp_path / "none.jsonl"), "--no-progress"]) == 2
    assert "none.jsonl" in capsys.readouterr().err

    assert main(["run", "--input", str(simulated), "--journey", "no_such_journey",
                 "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert "no_such_journey" in capsys.readouterr().err


def test_the_report_drawn_from_output_files_is_the_runs_own_report(
    simulated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an in-process run with its report
    assert run_cli(simulated, tmp_path) == 0
    report = (tmp_path / "report.html").read_bytes()
    (tmp_path / "report.html").unlink()

    # When the report is drawn again from the output files alone (as for a worker's topics)
    status = main(["report", "--input", str(simulated), "--outputs", str(tmp_path),
                   *JOURNEYS, "--holdout", "0.2"])

    # Then it is the same report, byte for byte
    assert status == 0
    assert (tmp_path / "report.html").read_bytes() == report


def test_a_shuffled_file_gives_the_same_report_as_the_sorted_one(
    simulated: Path, tmp_path: Path
) -> None:
    # Given the simulated file and the same lines in a random order
    import random

    lines = simulated.read_bytes().splitlines(keepends=True)
    random.Random(7).shuffle(lines)
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_bytes(b"".join(lines))
    settings = lab_settings(Settings(), JOURNEYS[1::2], 0.2)

    # When both are run and analysed
    sorted_run, shuffled_run = (run_file(path, settings, None) for path in (simulated, shuffled))
    analyses = [analyse(run, input_name="population.jsonl") for run in (sorted_run, shuffled_run)]

    # Then every fact of the report is the same: first-touch channels, economics, lift
    assert sorted_run.facts == shuffled_run.facts
    assert analyses[0] == analyses[1]
    assert summary_text(analyses[0]) == summary_text(analyses[1])
