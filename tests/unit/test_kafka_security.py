"""TLS and SASL settings: one SSL context for every client, clear errors, secrets never shown."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from pydantic import SecretStr, ValidationError

from journey.pipeline.kafka_security import (
    KafkaSecurityError,
    MaskedStr,
    sasl_login,
    ssl_context,
)
from journey.pipeline.redact import install_log_redaction, settings_secrets
from journey.pipeline.settings import Settings
from journey.stream.app import create_app
from journey.stream.kafka_client import check_access, client_config

PASSWORD = "pa55-w0rd-never-shown"


def _scram(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-256",
        "kafka_username": "alice", "kafka_password": SecretStr(PASSWORD),
    }
    return Settings(**{**values, **overrides})


def test_plaintext_has_no_ssl_context_and_no_login() -> None:
    settings = Settings()
    assert ssl_context(settings) is None
    assert sasl_login(settings) is None
    assert "ssl_context" not in client_config(settings)


def test_ssl_context_verifies_the_broker_certificate_and_host_name() -> None:
    context = ssl_context(Settings(kafka_security_protocol="SSL"))
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_sasl_plaintext_logs_in_without_tls() -> None:
    settings = _scram(kafka_security_protocol="SASL_PLAINTEXT")
    assert ssl_context(settings) is None
    login = sasl_login(settings)
    assert login is not None and login.mechanism == "SCRAM-SHA-256"


def test_worker_and_kafka_python_clients_get_the_tls_context_and_login() -> None:
    # Given SASL_SSL settings
    settings = _scram()

    # When the Faust app and a kafka-python client configuration are built
    credentials = create_app(settings).faust.conf.broker_credentials
    config = client_config(settings)

    # Then Faust speaks SASL_SSL with an SSL context, as kafka-python does
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert isinstance(config["ssl_context"], ssl.SSLContext)
    assert config["security_protocol"] == "SASL_SSL"
    # And both can send the password, yet neither shows it
    assert credentials.password == PASSWORD == config["sasl_plain_password"]
    assert PASSWORD not in repr(config) and PASSWORD not in f"{config['sasl_plain_password']}"


def test_worker_over_ssl_without_sasl_gets_ssl_credentials() -> None:
    credentials = create_app(Settings(kafka_security_protocol="SSL")).faust.conf.broker_credentials
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol.value == "SSL"
    assert isinstance(credentials.context, ssl.SSLContext)


def test_missing_ca_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(KafkaSecurityError,
                       match=re.escape(f"JOURNEY_KAFKA_SSL_CAFILE {missing}: no such")):
        ssl_context(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=missing))


def test_a_ca_file_that_is_not_pem_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(KafkaSecurityError, match=r"JOURNEY_KAFKA_SSL_CAFILE .* not a PEM CA"):
        ssl_context(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=junk))


def test_unreadable_client_key_names_the_files_not_the_key_password(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("junk\n")
    key.write_text("junk\n")
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_certfile=cert,
                        kafka_ssl_keyfile=key, kafka_ssl_key_password=SecretStr(PASSWORD))
    with pytest.raises(KafkaSecurityError) as caught:
        ssl_context(settings)
    assert "JOURNEY_KAFKA_SSL_KEY_PASSWORD" in str(caught.value)
    assert str(key) in str(caught.value)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(("values", "message"), [
    ({"kafka_security_protocol": "SASL_SSL", "kafka_password": SecretStr(PASSWORD)},
     "SASL_SSL needs JOURNEY_KAFKA_USERNAME and JOURNEY_KAFKA_PASSWORD"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_username": "alice"},
     "SASL_PLAINTEXT needs JOURNEY_KAFKA_USERNAME and JOURNEY_KAFKA_PASSWORD"),
    ({"kafka_ssl_cafile": "ca.pem", "kafka_password": SecretStr(PASSWORD)},
     "PLAINTEXT does not use TLS"),
    ({"kafka_security_protocol": "SSL", "kafka_username": "alice",
      "kafka_password": SecretStr(PASSWORD)}, "SSL does not authenticate with SASL"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "k.pem"},
     "JOURNEY_KAFKA_SSL_KEYFILE needs JOURNEY_KAFKA_SSL_CERTFILE"),
])
def test_incomplete_security_settings_are_refused_without_echoing_secrets(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**values)
    assert message in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_masked_str_sends_the_value_but_never_displays_it() -> None:
    secret = MaskedStr(PASSWORD)
    assert secret == PASSWORD and secret.encode() == PASSWORD.encode()
    assert "\0".join(["alice", secret]).encode() == f"alice\0{PASSWORD}".encode()
    assert PASSWORD not in f"{secret} {secret!r} {secret!s} %s" % secret


@pytest.fixture
def restore_record_factory() -> Iterator[None]:
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)


def test_secrets_are_masked_in_every_log_record(
    restore_record_factory: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Given log redaction of the settings' secrets
    settings = _scram(offer_code_secret=SecretStr("offer-key-1234"))
    install_log_redaction(settings_secrets(settings))

    # When a library logs them, in its message and in an exception
    log = logging.getLogger("some.kafka.library")
    with caplog.at_level(logging.DEBUG):
        log.debug("config: %s", {"sasl_plain_password": PASSWORD})
        try:
            raise RuntimeError(f"login with {PASSWORD} failed")
        except RuntimeError:
            log.exception("offer key %s", "offer-key-1234")

    # Then the records say what happened, without the values
    text = caplog.text
    assert "sasl_plain_password" in text and "login with" in text and "offer key" in text
    assert PASSWORD not in text
    assert "offer-key-1234" not in text


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_access_check_leaves_an_unreachable_broker_to_the_clients_retries() -> None:
    # Given TLS settings pointing at a port nobody listens on
    settings = Settings(kafka_security_protocol="SSL",
                        kafka_bootstrap=f"127.0.0.1:{_closed_port()}")

    # When the access check runs, outside and inside an event loop
    check_access(settings)

    async def inside_a_loop() -> None:
        check_access(settings)

    asyncio.run(inside_a_loop())
    # Then it raised nothing: only a broker that answers can refuse access
