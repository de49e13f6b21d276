"""Settings: one frozen object from JOURNEY_* variables, secrets never printed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from journey.pipeline.settings import Settings
from journey.pipeline.settings_text import describe_error


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


def test_the_advertised_url_is_the_bind_host_and_port_by_default() -> None:
    assert Settings(web_host="10.1.2.3", web_port=7000).advertised_url() == \
        "http://10.1.2.3:7000"
    assert Settings().advertised_url() == "http://127.0.0.1:6066"


def test_a_wildcard_bind_host_advertises_the_machine_s_hostname() -> None:
    # Given a worker listening on every interface, with no advertised URL set
    for wildcard in ("0.0.0.0", "::"):
        settings = Settings(web_host=wildcard, web_port=6070)
        # Then it advertises its machine, not the wildcard (which names every worker)
        assert settings.advertised_url(hostname=lambda: "worker-7") == "http://worker-7:6070"


def test_a_set_advertised_url_wins_over_the_bind_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_WEB_HOST", "0.0.0.0")
    monkeypatch.setenv("JOURNEY_WEB_ADVERTISED_URL", "http://journey-2:6066/")
    assert Settings().advertised_url() == "http://journey-2:6066"


@pytest.mark.parametrize("bad", ["journey-1:6066", "https://journey-1:6066",
                                 "http://journey-1", "http://0.0.0.0:6066",
                                 "http://journey-1:6066/api", "http://journey-1:http"])
def test_an_advertised_url_other_than_http_host_port_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("JOURNEY_WEB_ADVERTISED_URL", bad)
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = describe_error(refused.value)
    assert message.startswith(f"JOURNEY_WEB_ADVERTISED_URL={bad!r}: ")
    assert "\n" not in message
