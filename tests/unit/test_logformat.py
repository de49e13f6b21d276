"""JOURNEY_LOG_FORMAT=json: each record one JSON object on one line, whatever it carries."""

from __future__ import annotations

import io
import json
import logging

import pytest

from journey.pipeline.settings import Settings
from journey.stream.logformat import JsonFormatter, use_log_format, worker_id
from journey.stream.runner import _as_logged


def _logged(formatter: logging.Formatter, emit: object) -> list[str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.Logger("aiokafka.test-json")  # outside the hierarchy: no other handler
    logger.addHandler(handler)
    assert callable(emit)
    emit(logger)
    return stream.getvalue().splitlines()


def test_a_record_with_a_traceback_is_one_json_line_with_the_fields() -> None:
    def emit(logger: logging.Logger) -> None:
        try:
            raise ConnectionError("Unable connect to node\nwith a second line")
        except ConnectionError:
            logger.error("fetch failed for %s", "node 1", exc_info=True)

    (line,) = _logged(JsonFormatter("journey-1:6066"), emit)
    record = json.loads(line)
    assert {k: record[k] for k in ("level", "logger", "message", "worker")} == {
        "level": "ERROR", "logger": "aiokafka.test-json", "message": "fetch failed for node 1",
        "worker": "journey-1:6066"}
    assert record["time"].endswith("+00:00")
    assert "ConnectionError: Unable connect to node\nwith a second line" in record["exception"]


def test_a_record_whose_arguments_do_not_fit_its_message_is_still_one_json_line() -> None:
    (line,) = _logged(JsonFormatter("w"),
                      lambda logger: logger.warning("%d partitions", "not a number"))
    assert json.loads(line)["message"].startswith("%d partitions (with arguments")


def test_the_worker_id_is_the_advertised_host_and_port() -> None:
    assert worker_id(Settings(web_host="0.0.0.0", web_port=6067,
                              web_advertised_url="http://journey-2:6067")) == "journey-2:6067"


def test_text_stays_the_default_and_json_is_set_on_every_root_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.Logger("root-under-test")
    handlers = [logging.StreamHandler(io.StringIO()), logging.StreamHandler(io.StringIO())]
    for handler in handlers:
        root.addHandler(handler)
    use_log_format(Settings(), root)
    assert not any(isinstance(h.formatter, JsonFormatter) for h in handlers)
    monkeypatch.setattr("sys.excepthook", lambda *args: None)  # restored after the test
    monkeypatch.setattr(logging, "captureWarnings", lambda capture: None)
    monkeypatch.setenv("JOURNEY_LOG_FORMAT", "JSON")
    use_log_format(Settings(), root)
    assert all(isinstance(h.formatter, JsonFormatter) for h in handlers)


def test_the_shutdown_watchdog_s_last_line_takes_the_log_s_json_format() -> None:
    # Given a root handler formatting JSON (the watchdog writes its line itself: the loop,
    # and with it the handlers, may be stuck)
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter("journey-1:6066"))
    logging.getLogger().addHandler(handler)
    try:
        line = _as_logged("journey worker: not stopped cleanly within 15s")
    finally:
        logging.getLogger().removeHandler(handler)
    # Then its line is a JSON record at CRITICAL, and plain text without one
    record = json.loads(line)
    assert (record["level"], record["message"]) == (
        "CRITICAL", "journey worker: not stopped cleanly within 15s")
    assert _as_logged("plain") == "plain"
