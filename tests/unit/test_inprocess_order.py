"""The in-process run takes a history file in any line order: events in event time, the same
outputs for the same events, and no false dormant alarm from a file grouped by customer."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from journey.pipeline.inprocess import in_process_pipeline, in_time_order, replay_lines
from journey.pipeline.settings import Settings

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _line(n: int, customer: str, etype: str, day: float, **extra: Any) -> bytes:
    doc = {"event_id": f"{customer}-{n}", "customer_id": customer, "type": etype,
           "occurred_at": (START + timedelta(days=day)).isoformat(), **extra}
    return json.dumps(doc).encode()


def _history() -> list[bytes]:
    """Three customers, grouped by customer (as an export from a CRM often is)."""
    lines = []
    for c, gap in (("anna", 10), ("ben", 12), ("cleo", 11)):
        for i in range(10):
            lines.append(_line(i, c, "purchase", i * gap, amount=20.0))
        lines.append(_line(99, c, "site_visit", 9 * gap - 1.5))
    return lines


def _run(lines: list[bytes], *, stamp_ms: int = 0) -> list[dict[str, Any]]:
    until = int((START + timedelta(days=105)).timestamp() * 1000)
    return list(replay_lines(lines, in_process_pipeline(Settings()), until_ms=until,
                             batch_size=7, dead_lettered_at_ms=stamp_ms))


def test_a_history_grouped_by_customer_raises_no_false_dormant_alarm() -> None:
    out = _run(_history())
    woken = [r["value"]["customer_id"] for r in out
             if r["topic"] == "triggers" and r["value"]["rule"] == "dormant_wake_up"]
    # Everyone bought in their own rhythm until day 90-108; by day 105 nobody sleeps (the
    # first to would be anna, 20 days after her last purchase on day 90).
    assert woken == []


def test_the_same_events_in_any_line_order_give_the_same_outputs() -> None:
    lines = _history()
    in_order = sorted(lines, key=lambda raw: json.loads(raw)["occurred_at"])
    expected = _run(in_order)
    assert expected  # something happened: stage changes and triggers
    rng = random.Random(9)
    for _ in range(3):
        shuffled = lines[:]
        rng.shuffle(shuffled)
        assert _run(shuffled) == expected
    assert _run(lines) == expected


def test_no_customers_outputs_go_backwards_in_time() -> None:
    out = _run(_history())
    for customer in ("anna", "ben", "cleo"):
        times = [r["value"]["occurred_at"] for r in out
                 if r["topic"] == "stage-changes" and r["key"] == customer]
        assert times and times == sorted(times)


def test_unreadable_lines_keep_their_own_line_number_and_carry_the_runs_time() -> None:
    lines = [_line(1, "anna", "purchase", 3), b"not json", _line(2, "anna", "purchase", 1),
             b'{"occurred_at": "yesterday"}']
    stamp = int(datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
    dead = [r["value"] for r in _run(lines, stamp_ms=stamp) if r["topic"] == "dead-letters"]
    assert [(d["source_offset"], d["reason"]) for d in dead] == [
        (2, "invalid_json"), (4, "missing_field")]
    assert {d["dead_lettered_at"] for d in dead} == {"2026-06-01T12:00:00Z"}


def test_ties_in_event_time_are_broken_by_event_id_whatever_the_line_order() -> None:
    a = _line(1, "anna", "site_visit", 0)
    b = _line(2, "anna", "purchase", 0)
    assert [n for n, _ in in_time_order([a, b])] == [1, 2]
    assert [raw for _, raw in in_time_order([b, a])] == [a, b]
