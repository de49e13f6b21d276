"""kafka-python clients configured from Settings: admin, producer and consumer factories."""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from journey.contract.topics import Topics, TopicSpec
from journey.pipeline.settings import Settings

log = logging.getLogger(__name__)


class TopicMismatchError(RuntimeError):
    """An existing topic has a partition count other than the one configured."""


def client_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap_servers": [h.strip() for h in settings.kafka_bootstrap.split(",")],
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_username is not None:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
        config["sasl_plain_username"] = settings.kafka_username
        config["sasl_plain_password"] = (
            settings.kafka_password.get_secret_value() if settings.kafka_password else ""
        )
    return config


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    options: dict[str, Any] = {"acks": "all", "linger_ms": 5, "retries": 5}
    options.update(overrides)
    return KafkaProducer(**client_config(settings), **options)


def consumer(settings: Settings, *topics: str, **overrides: Any) -> KafkaConsumer:
    options: dict[str, Any] = {"auto_offset_reset": "earliest", "enable_auto_commit": False}
    options.update(overrides)
    return KafkaConsumer(*topics, **client_config(settings), **options)


def ensure_topics(settings: Settings, topics: Topics | None = None) -> list[str]:
    """Create the deployment's topics that are missing; refuse on a partition-count mismatch.

    Returns the names of the topics it created.
    """
    topics = topics or settings.topics()
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
        return created
    finally:
        admin.close()


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
