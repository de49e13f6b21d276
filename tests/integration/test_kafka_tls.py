"""TLS and SASL on a real broker: a worker over mutual TLS and over SASL_SSL SCRAM, and clear
refusals that never show a secret. One extra broker, started once for this module."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from journey.pipeline.settings import Settings
from journey.stream.kafka_client import consumer, producer
from tests.support.kafka import REPO, WorkerProcess, free_port, settings_for, unique_prefix
from tests.support.kafka_tls import TlsBroker, tls_broker_start, tls_broker_stop

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    broker = tls_broker_start(tmp_path_factory.mktemp("tls-certs"))
    try:
        yield broker
    finally:
        tls_broker_stop()


def _settings(prefix: str, env: dict[str, str]) -> Settings:
    return settings_for(prefix, **{k.removeprefix("JOURNEY_").lower(): v for k, v in env.items()})


def _purchase() -> dict[str, Any]:
    return {"event_id": "e-tls-1", "customer_id": "cust-tls", "type": "purchase",
            "occurred_at": "2026-03-02T10:00:00+00:00", "amount": 49.0, "currency": "EUR"}


def _worker_run(env: dict[str, str], data_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """A worker on these settings is sent a purchase; returns the triggers and the worker log.
    The test's own producer and consumer use the same settings, so they speak TLS too."""
    prefix = unique_prefix()
    settings = _settings(prefix, env)
    topics = settings.topics()
    worker = WorkerProcess(
        bootstrap=settings.kafka_bootstrap, prefix=prefix, data_dir=data_dir,
        # DEBUG: the client libraries log their configuration; a secret must not be in it.
        extra_env={**env, "JOURNEY_LOG_LEVEL": "DEBUG"},
    ).start()
    try:
        send = producer(settings)
        send.send(topics.touchpoints.name, key=b"cust-tls", value=json.dumps(_purchase()).encode())
        send.flush()
        send.close()
        triggers = _read_until_trigger(settings, topics.triggers.name, "first_purchase_follow_up")
    finally:
        worker.stop()
    assert worker.log_path is not None
    return triggers, worker.log_path.read_text(errors="replace")


def _read_until_trigger(settings: Settings, topic: str, rule: str) -> list[dict[str, Any]]:
    read = consumer(settings, topic)
    try:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while rule not in {t["rule"] for t in got} and time.monotonic() < deadline:
            for batch in read.poll(timeout_ms=500).values():
                got.extend(json.loads(r.value) for r in batch)
        return got
    finally:
        read.close()


def test_worker_processes_events_over_mutual_tls(tls_broker: TlsBroker, tmp_path: Path) -> None:
    # Given a listener that only speaks TLS and requires a client certificate
    env = tls_broker.mutual_tls_env()

    # When a worker with the CA, certificate and encrypted key is sent a purchase
    triggers, log = _worker_run(env, tmp_path / "worker")

    # Then it emits the first-purchase trigger
    assert [t["customer_id"] for t in triggers if t["rule"] == "first_purchase_follow_up"] == [
        "cust-tls"]
    # And the key's password is nowhere in its log
    assert tls_broker.key_password not in log


def test_worker_processes_events_over_sasl_ssl_scram(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    # Given a listener that speaks TLS and asks for a SCRAM-SHA-512 login
    env = tls_broker.scram_env()

    # When a worker that trusts the CA and has the user's password is sent a purchase
    triggers, log = _worker_run(env, tmp_path / "worker")

    # Then it emits the first-purchase trigger
    assert [t["customer_id"] for t in triggers if t["rule"] == "first_purchase_follow_up"] == [
        "cust-tls"]
    # And the password is nowhere in its log, not even at DEBUG
    assert "sasl_plain_password" in log  # kafka-python did log its configuration...
    assert tls_broker.scram_password not in log  # ...with the password masked


def _run_cli(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ, **env,
        "JOURNEY_TOPIC_PREFIX": unique_prefix(), "JOURNEY_DATA_DIR": str(tmp_path / "data"),
        "JOURNEY_WEB_PORT": str(free_port()),
    }
    return subprocess.run(
        [sys.executable, "-m", "journey.cli", *args], env=full_env, cwd=REPO,
        capture_output=True, text=True, timeout=90,
    )


@pytest.mark.parametrize("command", [["worker"], ["topics", "--create"]])
def test_wrong_password_fails_with_one_clear_line_and_no_secret(
    tls_broker: TlsBroker, tmp_path: Path, command: list[str]
) -> None:
    # Given the right user with a wrong password
    wrong = f"wrong-{secrets.token_hex(8)}"

    # When the command starts
    result = _run_cli(command, tls_broker.scram_env(password=wrong), tmp_path)

    # Then it stops at once with one line that says what is wrong, and no traceback
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert [line for line in output.splitlines() if line.strip()] == [
        f"journey{' worker' if command == ['worker'] else ''}: Kafka at "
        f"{tls_broker.sasl_ssl_bootstrap} refused the SASL SCRAM-SHA-512 login of user "
        "'journey-test': wrong JOURNEY_KAFKA_USERNAME or JOURNEY_KAFKA_PASSWORD"]
    # And neither the wrong nor the right password is shown
    assert wrong not in output
    assert tls_broker.scram_password not in output


def test_missing_client_certificate_is_named_in_one_line(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    # Given the mutual-TLS listener and a client with the CA but no certificate of its own
    env = {k: v for k, v in tls_broker.mutual_tls_env().items()
           if k in ("JOURNEY_KAFKA_BOOTSTRAP", "JOURNEY_KAFKA_SECURITY_PROTOCOL",
                    "JOURNEY_KAFKA_SSL_CAFILE")}

    # When it creates the topics
    result = _run_cli(["topics", "--create"], env, tmp_path)

    # Then it is refused with the setting to look at
    assert result.returncode == 2, result.stderr
    assert "rejected the TLS client certificate" in result.stderr
    assert "JOURNEY_KAFKA_SSL_CERTFILE" in result.stderr
    assert "Traceback" not in result.stderr


def test_untrusted_broker_certificate_is_named_in_one_line(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    # Given a client without the test CA, so it trusts only the system's CAs
    env = {k: v for k, v in tls_broker.scram_env().items() if k != "JOURNEY_KAFKA_SSL_CAFILE"}

    # When it creates the topics
    result = _run_cli(["topics", "--create"], env, tmp_path)

    # Then it refuses the broker's certificate and says which setting to fix
    assert result.returncode == 2, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"journey: the TLS certificate of Kafka at {tls_broker.sasl_ssl_bootstrap} is not "
        "trusted (self-signed certificate in certificate chain): check JOURNEY_KAFKA_SSL_CAFILE"]
    assert tls_broker.scram_password not in result.stderr
