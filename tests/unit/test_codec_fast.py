"""The orjson encoders write byte for byte what the pydantic records write, or fail as they do.

record_bytes(<builder>(output)) is the reference: the published models. For any engine
output (and any dead letter) the fast encoder must give the same bytes: key order, None as
null, times as pydantic writes them, floats as pydantic writes them. Where the model path
raises (a customer id outside the contract, a non-finite score, a naive time) the fast path
raises the same kind of error.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from journey.contract import codec
from journey.contract.decode import Rejection
from journey.engine import Engine, load_definitions, load_preset
from journey.engine.definitions import preset_names
from journey.engine.duration import DAY_MS
from journey.engine.outputs import Output, StageChange, TriggerRequest, TriggerSuppressed
from journey.engine.state import CustomerState
from tests.bench.generate import touchpoint_lines
from tests.unit.test_ingest_properties import json_values

MANY = settings(max_examples=2000, deadline=None)


def outcome(encode: Callable[[], bytes]) -> bytes | str:
    """The bytes, or the kind of error, so that failures are compared too."""
    try:
        return encode()
    except Exception as exc:
        return type(exc).__name__


def reference(output: Output) -> bytes:
    if isinstance(output, StageChange):
        return codec.record_bytes(codec.stage_change_record(output))
    if isinstance(output, TriggerRequest):
        return codec.record_bytes(codec.trigger_record(output))
    return codec.record_bytes(codec.audit_record(output))


def same_bytes(output: Output) -> None:
    assert outcome(lambda: codec.output_bytes(output)) == outcome(lambda: reference(output))


# Mostly ids the contract allows, sometimes not (empty, too long, edge whitespace).
customer_ids = st.text(min_size=1, max_size=20) | st.text(max_size=130)
names = st.text(max_size=20)
instants = st.integers(min_value=-(10**14), max_value=4 * 10**14) | st.sampled_from(
    [0, 1, 999, 1_767_225_600_123, 253_402_300_799_999, 10**18])
maybe_ms = st.none() | instants
scores = st.none() | st.floats() | st.integers(min_value=-(2**60), max_value=2**60)
details = st.dictionaries(st.text(max_size=8), json_values, max_size=4)

stage_changes = st.builds(
    StageChange, customer_id=customer_ids, journey=names, from_stage=st.none() | names,
    to_stage=names, cause_event_id=names, at_ms=instants,
    ms_in_previous_stage=st.none() | st.integers(min_value=0, max_value=10**13),
)
trigger_requests = st.builds(
    TriggerRequest, customer_id=customer_ids, journey=names, rule=names, reason=names,
    episode=names, at_ms=instants,
    kind=st.sampled_from(["marketing", "service", "transactional"]),
    priority=st.integers(min_value=-(2**31), max_value=2**31),
    stage=st.none() | names, status=st.none() | names,
    temperature=st.sampled_from([None, "cold", "warm", "hot", "boiling"]), score=scores,
    channel=st.none() | names, valid_for_ms=st.none() | st.integers(0, 10**12),
    details=details, send_at_ms=maybe_ms, offer_code=st.none() | names,
)
suppressions = st.builds(
    TriggerSuppressed, request=trigger_requests, reason=names,
    decision=st.sampled_from(["suppressed", "deferred", "held_out", "dropped"]),
    at_ms=maybe_ms, until_ms=maybe_ms,
)


@MANY
@given(stage_changes)
@example(StageChange("anna", "j", None, "lead", "e1", 1_767_225_600_000, None))
@example(StageChange("anna", "j", "a", "b", "e1", 1_767_225_600_001, 1))
def test_a_stage_change_encodes_to_the_models_bytes(change: StageChange) -> None:
    same_bytes(change)


@MANY
@given(trigger_requests)
@example(TriggerRequest("anna", "j", "r", "why", "e1", 1_767_225_600_000, score=1))
@example(TriggerRequest("anna", "j", "r", "why", "e1", 1_767_225_600_000, score=float("nan")))
@example(TriggerRequest("anna", "j", "r", "why", "e1", 0, details={"n": 2**64, "f": 1e16}))
def test_a_trigger_encodes_to_the_models_bytes(request: TriggerRequest) -> None:
    same_bytes(request)


@MANY
@given(suppressions)
def test_an_audit_record_encodes_to_the_models_bytes(suppressed: TriggerSuppressed) -> None:
    same_bytes(suppressed)


offsets = st.integers(min_value=-86_399, max_value=86_399).map(lambda s: timedelta(seconds=s))
whole_minute_offsets = st.integers(min_value=-1439, max_value=1439).map(
    lambda m: timedelta(minutes=m))
moments = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(tzinfo=None))


@MANY
@given(
    rejection=st.builds(Rejection, reason=names, message=st.text(max_size=60),
                        field=st.none() | names),
    topic=names, partition=st.integers(-1, 2**31), offset=st.integers(-1, 2**63),
    key=st.none() | st.binary(max_size=40), value=st.none() | st.binary(max_size=80),
    at=moments, offset_of_at=st.none() | whole_minute_offsets | offsets,
)
def test_a_dead_letter_encodes_to_the_models_bytes(
    rejection: Rejection, topic: str, partition: int, offset: int, key: bytes | None,
    value: bytes | None, at: datetime, offset_of_at: timedelta | None,
) -> None:
    # Given a wall-clock time that is aware (UTC or another offset) or, wrongly, naive
    when = at if offset_of_at is None else at.replace(tzinfo=timezone(offset_of_at))
    # Then the fast encoder writes what the model writes, or fails as it fails
    fast = outcome(lambda: codec.dead_letter_bytes(
        rejection, topic=topic, partition=partition, offset=offset, key=key, value=value,
        at=when))
    slow = outcome(lambda: codec.record_bytes(codec.dead_letter_record(
        rejection, topic=topic, partition=partition, offset=offset, key=key, value=value,
        at=when)))
    assert fast == slow


def test_every_output_of_a_real_engine_run_encodes_to_the_models_bytes() -> None:
    # Given every preset journey run over a realistic mix of touchpoints, then a long silence
    engine = Engine(load_definitions(preset_names()))
    states: dict[str, CustomerState] = {}
    outputs: list[Output] = []
    for line in touchpoint_lines(2000, 200):
        event = codec.event_from_bytes(line)
        step = engine.apply(states.get(event.customer_id), event)
        states[event.customer_id] = step.state
        outputs.extend(step.outputs)
    silence_until = max(s.max_event_ms for s in states.values()) + 200 * DAY_MS
    for state in states.values():
        outputs.extend(engine.on_time(state, silence_until).outputs)
    kinds = {type(o) for o in outputs}
    assert kinds == {StageChange, TriggerRequest, TriggerSuppressed}, kinds
    # Then each output encodes to exactly the bytes the models write
    for output in outputs:
        assert codec.output_bytes(output) == reference(output), output


def test_output_bytes_refuses_what_is_not_an_engine_output() -> None:
    not_an_output: Any = load_preset("aida")
    assert outcome(lambda: codec.output_bytes(not_an_output)) == "TypeError"
