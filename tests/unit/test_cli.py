"""The command line: clear errors, no tracebacks, for bad settings."""

from __future__ import annotations

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
