"""Deterministic synthetic touchpoints for benchmarks: realistic mix, many customers."""

from __future__ import annotations

import random
from collections.abc import Iterator

import orjson

from journey.engine.duration import DAY_MS

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

# (type, weight): acquisition and nurture dominate, as in real traffic.
MIX = [
    ("site_visit", 30), ("ad_click", 12), ("content_view", 10), ("email_opened", 12),
    ("email_clicked", 5), ("newsletter_subscribe", 3), ("lead_magnet_download", 3),
    ("webinar_attended", 2), ("purchase", 8), ("referral", 1), ("complaint", 1),
    ("complaint_response", 1), ("opt_out", 1), ("consultation", 2), ("first_use", 2),
    ("paid_link_clicked", 2), ("email_sent", 5),
]
CHANNELS = ["web", "email", "facebook", "google", "store", "sms"]


def touchpoint_lines(n: int, customers: int, seed: int = 7) -> Iterator[bytes]:
    """n JSON touchpoints in event-time order over `customers` customers."""
    rng = random.Random(seed)
    types = [t for t, _ in MIX]
    weights = [w for _, w in MIX]
    step_ms = max(1, (90 * DAY_MS) // max(n, 1))
    for i in range(n):
        etype = rng.choices(types, weights)[0]
        doc: dict[str, object] = {
            "schema_version": 1,
            "event_id": f"ev-{seed}-{i}",
            "customer_id": f"cust-{rng.randrange(customers)}",
            "type": etype,
            "occurred_at": _iso(T0_MS + i * step_ms),
            "channel": rng.choice(CHANNELS),
        }
        if etype == "purchase":
            doc["amount"] = round(rng.uniform(5, 500), 2)
            doc["currency"] = "EUR"
            doc["properties"] = {"tier": rng.choice(["tripwire", "core", "premium"])}
        yield orjson.dumps(doc)


def _iso(ms: int) -> str:
    from journey.engine.events import from_epoch_ms

    return from_epoch_ms(ms).isoformat()
