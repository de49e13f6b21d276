"""The `journey` command line. Each command group lives in its own module with a register()."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeAlias

from pydantic import ValidationError

from journey import __version__
from journey.pipeline.kafka_security import KafkaAccessError, KafkaSecurityError
from journey.pipeline.redact import install_log_redaction, settings_secrets
from journey.pipeline.settings import Settings
from journey.pipeline.settings_text import describe_error, settings_help, unknown_variables

Handler = Callable[[argparse.Namespace, Settings], int]
#: What each command group registers its commands in (generic only to the type checker).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="journey",
        description="Customer-journey stream processor. Settings come from JOURNEY_* variables "
        "(`journey worker --help` lists them).",
    )
    parser.add_argument("--version", action="version", version=f"journey {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser(
        "worker", help="run a journey worker", epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.set_defaults(handler=_worker)

    demo = sub.add_parser("demo", help="start a worker, feed sample touchpoints, show results")
    demo.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for output")
    demo.add_argument("--keep-topics", action="store_true",
                      help="keep the demo's topics afterwards (default: delete them)")
    demo.set_defaults(handler=_demo)

    for register in _command_modules():
        register(sub)
    return parser


def _command_modules() -> list[Callable[[Subparsers], None]]:
    """Command groups kept in their own modules, each exposing register(subparsers)."""
    from journey.cli.catalog import register as catalog
    from journey.cli.churn import register as churn
    from journey.cli.customer import register as customer
    from journey.cli.lab import register as lab
    from journey.cli.schemas import register as schemas
    from journey.cli.send import register as producer
    from journey.cli.topics import register as topics

    return [topics, producer, schemas, churn, catalog, lab, customer]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    for warning in unknown_variables(os.environ):
        print(f"journey: warning: {warning}", file=sys.stderr)
    try:
        settings = Settings()
    except ValidationError as exc:  # name each bad variable and its value, no traceback
        print(f"journey: invalid settings: {describe_error(exc)}", file=sys.stderr)
        return 2
    install_log_redaction(settings_secrets(settings))
    try:
        return handler(args, settings)
    except (KafkaSecurityError, KafkaAccessError) as exc:
        # A wrong certificate, key or login: one line that names the setting, no traceback.
        print(f"journey: {exc}", file=sys.stderr)
        return 2


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from kafka.errors import KafkaError

    from journey.cli.topics import broker_topics, unreachable
    from journey.engine.definitions import DefinitionError
    from journey.stream.app import create_app
    from journey.stream.kafka_client import TopicConfigError, TopicMismatchError, ensure_topics
    from journey.stream.logformat import use_log_format
    from journey.stream.quiet import install
    from journey.stream.runner import JourneyWorker

    logging.basicConfig(level=settings.log_level)
    use_log_format(settings)
    try:
        built = create_app(settings)
        broker_topics(settings, [])  # fails fast, in one line, when the broker is unreachable
        ensure_topics(settings, built.topics)
    except TopicConfigError as exc:  # every topic is there; only a retention could not be set
        logging.getLogger("journey").warning("%s; the worker goes on", exc)
    except KafkaError as exc:
        print(f"journey worker: {unreachable(settings, exc)}", file=sys.stderr)
        return 1
    except (DefinitionError, TopicMismatchError, OSError, ValueError) as exc:
        # The worker refuses to start on a bad journey definition or topic layout.
        print(f"journey worker: {exc}", file=sys.stderr)
        return 2
    if not settings.offer_code_secret.get_secret_value():
        logging.getLogger("journey").warning(
            "JOURNEY_OFFER_CODE_SECRET is empty: offer codes can be guessed from trigger ids")
    install(built.repeat_filter)
    worker = JourneyWorker(built.faust, loglevel=settings.log_level, quiet=True,
                           shutdown_s=settings.shutdown_timeout_s,
                           repeat_filter=built.repeat_filter,
                           set_up_logger=partial(use_log_format, settings),
                           on_stopping=None if built.barrier is None else built.barrier.flush)
    worker.execute_from_commandline()
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from journey.cli.demo import run_demo

    return run_demo(settings, timeout_s=args.timeout, keep_topics=args.keep_topics)


if __name__ == "__main__":
    sys.exit(main())
