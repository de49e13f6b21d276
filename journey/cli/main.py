"""The `journey` command line. Each command group lives in its own module with a register()."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from journey.pipeline.kafka_security import KafkaAccessError, KafkaSecurityError
from journey.pipeline.redact import install_log_redaction, settings_secrets
from journey.pipeline.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="journey",
        description="Customer-journey stream processor. Settings come from JOURNEY_* variables.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run a journey worker")
    worker.set_defaults(handler=_worker)

    demo = sub.add_parser("demo", help="start a worker, feed sample touchpoints, show results")
    demo.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for output")
    demo.set_defaults(handler=_demo)

    topics = sub.add_parser("topics", help="list (and with --create, create) the topics")
    topics.add_argument("--create", action="store_true", help="create missing topics")
    topics.set_defaults(handler=_topics)

    for register in _command_modules():
        register(sub)
    return parser


def _command_modules() -> list[Callable[[argparse._SubParsersAction], None]]:  # type: ignore[type-arg]
    """Command groups kept in their own modules, each exposing register(subparsers)."""
    from journey.cli.churn import register as churn
    from journey.cli.lab import register as lab
    from journey.cli.schemas import register as schemas
    from journey.cli.send import register as producer

    return [producer, schemas, churn, lab]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        settings = Settings()
    except Exception as exc:  # pydantic names each bad variable; show that, not a traceback.
        print(f"journey: invalid settings: {exc}", file=sys.stderr)
        return 2
    install_log_redaction(settings_secrets(settings))
    try:
        return handler(args, settings)
    except (KafkaSecurityError, KafkaAccessError) as exc:
        # A wrong certificate, key or login: one line that names the setting, no traceback.
        print(f"journey: {exc}", file=sys.stderr)
        return 2


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from faust import Worker

    from journey.engine.definitions import DefinitionError
    from journey.stream.app import create_app
    from journey.stream.kafka_client import TopicMismatchError, ensure_topics

    logging.basicConfig(level=settings.log_level)
    try:
        built = create_app(settings)
        ensure_topics(settings, built.topics)
    except (DefinitionError, TopicMismatchError, OSError, ValueError) as exc:
        # The worker refuses to start on a bad journey definition or topic layout.
        print(f"journey worker: {exc}", file=sys.stderr)
        return 2
    if not settings.offer_code_secret.get_secret_value():
        logging.getLogger("journey").warning(
            "JOURNEY_OFFER_CODE_SECRET is empty: offer codes can be guessed from trigger ids")
    worker = Worker(built.faust, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from journey.cli.demo import run_demo

    return run_demo(settings, timeout_s=args.timeout)


def _topics(args: argparse.Namespace, settings: Settings) -> int:

    topics = settings.topics()
    if args.create:
        from journey.stream.kafka_client import ensure_topics

        for name in ensure_topics(settings, topics):
            print(f"created {name}")
    for spec in topics.all():
        print(f"{spec.name}\tkey={spec.key}\tpartitions={spec.partitions}\t{spec.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
