"""`journey topics` against a real broker: which topics exist and which are missing."""

from __future__ import annotations

import pytest

from journey.cli import main


def _states(out: str) -> dict[str, str]:
    rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
    return {row[0]: row[1] for row in rows}


def test_topics_says_which_exist_and_which_are_missing_and_create_makes_them(
    kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a deployment whose topics are not on the broker yet
    monkeypatch.setenv("JOURNEY_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("JOURNEY_TOPIC_PREFIX", topic_prefix)
    monkeypatch.setenv("JOURNEY_PARTITIONS", "2")
    # When the topics are listed / Then every one is missing, and the command says how to fix it
    assert main(["topics"]) == 0
    captured = capsys.readouterr()
    states = _states(captured.out)
    assert len(states) == 9  # seven topics and the two table changelogs
    assert set(states.values()) == {"missing"}
    assert "9 of 9 topics are missing" in captured.err
    assert "journey topics --create" in captured.err
    # When they are created / Then each is named as created and now exists
    assert main(["topics", "--create"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("created ") == 9
    assert set(_states(captured.out).values()) == {"exists"}
    assert captured.err == ""
