"""A real Prometheus scrapes a running worker fed known touchpoints: recording rules give the
expected ratios, alerts go active when they should, every dashboard query is accepted, and the
worker's /metrics matches the catalogue. With a web token, it scrapes with the authorization
block deploy/prometheus/prometheus.yml shows, and sees a worker cut off from Kafka.

"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.kafka import WorkerProcess, produce, produce_json, settings_for
from tests.support.prometheus import PrometheusServer, token_example
from tests.unit.test_grafana_dashboards import generator
from tests.unit.test_metrics_catalogue import compare

pytestmark = pytest.mark.integration

JOURNEY = "touchpoint_journey"
VISITORS, SUBSCRIBERS, BUYERS = 10, 4, 1
BAD_RECORDS = [b"{not json", b"[]", b'{"type": "site_visit"}']


def touchpoints() -> list[dict[str, Any]]:
    """10 visitors enter the journey, 4 of them subscribe, 1 of those buys."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    docs: list[dict[str, Any]] = []
    for n in range(VISITORS):
        cid = f"scrape-{n}"
        docs.append({"event_id": f"{cid}-1", "customer_id": cid, "type": "site_visit",
                     "occurred_at": (start + timedelta(seconds=n)).isoformat(),
                     "channel": "web"})
        if n < SUBSCRIBERS:
            docs.append({"event_id": f"{cid}-2", "customer_id": cid,
                         "type": "newsletter_subscribe",
                         "occurred_at": (start + timedelta(seconds=60 + n)).isoformat(),
                         "channel": "email"})
        if n < BUYERS:
            docs.append({"event_id": f"{cid}-3", "customer_id": cid, "type": "purchase",
                         "occurred_at": (start + timedelta(seconds=120 + n)).isoformat(),
                         "amount": 29.0, "currency": "EUR", "channel": "web"})
    return docs


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[dict[str, list[str]]], PrometheusServer]]:
    started: list[PrometheusServer] = []

    def make(targets: dict[str, list[str]]) -> PrometheusServer:
        server = PrometheusServer(tmp_path / "prometheus", targets).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def _approx(expected: float) -> Callable[[float], bool]:
    return lambda got: got == pytest.approx(expected, rel=1e-9)


def _alert_states(prom: PrometheusServer, name: str) -> set[str]:
    return {a["state"] for a in prom.alerts() if a["labels"]["alertname"] == name}


def _wait_alert(prom: PrometheusServer, name: str, states: set[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = _alert_states(prom, name) & states
        if found:
            return found.pop()
        time.sleep(1)
    raise AssertionError(f"{name} not in {states} after {timeout_s}s: {prom.alerts()}")


def test_prometheus_scraping_a_worker_records_the_funnel_and_raises_alerts(
    kafka_bootstrap: str, topic_prefix: str, worker_factory: Callable[..., WorkerProcess],
    prometheus_for: Callable[[dict[str, list[str]]], PrometheusServer],
) -> None:
    # Given a running worker, and Prometheus scraping it with the journey rules
    worker = worker_factory()
    prom = prometheus_for({"journey": [f"127.0.0.1:{worker.web_port}"]})
    prom.wait_for('sum(up{job=~"journey.*"})', lambda v: v == 1)
    # ... which has seen every counter at zero, so rate() counts the first increments
    prom.wait_for('count(journey_events_dead_lettered_total{job="journey"} == 0)',
                  lambda v: v > 0)
    prom.wait_for('count(journey_stage_reached_total{job="journey"} == 0)',
                  lambda v: v > 0)
    assert _alert_states(prom, "JourneyDeadLetterShareHigh") == set()

    # When the platform sends 15 touchpoints and 3 broken records
    docs = touchpoints()
    topics = settings_for(topic_prefix).topics()
    produce_json(kafka_bootstrap, topics.touchpoints.name, docs)  # keyed: in order per customer
    produce(kafka_bootstrap, topics.touchpoints.name, BAD_RECORDS)
    deadline = time.monotonic() + 60
    while worker.metric("journey_events_processed_total") != len(docs):
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)

    # Then the dead-letter share recorded from the worker's counters is 3 of 18
    share = len(BAD_RECORDS) / (len(BAD_RECORDS) + len(docs))
    prom.wait_for("journey:dead_letter_share:ratio5m", _approx(share))
    # And the worker's stage changes give the funnel's entries per stage
    prom.wait_for('sum(journey_events_processed_total{job="journey"})', lambda v: v == len(docs))
    entered = 'sum by (to_stage) (journey_stage_changes_total{job="journey",journey="%s"})'
    assert {r["metric"]["to_stage"]: float(r["value"][1])
            for r in prom.query(entered % JOURNEY)} == {
        "acquaintance": VISITORS, "subscribed": SUBSCRIBERS, "first_purchase": BUYERS}
    # And the recording rules give the stage-to-stage conversion of those touchpoints
    conversion = 'journey:stage_conversion:ratio1d{journey="%s",stage="%s"}'
    prom.wait_for(conversion % (JOURNEY, "acquaintance"), _approx(SUBSCRIBERS / VISITORS))
    prom.wait_for(conversion % (JOURNEY, "subscribed"), _approx(BUYERS / SUBSCRIBERS))
    assert prom.value(f'journey:funnel_conversion:ratio1d{{journey="{JOURNEY}"}}') == 0.0
    populations = prom.query(
        f'sum by (stage) (journey_customers_in_stage{{job="journey",journey="{JOURNEY}"}})')
    assert {r["metric"]["stage"]: float(r["value"][1]) for r in populations} == {
        "acquaintance": VISITORS - SUBSCRIBERS, "subscribed": SUBSCRIBERS - BUYERS,
        "first_purchase": BUYERS}
    # And the dead-letter alert is active (pending for its 10 minutes, then firing)
    assert _wait_alert(prom, "JourneyDeadLetterShareHigh", {"pending", "firing"}, 30)

    # And every query of the dashboard is accepted by this Prometheus
    gen = generator()
    rejected = []
    for text in gen.dashboards().values():
        for title, expr in gen.panel_queries(json.loads(text)):
            concrete = expr.replace("$journey", ".*").replace("$__rate_interval", "1m")
            answer = prom.api("query", query=concrete)
            if answer["status"] != "success":
                rejected.append((title, concrete, answer.get("error")))
    assert rejected == []

    # And the worker's /metrics carries exactly the catalogued metrics
    assert compare(worker.metrics_text()) == []

    # When the worker stops
    worker.stop()
    # Then Prometheus reports it down, and after a minute the alert fires
    prom.wait_for('up{job="journey"}', lambda v: v == 0, timeout_s=30)
    assert _wait_alert(prom, "JourneyWorkerDown", {"firing"}, 120) == "firing"


def test_prometheus_scrapes_a_worker_with_its_token_and_sees_it_cut_off_from_kafka(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # Given a worker with both web tokens, whose network to the broker the test can cut, and
    # Prometheus scraping it with the authorization block deploy/prometheus/prometheus.yml
    # shows, reading the read token (which cannot erase) from a file
    cut, token_file = tmp_path / "cut", tmp_path / "journey-web-read-token"
    token_file.write_text("scrape-token-0123456789")
    worker = WorkerProcess(
        bootstrap=kafka_bootstrap, prefix=topic_prefix, data_dir=tmp_path / "worker",
        command=("-m", "tests.support.cut_worker"),
        extra_env={"JOURNEY_WEB_READ_TOKEN": token_file.read_text(),
                   "JOURNEY_WEB_TOKEN": "erase-token-9876543210",
                   "JOURNEY_TEST_CUT_FILE": str(cut)})
    prom: PrometheusServer | None = None
    try:
        worker.start()
        prom = PrometheusServer(tmp_path / "prometheus",
                                {"journey": [f"127.0.0.1:{worker.web_port}"]},
                                scrape=token_example(token_file)).start()
        # Then it scrapes the worker, which the broker answers
        prom.wait_for('up{job="journey"}', lambda v: v == 1)
        assert (prom.value("journey_broker_unanswered_seconds") or 0) < 10
        # When the worker cannot reach the broker for over a minute
        cut.touch()
        # Then the gauge grows past the minute and the alert goes active (pending for 2 min)
        assert _wait_alert(prom, "JourneyBrokerUnreachable", {"pending", "firing"}, 120)
        assert (prom.value("journey_broker_unanswered_seconds") or 0) > 60
        assert prom.value('up{job="journey"}') == 1  # the worker itself is up
        # When the broker answers again, the gauge falls back and the alert resolves
        cut.unlink()
        prom.wait_for("journey_broker_unanswered_seconds", lambda v: v < 10, 60)
        deadline = time.monotonic() + 30
        while _alert_states(prom, "JourneyBrokerUnreachable"):
            assert time.monotonic() < deadline, prom.alerts()
            time.sleep(1)
    finally:
        if prom is not None:
            prom.stop()
        worker.stop()
