"""Durations written the way marketers write them: 30m, 12h, 7d, 2w (a month is 30d)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration_ms(value: object) -> int:
    """Milliseconds of '90s', '30m', '12h', '7d' or '2w'; a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit, e.g. 7d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return int(value * 1000)
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as '30m', '12h', '7d' or '2w'")
    match = _PATTERN.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a duration; write e.g. '30m', '12h', '7d' or '2w'")
    return int(float(match.group(1)) * _UNITS_MS[match.group(2)])


#: A pydantic field type: accepts '7d' and stores milliseconds.
DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]

DAY_MS = _UNITS_MS["d"]
