"""In-process replay: the worker's pipeline over a JSON Lines file, with no broker.

The same decoder, engine and batch processor as the worker; one partition; time advances
with the events (event time minus allowed lateness) and, with `until_ms`, to that instant
at the end, so detections due by then fire. Deterministic: no wall clock is read (the
future-timestamp check is off unless `now_ms` is given; dead letters are stamped with
`dead_lettered_at_ms`, the time the run started when run from the command line).

A history file may come in any line order (grouped by customer, say): the run reads it
whole and takes the events in event time (stable; ties by event_id, then line number), so
the same events in any line order give the same outputs, and no customer looks dormant
because another's events came first. Lines whose time cannot be read come first, in file
order; the decoder then rejects them with their own line number.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from journey.contract.topics import Topics
from journey.engine import Engine
from journey.engine.events import to_epoch_ms
from journey.pipeline.build import build_engine
from journey.pipeline.core import Incoming, Pipeline, Totals
from journey.pipeline.metrics import Metrics
from journey.pipeline.processor import BatchProcessor, StateCache
from journey.pipeline.routing import Router
from journey.pipeline.settings import Settings
from journey.pipeline.timekeeping import TICK_HEADER, TICK_VALUE, encode_tick

#: Far enough ahead that no event is "in the future" when no clock is given.
_NO_CLOCK_MS = 2**62


@dataclass
class OfflineSummary(Totals):
    """The pipeline's totals of an in-process run, with the lines read, the outputs written
    per topic and the customers tracked at the end."""

    lines: int = 0
    outputs: dict[str, int] = field(default_factory=dict)
    customers: int = 0


def in_process_pipeline(settings: Settings, engine: Engine | None = None) -> Pipeline:
    """The worker's pipeline on one partition, with states in memory: no broker, no Faust."""
    engine = engine if engine is not None else build_engine(settings)
    topics = Topics.named(prefix=settings.topic_prefix, partitions=1, app_id=settings.app_id)
    processor = BatchProcessor(engine, allowed_lateness_ms=settings.allowed_lateness_s * 1000,
                               sources=Pipeline.clock_sources(1, one_hop_only=True))
    states = StateCache(lambda key: None, 1, max_clean=2**62)
    return Pipeline(processor, states, Router(topics), settings.ingest_policy(), Metrics(),
                    one_hop_only=True)


def replay_lines(
    lines: Iterable[bytes],
    pipeline: Pipeline,
    *,
    source: str = "file",
    until_ms: int | None = None,
    now_ms: int | None = None,
    batch_size: int = 1000,
    summary: OfflineSummary | None = None,
    dead_lettered_at_ms: int = 0,
    on_line: Callable[[bytes], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one output record per line of output: {"topic": ..., "key": ..., "value": ...}.

    `on_line` is called with each line as it joins a batch, after the whole input has been
    read and sorted, so a progress line follows processing. The pipeline's `states.live`
    holds every customer's final state afterwards."""
    summary = summary if summary is not None else OfflineSummary()
    batch: list[Incoming] = []
    clock_ms = _NO_CLOCK_MS if now_ms is None else now_ms

    def flush() -> Iterator[dict[str, Any]]:
        # The line number stands in for the offset; dead letters carry the time the
        # caller gives (the run's start for `journey replay`; 0 keeps output reproducible).
        sends = pipeline.on_touchpoints(batch, clock_ms, dead_lettered_at_ms=dead_lettered_at_ms)
        batch.clear()
        for outgoing in sends:
            summary.outputs[outgoing.topic] = summary.outputs.get(outgoing.topic, 0) + 1
            yield {"topic": outgoing.topic,
                   "key": None if outgoing.key is None else outgoing.key.decode(),
                   "value": orjson.loads(outgoing.value or b"null")}

    for number, raw in in_time_order(lines):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        summary.lines += 1
        if on_line is not None:
            on_line(raw)
        batch.append(Incoming(source, 0, number, None, line))
        if len(batch) >= batch_size:
            yield from flush()
    if until_ms is not None:
        batch.append(Incoming(source, 0, -1, None, encode_tick(until_ms, "offline", source=0),
                              {TICK_HEADER: TICK_VALUE}))
    yield from flush()
    for total in fields(Totals):
        setattr(summary, total.name, getattr(pipeline.totals, total.name))
    summary.customers = len(pipeline.states.live)


def in_time_order(lines: Iterable[bytes]) -> list[tuple[int, bytes]]:
    """The lines with their 1-based numbers, in event time: stable, ties by event_id."""
    keyed = []
    for number, raw in enumerate(lines, start=1):
        keyed.append((_time_key(raw), number, raw))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [(number, raw) for _, number, raw in keyed]


def _time_key(raw: bytes) -> tuple[int, int, str]:
    """(0, 0, "") for a line whose time cannot be read, else (1, epoch ms, event_id)."""
    try:
        doc = orjson.loads(raw)
        at_ms = to_epoch_ms(datetime.fromisoformat(doc["occurred_at"]))
        event_id = doc.get("event_id")
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return (0, 0, "")
    return (1, at_ms, event_id if isinstance(event_id, str) else "")


def run_in_process(path: Path, settings: Settings, *, out: Path | None, until: str | None) -> int:
    """`journey replay FILE --in-process`: outputs as JSON Lines, a summary on stderr."""
    from journey.engine.definitions import DefinitionError
    from journey.pipeline.build import build_engine

    until_ms = None
    if until is not None:
        try:
            moment = datetime.fromisoformat(until)
        except ValueError:
            print(f"journey replay: --until {until!r} is not an ISO 8601 time", file=sys.stderr)
            return 2
        if moment.tzinfo is None:
            print("journey replay: --until needs a UTC offset, e.g. 2026-12-01T00:00:00+00:00",
                  file=sys.stderr)
            return 2
        until_ms = to_epoch_ms(moment)
    try:
        engine = build_engine(settings)
    except DefinitionError as exc:
        print(f"journey replay: {exc}", file=sys.stderr)
        return 2
    pipeline = in_process_pipeline(settings, engine)
    summary = OfflineSummary()
    source = sys.stdin.buffer if str(path) == "-" else path.open("rb")
    sink = sys.stdout.buffer if out is None or str(out) == "-" else out.open("wb")
    try:
        # Dead letters carry the time this run rejected them, as the worker's do.
        started_ms = int(time.time() * 1000)
        for record in replay_lines(source, pipeline, source=str(path), until_ms=until_ms,
                                   summary=summary, dead_lettered_at_ms=started_ms):
            sink.write(orjson.dumps(record) + b"\n")
    except BrokenPipeError:  # e.g. piped into head: the reader has what it wanted
        sys.stderr.close()
        return 0
    finally:
        if source is not sys.stdin.buffer:
            source.close()
        if sink is not sys.stdout.buffer:
            sink.close()
        else:
            sink.flush()
    outputs = ", ".join(f"{n} {topic}" for topic, n in sorted(summary.outputs.items()))
    print(f"lines {summary.lines}: accepted {summary.accepted}, dead-lettered "
          f"{summary.dead_lettered}, duplicates {summary.duplicates}, late {summary.late}; "
          f"{summary.customers} customers; outputs: {outputs or 'none'}", file=sys.stderr)
    return 0
