"""The command line: one behaviour everywhere, clear one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from journey import __version__
from journey.cli import main
from journey.pipeline.settings import Settings
from tests.support.kafka import free_port


def _err_lines(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    captured = capsys.readouterr()
    return captured.out, [line for line in captured.err.splitlines() if line.strip()]


# --- settings -----------------------------------------------------------------------------


def test_a_bad_setting_names_the_variable_and_its_value_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEY_WEB_PORT", "not-a-port")
    assert main(["vocabulary"]) == 2
    _, err = _err_lines(capsys)
    assert len(err) == 1
    assert err[0].startswith("journey: invalid settings: JOURNEY_WEB_PORT='not-a-port': ")
    assert "web_port" not in err[0] and "https://" not in err[0]


def test_an_unknown_journey_variable_warns_with_the_closest_known_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEY_PARTITION", "8")
    assert main(["vocabulary"]) == 0
    _, err = _err_lines(capsys)
    assert err == ["journey: warning: JOURNEY_PARTITION is not a setting and is ignored; "
                   "did you mean JOURNEY_PARTITIONS?"]


@pytest.mark.parametrize("given", ["debug", "Warning", " info "])
def test_log_levels_are_case_insensitive(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("JOURNEY_LOG_LEVEL", given)
    assert Settings().log_level == given.strip().upper()


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"journey {__version__}"


def test_worker_help_lists_every_setting_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    out = capsys.readouterr().out
    assert "JOURNEY_ALLOWED_LATENESS_S=3600" in out
    assert "JOURNEY_DEFINITIONS=touchpoint_journey" in out
    assert "JOURNEY_OFFER_CODE_SECRET=(empty)" in out
    for name in Settings.model_fields:
        assert f"JOURNEY_{name.upper()}=" in out


# --- an unreachable broker: one clear line in every command -------------------------------


def _journey(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: its own process, its real stderr."""
    return subprocess.run([sys.executable, "-m", "journey.cli", *argv], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env}, check=False)


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [(["worker"], "journey worker: "),
     (["topics"], "journey topics: "),
     (["topics", "--create"], "journey topics: "),
     (["send", "--customer", "anna", "--type", "site_visit"], "journey: "),
     (["demo", "--timeout", "5"], "journey demo: ")],
)
def test_an_unreachable_broker_is_one_clear_line(argv: list[str], prefix: str) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    done = _journey(argv, JOURNEY_KAFKA_BOOTSTRAP=bootstrap)
    err = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1
    assert len(err) == 1, done.stderr
    assert err[0].startswith(f"{prefix}cannot reach Kafka at {bootstrap} ")
    assert "JOURNEY_KAFKA_BOOTSTRAP" in err[0]


def test_replay_to_an_unreachable_broker_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"event_id":"e1","customer_id":"a","type":"site_visit",'
                    '"occurred_at":"2026-10-01T09:00:00Z"}\n')
    bootstrap = f"127.0.0.1:{free_port()}"
    done = _journey(["replay", str(path), "--no-progress"], JOURNEY_KAFKA_BOOTSTRAP=bootstrap)
    err = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1
    assert len(err) == 1 and err[0].startswith(f"journey: cannot reach Kafka at {bootstrap} ")


def test_topics_still_lists_every_topic_when_the_broker_is_unreachable() -> None:
    done = _journey(["topics"], JOURNEY_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")
    assert done.returncode == 1
    for name in ("touchpoints", "journey-events", "stage-changes", "triggers", "dead-letters"):
        assert name in done.stdout


# --- definitions, presets and vocabulary ----------------------------------------------------


def test_worker_refuses_to_start_on_a_bad_journey_definition(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "shop.yaml"
    bad.write_text("name: shop\nstages:\n  - {name: a, entry: {purchases: {gtee: 3}}}\n")
    monkeypatch.setenv("JOURNEY_DEFINITIONS", str(bad))
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "stages.0.entry.purchases.gtee" in err


def test_worker_refuses_an_unknown_preset_and_lists_the_presets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEY_DEFINITIONS", "no_such_preset")
    assert main(["worker"]) == 2
    assert "touchpoint_journey" in capsys.readouterr().err


def test_presets_lists_each_preset_with_its_stages_and_event_types(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "dentist: Dentist value ladder" in out
    assert "stages (stages may be skipped): lead -> irresistible_offer -> filling -> " \
        "major_treatment" in out
    assert "its own types (accepted when it is loaded): diagnosis" in out
    assert "its own types (accepted when it is loaded): documents_completed, lead_qualified, " \
        "presentation_held" in out
    assert "exits: converted, refunded" in out  # touchpoint_journey


def test_vocabulary_lists_the_accepted_types_by_category_and_the_journeys_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEY_DEFINITIONS", "dentist")
    monkeypatch.setenv("JOURNEY_EXTRA_EVENT_TYPES", "quote_requested")
    assert main(["vocabulary"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("acquisition: ad_impression, ad_click")
    assert "consent: opt_out, opt_in" in lines
    assert "custom (journey dentist): diagnosis" in lines
    assert "custom (JOURNEY_EXTRA_EVENT_TYPES): quote_requested" in lines


# --- the in-process run -------------------------------------------------------------------------


def test_the_dentist_preset_alone_accepts_and_acts_on_its_own_diagnosis_events(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("JOURNEY_DEFINITIONS", "dentist")
    monkeypatch.setenv("JOURNEY_ALLOWED_LATENESS_S", "0")
    path = tmp_path / "clinic.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in [
        {"event_id": "1", "customer_id": "eva", "type": "appointment_booked",
         "occurred_at": "2026-10-01T09:00:00Z"},
        {"event_id": "2", "customer_id": "eva", "type": "showed_up",
         "occurred_at": "2026-10-03T09:00:00Z", "properties": {"product": "whitening"}},
        {"event_id": "3", "customer_id": "eva", "type": "diagnosis",
         "occurred_at": "2026-10-03T09:30:00Z", "properties": {"finding": "cavity"}},
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["replay", str(path), "--in-process", "--out", str(out),
                 "--until", "2026-10-04T00:00:00+00:00"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert not [r for r in records if r["topic"] == "dead-letters"]
    assert "treatment_follow_up" in [r["value"]["rule"] for r in records
                                     if r["topic"] == "triggers"]


def test_the_b2b_preset_alone_accepts_lead_qualified() -> None:
    policy = Settings(definitions=["b2b_sales"]).ingest_policy()
    assert policy.knows("lead_qualified")
    assert not Settings(definitions=["dentist"]).ingest_policy().knows("lead_qualified")


def test_in_process_dead_letters_carry_the_time_of_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("not json\n")
    out = tmp_path / "out.jsonl"
    before = datetime.now(UTC).replace(microsecond=0)
    assert main(["replay", str(path), "--in-process", "--out", str(out)]) == 0
    time.sleep(0.01)
    after = datetime.now(UTC)
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    stamped = datetime.fromisoformat(record["value"]["dead_lettered_at"])
    assert before <= stamped <= after
