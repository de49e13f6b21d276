"""A reproducible population of customers and their touchpoints, from personas in the seeds.

Every number below is a documented choice unless marked (seed). The same seed and options
give byte-identical output: each customer draws from its own random.Random seeded with
"<seed>:<index>", and the file is written sorted by event time, then event id.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

DAY = timedelta(days=1)

#: Ad channels with a cost per lead in the run's currency (seed 000: "$3-5 per lead" from
#: a Facebook campaign; the others are choices). The cost rides on the acquisition event as
#: properties.cost, and the report sums it per first-touch source.
CHANNELS: dict[str, tuple[float, float]] = {
    "facebook": (3.0, 5.0),
    "google": (4.0, 8.0),
    "instagram": (2.5, 4.5),
    "yandex": (2.0, 4.0),
    "affiliate": (6.0, 10.0),
}
CURRENCY = "EUR"

#: Persona -> share of the population (choices).
PERSONAS: dict[str, float] = {
    "browser": 0.18,  # a lead who never buys: becomes an inactive lead
    "subscriber": 0.16,  # warms up on content, then buys a tripwire
    "regular": 0.14,  # buys again and again: regular, then loyal
    "quiet": 0.12,  # bought a few times, then went quiet: dormant, then lost
    "dentist": 0.12,  # seed 000's free-whitening funnel
    "wedding": 0.08,  # seed 003's session ladder
    "complainer": 0.08,  # a complaint, answered or not
    "opt_out": 0.05,  # subscribed, then opted out
    "referrer": 0.07,  # a fan who recommends, sometimes for a reward
}

#: The presets whose funnels the personas walk. A worker (or `journey run`) given them
#: accepts every event type the population has (the dentist's `diagnosis` is no type of the
#: default vocabulary: loading the dentist preset adds it).
JOURNEYS = ("touchpoint_journey", "dentist", "wedding_photographer")

#: seed 003: the photographer's low season, when nobody books a session.
LOW_SEASON_MONTHS = frozenset({11, 12, 1, 2})


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    seed: int = 1
    customers: int = 1000
    start: date = date(2025, 1, 1)
    days: int = 365
    timezone: str = "Europe/Warsaw"

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError(f"customers must be at least 1, not {self.customers}")
        if self.days < 30:
            raise ValueError(f"the period must be at least 30 days, not {self.days}")


@dataclass(slots=True)
class _Customer:
    """One simulated person: their id, their random stream, and the events so far."""

    config: SimulationConfig
    index: int
    rng: random.Random
    events: list[dict[str, Any]]
    source: str = ""

    @property
    def customer_id(self) -> str:
        return f"c{self.index:06d}"

    def emit(self, at: datetime, type_: str, **fields: Any) -> datetime:
        end = datetime.combine(self.config.start, datetime.min.time(), UTC) + self.config.days * DAY
        if at >= end:
            return at
        event: dict[str, Any] = {
            "event_id": f"sim-{self.config.seed}-{self.index:06d}-{len(self.events):03d}",
            "customer_id": self.customer_id,
            "type": type_,
            "occurred_at": at.isoformat(),
            "timezone": self.config.timezone,
        }
        event.update({k: v for k, v in fields.items() if v is not None})
        self.events.append(event)
        return at

    def later(self, at: datetime, low_days: float, high_days: float) -> datetime:
        """A moment some days after `at`, at a whole second in daytime hours."""
        moment = at + timedelta(days=self.rng.uniform(low_days, high_days))
        hour = self.rng.randint(8, 20)
        moment = moment.replace(hour=hour, minute=self.rng.randint(0, 59),
                                second=self.rng.randint(0, 59), microsecond=0)
        if moment <= at:  # daytime rounding moved it back: keep the story in order
            moment = at.replace(microsecond=0) + timedelta(minutes=self.rng.randint(1, 90))
        return moment

    def acquire(self, at: datetime, type_: str = "ad_click") -> datetime:
        """The first touch from an ad channel, with what it cost."""
        self.source = self.rng.choice(sorted(CHANNELS))
        low, high = CHANNELS[self.source]
        cost = round(self.rng.uniform(low, high), 2)
        return self.emit(at, type_, channel=self.source, source=self.source,
                         campaign=f"{self.source}-{at.year}", properties={"cost": cost})

    def purchase(self, at: datetime, amount: float, **properties: Any) -> datetime:
        return self.emit(at, "purchase", channel="web", amount=round(amount, 2),
                         currency=CURRENCY, properties=properties)


def simulate(config: SimulationConfig) -> list[dict[str, Any]]:
    """Every event of the population, sorted by event time, then event id."""
    names = sorted(PERSONAS)
    weights = [PERSONAS[n] for n in names]
    events: list[dict[str, Any]] = []
    base = datetime.combine(config.start, datetime.min.time(), UTC)
    for index in range(config.customers):
        rng = random.Random(f"{config.seed}:{index}")
        customer = _Customer(config, index, rng, [])
        persona = rng.choices(names, weights)[0]
        # Arrivals spread over the first three quarters, so late-comers still have a story;
        # couples over the first third, so their family's ladder of sessions fits the period.
        share = 0.3 if persona == "wedding" else 0.75
        first = customer.later(base, 0, config.days * share)
        _PERSONA_STORIES[persona](customer, first)
        events.extend(customer.events)
    events.sort(key=lambda e: (_epoch_ms(e["occurred_at"]), e["event_id"]))
    return events


def event_types(events: list[dict[str, Any]]) -> frozenset[str]:
    """The event types a population has, to check a worker's vocabulary against."""
    return frozenset(str(e["type"]) for e in events)


def iter_lines(events: list[dict[str, Any]]) -> Iterator[bytes]:
    for event in events:
        yield orjson.dumps(event) + b"\n"


def write_jsonl(events: list[dict[str, Any]], path: Path) -> int:
    """Write events as JSON Lines; returns the number written."""
    with path.open("wb") as handle:
        for line in iter_lines(events):
            handle.write(line)
    return len(events)


def _epoch_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# --- personas ------------------------------------------------------------------------------


def _browser(c: _Customer, at: datetime) -> None:
    at = c.acquire(at)
    at = c.emit(c.later(at, 0, 0.1), "signup", channel="web")
    for _ in range(c.rng.randint(0, 2)):
        at = c.emit(c.later(at, 1, 6), "email_opened", channel="email")


def _subscriber(c: _Customer, at: datetime) -> None:
    at = c.acquire(at, "banner_view" if c.rng.random() < 0.3 else "ad_click")
    at = c.emit(c.later(at, 0, 0.2), "lead_magnet_download", channel="web",
                properties={"asset": "mini-book"})
    for _ in range(c.rng.randint(3, 8)):  # seed 002: a paid offer after 7 touches
        kind = c.rng.choice(["email_opened", "email_clicked", "content_view", "webinar_attended"])
        at = c.emit(c.later(at, 1, 5), kind, channel="email" if "email" in kind else "web")
    if c.rng.random() < 0.55:
        at = c.purchase(c.later(at, 1, 7), c.rng.uniform(9, 29), tier="tripwire")
        at = c.emit(c.later(at, 1, 4), "first_use", channel="app")
        if c.rng.random() < 0.5:
            at = c.purchase(c.later(at, 7, 30), c.rng.uniform(79, 199), tier="core")
            if c.rng.random() < 0.3:
                at = c.emit(c.later(at, 5, 20), "consultation", channel="phone")
                c.purchase(c.later(at, 1, 10), c.rng.uniform(300, 900), tier="premium")


def _regular(c: _Customer, at: datetime) -> None:
    at = c.acquire(at)
    at = c.emit(c.later(at, 0, 0.1), "signup", channel="web")
    at = c.purchase(c.later(at, 0, 5), c.rng.uniform(15, 35), tier="tripwire")
    gap = c.rng.uniform(14, 40)  # this customer's own rhythm (choice)
    for _ in range(c.rng.randint(3, 14)):
        at = c.purchase(c.later(at, gap * 0.7, gap * 1.3), c.rng.uniform(40, 160), tier="core")
    if c.rng.random() < 0.3:
        c.emit(c.later(at, 1, 10), "loyalty_joined", channel="web")


def _quiet(c: _Customer, at: datetime) -> None:
    at = c.acquire(at)
    at = c.emit(c.later(at, 0, 0.1), "signup", channel="web")
    gap = c.rng.uniform(10, 30)
    for number in range(c.rng.randint(1, 4)):
        tier = "tripwire" if number == 0 else "core"
        at = c.purchase(c.later(at, gap * 0.7, gap * 1.3), c.rng.uniform(20, 120), tier=tier)
    if c.rng.random() < 0.5:  # a few unread mails on the way out (seed 004)
        for _ in range(c.rng.randint(1, 3)):
            at = c.emit(c.later(at, 5, 15), "email_deleted_unread", channel="email")


def _dentist(c: _Customer, at: datetime) -> None:
    # seed 000: 10 leads -> 8 come for the free whitening -> maybe 4 have cavities ->
    # 1 or 2 of the 4 need a crown, a root canal or veneers.
    at = c.acquire(at)
    at = c.emit(c.later(at, 0, 0.2), "appointment_booked", channel="web")
    if c.rng.random() >= 0.8:
        c.emit(c.later(at, 2, 10), "no_show", channel="clinic")
        return
    at = c.emit(c.later(at, 2, 10), "showed_up", channel="clinic",
                properties={"product": c.rng.choice(["whitening", "cleaning", "xray"])})
    if c.rng.random() >= 0.5:
        return
    at = c.emit(at + timedelta(minutes=30), "diagnosis", channel="clinic",
                properties={"finding": "cavity"})
    at = c.purchase(c.later(at, 3, 21), c.rng.uniform(80, 150), product="filling")
    if c.rng.random() < 0.375:  # 1.5 of 4
        treatment = c.rng.choice(["crown", "root_canal", "veneers"])
        c.purchase(c.later(at, 14, 60), c.rng.uniform(400, 1200), product=treatment)


def _wedding(c: _Customer, at: datetime) -> None:
    # seed 003: wedding -> maternity "very likely soon" -> newborn -> 1st birthday -> family;
    # no sessions November-February.
    at = c.acquire(at, "content_view")
    at = c.purchase(_in_season(c, c.later(at, 0, 20)), c.rng.uniform(1500, 3000),
                    product="wedding")
    ladder = [("maternity", 0.6, 60, 240, 400), ("newborn", 0.85, 40, 110, 350),
              ("first_birthday", 0.6, 330, 380, 300), ("family", 0.5, 150, 400, 300)]
    for product, chance, low, high, price in ladder:
        if c.rng.random() >= chance:
            return
        at = c.purchase(_in_season(c, c.later(at, low, high)), c.rng.uniform(price, price * 1.6),
                        product=product)


def _complainer(c: _Customer, at: datetime) -> None:
    at = c.acquire(at)
    at = c.purchase(c.later(at, 0, 5), c.rng.uniform(20, 90), tier="tripwire")
    if c.rng.random() < 0.3:
        at = c.emit(c.later(at, 1, 3), "incident", channel="ops",
                    properties={"incident": c.rng.choice(["delay", "out_of_stock"])})
    at = c.emit(c.later(at, 1, 6), "complaint", channel="email",
                properties={"topic": c.rng.choice(["rude_service", "slow_delivery", "quality"])})
    if c.rng.random() < 0.5:  # answered within a day; the other half never hear back
        at = c.emit(at + timedelta(hours=c.rng.uniform(1, 20)), "complaint_response",
                    channel="email")
        if c.rng.random() < 0.5:
            c.purchase(c.later(at, 10, 40), c.rng.uniform(20, 90), tier="core")


def _opt_out(c: _Customer, at: datetime) -> None:
    at = c.acquire(at)
    at = c.emit(c.later(at, 0, 0.2), "newsletter_subscribe", channel="web")
    for _ in range(c.rng.randint(1, 4)):
        at = c.emit(c.later(at, 2, 7), "email_opened", channel="email")
    if c.rng.random() < 0.4:
        at = c.purchase(c.later(at, 1, 5), c.rng.uniform(9, 29), tier="tripwire")
    c.emit(c.later(at, 1, 10), "opt_out", channel="email")


def _referrer(c: _Customer, at: datetime) -> None:
    at = c.acquire(at)
    at = c.emit(c.later(at, 0, 0.1), "signup", channel="web")
    at = c.purchase(c.later(at, 0, 4), c.rng.uniform(15, 30), tier="tripwire")
    at = c.purchase(c.later(at, 7, 25), c.rng.uniform(80, 200), tier="core")
    for _ in range(c.rng.randint(1, 3)):
        at = c.emit(c.later(at, 5, 30), "referral", channel="web",
                    properties={"rewarded": c.rng.random() < 0.4})
        if c.rng.random() < 0.5:
            at = c.purchase(c.later(at, 5, 30), c.rng.uniform(60, 200), tier="core")


def _in_season(c: _Customer, at: datetime) -> datetime:
    while at.month in LOW_SEASON_MONTHS:
        at = c.later(at, 7, 14)
    return at


_PERSONA_STORIES: dict[str, Callable[[_Customer, datetime], None]] = {
    "browser": _browser, "subscriber": _subscriber, "regular": _regular, "quiet": _quiet,
    "dentist": _dentist, "wedding": _wedding, "complainer": _complainer, "opt_out": _opt_out,
    "referrer": _referrer,
}
