"""A progress line on a terminal: how far through the input, and how fast."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO


class ProgressBar:
    """A carriage-return bar redrawn a few times a second; silent when disabled."""

    def __init__(self, stream: IO[str], total: int, *, label: str, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream, self._total, self._label = stream, max(total, 1), label
        self._enabled, self._clock = enabled, clock
        self._started = clock()
        self._drawn_at = -1.0
        self._done = self._items = 0

    def update(self, done: int, items: int, *, force: bool = False) -> None:
        if not self._enabled:
            return
        now = self._clock()
        if not force and now - self._drawn_at < 0.2:
            return
        self._drawn_at = now
        share = min(done / self._total, 1.0)
        filled = int(share * 30)
        rate = items / max(now - self._started, 1e-9)
        self._stream.write(f"\r{self._label} [{'#' * filled}{'.' * (30 - filled)}] "
                           f"{share:6.1%} {items} lines {rate:,.0f}/s")
        self._stream.flush()

    def finish(self, done: int, items: int) -> None:
        if self._enabled:
            self.update(done, items, force=True)
            self._stream.write("\n")
            self._stream.flush()

    def step(self, line: bytes) -> None:
        """One more line processed: its bytes count towards the total."""
        self._done += len(line)
        self._items += 1
        self.update(self._done, self._items)

    def done(self) -> None:
        """The end of the lines given to `step`."""
        self.finish(self._done, self._items)

    def track(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        """The lines unchanged, counting their bytes towards the total as they go by."""
        done = items = 0
        for line in lines:
            done += len(line)
            items += 1
            self.update(done, items)
            yield line
        self.finish(done, items)
