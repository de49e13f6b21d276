"""The small promises of the lab commands: flags named in errors, progress, dead letters,
an empty churn score refused, and a preset copied to start a candidate."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from journey.cli.main import main
from journey.engine.definitions import load_definition, load_preset
from journey.lab.run import run_file
from journey.lab.simulate import JOURNEYS, SimulationConfig, event_types, simulate, write_jsonl
from journey.pipeline.settings import Settings
from tests.datasets import cdnow_file
from tests.unit.test_churn_score import RAW_OPTIONS


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "population.jsonl"
    write_jsonl(simulate(SimulationConfig(seed=3, customers=60)), path)
    return path


@pytest.mark.parametrize(("flag", "value"), [("--window-days", "0"), ("--holdout", "1.5"),
                                             ("--holdout", "-0.1")])
def test_a_bad_lift_option_is_named_by_its_flag(
    population: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--input", str(population), "--out-dir", str(tmp_path), flag, value])

    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert f"argument {flag}" in err and "holdout_share" not in err


def test_the_progress_line_counts_lines_as_they_are_processed(population: Path) -> None:
    # Given a progress stream
    stream = io.StringIO()

    # When the file runs
    result = run_file(population, Settings(), None, progress=stream)

    # Then the bar ends at the whole file, with every line counted
    last = stream.getvalue().rstrip("\n").split("\r")[-1]
    assert "100.0%" in last and f" {result.summary.lines} lines " in last


def test_the_terminal_summary_names_the_dead_letters(
    population: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a file with one line that is not JSON
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(population.read_bytes() + b"{not json\n")

    # When it runs
    assert main(["run", "--input", str(broken), "--out-dir", str(tmp_path / "out"),
                 "--no-progress"]) == 0

    # Then the summary says how many were dead-lettered, why, and where they are
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("dead letters")]
    assert "invalid_json 1" in line and line.endswith("see dead-letters.jsonl")


def test_churn_score_refuses_when_no_customer_falls_in_the_calibration_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given params fitted on CDNOW, and a calibration end before its first purchase
    raw = str(cdnow_file("CDNOW_sample.txt"))
    options = RAW_OPTIONS
    params = tmp_path / "churn.json"
    assert main(["churn", "fit", "--transactions", raw, *options,
                 "--calibration-end", "1997-09-30", "--out", str(params)]) == 0
    out = tmp_path / "scores.csv"

    # When scored as of a day before any purchase
    status = main(["churn", "score", "--transactions", raw, *options, "--params", str(params),
                   "--calibration-end", "1990-01-01", "--out", str(out)])

    # Then it fails with a reason, and writes no empty file
    assert status == 1
    assert "nothing to score" in capsys.readouterr().err
    assert not out.exists()


def test_presets_writes_a_preset_to_a_file_to_start_a_candidate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "dentist.yaml"

    assert main(["presets", "dentist", "--write", str(target)]) == 0

    assert load_definition(target) == load_preset("dentist")
    assert f"--candidate {target}" in capsys.readouterr().out
    # and an existing file is never overwritten
    assert main(["presets", "dentist", "--write", str(target)]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_presets_write_needs_a_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "--write", str(tmp_path / "x.yaml")]) == 2
    assert "needs a preset name" in capsys.readouterr().err
    assert orjson.dumps(sorted(p.name for p in tmp_path.iterdir())) == b"[]"


def test_the_summary_prints_the_salt_and_marks_the_primary_rule(
    population: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # When a run names its salt and a primary rule
    assert main(["run", "--input", str(population), "--out-dir", str(tmp_path), "--no-progress",
                 "--holdout", "0.5", "--holdout-salt", "shop-eu", "--primary-rule",
                 "warm_up_start"]) == 0

    # Then the lift says which salt assigned the arms and which rule was primary
    out = capsys.readouterr().out
    assert "holdout share 50%, salt 'shop-eu'" in out
    assert "warm_up_start (primary)" in out
    assert "warm_up_start was named in advance as the primary rule" in out


def test_a_primary_rule_that_held_nobody_out_is_named_on_stderr(
    population: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--input", str(population), "--out-dir", str(tmp_path), "--no-progress",
                 "--holdout", "0.5", "--primary-rule", "no_such_rule"]) == 0

    assert "--primary-rule no_such_rule: no rule of that name" in capsys.readouterr().err


def test_the_lift_rows_are_written_one_per_customer_and_rule(
    population: Path, tmp_path: Path
) -> None:
    # When a run holds half the customers out
    assert main(["run", "--input", str(population), "--out-dir", str(tmp_path), "--no-progress",
                 "--holdout", "0.5"]) == 0

    # Then lift.jsonl has each customer once per rule, in one arm, and the summary's counts
    rows = [orjson.loads(line) for line in (tmp_path / "lift.jsonl").read_bytes().splitlines()]
    keys = [(r["journey"], r["rule"], r["customer_id"]) for r in rows]
    assert rows and len(keys) == len(set(keys))
    assert {r["arm"] for r in rows} == {"treated", "held_out"}
    warm = [r for r in rows if r["rule"] == "warm_up_start" and r["converted"] is not None]
    treated = [r for r in warm if r["arm"] == "treated"]
    bought = sum(r["converted"] for r in treated)
    [line] = [x for x in (tmp_path / "summary.txt").read_text().splitlines()
              if x.startswith("warm_up_start ")]
    assert line.split()[1] == f"{bought}/{len(treated)}"


def test_simulate_into_a_missing_folder_is_one_line_naming_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing-dir" / "x.jsonl"
    assert main(["simulate", "--customers", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"journey simulate: cannot write {out}: No such file or directory\n"


def test_the_simulator_s_journeys_accept_every_type_it_simulates() -> None:
    # Given the presets the simulator says its population walks
    events = simulate(SimulationConfig(seed=1, customers=400))
    policy = Settings(definitions=list(JOURNEYS)).ingest_policy()
    # Then a worker running them accepts every simulated type
    assert {t for t in event_types(events) if not policy.knows(t)} == set()
    # And the default vocabulary alone does not (the dentist's diagnosis)
    assert "diagnosis" in {t for t in event_types(events) if not Settings().ingest_policy()
                           .knows(t)}


def test_simulate_says_which_settings_accept_its_population(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the default definitions, the file is written and a note says what to set
    out = tmp_path / "sim.jsonl"
    assert main(["simulate", "--customers", "50", "--out", str(out)]) == 0
    note = capsys.readouterr().err
    assert "(diagnosis)" in note and f"JOURNEY_DEFINITIONS={','.join(JOURNEYS)}" in note
    assert note.count("\n") == 1
    # When asked to send it to Kafka with these settings, it refuses in one line, unsent
    assert main(["simulate", "--customers", "50", "--out", str(out), "--kafka"]) == 2
    refused = capsys.readouterr().err
    assert refused.startswith("journey simulate: not sent: ") and refused.count("\n") == 1
    # And with the simulator's journeys there is nothing to say
    monkeypatch.setenv("JOURNEY_DEFINITIONS", ",".join(JOURNEYS))
    assert main(["simulate", "--customers", "50", "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""
