"""`journey topics`: the deployment's topics and whether the broker has them; --create makes
the missing ones and gives existing ones the configs journey sets (the dead letters'
retention). Also the one-line message every command gives when Kafka is unreachable."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from journey.pipeline.settings import Settings
from journey.stream.kafka_client import TopicMismatchError, check_access, client_config

#: How long a command waits for the broker before saying it cannot reach it.
BOOTSTRAP_TIMEOUT_MS = 10_000


def unreachable(settings: Settings, exc: Exception) -> str:
    """The one line a command prints when the broker cannot be reached."""
    text = str(exc)
    if not text.startswith(type(exc).__name__):
        text = f"{type(exc).__name__}: {text}"
    return (f"cannot reach Kafka at {settings.kafka_bootstrap} ({text}); "
            "is the broker running and JOURNEY_KAFKA_BOOTSTRAP right?")


@contextmanager
def quiet_kafka() -> Iterator[None]:
    """kafka-python logs every failed connection attempt; the command says it once."""
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def broker_topics(settings: Settings, names: list[str]) -> dict[str, int]:
    """Partition counts of those of `names` the broker has; raises KafkaError if unreachable,
    and KafkaAccessError or KafkaSecurityError at once for a wrong login or certificate."""
    check_access(settings)
    with quiet_kafka():
        admin = KafkaAdminClient(**client_config(settings), client_id=f"{settings.app_id}-cli",
                                 bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    try:
        present = set(admin.list_topics())
        wanted = [n for n in names if n in present]
        if not wanted:
            return {}
        described: list[dict[str, Any]] = admin.describe_topics(wanted)
        return {str(t.get("name") or t.get("topic")): len(t["partitions"]) for t in described}
    finally:
        admin.close()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topics = subparsers.add_parser(
        "topics", help="list the topics and which exist on the broker (--create: make missing)"
    )
    topics.add_argument("--create", action="store_true", help="create missing topics")
    topics.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    specs = settings.topics().all()
    try:
        have = broker_topics(settings, [s.name for s in specs])
        if args.create:
            from journey.stream.kafka_client import ensure_topics

            for name in ensure_topics(settings, settings.topics(), on_config=print):
                print(f"created {name}")
                have[name] = settings.partitions
    except KafkaError as exc:
        for spec in specs:
            print(f"{spec.name}\tkey={spec.key}\tpartitions={spec.partitions}\t{spec.record}")
        print(f"journey topics: {unreachable(settings, exc)}", file=sys.stderr)
        return 1
    except TopicMismatchError as exc:
        print(f"journey topics: {exc}", file=sys.stderr)
        return 2
    missing = 0
    for spec in specs:
        count = have.get(spec.name)
        if count is None:
            state = "missing"
            missing += 1
        elif count != spec.partitions:
            state = f"exists with {count} partitions (JOURNEY_PARTITIONS is {spec.partitions})"
        else:
            state = "exists"
        print(f"{spec.name}\t{state}\tkey={spec.key}\tpartitions={spec.partitions}\t"
              f"{spec.record}")
    if missing:
        print(f"journey topics: {missing} of {len(specs)} topics are missing on "
              f"{settings.kafka_bootstrap}; `journey topics --create` makes them",
              file=sys.stderr)
    return 0
