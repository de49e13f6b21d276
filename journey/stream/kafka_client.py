"""kafka-python clients configured from Settings (admin, producer and consumer factories, for
the command line), the access check, and the worker's retry of a broker call."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError
from aiokafka.protocol.metadata import MetadataRequest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from journey.contract.topics import Topics, TopicSpec
from journey.pipeline.backoff import Backoff
from journey.pipeline.kafka_security import KafkaAccessError, SaslLogin, sasl_login, ssl_context
from journey.pipeline.settings import Settings

log = logging.getLogger(__name__)


class TopicMismatchError(RuntimeError):
    """An existing topic has a partition count other than the one configured."""


class TopicConfigError(TopicMismatchError):
    """The broker refused a config journey sets on a topic (the dead letters' retention)."""


def check_access(settings: Settings, *, timeout_s: float = 15.0) -> None:
    """Fail fast, with the reason, when TLS or SASL does not let this client in.

    kafka-python and Faust retry a refused login as if the broker were down, for half a minute
    or forever, and without the broker's reason. This opens one connection the way they do and
    raises KafkaAccessError naming what is wrong. PLAINTEXT is not checked, and a broker that
    cannot be reached at all is left to the clients' own retries.
    """
    if settings.kafka_security_protocol == "PLAINTEXT":
        return
    context = ssl_context(settings)
    login = sasl_login(settings)
    for address in (h.strip() for h in settings.kafka_bootstrap.split(",")):
        host, _, port = address.rpartition(":")
        try:
            _run(asyncio.wait_for(_open(host, int(port), settings, context, login), timeout_s))
            return
        except Exception as exc:
            if _unreachable(exc):
                continue  # the clients wait for it, as they do without TLS
            # Every other failure is a refusal; say which, without the chained details.
            raise KafkaAccessError(_refusal(address, settings, exc)) from None


def _run(probe: Coroutine[Any, Any, None]) -> None:
    """Run the probe on a loop of its own, also when called from a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(probe)
        return
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, probe).result()


def _unreachable(exc: Exception) -> bool:
    if isinstance(exc, (TimeoutError, ConnectionRefusedError, socket.gaierror)):
        return True
    return type(exc) is OSError and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)


async def _open(host: str, port: int, settings: Settings, context: ssl.SSLContext | None,
                login: SaslLogin | None) -> None:
    sasl: dict[str, Any] = {}
    if login is not None:
        sasl = {"sasl_mechanism": login.mechanism, "sasl_plain_username": login.username,
                "sasl_plain_password": login.password}
    conn = await create_conn(host, port, client_id=f"{settings.app_id}-check",
                             security_protocol=settings.kafka_security_protocol,
                             ssl_context=context, **sasl)
    try:
        # With TLS 1.3 a rejected client certificate shows only on the first request.
        await conn.send(MetadataRequest([]))
    finally:
        await asyncio.wait_for(conn.close(), 5)  # the socket closes only on the next turns


def _refusal(address: str, settings: Settings, exc: BaseException) -> str:
    """What went wrong, in the settings' words; built from names, never from secrets."""
    protocol = settings.kafka_security_protocol
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, SaslAuthenticationFailed):
        return (f"Kafka at {address} refused the SASL {settings.kafka_sasl_mechanism} login of "
                f"user {settings.kafka_username!r}: wrong JOURNEY_KAFKA_USERNAME or "
                "JOURNEY_KAFKA_PASSWORD")
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (f"Kafka at {address} does not offer SASL mechanism "
                f"{settings.kafka_sasl_mechanism} (JOURNEY_KAFKA_SASL_MECHANISM)")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"the TLS certificate of Kafka at {address} is not trusted "
                f"({exc.verify_message}): check JOURNEY_KAFKA_SSL_CAFILE")
    if isinstance(cause, ssl.SSLError) and "CERTIFICATE" in str(cause).upper():
        return (f"Kafka at {address} rejected the TLS client certificate ({cause.reason}): "
                "check JOURNEY_KAFKA_SSL_CERTFILE and JOURNEY_KAFKA_SSL_KEYFILE")
    return (f"Kafka at {address} closed the connection while setting up {protocol} "
            f"({type(exc).__name__}): is that listener {protocol}? "
            "check JOURNEY_KAFKA_SECURITY_PROTOCOL")


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection options of every kafka-python client: brokers, TLS and SASL."""
    config: dict[str, Any] = {
        "bootstrap_servers": [h.strip() for h in settings.kafka_bootstrap.split(",")],
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    login = sasl_login(settings)
    if login is not None:
        config["sasl_mechanism"] = login.mechanism
        config["sasl_plain_username"] = login.username
        config["sasl_plain_password"] = login.password
    return config


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    check_access(settings)
    options: dict[str, Any] = {"acks": "all", "linger_ms": 5, "retries": 5}
    options.update(overrides)
    return KafkaProducer(**client_config(settings), **options)


def consumer(settings: Settings, *topics: str, **overrides: Any) -> KafkaConsumer:
    check_access(settings)
    options: dict[str, Any] = {"auto_offset_reset": "earliest", "enable_auto_commit": False}
    options.update(overrides)
    return KafkaConsumer(*topics, **client_config(settings), **options)


def ensure_topics(settings: Settings, topics: Topics | None = None, *,
                  on_config: Callable[[str], None] | None = None) -> list[str]:
    """Create the deployment's topics that are missing; refuse on a partition-count mismatch;
    give existing topics the configs journey sets (the dead letters' retention), each
    change told to `on_config` and logged.

    Returns the names of the topics it created.
    """
    topics = topics or settings.topics()
    check_access(settings)
    admin = KafkaAdminClient(**client_config(settings), client_id=f"{settings.app_id}-admin")
    try:
        existing = _partition_counts(admin, [s.name for s in topics.all()])
        created: list[str] = []
        for spec in topics.all():
            have = existing.get(spec.name)
            if have is None:
                _create(admin, spec, settings.replication_factor)
                created.append(spec.name)
            elif have != spec.partitions:
                raise TopicMismatchError(
                    f"topic {spec.name} has {have} partitions but JOURNEY_PARTITIONS is "
                    f"{spec.partitions}; state is partitioned by customer, so they must match"
                )
        for spec in topics.all():
            if spec.name in existing:
                for change in _align_configs(admin, spec):
                    log.info("%s", change)
                    if on_config is not None:
                        on_config(change)
        return created
    finally:
        admin.close()


def _align_configs(admin: KafkaAdminClient, spec: TopicSpec) -> list[str]:
    """Set the configs of `spec` an existing topic has other values of (one at a time, with
    IncrementalAlterConfigs: the topic's other configs stay as they are)."""
    if not spec.configs:
        return []
    wanted = dict(spec.configs)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=wanted)],
            config_filter="ALL")
    except KafkaError as exc:  # no right to read them, say
        raise TopicConfigError(f"cannot read the configs of topic {spec.name}: {exc}") from exc
    entries = described["topic"][spec.name]
    # A value the topic only inherits (the broker's default) is set on the topic itself, so
    # a later change of the broker's default does not change it.
    changes = {key: value for key, value in wanted.items()
               if entries.get(key, {}).get("value") != value
               or entries.get(key, {}).get("config_source") != "DYNAMIC_TOPIC_CONFIG"}
    if changes:
        try:
            answer = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name,
                                                         configs=changes)], incremental=True)
        except KafkaError as exc:
            answer = {"topic": {spec.name: exc}}
        outcome = answer["topic"][spec.name]
        if outcome != "OK":
            raise TopicConfigError(f"cannot set {', '.join(changes)} on topic {spec.name}: "
                                   f"{outcome}")
    return [f"set {key}={value} on topic {spec.name}" for key, value in changes.items()]


def _partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    present = set(admin.list_topics())
    wanted = [n for n in names if n in present]
    if not wanted:
        return {}
    # kafka-python 2.x names the key "topic", 3.x "name".
    return {
        t.get("name", t.get("topic")): len(t["partitions"]) for t in admin.describe_topics(wanted)
    }


def _create(admin: KafkaAdminClient, spec: TopicSpec, replication: int) -> None:
    try:
        admin.create_topics(
            [NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=replication,
                      topic_configs=dict(spec.configs))]
        )
        log.info("created topic %s with %d partitions", spec.name, spec.partitions)
    except TopicAlreadyExistsError:
        pass


T = TypeVar("T")


async def retrying(call: Callable[[], Awaitable[T]], *, what: str, stopping: Callable[[], bool],
                   retry_min_s: float = 0.2, retry_max_s: float = 5.0) -> T:
    """Await `call()` until it succeeds: a broker that is down or restarting makes the
    caller wait, not fail. Gives up only when stopping."""
    backoff = Backoff(retry_min_s, retry_max_s)
    while True:
        try:
            return await call()
        except (KafkaError, AIOKafkaError, OSError, TimeoutError) as exc:
            delay = backoff.next_delay()
            if stopping():
                raise
            if backoff.worth_logging:
                log.warning("%s failed (%s: %s), attempt %d; retrying in %.1fs", what,
                            type(exc).__name__, exc, backoff.attempt, delay)
            await asyncio.sleep(delay)
