"""The golden reference of the fault suite: the in-process run of the same touchpoints gives
the expected trigger ids, stage-change ids and final state of every customer."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson

from journey.contract.decode import REASONS, Rejection, decode
from journey.pipeline.inprocess import in_process_pipeline, replay_lines
from journey.pipeline.settings import Settings
from tests.bench.generate import touchpoint_lines

#: The worker's settings in every scenario, as environment variables. Ten years of allowed
#: lateness: event times never move a watermark, only the ticks do, and the ticks queue behind
#: the backlog, so the answer cannot depend on how customers share partitions or on when a
#: worker died (see tests/integration/test_replay_matches_worker.py). No quiet hours and no
#: contact budget, which read the local time of day: the comparison stays exact.
WORKER_ENV = {
    "JOURNEY_ALLOWED_LATENESS_S": str(10 * 365 * 86_400),
    "JOURNEY_TRIGGER_HOLD_S": "3600",
    "JOURNEY_QUIET_HOURS": "",
    "JOURNEY_CONTACT_BUDGET": "",
    "JOURNEY_TICK_INTERVAL_MS": "300",
    # The shortest session the settings allow: a killed worker's partitions move soon.
    "JOURNEY_SESSION_TIMEOUT_S": "6",
}
SETTINGS_FIELDS: dict[str, Any] = {
    "allowed_lateness_s": 10 * 365 * 86_400, "trigger_hold_s": 3600, "quiet_hours": None,
    "contact_budget": None,
}
#: The golden run's "now" must not matter: nothing may fall due between it and the worker's
#: last tick. The reference is computed at now and at now + this, and the two must agree.
STABLE_FOR = timedelta(hours=2)


@dataclass(frozen=True)
class Golden:
    """What every correct run over `lines` ends with."""

    lines: tuple[bytes, ...]
    trigger_ids: frozenset[str]
    change_ids: frozenset[str]
    #: customer id -> final state, as the JSON document the changelog carries
    states: dict[str, dict[str, object]] = field(hash=False)


def touchpoints(events: int, customers: int, seed: int = 7) -> tuple[bytes, ...]:
    """`events` valid touchpoints over `customers` customers, months in the past."""
    return tuple(touchpoint_lines(events, customers, seed=seed))


@cache
def golden(events: int, customers: int, seed: int = 7) -> Golden:
    lines = touchpoints(events, customers, seed)
    now = datetime.now(UTC)
    reference = reference_at(lines, now)
    later = reference_at(lines, now + STABLE_FOR)
    if reference != later:
        raise AssertionError("the golden reference depends on when it is computed; "
                             "something falls due near now")
    return reference


def reference_at(lines: tuple[bytes, ...], now: datetime) -> Golden:
    pipeline = in_process_pipeline(Settings(**SETTINGS_FIELDS))
    names = pipeline.router.topics
    triggers: set[str] = set()
    changes: set[str] = set()
    for out in replay_lines(lines, pipeline, until_ms=int(now.timestamp() * 1000)):
        if out["topic"] == names.triggers.name:
            triggers.add(out["value"]["trigger_id"])
        elif out["topic"] == names.stage_changes.name:
            changes.add(out["value"]["change_id"])
        elif out["topic"] == names.dead_letters.name:
            raise AssertionError(f"the golden input has a bad line: {out['value']}")
    states = pipeline.states.live  # every customer's final state, once the run is over
    return Golden(lines, frozenset(triggers), frozenset(changes),
                  {cid: orjson.loads(state.to_bytes()) for cid, state in states.items()})


# ----- malformed records, one family per reason code of the contract ----------------------
def _base(rng: random.Random, n: int) -> dict[str, object]:
    at = datetime(2026, 2, 1, tzinfo=UTC) + timedelta(minutes=n)
    return {"schema_version": 1, "event_id": f"bad-{n}", "customer_id": f"bad-cust-{n}",
            "type": "site_visit", "occurred_at": at.isoformat(),
            "channel": rng.choice(["web", "email"])}


def _json(doc: dict[str, object]) -> bytes:
    return json.dumps(doc).encode()  # not orjson: it refuses integers beyond 64 bits


def _malformed(reason: str, rng: random.Random, n: int, now: datetime) -> bytes | None:
    doc = _base(rng, n)
    if reason == "not_utf8":
        return b"\xff\xfe" + _json(doc)
    if reason == "invalid_json":
        return _json(doc)[:-7]
    if reason == "not_an_object":
        return rng.choice([None, b"[1, 2, 3]", b'"a string"', b"42", b"null"])
    if reason == "payload_too_large":
        doc["properties"] = {"blob": "x" * (64 * 1024)}
    elif reason == "missing_field":
        del doc[rng.choice(["event_id", "customer_id", "type", "occurred_at"])]
    elif reason == "unexpected_field":
        doc["colour"] = "red"
    elif reason == "wrong_type":
        doc["event_id"] = n
    elif reason == "invalid_customer_id":
        doc["customer_id"] = rng.choice(["", f" padded-{n} ", "c" * 300])
    elif reason == "unknown_event_type":
        doc["type"] = "teleported"
    elif reason == "timezone_missing":
        doc["occurred_at"] = "2026-02-01T10:00:00"
    elif reason == "future_timestamp":
        doc["occurred_at"] = (now + timedelta(days=30)).isoformat()
    elif reason == "invalid_amount":
        doc["type"] = "purchase"
        doc["amount"] = -5.0
    elif reason == "unsupported_schema":
        doc["schema_version"] = 2
    elif reason == "invalid_value":
        doc["properties"] = {"huge": 2**70}
    else:
        raise ValueError(f"no malformed record for reason {reason}")
    return _json(doc)


@dataclass(frozen=True)
class Mixed:
    """Valid lines with malformed records mixed in: (bytes or None, expected reason or None)."""

    records: tuple[tuple[bytes | None, str | None], ...]


def with_malformed(
    lines: tuple[bytes, ...], share: float = 0.10, seed: int = 16, now: datetime | None = None
) -> Mixed:
    """The valid lines in order, with `share` of the result malformed, every reason code of
    the contract equally often. Each malformed record is checked to get the reason meant.
    `now` (default: the wall clock) is what the future timestamps are ahead of: given, the
    mix is the same bytes on every run."""
    now = now if now is not None else datetime.now(UTC)
    rng = random.Random(seed)
    reasons = sorted(REASONS)
    bad_count = round(len(lines) * share / (1 - share))
    bad = [(_malformed(reasons[i % len(reasons)], rng, i, now), reasons[i % len(reasons)])
           for i in range(bad_count)]
    policy = Settings(**SETTINGS_FIELDS).ingest_policy()
    now_ms = int(now.timestamp() * 1000)
    for raw, reason in bad:
        got = decode(raw, policy=policy, now_ms=now_ms)
        if not isinstance(got, Rejection) or got.reason != reason:
            raise AssertionError(f"malformed record meant as {reason} decodes as {got}")
    slots = sorted(rng.sample(range(len(lines) + len(bad)), len(bad)))
    out: list[tuple[bytes | None, str | None]] = []
    valid = iter(lines)
    bad_iter = iter(bad)
    slot_set = set(slots)
    for i in range(len(lines) + len(bad)):
        out.append(next(bad_iter) if i in slot_set else (next(valid), None))
    return Mixed(tuple(out))
