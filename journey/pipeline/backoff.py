"""One retry policy for the worker's waits on the broker: delays doubling from a minimum up
to a maximum, and a log line on the first attempt and every tenth, not on each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    min_s: float
    max_s: float
    attempt: int = 0

    def next_delay(self) -> float:
        """Count a failed attempt; the seconds to wait before the next one."""
        self.attempt += 1
        return min(self.max_s, self.min_s * 2.0 ** (self.attempt - 1))

    @property
    def worth_logging(self) -> bool:
        """Whether the attempt just counted deserves a log line."""
        return self.attempt == 1 or self.attempt % 10 == 0
