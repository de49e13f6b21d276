"""Benchmark helper: a Faust app whose one agent reads a topic and does nothing with it.

Run by tests/bench/compare.py as a subprocess, once per mode:

    python -m tests.bench.faust_noop --bootstrap HOST:PORT --topic T --events N \
        --mode per-event|take --result FILE

`per-event` is `async for value in stream` (Faust acknowledges each event); `take` is
`stream.take_events(--take, within=--within)`; `drain` reads the agent's channel queue below
the stream API, with records fetched by journey/stream/faust_internals.py, as the journey
worker does (journey/stream/agents.py, `drain`): every event queued, up to --take, per batch.
The agent writes one JSON object to --result when it has seen N events: {"events", "first",
"seconds"}, the seconds from the first event (or first batch, of `first` events) to the Nth,
measured inside the agent. The parent then stops the process. No table, no producer, no
web server: this is what Faust's stream machinery alone costs per event.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import faust
import orjson

from journey.stream.agents import drain
from journey.stream.faust_internals import BatchingTransport


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--mode", choices=["per-event", "take", "drain"], default="per-event")
    parser.add_argument("--take", type=int, default=2000, help="take_events max")
    parser.add_argument("--within", type=float, default=0.05, help="take_events within, s")
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--datadir", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--conf", action="append", default=[], metavar="NAME=VALUE",
                        help="a Faust app setting, e.g. stream_buffer_maxsize=16384 "
                        "(integers are passed as int; repeatable)")
    return parser.parse_args(argv)


class Counter:
    """Counts events; writes the result once the target is reached."""

    def __init__(self, target: int, result: Path) -> None:
        self.target, self.result = target, result
        self.seen = self.first = 0
        self.first_at = 0.0

    def add(self, n: int) -> None:
        if not self.seen:
            self.first_at, self.first = time.perf_counter(), n
        before = self.seen
        self.seen += n
        if before < self.target <= self.seen:
            seconds = time.perf_counter() - self.first_at
            self.result.write_bytes(orjson.dumps(
                {"events": self.seen, "first": self.first, "seconds": seconds}))


def conf_item(item: str) -> tuple[str, Any]:
    name, _, value = item.partition("=")
    return name, int(value) if value.lstrip("-").isdigit() else value


def build(args: argparse.Namespace) -> faust.App:
    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=str(args.datadir),
        topic_partitions=args.partitions,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        **dict(conf_item(item) for item in args.conf),
    )
    topic = app.topic(args.topic, partitions=args.partitions, key_serializer="raw",
                      value_serializer="raw")
    counter = Counter(args.events, args.result)

    if args.mode == "per-event":
        @app.agent(topic, name="noop")
        async def noop(stream: Any) -> None:
            async for _value in stream:
                counter.add(1)
    elif args.mode == "drain":
        app.transport = BatchingTransport(app.conf.broker_consumer, app)

        @app.agent(topic, name="noop")
        async def noop_drain(stream: Any) -> None:
            async for batch, _caught_up in drain(stream, args.take):
                counter.add(len(batch))
    else:
        @app.agent(topic, name="noop")
        async def noop_take(stream: Any) -> None:
            async for batch in stream.take_events(args.take, within=args.within):
                counter.add(len(batch))

    return app


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    app = build(args)
    # INFO, not WARNING: see worker_bench.py (Faust's spinner costs time at WARNING).
    faust.Worker(app, loglevel="INFO", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
