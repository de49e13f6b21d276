"""Builders for engine tests: events at whole days, small inline definitions."""

from __future__ import annotations

from typing import Any

from journey.engine import Engine, EngineConfig, Event, load_preset
from journey.engine.definitions import JourneyDefinition, parse_definition
from journey.engine.duration import DAY_MS

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def ev(n: int | str, etype: str, day: float = 0.0, customer: str = "c1", **kw: Any) -> Event:
    """An event n of `etype` on day `day` after T0."""
    return Event(event_id=f"e{n}", customer_id=customer, type=etype,
                 at_ms=T0 + int(day * DAY_MS), **kw)


def definition(yaml_text: str) -> JourneyDefinition:
    return parse_definition(yaml_text, "test.yaml")


def engine(*defs: JourneyDefinition | str, **config: Any) -> Engine:
    loaded = [load_preset(d) if isinstance(d, str) else d for d in defs]
    return Engine(loaded, config=EngineConfig(**config))


LINEAR = """
name: linear
in_order: true
stages:
  - {name: a, entry: {}}
  - {name: b, entry: {type: signup}}
  - {name: c, entry: {type: purchase}}
  - {name: d, entry: {purchases: {gte: 3}}}
rules:
  - name: three_touches
    when: {touches: {gte: 3}}
    trigger: {reason: three, valid_for: 7d}
"""
