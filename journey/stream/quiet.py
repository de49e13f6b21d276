"""Folds repeated warnings of the Kafka client and Faust into one line with a count.

With the broker down, aiokafka and Faust log the same connection failure several times a
second from several places (each connection attempt of the consumer, the producer, the
group coordinator and the metadata updater), tens of thousands of lines a minute. The
filter lets the first record of each message pass, drops its repeats for `window_s`, and
appends to the next one that passes how many were dropped. Every record it sees at
WARNING or above is also counted (journey_connection_errors_total{logger}), so the rate is
still visible when the log is quiet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: The loggers whose repeats are folded: the Kafka clients and Faust/mode.
NOISY = ("aiokafka", "kafka", "faust", "mode")
_MAX_KEYS = 2048


class RepeatFilter(logging.Filter):
    def __init__(
        self, window_s: float = 30.0, *, count: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic, prefixes: tuple[str, ...] = NOISY,
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self._count = count
        self._clock = clock
        self._prefixes = prefixes
        #: (logger, level, message template) -> [time let through, repeats dropped since]
        self._seen: dict[tuple[str, int, str], list[float]] = {}
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self._prefixes):
            return True
        verdict = getattr(record, "_journey_repeat", None)
        if verdict is not None:  # one verdict per record, however many handlers see it
            return bool(verdict)
        if self._count is not None:
            self._count(record.name.split(".", 1)[0])
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.window_s:
            entry[1] += 1
            self.dropped += 1
            record._journey_repeat = False
            return False
        if len(self._seen) >= _MAX_KEYS:
            self._seen.clear()
        self._seen[key] = [now, 0]
        if entry is not None and entry[1]:
            note = (f" [and {int(entry[1])} more like this in the last "
                    f"{now - entry[0]:.0f}s, not logged]")
            record.msg = f"{record.getMessage()}{note}"
            record.args = ()
        record._journey_repeat = True
        return True


def install(filter_: RepeatFilter, logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of the root logger (where library records end up)."""
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        if filter_ not in handler.filters:
            handler.addFilter(filter_)
