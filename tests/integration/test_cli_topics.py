"""`journey topics` against a real broker: which topics exist and which are missing."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from journey.cli import main
from tests.support.kafka import app_id_for


def _states(out: str) -> dict[str, str]:
    rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
    return {row[0]: row[1] for row in rows}


def _deployment_env(monkeypatch: pytest.MonkeyPatch, bootstrap: str, prefix: str) -> None:
    """The environment of a deployment of its own: broker, topic prefix and app id (the
    table changelogs are named by it)."""
    monkeypatch.setenv("JOURNEY_KAFKA_BOOTSTRAP", bootstrap)
    monkeypatch.setenv("JOURNEY_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("JOURNEY_APP_ID", app_id_for(prefix))


def test_topics_says_which_exist_and_which_are_missing_and_create_makes_them(
    kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a deployment whose topics are not on the broker yet (its own app id too: the
    # table changelogs are named by it)
    _deployment_env(monkeypatch, kafka_bootstrap, topic_prefix)
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


def test_the_dead_letter_topic_keeps_records_for_the_retention_set_new_or_existing(
    kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a deployment created with the default dead-letter retention (14 days)
    _deployment_env(monkeypatch, kafka_bootstrap, topic_prefix)
    assert main(["topics", "--create"]) == 0
    dead_letters = f"{topic_prefix}dead-letters"
    assert _retention_ms(kafka_bootstrap, dead_letters) == str(14 * 86_400_000)
    assert "set " not in capsys.readouterr().out
    # When the retention is changed and the topics are created again (they all exist)
    monkeypatch.setenv("JOURNEY_DEAD_LETTER_RETENTION_DAYS", "2")
    assert main(["topics", "--create"]) == 0
    # Then the existing topic gets it, and the command says so
    assert capsys.readouterr().out.splitlines()[0] == \
        f"set retention.ms={2 * 86_400_000} on topic {dead_letters}"
    assert _retention_ms(kafka_bootstrap, dead_letters) == str(2 * 86_400_000)
    # And the other topics keep the broker's retention
    assert _retention_source(kafka_bootstrap, f"{topic_prefix}triggers") != \
        "DYNAMIC_TOPIC_CONFIG"


def _entry(bootstrap: str, topic: str) -> dict[str, str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": ""})],
            config_filter="ALL")
    finally:
        admin.close()
    entry: dict[str, str] = described["topic"][topic]["retention.ms"]
    return entry


def _retention_ms(bootstrap: str, topic: str) -> str:
    return _entry(bootstrap, topic)["value"]


def _retention_source(bootstrap: str, topic: str) -> str:
    return _entry(bootstrap, topic)["config_source"]
