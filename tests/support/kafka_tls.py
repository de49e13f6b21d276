"""Test support: a second real broker with an SSL (mutual TLS) and a SASL_SSL SCRAM listener."""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.kafka import KAFKA_SH, TEST_PORT

TLS_CERTS_SH = KAFKA_SH.parent / "tls-certs.sh"
# Its own ports next to the main test broker's: plaintext, controller, SSL, SASL_SSL.
TLS_TEST_PORT = int(os.environ.get("JOURNEY_TEST_TLS_KAFKA_PORT", str(TEST_PORT + 2)))


@dataclass(frozen=True)
class TlsBroker:
    """Where the TLS broker listens and the credentials a client needs."""

    certs: Path
    ssl_bootstrap: str
    sasl_ssl_bootstrap: str
    scram_user: str
    scram_password: str

    @property
    def key_password(self) -> str:
        return (self.certs / "client-key.password").read_text().strip()

    def mutual_tls_env(self) -> dict[str, str]:
        """JOURNEY_* settings of a client that presents its certificate on the SSL listener."""
        return {
            "JOURNEY_KAFKA_BOOTSTRAP": self.ssl_bootstrap,
            "JOURNEY_KAFKA_SECURITY_PROTOCOL": "SSL",
            "JOURNEY_KAFKA_SSL_CAFILE": str(self.certs / "ca.pem"),
            "JOURNEY_KAFKA_SSL_CERTFILE": str(self.certs / "client.pem"),
            "JOURNEY_KAFKA_SSL_KEYFILE": str(self.certs / "client.key"),
            "JOURNEY_KAFKA_SSL_KEY_PASSWORD": self.key_password,
        }

    def scram_env(self, password: str | None = None) -> dict[str, str]:
        """JOURNEY_* settings of a client that logs in with SCRAM over TLS."""
        return {
            "JOURNEY_KAFKA_BOOTSTRAP": self.sasl_ssl_bootstrap,
            "JOURNEY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "JOURNEY_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "JOURNEY_KAFKA_SSL_CAFILE": str(self.certs / "ca.pem"),
            "JOURNEY_KAFKA_USERNAME": self.scram_user,
            "JOURNEY_KAFKA_PASSWORD": self.scram_password if password is None else password,
        }


def _env(certs: Path, password: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_PORT": str(TLS_TEST_PORT),
        "KAFKA_SSL_PORT": str(TLS_TEST_PORT + 2),
        "KAFKA_SASL_SSL_PORT": str(TLS_TEST_PORT + 3),
        "KAFKA_TLS_DIR": str(certs),
        "KAFKA_SCRAM_USERS": f"journey-test:{password}",
    }


def tls_broker_start(certs: Path) -> TlsBroker:
    """Fresh certificates (keytool, openssl), then a fresh broker with the SCRAM user."""
    subprocess.run([str(TLS_CERTS_SH), str(certs)], check=True)
    password = secrets.token_hex(12)
    env = _env(certs, password)
    subprocess.run([str(KAFKA_SH), "reset"], check=True, env=env)
    subprocess.run([str(KAFKA_SH), "start"], check=True, env=env)
    return TlsBroker(
        certs=certs,
        ssl_bootstrap=f"127.0.0.1:{TLS_TEST_PORT + 2}",
        sasl_ssl_bootstrap=f"127.0.0.1:{TLS_TEST_PORT + 3}",
        scram_user="journey-test",
        scram_password=password,
    )


def tls_broker_stop() -> None:
    env = {**os.environ, "KAFKA_PORT": str(TLS_TEST_PORT)}
    subprocess.run([str(KAFKA_SH), "stop"], check=False, env=env)
