"""The `journey` command line: run a worker, send touchpoints, run the demo."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from journey.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="journey", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("worker", help="run a journey worker (settings from JOURNEY_* variables)")
    demo = sub.add_parser("demo", help="start a worker, feed sample touchpoints, show results")
    demo.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for output")
    topics = sub.add_parser("topics", help="print the topics of this deployment")
    topics.add_argument("--json", action="store_true")

    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "worker":
        return run_worker(settings)
    if args.command == "demo":
        from journey.demo import run_demo

        return run_demo(settings, timeout_s=args.timeout)
    if args.command == "topics":
        from journey.topics import Topics

        for spec in Topics.for_settings(settings).all():
            print(f"{spec.name}\tkey={spec.key}\tpartitions={spec.partitions}\t{spec.record}")
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


def run_worker(settings: Settings) -> int:
    from faust import Worker

    from journey.app import create_app
    from journey.kafka_client import ensure_topics

    logging.basicConfig(level=settings.log_level)
    built = create_app(settings)
    ensure_topics(settings, built.topics)
    worker = Worker(built.faust, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
