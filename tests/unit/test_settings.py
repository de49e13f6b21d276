"""Settings: one frozen object from JOURNEY_* variables, secrets never printed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from journey.pipeline.settings import Settings


def test_settings_are_read_from_journey_prefixed_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOURNEY_KAFKA_BOOTSTRAP", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("JOURNEY_PARTITIONS", "12")
    settings = Settings()
    assert settings.kafka_bootstrap == "broker-a:9092,broker-b:9092"
    assert settings.partitions == 12


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        # What `settings.partitions = 3` calls; written so, since the types forbid it too.
        settings.__setattr__("partitions", 3)


def test_password_is_masked_in_repr_and_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_KAFKA_PASSWORD", "hunter2")
    settings = Settings()
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.redacted())
    assert settings.kafka_password is not None
    assert settings.kafka_password.get_secret_value() == "hunter2"


def test_invalid_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_PARTITIONS", "zero")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()
