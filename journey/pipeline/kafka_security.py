"""TLS and SASL for every Kafka client: one SSL context built from the settings."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from journey.pipeline.settings import Settings


class KafkaSecurityError(ValueError):
    """The TLS files or the SASL settings cannot be used; the message names the setting."""


class KafkaAccessError(ConnectionError):
    """A broker answered but refused this client: its certificate, SASL login or protocol.

    Unlike an unreachable broker this does not heal by retrying, so it stops the command.
    """


class MaskedStr(str):
    """A secret the Kafka libraries can send (they join and encode it) but never display.

    kafka-python logs its whole configuration at DEBUG, password included; with this the
    log shows '**********' instead.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'**********'"

    def __str__(self) -> str:
        return "**********"

    def __format__(self, spec: str) -> str:
        return format("**********", spec)


@dataclass(frozen=True)
class SaslLogin:
    """What a client needs to authenticate with SASL. repr hides the password."""

    mechanism: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"SaslLogin(mechanism={self.mechanism!r}, username={self.username!r})"


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The SSL context of every Kafka connection, or None when the protocol has no TLS.

    The broker's certificate is verified against JOURNEY_KAFKA_SSL_CAFILE (else the system's
    CAs) and its host name checked; a client certificate is presented when one is configured.
    """
    if not uses_tls(settings):
        return None
    cafile = _readable(settings.kafka_ssl_cafile, "JOURNEY_KAFKA_SSL_CAFILE")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except ssl.SSLError as exc:
        raise KafkaSecurityError(
            f"JOURNEY_KAFKA_SSL_CAFILE {cafile}: not a PEM CA certificate ({exc.reason})"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_certfile is not None:
        _load_client_certificate(context, settings.kafka_ssl_certfile, settings)
    return context


def sasl_login(settings: Settings) -> SaslLogin | None:
    """The SASL login for SASL_PLAINTEXT and SASL_SSL, or None for the other protocols."""
    if not settings.kafka_security_protocol.startswith("SASL_"):
        return None
    if settings.kafka_username is None or settings.kafka_password is None:
        raise KafkaSecurityError(
            "JOURNEY_KAFKA_USERNAME and JOURNEY_KAFKA_PASSWORD are required for SASL")
    return SaslLogin(
        mechanism=settings.kafka_sasl_mechanism,
        username=settings.kafka_username,
        password=MaskedStr(settings.kafka_password.get_secret_value()),
    )


def _load_client_certificate(context: ssl.SSLContext, cert: Path, settings: Settings) -> None:
    certfile = _readable(cert, "JOURNEY_KAFKA_SSL_CERTFILE") or str(cert)
    keyfile = _readable(settings.kafka_ssl_keyfile, "JOURNEY_KAFKA_SSL_KEYFILE")
    key_password = settings.kafka_ssl_key_password
    try:
        context.load_cert_chain(
            certfile,
            keyfile,
            # A callable, so that ssl never asks on the terminal for a missing password.
            password=lambda: key_password.get_secret_value() if key_password else "",
        )
    except ssl.SSLError as exc:
        # OpenSSL says which routine failed (often just "PEM lib"), never the password.
        raise KafkaSecurityError(
            f"JOURNEY_KAFKA_SSL_CERTFILE {certfile} with JOURNEY_KAFKA_SSL_KEYFILE "
            f"{keyfile or certfile}: cannot load the client certificate and key "
            f"({exc.reason or 'PEM lib'}): is JOURNEY_KAFKA_SSL_KEY_PASSWORD right, "
            "and are both PEM files of the same key pair?"
        ) from None


def _readable(path: Path | None, name: str) -> str | None:
    if path is None:
        return None
    if not path.is_file():
        raise KafkaSecurityError(f"{name} {path}: no such file")
    return str(path)
