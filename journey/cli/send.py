"""`journey send` and `journey replay`: put touchpoints on the touchpoints topic from the shell."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from kafka.errors import KafkaError

from journey.contract.codec import touchpoint_to_bytes
from journey.contract.decode import IngestPolicy, Rejection, decode
from journey.contract.records import Touchpoint
from journey.pipeline.settings import Settings
from journey.stream.kafka_client import producer

Clock = Callable[[], float]
Sleep = Callable[[float], None]
Done = Callable[[Exception | None], None]

# CLI option for each contract field, so an error names what the user typed.
_OPTION_OF = {
    "customer_id": "--customer", "type": "--type", "channel": "--channel",
    "amount": "--amount", "currency": "--currency", "occurred_at": "--at",
    "event_id": "--event-id", "timezone": "--timezone", "properties": "--property",
}


# --- building one touchpoint -------------------------------------------------------------


class InvalidTouchpointError(ValueError):
    """The options do not make a touchpoint the worker would accept."""


def parse_property(text: str) -> tuple[str, Any]:
    """`k=v` as a key and a value: JSON when v parses as JSON (3, true, [1]), else the text."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InvalidTouchpointError(f"--property {text!r}: expected key=value")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def touchpoint_fields(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    """The touchpoint's JSON fields from the send options; unset options are left out."""
    fields: dict[str, Any] = {
        "event_id": args.event_id or str(uuid.uuid4()),
        "customer_id": args.customer,
        "type": args.type,
        "occurred_at": args.at or now.isoformat(),
        "channel": args.channel,
        "amount": _number_or_text(args.amount),
        "currency": args.currency,
        "timezone": args.timezone,
        "properties": dict(parse_property(p) for p in args.property) if args.property else None,
    }
    return {k: v for k, v in fields.items() if v is not None}


def build_touchpoint(fields: dict[str, Any], policy: IngestPolicy, now_ms: int) -> Touchpoint:
    """Validate as the worker will, with the same decoder; raise naming the option at fault."""
    result = decode(json.dumps(fields).encode(), policy=policy, now_ms=now_ms)
    if isinstance(result, Rejection):
        raise InvalidTouchpointError(_explain(result))
    return result


def _explain(rejection: Rejection) -> str:
    head = (rejection.field or "").split(".")[0]
    option = _OPTION_OF.get(head)
    where = f"{option} ({rejection.field})" if option else rejection.field or "touchpoint"
    return f"{where}: {rejection.message} [{rejection.reason}]"


def _number_or_text(value: str | None) -> float | str | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value  # the decoder then names --amount as not a number


# --- reading a JSON Lines file -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """A line to send as it is, and the key to send it under."""

    number: int
    value: bytes
    key: bytes | None


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line the worker would dead-letter, so it is reported and not sent."""

    number: int
    error: str


def iter_lines(path: Path, policy: IngestPolicy, now_ms: int) -> Iterator[Line | BadLine]:
    """The lines of a JSON Lines file ("-" for standard input); blank lines are skipped."""
    if str(path) == "-":
        yield from parse_lines(sys.stdin.buffer, policy, now_ms)
        return
    with path.open("rb") as stream:
        yield from parse_lines(stream, policy, now_ms)


def parse_lines(
    stream: Iterable[bytes], policy: IngestPolicy, now_ms: int
) -> Iterator[Line | BadLine]:
    """Each line checked with the worker's own decoder: a line it would dead-letter is a
    BadLine with its reason; a good one is sent as it is, keyed by its customer."""
    for number, raw in enumerate(stream, start=1):
        value = raw.rstrip(b"\r\n")
        if not value.strip():
            continue
        decoded = decode(value, policy=policy, now_ms=now_ms)
        if isinstance(decoded, Rejection):
            yield BadLine(number, f"{decoded.message} [{decoded.reason}]")
            continue
        yield Line(number, value, decoded.customer_id.encode())


# --- pacing and progress -----------------------------------------------------------------


class RateLimiter:
    """Spaces calls to at most `per_second` on average; no burst to catch up after a stall."""

    def __init__(
        self, per_second: float | None, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError("the rate must be positive")
        self._interval = None if per_second is None else 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        """Return when the next call is allowed."""
        if self._interval is None:
            return
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


class Progress:
    """One carriage-return status line on a terminal stream, redrawn a few times a second."""

    def __init__(
        self, stream: IO[str], *, enabled: bool = True, clock: Clock = time.monotonic,
        every_s: float = 0.2,
    ) -> None:
        self._stream = stream
        self._enabled = enabled
        self._clock = clock
        self._every_s = every_s
        self._started = clock()
        self._drawn_at: float | None = None
        self._width = 0

    def update(self, sent: int, failed: int, *, force: bool = False) -> None:
        if not self._enabled:
            return
        now = self._clock()
        if not force and self._drawn_at is not None and now - self._drawn_at < self._every_s:
            return
        self._drawn_at = now
        elapsed = max(now - self._started, 1e-9)
        text = f"replay: {sent} sent, {failed} failed, {sent / elapsed:.0f}/s"
        self._stream.write("\r" + text.ljust(self._width))
        self._width = len(text)
        self._stream.flush()

    def note(self, message: str) -> None:
        """Print a message on its own line without leaving the status line torn."""
        if self._enabled and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._drawn_at = None
            self._width = 0
        print(message, file=self._stream)

    def finish(self, sent: int, failed: int) -> None:
        if self._enabled:
            self.update(sent, failed, force=True)
            self._stream.write("\n")
            self._stream.flush()


# --- sending -----------------------------------------------------------------------------


class Sink(Protocol):
    """Where records go: Kafka here; an in-process engine can implement the same three calls."""

    def send(self, value: bytes, key: bytes | None, done: Done) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class KafkaSink:
    """A kafka-python producer writing to one topic; delivery results come back via `done`."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    def send(self, value: bytes, key: bytes | None, done: Done) -> None:
        future = self._producer.send(self._topic, value=value, key=key)
        future.add_callback(lambda _metadata: done(None))
        future.add_errback(done)

    def flush(self) -> None:
        self._producer.flush()

    def close(self) -> None:
        self._producer.close(timeout=10)


@dataclass
class Tally:
    """What happened to each line; updated from the producer's I/O thread too."""

    sent: int = 0
    invalid: int = 0
    undelivered: list[tuple[int, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def failed(self) -> int:
        with self._lock:
            return self.invalid + len(self.undelivered)

    def count_invalid(self) -> None:
        with self._lock:
            self.invalid += 1

    def done_for(self, number: int) -> Done:
        def done(error: Exception | None) -> None:
            with self._lock:
                if error is None:
                    self.sent += 1
                else:
                    self.undelivered.append((number, f"{type(error).__name__}: {error}"))

        return done


def replay(
    lines: Iterable[Line | BadLine], sink: Sink, *, limiter: RateLimiter, progress: Progress
) -> Tally:
    """Send every good line as it is, report bad ones, and wait until the sink has them all."""
    tally = Tally()
    for item in lines:
        if isinstance(item, BadLine):
            tally.count_invalid()
            progress.note(f"line {item.number}: {item.error}")
            continue
        limiter.wait()
        done = tally.done_for(item.number)
        try:
            sink.send(item.value, item.key, done)
        except Exception as exc:  # e.g. too large or no metadata in time: this line only
            done(exc)
        progress.update(tally.sent, tally.failed)
    sink.flush()
    for number, why in sorted(tally.undelivered):
        progress.note(f"line {number}: not delivered: {why}")
    progress.finish(tally.sent, tally.failed)
    return tally


# --- the commands ------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = subparsers.add_parser("send", help="send one touchpoint to the touchpoints topic")
    send.add_argument("--customer", required=True, help="customer_id")
    send.add_argument("--type", required=True, help="event type, e.g. purchase")
    send.add_argument("--channel")
    send.add_argument("--amount", help="money amount, a number")
    send.add_argument("--currency", help="ISO 4217 code, e.g. EUR")
    send.add_argument("--at", help="occurred_at, ISO 8601 with an offset (default: now)")
    send.add_argument("--event-id", help="idempotency key (default: a new UUID)")
    send.add_argument("--timezone", help="the person's IANA time zone")
    send.add_argument("--property", action="append", metavar="KEY=VALUE",
                      help="a property; VALUE is read as JSON when it parses, else as text")
    send.set_defaults(handler=run_send)

    replay_cmd = subparsers.add_parser(
        "replay", help="send every valid line of a JSON Lines file to the touchpoints topic "
        "(bad lines are reported with their number and reason, not sent)",
        description="Lines are checked with the worker's own decoder first. With --in-process "
        "no broker is used: the file is ordered by event time (stable, ties by event_id) and "
        "run through the worker's pipeline here.",
    )
    replay_cmd.add_argument("file", type=Path, help="JSON Lines file, or - for standard input")
    replay_cmd.add_argument("--rate", type=_positive_float,
                            help="to Kafka: at most N records per second")
    replay_cmd.add_argument("--no-progress", action="store_true",
                            help="to Kafka: no progress line")
    replay_cmd.add_argument(
        "--in-process", action="store_true",
        help="no broker: run the worker's pipeline here and write its outputs as JSON Lines",
    )
    replay_cmd.add_argument("--out", type=Path, help="with --in-process: output file (default -)")
    replay_cmd.add_argument(
        "--until", help="with --in-process: advance event time to this ISO instant at the end, "
        "so detections due by then fire",
    )
    replay_cmd.set_defaults(handler=run_replay)


def run_send(args: argparse.Namespace, settings: Settings) -> int:
    now = datetime.now(UTC)
    try:
        fields = touchpoint_fields(args, now)
        touchpoint = build_touchpoint(
            fields, settings.ingest_policy(), int(now.timestamp() * 1000)
        )
    except InvalidTouchpointError as exc:
        print(f"journey send: {exc}", file=sys.stderr)
        return 2
    sink = _kafka_sink(settings)
    if sink is None:
        return 1
    tally = Tally()
    try:
        sink.send(touchpoint_to_bytes(touchpoint), touchpoint.customer_id.encode(),
                  tally.done_for(1))
        sink.flush()
    except Exception as exc:
        tally.done_for(1)(exc)
    finally:
        sink.close()
    if tally.undelivered:
        print(f"journey send: not delivered: {tally.undelivered[0][1]}", file=sys.stderr)
        return 1
    print(touchpoint.event_id)
    return 0


def _misplaced_option(args: argparse.Namespace) -> str | None:
    """An option given where it does nothing, named, or None."""
    if args.in_process:
        if args.rate is not None:
            return "--rate applies only when sending to Kafka, not with --in-process"
        if args.no_progress:
            return "--no-progress applies only when sending to Kafka, not with --in-process"
        return None
    if args.out is not None:
        return "--out applies only with --in-process"
    if args.until is not None:
        return "--until applies only with --in-process"
    return None


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.file
    misplaced = _misplaced_option(args)
    if misplaced is not None:
        print(f"journey replay: {misplaced}", file=sys.stderr)
        return 2
    if str(path) != "-" and not path.is_file():
        print(f"journey replay: no such file: {path}", file=sys.stderr)
        return 2
    if args.in_process:
        from journey.pipeline.inprocess import run_in_process

        return run_in_process(path, settings, out=args.out, until=args.until)
    sink = _kafka_sink(settings)
    if sink is None:
        return 1
    now_ms = int(time.time() * 1000)
    try:
        tally = replay(
            iter_lines(path, settings.ingest_policy(), now_ms), sink,
            limiter=RateLimiter(args.rate),
            progress=Progress(sys.stderr, enabled=not args.no_progress),
        )
    finally:
        sink.close()
    print(f"sent {tally.sent}, failed {tally.failed}")
    return 1 if tally.failed else 0


def _kafka_sink(settings: Settings) -> KafkaSink | None:
    from journey.cli.topics import quiet_kafka

    try:
        with quiet_kafka():
            made = producer(settings, max_block_ms=15_000)
    except KafkaError as exc:
        from journey.cli.topics import unreachable

        print(f"journey: {unreachable(settings, exc)}", file=sys.stderr)
        return None
    return KafkaSink(made, settings.topics().touchpoints.name)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value
