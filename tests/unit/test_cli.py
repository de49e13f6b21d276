"""The command line: clear errors, no tracebacks, for bad settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from journey.cli import main


def test_bad_setting_is_reported_by_name_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEY_WEB_PORT", "not-a-port")
    assert main(["topics"]) == 2
    err = capsys.readouterr().err
    assert "web_port" in err
    assert "Traceback" not in err


def test_topics_command_lists_every_topic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics"]) == 0
    out = capsys.readouterr().out
    for name in ("touchpoints", "journey-events", "stage-changes", "triggers", "dead-letters"):
        assert name in out


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
