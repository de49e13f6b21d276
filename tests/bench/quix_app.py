"""Benchmark helper: Quix Streams running journey's engine in a stateful `apply`.

Runs in the benchmark's own virtualenv (.local/bench-venv, made by tests/bench/compare.py),
never in journey's: Quix Streams is the peer it is compared with, not a dependency.

    .local/bench-venv/bin/python -m tests.bench.quix_app --bootstrap HOST:PORT \
        --input T --output O --group G --state-dir DIR [--trivial]

Per record, the same work as the worker: strict decode of the touchpoint (a rejection
becomes a dead-letter record), load the customer's state from the RocksDB store (changelog
on), `engine.apply`, save the state, and produce every output as its contract record bytes.
All outputs go to one topic, keyed by the input key (the customer id). The engine and the
ingest policy come from journey's Settings (JOURNEY_* environment), as in the worker.

With --trivial the step is Quix Streams' own cost with state: parse the JSON, count the
record in the customer's state, and produce one small record (the count).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson
from quixstreams import Application

from journey.contract import codec
from journey.contract.decode import IngestPolicy, Rejection, decode
from journey.engine import CustomerState, Engine, Output, StageChange, TriggerRequest
from journey.pipeline.build import build_engine
from journey.pipeline.settings import Settings

STATE_KEY = "state"


def encode(output: Output) -> bytes:
    """An engine output as the bytes the worker publishes for it."""
    if isinstance(output, StageChange):
        return codec.record_bytes(codec.stage_change_record(output))
    if isinstance(output, TriggerRequest):
        return codec.record_bytes(codec.trigger_record(output))
    return codec.record_bytes(codec.audit_record(output))


def step(value: bytes, state: Any, engine: Engine, policy: IngestPolicy) -> list[bytes]:
    """One record: decode, load state, apply, save state, encoded outputs."""
    decoded = decode(value, policy=policy, now_ms=int(time.time() * 1000))
    if isinstance(decoded, Rejection):
        return [orjson.dumps({"dead_letter": decoded.reason, "detail": decoded.message})]
    event = codec.event_from_touchpoint(decoded)
    stored = state.get_bytes(STATE_KEY)
    result = engine.apply(None if stored is None else CustomerState.from_bytes(stored), event)
    state.set_bytes(STATE_KEY, result.state.to_bytes())
    return [encode(output) for output in result.outputs]


def trivial(value: bytes, state: Any) -> list[bytes]:
    """Parse, count per customer in the state, one small record out."""
    orjson.loads(value)
    seen = (state.get(STATE_KEY) or 0) + 1
    state.set(STATE_KEY, seen)
    return [orjson.dumps({"seen": seen})]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--trivial", action="store_true",
                        help="count per customer instead of running the engine")
    args = parser.parse_args(argv)

    settings = Settings()
    engine, policy = build_engine(settings), settings.ingest_policy()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(args.input, key_deserializer="bytes", value_deserializer="bytes")
    sink = app.topic(args.output, key_serializer="bytes", value_serializer="bytes")
    sdf = app.dataframe(source)
    if args.trivial:
        sdf = sdf.apply(trivial, stateful=True, expand=True)
    else:
        sdf = sdf.apply(lambda value, state: step(value, state, engine, policy),
                        stateful=True, expand=True)
    sdf.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
