"""Benchmark: microseconds per record of the contract, old (pydantic models) next to new (orjson).

Run: .venv/bin/python -m tests.bench.contract_bench [--events 20000] [--repeats 7]
and again with MALLOC_TRIM_THRESHOLD_=1000000000 in the environment: with glibc's default
the heap top is trimmed and regrown around orjson's output buffers (two system calls per
record), which costs the orjson encoders 2-3 µs a record whenever much memory is free at
the top of the heap; the figures show how much in this process.
Prints, for generated touchpoints and the outputs the engine makes of them: decode
candidates, encoders per output type, and the whole contract cost per event (ingest and
publish, without the engine). Each figure is the best of --repeats interleaved runs, timed
in CPU time of this process (time.process_time), so that other processes on a busy machine
disturb old and new alike and little, with the garbage collector paused as timeit does.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired

import orjson
from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, with_config
from typing_extensions import TypedDict  # pydantic needs this one on Python 3.11

from journey.contract import codec
from journey.contract.decode import IngestPolicy, Rejection, decode
from journey.contract.fastdecode import Accepted, decode_canonical, decode_event, decode_touchpoint
from journey.engine import CustomerState, Engine, load_definitions
from journey.engine.duration import DAY_MS
from journey.engine.outputs import Output, StageChange, TriggerRequest
from tests.bench.generate import touchpoint_lines

POLICY = IngestPolicy()
NOW_MS = 1_900_000_000_000  # after every generated touchpoint

Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]


@with_config(ConfigDict(extra="forbid", strict=True))
class _PlainTouchpoint(TypedDict):
    """Candidate: the contract's JSON types and constraints as a TypedDict (no time checks)."""

    event_id: Label
    customer_id: Annotated[str, StringConstraints(max_length=128, pattern=r"^\S(.*\S)?$")]
    type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    occurred_at: str
    schema_version: NotRequired[Literal[1]]
    channel: NotRequired[Label | None]
    source: NotRequired[Label | None]
    campaign: NotRequired[Label | None]
    amount: NotRequired[Annotated[float, Field(ge=0)] | None]
    currency: NotRequired[Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None]
    timezone: NotRequired[Annotated[str, StringConstraints(min_length=1, max_length=64)] | None]
    properties: NotRequired[dict[str, Any]]


def _msgspec_candidate() -> Callable[[bytes], object] | None:
    """Candidate: a msgspec Struct (structure only), if msgspec happens to be installed."""
    try:
        import msgspec
    except ImportError:
        return None
    text = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    fields: list[Any] = [
        ("event_id", text),
        ("customer_id", Annotated[str, msgspec.Meta(max_length=128, pattern=r"^\S(.*\S)?$")]),
        ("type", Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]),
        ("occurred_at", str),
        ("schema_version", int, 1),
        ("channel", text | None, None),
        ("source", text | None, None),
        ("campaign", text | None, None),
        ("amount", Annotated[float, msgspec.Meta(ge=0)] | None, None),
        ("currency", Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] | None, None),
        ("timezone", Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None, None),
        ("properties", dict[str, Any], msgspec.field(default_factory=dict)),
    ]
    struct = msgspec.defstruct("Touchpoint", fields, forbid_unknown_fields=True)
    decoder: Callable[[bytes], object] = msgspec.json.Decoder(struct).decode
    return decoder


def _per_record(run: Callable[[], object], n: int, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()  # as timeit does: the collector's pauses depend on what else is alive
        started = time.process_time()
        run()
        times.append((time.process_time() - started) / n * 1e6)
        gc.enable()
    return times


def measure(cases: dict[str, Callable[[], object]], n: int, repeats: int) -> dict[str, float]:
    """Best µs per record of each case, with the cases' runs interleaved."""
    best = {name: float("inf") for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            best[name] = min(best[name], *_per_record(run, n, 1))
    return best


def engine_outputs(lines: Sequence[bytes]) -> list[Output]:
    engine = Engine(load_definitions(["touchpoint_journey"]))
    states: dict[str, CustomerState] = {}
    outputs: list[Output] = []
    for line in lines:
        event = codec.event_from_bytes(line)
        step = engine.apply(states.get(event.customer_id), event)
        states[event.customer_id] = step.state
        outputs.extend(step.outputs)
    later = max(s.max_event_ms for s in states.values()) + 120 * DAY_MS
    for state in states.values():
        outputs.extend(engine.on_time(state, later).outputs)
    return outputs


def old_encode(output: Output) -> bytes:
    if isinstance(output, StageChange):
        return codec.record_bytes(codec.stage_change_record(output))
    if isinstance(output, TriggerRequest):
        return codec.record_bytes(codec.trigger_record(output))
    return codec.record_bytes(codec.audit_record(output))


def decode_figures(lines: list[bytes], repeats: int) -> dict[str, float]:
    def each(fn: Callable[[bytes], object]) -> Callable[[], object]:
        return lambda: [fn(line) for line in lines]

    def old_event(line: bytes) -> object:
        touchpoint = decode(line, policy=POLICY, now_ms=NOW_MS)
        assert not isinstance(touchpoint, Rejection)
        return codec.event_from_bytes(codec.touchpoint_to_bytes(touchpoint))

    def new_two_hops(line: bytes) -> object:
        accepted = decode_canonical(line, policy=POLICY, now_ms=NOW_MS)
        assert not isinstance(accepted, Rejection)
        return codec.event_from_bytes(accepted[1])

    def old_canonical(line: bytes) -> bytes:
        touchpoint = decode(line, policy=POLICY, now_ms=NOW_MS)
        assert not isinstance(touchpoint, Rejection)
        return codec.touchpoint_to_bytes(touchpoint)

    def accepted(line: bytes) -> Accepted:
        found = decode_touchpoint(line, policy=POLICY, now_ms=NOW_MS)
        assert not isinstance(found, Rejection)
        return found

    typed_dict = TypeAdapter(_PlainTouchpoint).validate_json
    cases: dict[str, Callable[[], object]] = {
        "floor: orjson.loads": each(orjson.loads),
        "candidate: TypedDict validate_json (types only)": each(typed_dict),
    }
    msgspec_decode = _msgspec_candidate()
    if msgspec_decode is not None:
        cases["candidate: msgspec Struct (types only)"] = each(msgspec_decode)
    cases |= {
        "old decode() -> Touchpoint": each(lambda r: decode(r, policy=POLICY, now_ms=NOW_MS)),
        "old decode() + touchpoint_to_bytes": each(old_canonical),
        "old raw -> bytes -> event_from_bytes": each(old_event),
        "new decode_canonical": each(lambda r: decode_canonical(r, policy=POLICY,
                                                                now_ms=NOW_MS)),
        "new decode_canonical -> event_from_bytes": each(new_two_hops),
        "new decode_event (raw -> Event)": each(lambda r: decode_event(r, policy=POLICY,
                                                                       now_ms=NOW_MS)),
        "new decode_touchpoint -> .event": each(lambda r: accepted(r).event),
        "new decode_touchpoint -> .canonical()": each(lambda r: accepted(r).canonical()),
    }
    return measure(cases, len(lines), repeats)


def rejection_figures(lines: list[bytes], repeats: int) -> dict[str, float]:
    bad = [line.replace(b'"customer_id":"', b'"customer_id":" ') for line in lines]
    return measure({
        "old decode() of a rejected record": lambda: [
            decode(r, policy=POLICY, now_ms=NOW_MS) for r in bad],
        "new decode_event of a rejected record": lambda: [
            decode_event(r, policy=POLICY, now_ms=NOW_MS) for r in bad],
    }, len(bad), repeats)


def _each(encode: Callable[[Output], bytes], outputs: list[Output]) -> list[bytes]:
    return [encode(o) for o in outputs]


def encode_figures(outputs: list[Output], repeats: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for kind in sorted({type(o) for o in outputs}, key=lambda k: k.__name__):
        some = [o for o in outputs if type(o) is kind]
        best = measure({
            "old": functools.partial(_each, old_encode, some),
            "new": functools.partial(_each, codec.output_bytes, some),
        }, len(some), repeats)
        figures[f"old {kind.__name__}"] = best["old"]
        figures[f"new {kind.__name__}"] = best["new"]
    best = measure({
        "old": lambda: [old_encode(o) for o in outputs],
        "new": lambda: [codec.output_bytes(o) for o in outputs],
    }, len(outputs), repeats)
    figures["old, the run's mix of outputs"] = best["old"]
    figures["new, the run's mix of outputs"] = best["new"]
    rejection = Rejection("wrong_type", "amount: Input should be a valid number", "amount")
    at = datetime(2026, 10, 1, 12, tzinfo=UTC)
    place: dict[str, Any] = {"topic": "touchpoints", "partition": 3, "offset": 123_456,
                             "key": b"anna", "value": b'{"amount": "12"}', "at": at}
    n = 5000
    best = measure({
        "old": lambda: [codec.record_bytes(codec.dead_letter_record(rejection, **place))
                        for _ in range(n)],
        "new": lambda: [codec.dead_letter_bytes(rejection, **place) for _ in range(n)],
    }, n, repeats)
    figures["old DeadLetter"] = best["old"]
    figures["new DeadLetter"] = best["new"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    lines = list(touchpoint_lines(args.events, args.customers))
    outputs = engine_outputs(lines)
    per_event = len(outputs) / len(lines)
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_", "glibc's default")
    print(f"{len(lines):,} touchpoints, {len(outputs):,} outputs ({per_event:.2f} per event), "
          f"best of {args.repeats}; MALLOC_TRIM_THRESHOLD_ {trim}; CPU µs per record")
    decoded = decode_figures(lines, args.repeats)
    rejected = rejection_figures(lines[:5000], args.repeats)
    encoded = encode_figures(outputs, args.repeats)
    for title, figures in (("decode", decoded), ("rejections", rejected),
                           ("encode", encoded)):
        print(f"\n{title}")
        for name, us in figures.items():
            print(f"  {name:<48} {us:7.2f}")
    old_enc = encoded["old, the run's mix of outputs"] * per_event
    new_enc = encoded["new, the run's mix of outputs"] * per_event
    old_two = decoded["old raw -> bytes -> event_from_bytes"] + old_enc
    new_two = decoded["new decode_canonical -> event_from_bytes"] + new_enc
    new_one = decoded["new decode_event (raw -> Event)"] + new_enc
    print("\ncontract cost per event (decode to Event, plus its share of output encoding)")
    print(f"  {'old: two hops (decode, canonical bytes, event_from_bytes)':<60} {old_two:7.2f}")
    print(f"  {'new: two hops (decode_canonical, event_from_bytes)':<60} {new_two:7.2f}"
          f"  ({old_two / new_two:.1f}x)")
    print(f"  {'new: one hop (decode_event)':<60} {new_one:7.2f}  ({old_two / new_one:.1f}x)")


if __name__ == "__main__":
    main()
