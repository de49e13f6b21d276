"""The CDNOW purchase log (Fader & Hardie) as touchpoints: one `purchase` per line.

CDNOW_master.txt holds 69,659 purchases by the 23,570 customers who first bought at CDNOW in
the first quarter of 1997, up to the end of June 1998: customer id, day (YYYYMMDD), number of
CDs, dollar value. The `lifetimes` wheel ships it as lifetimes/datasets/CDNOW_master.txt; this
importer reads the text file or that wheel directly.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

WHEEL_MEMBER = "lifetimes/datasets/CDNOW_master.txt"
#: The log has days, not times; noon UTC keeps every purchase on its own day in any zone
#: within twelve hours of UTC.
PURCHASE_HOUR = 12
SOURCE = "cdnow"


class CdnowError(ValueError):
    """A line that is not `id YYYYMMDD quantity dollars`; the message names it."""


@dataclass(frozen=True, slots=True)
class CdnowPurchase:
    line: int
    customer: str
    day: str
    quantity: int
    dollars: float


def read_lines(path: Path) -> list[str]:
    """The log's lines, from CDNOW_master.txt (or the sample) or from the lifetimes wheel."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            try:
                data = wheel.read(WHEEL_MEMBER)
            except KeyError:
                raise CdnowError(f"{path} has no {WHEEL_MEMBER}") from None
        return io.TextIOWrapper(io.BytesIO(data), encoding="ascii").read().splitlines()
    return path.read_text(encoding="ascii").splitlines()


def parse(lines: Iterable[str]) -> Iterator[CdnowPurchase]:
    """Each purchase; the master file has 4 fields, the 2,357-customer sample 5 (old id first)."""
    for number, text in enumerate(lines, start=1):
        fields = text.split()
        if not fields or (number == 1 and fields[0] == "customer_id"):  # blank, or the header
            continue
        if len(fields) == 5:
            fields = fields[1:]
        if len(fields) != 4:
            raise CdnowError(f"line {number}: {len(fields)} fields, expected "
                             "customer id, YYYYMMDD, quantity, dollar value")
        customer, day, quantity, dollars = fields
        try:
            datetime.strptime(day, "%Y%m%d")  # noqa: DTZ007 - a calendar day, checked only
            count, value = int(quantity), float(dollars)
        except ValueError as exc:
            raise CdnowError(f"line {number}: {exc}") from None
        if count < 0 or value < 0:
            raise CdnowError(f"line {number}: negative quantity or value")
        yield CdnowPurchase(number, customer, day, count, value)


def touchpoints(purchases: Iterable[CdnowPurchase]) -> list[dict[str, Any]]:
    """Touchpoints sorted by event time, then event id. A customer's first purchase carries
    the source, for first-touch attribution; the log has no channel, so it is "cdnow"."""
    seen: set[str] = set()
    events: list[tuple[str, str, dict[str, Any]]] = []
    for p in purchases:
        at = datetime(int(p.day[:4]), int(p.day[4:6]), int(p.day[6:]), PURCHASE_HOUR, tzinfo=UTC)
        event: dict[str, Any] = {
            "event_id": f"cdnow-{p.line:06d}",
            "customer_id": f"cdnow-{p.customer}",
            "type": "purchase",
            "occurred_at": at.isoformat(),
            "channel": "web",
            "amount": p.dollars,
            "currency": "USD",
            "properties": {"quantity": p.quantity},
        }
        if p.customer not in seen:
            seen.add(p.customer)
            event["source"] = SOURCE
        events.append((event["occurred_at"], event["event_id"], event))
    events.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in events]


def import_file(path: Path, out: Path) -> tuple[int, int]:
    """Write the log at `path` (text or wheel) as JSON Lines; (purchases, customers)."""
    events = touchpoints(parse(read_lines(path)))
    with out.open("wb") as handle:
        for event in events:
            handle.write(orjson.dumps(event) + b"\n")
    return len(events), len({e["customer_id"] for e in events})
