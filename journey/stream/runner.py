"""Runs a built app as a Faust worker with a bounded shutdown and quiet library logs."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from journey.stream.faust_internals import HookedWorker
from journey.stream.logformat import JsonFormatter
from journey.stream.quiet import RepeatFilter, install

log = logging.getLogger(__name__)

#: Exit code when the shutdown bound ran out and the process ended without a clean stop.
FORCED_EXIT = 3


class JourneyWorker(HookedWorker):
    """Faust's worker, plus: SIGTERM or SIGINT stops the process within `shutdown_s`
    seconds, broker or not (Faust's graceful stop waits on the broker for commits and
    sends, without a bound, when it is down); repeated library warnings are folded."""

    def __init__(self, app: faust.App, *args: Any, shutdown_s: float,
                 repeat_filter: RepeatFilter,
                 set_up_logger: Callable[[logging.Logger], None] | None = None,
                 on_stopping: Callable[[], Awaitable[object]] | None = None,
                 **kwargs: Any) -> None:
        """`set_up_logger`: applied to the root logger once Faust has replaced its handlers
        (the log format). `on_stopping`: run once when a stop is asked for, beside Faust's
        own stop (the barrier's last flush, so what was processed is written and
        acknowledged)."""
        self._shutdown_s = shutdown_s
        self._repeat_filter = repeat_filter
        self._set_up_logger = set_up_logger
        self._on_stopping = on_stopping
        self._watchdog: threading.Timer | None = None
        self._last_flush: asyncio.Future[None] | None = None
        super().__init__(app, *args, **kwargs)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        if self._set_up_logger is not None:
            self._set_up_logger(logger)
        install(self._repeat_filter, logger)

    def on_stop_signal(self, signal_name: str) -> None:
        self._arm_watchdog(signal_name)

    def on_crashed(self) -> None:
        # The stop that follows a crash is bounded too: a crashed worker that hung in its
        # stop would stay in the group, owning partitions nobody processes, and never be
        # restarted.
        if self._watchdog is None:
            log.info("stopping after a crash; the process ends within %.0fs", self._shutdown_s)
            self._start_watchdog()

    def _arm_watchdog(self, signal_name: str) -> None:
        if self._watchdog is not None:
            return
        log.info("%s: stopping; the process ends within %.0fs", signal_name, self._shutdown_s)
        if self._on_stopping is not None:
            self._last_flush = asyncio.ensure_future(_last(self._on_stopping))
        self._start_watchdog()

    def _start_watchdog(self) -> None:
        timer = threading.Timer(self._shutdown_s, _force_exit, args=(self._shutdown_s,))
        timer.daemon = True
        timer.start()
        self._watchdog = timer


async def _last(step: Callable[[], Awaitable[object]]) -> None:
    try:
        await step()
    except Exception as exc:  # the stop goes on; what was not acknowledged is replayed
        log.info("last flush before stopping did not complete (%s); the next start "
                 "replays from the last committed offset", type(exc).__name__)


def _force_exit(bound_s: float) -> None:
    # A thread of its own: the event loop may be the thing that is stuck. The process's own
    # stderr, not mode's redirection of it into logging, whose handlers may be held.
    stderr = sys.__stderr__ or sys.stderr
    stderr.write(_as_logged(f"journey worker: not stopped cleanly within {bound_s:.0f}s "
                                f"(broker unreachable?); exiting. Offsets not committed are "
                                f"replayed by the next owner.") + "\n")
    stderr.flush()
    os._exit(FORCED_EXIT)


def _as_logged(message: str) -> str:
    """The line in the log's own format when that is JSON (journey/stream/logformat.py), so
    even this last line parses; formatted only, without the handlers' locks, which a stuck
    loop may hold."""
    record = logging.LogRecord(__name__, logging.CRITICAL, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            return handler.formatter.format(record)
    return message
