"""What the report needs from the input itself: purchases, first touches and acquisition costs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from journey.pipeline.inprocess import in_time_order

UNKNOWN_SOURCE = "(unknown)"


@dataclass(slots=True)
class CustomerFacts:
    first_ms: int
    source: str = UNKNOWN_SOURCE
    cost: float = 0.0
    purchases: list[tuple[int, float]] = field(default_factory=list)  # (at_ms, amount)


@dataclass(slots=True)
class InputFacts:
    """Per customer: first touch, its source, what acquiring them cost, and their purchases."""

    customers: dict[str, CustomerFacts] = field(default_factory=dict)
    first_ms: int | None = None
    last_ms: int | None = None
    currency: str | None = None

    def add(self, doc: dict[str, object]) -> None:
        customer_id, at_text = doc.get("customer_id"), doc.get("occurred_at")
        if not isinstance(customer_id, str) or not isinstance(at_text, str):
            return  # the pipeline dead-letters it; nothing to count here
        try:
            at_ms = int(datetime.fromisoformat(at_text).timestamp() * 1000)
        except ValueError:
            return
        self.first_ms = at_ms if self.first_ms is None else min(self.first_ms, at_ms)
        self.last_ms = at_ms if self.last_ms is None else max(self.last_ms, at_ms)
        facts = self.customers.get(customer_id)
        if facts is None:
            facts = self.customers[customer_id] = CustomerFacts(first_ms=at_ms)
            source = doc.get("source") or doc.get("channel")
            if isinstance(source, str):
                facts.source = source
        properties = doc.get("properties")
        if isinstance(properties, dict):
            cost = properties.get("cost")
            if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
                facts.cost += float(cost)
        if doc.get("type") == "purchase":
            amount = doc.get("amount")
            value = float(amount) if isinstance(amount, int | float) else 0.0
            facts.purchases.append((at_ms, value))
            currency = doc.get("currency")
            if isinstance(currency, str) and self.currency is None:
                self.currency = currency


def scan(lines: Iterable[bytes]) -> InputFacts:
    """Facts of every parseable line, taken in event time as the pipeline takes them (ties by
    event_id, then line), so a shuffled file gives the same facts: the first touch is the
    earliest, purchases are in time order. A bad line is skipped here and dead-lettered by the
    run."""
    facts = InputFacts()
    for _, raw in in_time_order(lines):
        if not raw.strip():
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            facts.add(doc)
    return facts
