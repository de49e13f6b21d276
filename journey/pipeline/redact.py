"""Keeps configured secrets out of every log line, whichever library writes it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from journey.pipeline.settings import Settings

MASK = "**********"


def settings_secrets(settings: Settings) -> list[str]:
    """The secret values of these settings that are set."""
    candidates = [settings.kafka_password, settings.kafka_ssl_key_password,
                  settings.offer_code_secret, settings.web_token,
                  settings.web_read_token]
    return [s.get_secret_value() for s in candidates if s is not None and s.get_secret_value()]


def install_log_redaction(secrets: Iterable[str]) -> None:
    """Mask these values in every log record from now on.

    Client libraries log what they were given (aiokafka logs SASL PLAIN bytes at DEBUG); a
    record factory sees each record before any handler, so no library can print the values.
    """
    values = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not values:
        return
    make_record = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it, as without us
            return record
        if any(v in message for v in values):
            record.msg, record.args = _masked(message, values), None
        if record.exc_info and record.exc_info[0] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = _masked(text, values)
        return record

    logging.setLogRecordFactory(redacting_factory)


def _masked(text: str, values: list[str]) -> str:
    for value in values:
        text = text.replace(value, MASK)
    return text
