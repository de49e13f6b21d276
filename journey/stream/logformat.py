"""JOURNEY_LOG_FORMAT=json: every log line of the worker, whichever library writes it (Faust,
mode, aiokafka, kafka-python, ours), as one JSON object, so a log shipper needs no parser.

Each object has `time` (UTC, ISO 8601, milliseconds), `level`, `logger`, `message` and
`worker` (the URL host and port the worker advertises, unique in its group), plus
`exception` with the traceback when there is one (escaped: still one line). The records are
the same as in text: what is logged at INFO never names a customer.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from types import TracebackType
from urllib.parse import urlsplit

import orjson

from journey.pipeline.settings import Settings


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, worker: str) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
            "worker": self.worker,
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(doc).decode()


def worker_id(settings: Settings) -> str:
    """host:port of the URL the worker advertises: what tells workers apart in a group."""
    url = urlsplit(settings.advertised_url())
    return url.netloc


def use_log_format(settings: Settings, logger: logging.Logger | None = None) -> None:
    """Give every handler of the root logger (where every library's records end up) the
    configured format. Called when the CLI sets logging up and again when Faust replaces
    the handlers (journey/stream/runner.py). With json, Python warnings and an uncaught
    exception are logged too, so no line of another shape is written."""
    if settings.log_format != "json":
        return
    formatter = JsonFormatter(worker_id(settings))
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(formatter)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string in a library: keep the line, and one line
        return f"{record.msg} (with arguments that do not fit it: {record.args!r})"


def _log_uncaught(kind: type[BaseException], value: BaseException,
                  traceback: TracebackType | None) -> None:
    logging.getLogger("journey").critical("uncaught %s: %s", kind.__name__, value,
                                          exc_info=(kind, value, traceback))
