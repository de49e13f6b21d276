"""`journey send` and `journey replay`: building, reading, pacing, progress, sending; no broker."""

from __future__ import annotations

import argparse
import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from journey.cli import send as producer_cli
from journey.cli.send import (
    BadLine,
    Done,
    InvalidTouchpointError,
    KafkaSink,
    Line,
    Progress,
    RateLimiter,
    build_touchpoint,
    iter_lines,
    parse_property,
    replay,
    touchpoint_fields,
)
from journey.contract.decode import IngestPolicy
from journey.contract.records import Touchpoint
from journey.pipeline.settings import Settings

NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


class FakeClock:
    """A clock that only moves when the code under test sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 9))
        self.now += seconds


class FakeSink:
    """Records what would go to Kafka; can fail chosen values on send or on delivery."""

    def __init__(
        self, *, refuse: bytes | None = None, lose: bytes | None = None, lose_all: bool = False
    ) -> None:
        self.sent: list[tuple[bytes, bytes | None]] = []
        self.pending: list[tuple[bytes, Done]] = []
        self.refuse, self.lose, self.lose_all = refuse, lose, lose_all
        self.flushed = self.closed = False

    def send(self, value: bytes, key: bytes | None, done: Done) -> None:
        if value == self.refuse:
            raise ValueError("record too large")
        self.sent.append((value, key))
        self.pending.append((value, done))

    def flush(self) -> None:
        for value, done in self.pending:
            lost = self.lose_all or value == self.lose
            done(TimeoutError("no ack") if lost else None)
        self.pending.clear()
        self.flushed = True

    def close(self) -> None:
        self.closed = True


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="journey")
    producer_cli.register(root.add_subparsers(dest="command", required=True))
    return root


def send_args(*extra: str) -> argparse.Namespace:
    return parser().parse_args(["send", "--customer", "anna", "--type", "purchase", *extra])


def write_jsonl(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "touchpoints.jsonl"
    path.write_bytes(content)
    return path


def quiet() -> Progress:
    return Progress(io.StringIO(), enabled=False)


POLICY = IngestPolicy()


def tp(customer: str, n: int = 1, spacing: str = " ") -> bytes:
    """A valid touchpoint line."""
    sep = f",{spacing}"
    return (f'{{"event_id":{spacing}"e{n}"{sep}"customer_id":{spacing}"{customer}"{sep}'
            f'"type":{spacing}"site_visit"{sep}"occurred_at":{spacing}'
            f'"2026-10-01T09:00:00+02:00"}}').encode()


# --- building one touchpoint -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("tier=premium", ("tier", "premium")), ("count=3", ("count", 3)),
     ("vip=true", ("vip", True)), ("tags=[1,2]", ("tags", [1, 2])),
     ("zip=01234", ("zip", "01234")), ("expr=a=b", ("expr", "a=b")), ("empty=", ("empty", ""))],
)
def test_a_property_value_is_json_when_it_parses_and_text_otherwise(
    text: str, expected: tuple[str, Any]
) -> None:
    assert parse_property(text) == expected


@pytest.mark.parametrize("text", ["no-equals", "=value"])
def test_a_property_without_a_key_is_an_error_naming_the_option(text: str) -> None:
    with pytest.raises(InvalidTouchpointError, match="--property"):
        parse_property(text)


def test_send_options_become_touchpoint_fields_and_unset_ones_are_left_out() -> None:
    args = send_args("--amount", "49.90", "--currency", "EUR", "--property", "tier=core",
                     "--property", "qty=2", "--event-id", "order-7")
    assert touchpoint_fields(args, NOW) == {
        "event_id": "order-7", "customer_id": "anna", "type": "purchase",
        "occurred_at": "2026-10-01T12:00:00+00:00", "amount": 49.9, "currency": "EUR",
        "properties": {"tier": "core", "qty": 2},
    }


def test_without_an_event_id_or_time_a_new_uuid_and_now_are_used() -> None:
    fields = touchpoint_fields(send_args(), NOW)
    assert uuid.UUID(fields["event_id"]).version == 4
    assert fields["occurred_at"] == NOW.isoformat()


def test_valid_fields_build_the_touchpoint_the_worker_would_accept() -> None:
    fields = touchpoint_fields(send_args("--channel", "web", "--at", "2026-10-01T11:00:00+02:00"),
                               NOW)
    touchpoint = build_touchpoint(fields, IngestPolicy(), NOW_MS)
    assert isinstance(touchpoint, Touchpoint)
    assert (touchpoint.customer_id, touchpoint.channel) == ("anna", "web")


@pytest.mark.parametrize(
    ("options", "named"),
    [(["--at", "2026-10-01T11:00:00"], "--at (occurred_at)"),
     (["--at", "2026-10-01T13:00:00Z"], "--at (occurred_at)"),
     (["--amount", "lots"], "--amount (amount)"),
     (["--amount", "-5"], "--amount (amount)"),
     (["--amount", "nan"], "--amount (amount)"),
     (["--currency", "euro"], "--currency (currency)"),
     (["--channel", ""], "--channel (channel)"),
     (["--property", "price=NaN"], "--property (properties.price)")],
)
def test_a_bad_option_is_reported_by_its_option_and_field(options: list[str], named: str) -> None:
    fields = touchpoint_fields(send_args(*options), NOW)
    with pytest.raises(InvalidTouchpointError) as caught:
        build_touchpoint(fields, IngestPolicy(), NOW_MS)
    assert str(caught.value).startswith(named)


def test_a_padded_customer_is_reported_as_the_customer_option() -> None:
    args = parser().parse_args(["send", "--customer", " anna", "--type", "purchase"])
    with pytest.raises(InvalidTouchpointError, match=r"^--customer \(customer_id\).*"
                                                      r"\[invalid_customer_id\]"):
        build_touchpoint(touchpoint_fields(args, NOW), IngestPolicy(), NOW_MS)


def test_an_unknown_type_is_refused_unless_the_settings_allow_it() -> None:
    fields = touchpoint_fields(
        parser().parse_args(["send", "--customer", "anna", "--type", "tiktok_duet"]), NOW
    )
    with pytest.raises(InvalidTouchpointError, match=r"^--type"):
        build_touchpoint(fields, IngestPolicy(), NOW_MS)
    build_touchpoint(fields, IngestPolicy(extra_types=frozenset({"tiktok_duet"})), NOW_MS)


# --- reading JSON Lines ------------------------------------------------------------------


def test_lines_are_read_as_is_and_keyed_by_customer(tmp_path: Path) -> None:
    # Given two touchpoint lines, one with Windows line endings and one without a final newline
    path = write_jsonl(tmp_path, tp("anna", 1) + b"\r\n" + tp("ben", 2, spacing=""))
    # When the file is read / Then each line keeps its exact bytes, minus the line ending
    assert list(iter_lines(path, POLICY, NOW_MS)) == [
        Line(1, tp("anna", 1), b"anna"),
        Line(2, tp("ben", 2, spacing=""), b"ben"),
    ]


def test_blank_lines_are_skipped_but_still_counted(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, b"\n   \n" + tp("anna") + b"\n\n")
    assert [item.number for item in iter_lines(path, POLICY, NOW_MS)] == [3]


def test_a_line_the_worker_would_reject_is_a_bad_line_with_its_number_and_reason(
    tmp_path: Path,
) -> None:
    # Given lines that are not JSON, not UTF-8, not an object, and a touchpoint with no type
    no_type = b'{"event_id":"e9","customer_id":"ann","occurred_at":"2026-10-01T09:00:00Z"}'
    path = write_jsonl(tmp_path, tp("anna") + b'\n{"customer_id": \n\xff\xfe\n[1]\n'
                       + no_type + b"\n")
    # When the file is read with the worker's decoder
    items = list(iter_lines(path, POLICY, NOW_MS))
    # Then each bad line carries its number and the reason the worker would dead-letter it
    assert [type(i).__name__ for i in items] == ["Line", "BadLine", "BadLine", "BadLine",
                                                  "BadLine"]
    errors = {i.number: i.error for i in items if isinstance(i, BadLine)}
    assert errors[2].startswith("not JSON") and errors[2].endswith("[invalid_json]")
    assert errors[3].endswith("[not_utf8]")
    assert errors[4] == "expected a JSON object, got an array [not_an_object]"
    assert errors[5] == "type is required [missing_field]"


def test_a_line_of_an_unknown_type_is_reported_unless_a_loaded_definition_names_it(
    tmp_path: Path,
) -> None:
    line = tp("anna").replace(b'"site_visit"', b'"diagnosis"')
    path = write_jsonl(tmp_path, line + b"\n")
    [item] = iter_lines(path, Settings().ingest_policy(), NOW_MS)
    assert isinstance(item, BadLine) and item.error.endswith("[unknown_event_type]")
    [item] = iter_lines(path, Settings(definitions=["dentist"]).ingest_policy(), NOW_MS)
    assert item == Line(1, line, b"anna")


# --- rate limiter ------------------------------------------------------------------------


def test_a_rate_limit_spaces_records_evenly() -> None:
    # Given a limit of 4 per second
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
    # When five records go out as fast as they can
    for _ in range(5):
        limiter.wait()
    # Then the first goes at once and each of the others waits a quarter second
    assert clock.sleeps == [0.25, 0.25, 0.25, 0.25]
    assert clock.now == pytest.approx(101.0)


def test_a_rate_limit_does_not_burst_to_catch_up_after_a_stall() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    limiter.wait()
    clock.now += 5  # the producer stalled
    limiter.wait()
    limiter.wait()
    assert clock.sleeps == [0.1]


def test_a_slow_source_is_never_held_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.wait()
        clock.now += 1.0
    assert clock.sleeps == []


def test_without_a_rate_there_is_no_waiting() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        limiter.wait()
    assert clock.sleeps == []


@pytest.mark.parametrize("rate", [0, -1])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(rate)


@pytest.mark.parametrize("rate", ["0", "-3", "fast", "inf", "nan"])
def test_the_replay_command_refuses_a_rate_that_is_not_a_positive_number(rate: str) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["replay", "f.jsonl", "--rate", rate])


# --- progress ----------------------------------------------------------------------------


def test_progress_redraws_one_line_with_count_and_rate_at_most_every_interval() -> None:
    # Given a progress line on a stream, started 0 s ago
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress(stream, clock=clock, every_s=0.2)
    # When three updates come within 0.2 s and one after 2 s
    progress.update(1, 0)
    progress.update(2, 0)
    clock.now += 2
    progress.update(100, 1)
    progress.finish(100, 1)
    # Then it drew once early, once after 2 s, and once at the end, on the same line
    out = stream.getvalue()
    assert out.count("\r") == 3
    assert "replay: 100 sent, 1 failed, 50/s" in out
    assert out.endswith("\n")
    assert out.count("\n") == 1


def test_a_note_clears_the_progress_line_and_stands_on_its_own_line() -> None:
    stream = io.StringIO()
    progress = Progress(stream, clock=FakeClock())
    progress.update(5, 0)
    progress.note("line 7: not valid JSON")
    assert stream.getvalue().endswith("\r" + " " * len("replay: 5 sent, 0 failed, 5000000000/s")
                                      + "\rline 7: not valid JSON\n")


def test_disabled_progress_prints_notes_only() -> None:
    stream = io.StringIO()
    progress = Progress(stream, enabled=False, clock=FakeClock())
    progress.update(1, 0)
    progress.note("line 2: not valid JSON")
    progress.finish(1, 1)
    assert stream.getvalue() == "line 2: not valid JSON\n"


# --- replay ------------------------------------------------------------------------------


def test_replay_sends_good_lines_in_order_and_reports_bad_ones_without_stopping(
    tmp_path: Path,
) -> None:
    # Given a file with a bad line between two good ones
    path = write_jsonl(tmp_path, tp("a", 1) + b"\nnot json\n" + tp("b", 2) + b"\n")
    sink, notes = FakeSink(), io.StringIO()
    # When it is replayed
    tally = replay(iter_lines(path, POLICY, NOW_MS), sink, limiter=RateLimiter(None),
                   progress=Progress(notes, enabled=False))
    # Then both good lines went out as they were, keyed by customer, and the bad one is named
    assert sink.sent == [(tp("a", 1), b"a"), (tp("b", 2), b"b")]
    assert sink.flushed
    assert (tally.sent, tally.failed) == (2, 1)
    assert notes.getvalue().startswith("line 2: not JSON")


def test_a_record_the_producer_refuses_or_loses_fails_alone(tmp_path: Path) -> None:
    # Given three lines, the first refused at send and the second never acknowledged
    lines = [Line(1, b'{"n":1}', None), Line(2, b'{"n":2}', None), Line(3, b'{"n":3}', None)]
    sink, notes = FakeSink(refuse=b'{"n":1}', lose=b'{"n":2}'), io.StringIO()
    # When they are replayed
    tally = replay(lines, sink, limiter=RateLimiter(None), progress=Progress(notes, enabled=False))
    # Then the third still went, and both failures are reported by line
    assert (tally.sent, tally.failed) == (1, 2)
    assert "line 1: not delivered: ValueError: record too large" in notes.getvalue()
    assert "line 2: not delivered: TimeoutError: no ack" in notes.getvalue()


def test_replay_honours_the_rate_limit() -> None:
    clock = FakeClock()
    lines = [Line(n, b"{}", None) for n in range(1, 4)]
    replay(lines, FakeSink(), limiter=RateLimiter(2, clock=clock, sleep=clock.sleep),
           progress=quiet())
    assert clock.sleeps == [0.5, 0.5]


def test_the_replay_command_prints_the_final_count_and_fails_if_any_line_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a file with one bad line, and Kafka replaced by a fake
    sink = FakeSink()
    monkeypatch.setattr(producer_cli, "_kafka_sink", lambda settings: sink)
    path = write_jsonl(tmp_path, tp("a") + b"\n{oops\n")
    args = parser().parse_args(["replay", str(path), "--no-progress"])
    # When the command runs / Then it reports the count and exits non-zero
    assert args.handler(args, Settings()) == 1
    assert capsys.readouterr().out.strip() == "sent 1, failed 1"
    assert sink.closed


def test_the_replay_command_succeeds_when_every_line_went(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(producer_cli, "_kafka_sink", lambda settings: FakeSink())
    path = write_jsonl(tmp_path, tp("a", 1) + b"\n" + tp("b", 2) + b"\n")
    args = parser().parse_args(["replay", str(path), "--no-progress"])
    assert args.handler(args, Settings()) == 0
    assert capsys.readouterr().out.strip() == "sent 2, failed 0"


def test_the_replay_command_names_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parser().parse_args(["replay", str(tmp_path / "nope.jsonl")])
    assert args.handler(args, Settings()) == 2
    assert "no such file" in capsys.readouterr().err


# --- send --------------------------------------------------------------------------------


def test_the_send_command_sends_the_touchpoint_keyed_by_customer_and_prints_its_id(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = FakeSink()
    monkeypatch.setattr(producer_cli, "_kafka_sink", lambda settings: sink)
    args = send_args("--event-id", "order-7", "--amount", "10")
    assert args.handler(args, Settings()) == 0
    assert capsys.readouterr().out.strip() == "order-7"
    [(value, key)] = sink.sent
    assert key == b"anna"
    assert json.loads(value)["amount"] == 10.0
    assert Touchpoint.model_validate_json(value).event_id == "order-7"


def test_the_send_command_refuses_a_bad_option_before_touching_kafka(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_kafka(settings: Settings) -> None:
        raise AssertionError("must not connect")

    monkeypatch.setattr(producer_cli, "_kafka_sink", no_kafka)
    args = send_args("--currency", "euro")
    assert args.handler(args, Settings()) == 2
    assert capsys.readouterr().err.startswith("journey send: --currency (currency):")


def test_the_send_command_fails_when_the_record_is_not_delivered(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = FakeSink(lose_all=True)
    monkeypatch.setattr(producer_cli, "_kafka_sink", lambda settings: sink)
    args = send_args()
    assert args.handler(args, Settings()) == 1
    assert "not delivered: TimeoutError" in capsys.readouterr().err


# --- the Kafka sink ----------------------------------------------------------------------


class FakeFuture:
    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], None]] = []
        self.errbacks: list[Callable[[Exception], None]] = []

    def add_callback(self, fn: Callable[[Any], None]) -> FakeFuture:
        self.callbacks.append(fn)
        return self

    def add_errback(self, fn: Callable[[Exception], None]) -> FakeFuture:
        self.errbacks.append(fn)
        return self


class FakeProducer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes, bytes | None]] = []
        self.futures: list[FakeFuture] = []

    def send(self, topic: str, *, value: bytes, key: bytes | None) -> FakeFuture:
        self.calls.append((topic, value, key))
        self.futures.append(FakeFuture())
        return self.futures[-1]


def test_the_kafka_sink_sends_to_its_topic_and_reports_each_delivery() -> None:
    # Given a sink over a producer
    producer = FakeProducer()
    sink = KafkaSink(producer, "touchpoints")
    outcomes: list[Exception | None] = []
    # When two records are sent, one acknowledged and one failed
    sink.send(b"{}", b"anna", outcomes.append)
    sink.send(b"[]", None, outcomes.append)
    producer.futures[0].callbacks[0]("metadata")
    failure = RuntimeError("broker gone")
    producer.futures[1].errbacks[0](failure)
    # Then both went to the topic with their keys, and the outcomes came back in order
    assert producer.calls == [("touchpoints", b"{}", b"anna"), ("touchpoints", b"[]", None)]
    assert outcomes == [None, failure]


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--out", "x.jsonl"], "--out applies only with --in-process"),
     (["--until", "2026-12-01T00:00:00+00:00"], "--until applies only with --in-process"),
     (["--in-process", "--rate", "5"], "--rate applies only when sending to Kafka"),
     (["--in-process", "--no-progress"], "--no-progress applies only when sending to Kafka")],
)
def test_an_option_of_the_other_replay_mode_is_refused_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    options: list[str], message: str,
) -> None:
    sink = FakeSink()
    monkeypatch.setattr(producer_cli, "_kafka_sink", lambda settings: sink)
    path = write_jsonl(tmp_path, tp("a") + b"\n")
    args = parser().parse_args(["replay", str(path), *options])
    assert args.handler(args, Settings()) == 2
    assert f"journey replay: {message}" in capsys.readouterr().err
    assert sink.sent == []
