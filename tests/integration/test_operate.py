"""Operating a worker on the real broker: lookup routed to the owner (each worker advertising
its own URL), journeys with populations from every worker, erasure, the token, health and
readiness with the worker cut off from the broker, and SIGTERM without a broker."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from journey.contract.schemas import SCHEMA_DIR
from journey.pipeline.timekeeping import partition_of
from tests.support.kafka import (
    WorkerProcess,
    consume,
    cuttable_worker,
    free_port,
    iter_json,
    produce,
    produce_json,
    settings_for,
)

pytestmark = pytest.mark.integration

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READ_TOKEN = "test-read-token-0123456789"
READ_AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}


def http(url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:  # an error answer holds the connection until closed
            return exc.code, json.loads(exc.read() or b"null")


def wait_for(check: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout_s}s: {what} (last: {last!r})")


def ready(worker: WorkerProcess) -> bool:
    status, body = http(worker.url("/ready"))
    return status == 200 and bool(body["checks"]["partitions"])


def owned(worker: WorkerProcess) -> set[int]:
    return set(http(worker.url("/ready"))[1]["checks"]["partitions"])


@pytest.fixture
def two_workers(worker_factory: Callable[..., WorkerProcess]) -> Iterator[
        tuple[WorkerProcess, WorkerProcess]]:
    """Two workers of one group, each owning some partitions, with a token set."""
    first = worker_factory(JOURNEY_WEB_TOKEN=TOKEN)
    second = worker_factory(JOURNEY_WEB_TOKEN=TOKEN)

    def split() -> bool:
        a, b = owned(first), owned(second)
        return bool(a) and bool(b) and not a & b and len(a | b) == 4 and ready(first) \
            and ready(second)

    wait_for(split, 90, "the two workers share the four partitions")
    yield first, second


def customer_in(partitions: set[int], prefix: str) -> str:
    for n in range(1000):
        cid = f"{prefix}-{n}"
        if partition_of(cid.encode(), 4) in partitions:
            return cid
    raise AssertionError("no id found")


def visit(cid: str, event_id: str, at: str, type_: str = "site_visit") -> dict[str, Any]:
    return {"event_id": event_id, "customer_id": cid, "type": type_, "occurred_at": at,
            "channel": "web", "source": "google"}


def test_lookup_through_a_worker_that_does_not_own_the_customer(
    kafka_bootstrap: str, topic_prefix: str, two_workers: tuple[WorkerProcess, WorkerProcess]
) -> None:
    # Given two workers and a customer whose partition the first one does not own
    first, second = two_workers
    cid = customer_in(owned(second), "routed")
    produce_json(kafka_bootstrap, settings_for(topic_prefix).topics().touchpoints.name, [
        visit(cid, "r-1", "2026-03-01T10:00:00+00:00"),
        visit(cid, "r-2", "2026-03-02T10:00:00+00:00", "purchase"),
    ])
    # When the first worker is asked
    status, body = wait_for(
        lambda: (r := http(first.url(f"/customers/{cid}"), headers=AUTH))[0] == 200
        and r[1]["touches"] == 2 and r, 60, "the profile with both events is served")
    # Then it answers with the owner's profile, which matches the published schema
    assert status == 200
    assert body["customer_id"] == cid
    assert body["purchases"] == 1 and body["touches"] == 2
    assert body["first_touch"]["source"] == "google"
    assert {j["journey"]: j["stage"] for j in body["journeys"]}["touchpoint_journey"] \
        == "first_purchase"
    schema = json.loads((SCHEMA_DIR / "customer-profile.v1.schema.json").read_text())
    jsonschema.validate(body, schema)
    # And the owner itself gives the same answer
    assert http(second.url(f"/customers/{cid}"), headers=AUTH)[1]["counts"] == body["counts"]
    # And an unknown customer is a 404 with a JSON error body, through either worker
    for worker in (first, second):
        assert http(worker.url("/customers/nobody-at-all"), headers=AUTH) == (
            404, {"error": "not_found", "message": "no customer with this id"})
    # And without the token every path but /health and /ready is refused
    assert http(first.url(f"/customers/{cid}"))[0] == 401
    assert http(first.url("/journeys"))[0] == 401
    assert http(first.url("/metrics"))[1]["error"] == "unauthenticated"
    assert http(first.url("/health"))[0] == 200
    assert http(first.url("/ready"))[0] == 200


def test_a_lookup_through_either_worker_finds_every_customer_when_each_advertises_its_url(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # Given two workers on one port, as on two machines: each binds its own loopback
    # address (a wildcard bind would take the port for both) and advertises it
    port = free_port()
    workers = [WorkerProcess(
        bootstrap=kafka_bootstrap, prefix=topic_prefix, data_dir=tmp_path / f"w{n}",
        web_port=port, web_address=f"127.0.0.{n}",
        extra_env={"JOURNEY_WEB_HOST": f"127.0.0.{n}",
                   "JOURNEY_WEB_ADVERTISED_URL": f"http://127.0.0.{n}:{port}"})
        for n in (1, 2)]
    try:
        for worker in workers:
            worker.start()
        wait_for(lambda: all(ready(w) for w in workers)
                 and len(owned(workers[0]) | owned(workers[1])) == 4
                 and not owned(workers[0]) & owned(workers[1]), 90,
                 "the two workers share the four partitions")
        # And a customer in each partition
        ids = [customer_in({p}, "adv") for p in range(4)]
        produce_json(kafka_bootstrap, settings_for(topic_prefix).topics().touchpoints.name,
                     [visit(cid, f"a-{cid}", "2026-03-01T10:00:00+00:00") for cid in ids])
        # When each worker is asked for every customer
        # Then each answers with the profile, its own customers and the other's alike
        for worker in workers:
            for cid in ids:
                status, body = wait_for(
                    functools.partial(_found, worker, cid), 60, f"{cid} through {worker.url('')}")
                assert (status, body["customer_id"], body["touches"]) == (200, cid, 1)
    finally:
        for worker in workers:
            worker.stop()


def _found(worker: WorkerProcess, cid: str) -> tuple[int, Any] | None:
    answer = http(worker.url(f"/customers/{cid}"))
    return answer if answer[0] == 200 else None


def test_stage_populations_are_summed_over_both_workers(
    kafka_bootstrap: str, topic_prefix: str, two_workers: tuple[WorkerProcess, WorkerProcess]
) -> None:
    # Given one customer in a partition of each worker, both first-time buyers
    first, second = two_workers
    ids = [customer_in(owned(first), "pop-a"), customer_in(owned(second), "pop-b")]
    produce_json(kafka_bootstrap, settings_for(topic_prefix).topics().touchpoints.name, [
        visit(cid, f"p-{n}", "2026-03-02T10:00:00+00:00", "purchase")
        for n, cid in enumerate(ids)])

    # When either worker is asked for the journey
    def population(worker: WorkerProcess) -> dict[str, int]:
        status, body = http(worker.url("/journeys/touchpoint_journey"), headers=AUTH)
        assert status == 200
        assert body["partitions_missing"] == []
        return {p["stage"]: p["customers"] for p in body["populations"]}

    # Then both report both customers, though each owns only one of them
    for worker in (first, second):
        wait_for(functools.partial(lambda w: population(w)["first_purchase"] == 2, worker), 60,
                 "two customers in first_purchase")
    listing = http(first.url("/journeys"), headers=AUTH)[1]
    assert "touchpoint_journey" in {j["name"] for j in listing["journeys"]}
    assert http(first.url("/journeys/no-such-journey"), headers=AUTH)[0] == 404


def test_erasure_tombstones_the_state_writes_a_record_and_keeps_old_events_out(
    kafka_bootstrap: str, topic_prefix: str, two_workers: tuple[WorkerProcess, WorkerProcess]
) -> None:
    # Given a known customer, owned by the second worker
    first, second = two_workers
    topics = settings_for(topic_prefix).topics()
    cid = customer_in(owned(second), "erase")
    produce_json(kafka_bootstrap, topics.touchpoints.name, [
        visit(cid, "x-1", "2026-03-01T10:00:00+00:00")])
    wait_for(lambda: http(first.url(f"/customers/{cid}"), headers=AUTH)[0] == 200, 60,
             "the profile exists")
    # When the first worker is asked to erase it (no token: refused)
    assert http(first.url(f"/customers/{cid}"), method="DELETE")[0] == 401
    status, accepted = http(first.url(f"/customers/{cid}"), method="DELETE", headers=AUTH)
    assert status == 202 and accepted["customer_id"] == cid
    # Then the lookup answers 404
    wait_for(lambda: http(first.url(f"/customers/{cid}"), headers=AUTH)[0] == 404, 60,
             "the profile is gone")
    # And an erasure record is on the erasures topic, without personal data beyond the id
    records = list(iter_json(consume(kafka_bootstrap, topics.erasures.name, expect=1)))
    assert [(r["customer_id"], r["erasure_id"]) for r in records] == [
        (cid, accepted["event_id"])]
    # And the customer's state is tombstoned on the changelog
    changelog = consume(kafka_bootstrap, topics.state_changelog.name, expect=2, timeout_s=20)
    assert [r.value for r in changelog if r.key == cid.encode()][-1] is None
    # When an older event of that customer is replayed, and an erasure_requested event
    # comes through the touchpoints topic for another customer
    other = customer_in(owned(first), "erase-event")
    produce_json(kafka_bootstrap, topics.touchpoints.name, [
        visit(cid, "x-1-replayed", "2026-03-01T10:00:00+00:00"),
        visit(other, "o-1", "2026-03-01T10:00:00+00:00"),
        visit(other, "o-erase", "2026-03-05T10:00:00+00:00", "erasure_requested"),
    ])
    # Then neither profile comes back, and both erasures and the dropped event are counted
    wait_for(lambda: len(consume(kafka_bootstrap, topics.erasures.name, expect=2,
                                 timeout_s=5)) == 2, 60, "the second erasure record")
    assert http(first.url(f"/customers/{cid}"), headers=AUTH)[0] == 404
    assert http(second.url(f"/customers/{other}"), headers=AUTH)[0] == 404
    wait_for(lambda: _metric_sum(second, "journey_events_dropped_erased_total") == 1.0, 30,
             "the replayed event is dropped")
    erasures = (_metric_sum(first, "journey_erasures_total") or 0) + (
        _metric_sum(second, "journey_erasures_total") or 0)
    assert erasures == 2
    # When a broken record keyed by the erased customer arrives
    produce(kafka_bootstrap, topics.touchpoints.name, [b'{"customer_id": "' + cid.encode()],
            key=cid.encode())
    # Then it is dead-lettered with its reason and origin, without its original bytes
    letters = [json.loads(r.value) for r in consume(kafka_bootstrap, topics.dead_letters.name,
                                                   expect=1)]
    assert [(d["reason"], d["original_value_b64"]) for d in letters] == [("invalid_json", "")]


def test_malformed_and_oversized_requests_get_clear_4xx(
    worker_factory: Callable[..., WorkerProcess]
) -> None:
    worker = worker_factory(JOURNEY_WEB_TOKEN=TOKEN)
    # An id with edge whitespace is not a customer id
    assert http(worker.url("/customers/%20x"), headers=AUTH)[1]["error"] == \
        "invalid_customer_id"
    # A wrong token is refused without saying more
    assert http(worker.url("/journeys"), headers={"Authorization": "Bearer nope"})[0] == 401
    # A body where none is taken, too large, is refused before it is read
    request = urllib.request.Request(worker.url("/journeys"), data=b"x" * 5000,
                                     method="GET", headers=AUTH)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 413
    # And the worker is still alive
    assert http(worker.url("/health"))[0] == 200


def test_the_read_token_reads_but_cannot_erase_and_erasures_beyond_the_limit_get_429(
    worker_factory: Callable[..., WorkerProcess]
) -> None:
    # Given a worker with both tokens and a limit of two erasures a minute
    worker = worker_factory(JOURNEY_WEB_TOKEN=TOKEN, JOURNEY_WEB_READ_TOKEN=READ_TOKEN,
                            JOURNEY_WEB_ERASURES_PER_MINUTE="2")
    wait_for(lambda: ready(worker), 60, "ready")
    # When the read token reads, it is answered
    assert http(worker.url("/journeys"), headers=READ_AUTH)[0] == 200
    assert http(worker.url("/customers/nobody"), headers=READ_AUTH)[0] == 404
    with urllib.request.urlopen(urllib.request.Request(worker.url("/metrics"),
                                                       headers=READ_AUTH), timeout=10) as got:
        assert got.status == 200
    # When it erases, it is forbidden, and told which token may
    assert http(worker.url("/customers/limited-0"), method="DELETE", headers=READ_AUTH) == (
        403, {"error": "forbidden",
              "message": "this token may only read; erasure needs JOURNEY_WEB_TOKEN"})
    # When the erase token erases three customers at once
    first = [http(worker.url(f"/customers/limited-{n}"), method="DELETE", headers=AUTH)[0]
             for n in (1, 2)]
    request = urllib.request.Request(worker.url("/customers/limited-3"), method="DELETE",
                                     headers=AUTH)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    # Then two are accepted and the third is a 429 with a JSON body and Retry-After
    assert first == [202, 202]
    with refused.value as answer:
        assert answer.code == 429
        assert answer.headers["Content-Type"].startswith("application/json")
        assert 1 <= int(answer.headers["Retry-After"]) <= 30
        assert json.loads(answer.read())["error"] == "rate_limited"
    # And each outcome is counted, with no customer id in any label
    counted = _samples(worker, "journey_erasure_requests_total")
    assert counted == {"accepted": 2.0, "rate_limited": 1.0, "forbidden": 1.0}


def test_the_worker_serves_the_published_openapi_document_and_json_for_unknown_routes(
    worker_factory: Callable[..., WorkerProcess]
) -> None:
    worker = worker_factory(JOURNEY_WEB_TOKEN=TOKEN)
    # The document it serves is the one published in schemas/ (the same models and paths)
    status, served = http(worker.url("/openapi.json"), headers=AUTH)
    assert status == 200
    assert served == yaml.safe_load((SCHEMA_DIR / "openapi.yaml").read_text())
    assert http(worker.url("/openapi.json"))[0] == 401
    # An unknown path and an unknown method answer JSON, as every other error does
    assert http(worker.url("/no/such/path"), headers=AUTH) == (
        404, {"error": "not_found", "message": "no such path"})
    request = urllib.request.Request(worker.url("/journeys"), method="POST", headers=AUTH)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    with refused.value as answer:
        assert answer.code == 405
        assert answer.headers["Content-Type"].startswith("application/json")
        assert json.loads(answer.read()) == {"error": "method_not_allowed",
                                             "message": "POST is not allowed here; allowed: "
                                             "GET, HEAD"}
        assert set(answer.headers["Allow"].split(",")) == {"GET", "HEAD"}


def test_the_web_api_keeps_its_openapi_document_under_schemathesis(
    kafka_bootstrap: str, topic_prefix: str, worker_factory: Callable[..., WorkerProcess]
) -> None:
    # Given a worker with a token and one known customer
    worker = worker_factory(JOURNEY_WEB_TOKEN=TOKEN)
    produce_json(kafka_bootstrap, settings_for(topic_prefix).topics().touchpoints.name, [
        visit("known-1", "k-1", "2026-03-01T10:00:00+00:00")])
    wait_for(lambda: http(worker.url("/customers/known-1"), headers=AUTH)[0] == 200, 60,
             "the customer is known")
    # When schemathesis generates requests from schemas/openapi.yaml, valid and not
    result = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run",
         str(SCHEMA_DIR / "openapi.yaml"), "--url", worker.url(""),
         "-H", f"Authorization: Bearer {TOKEN}", "--checks", "all", "--max-examples", "25",
         "--workers", "1", "--no-color", "--seed", "1"],
        capture_output=True, text=True, timeout=600,
    )
    # Then every answer conforms (status, content type, schema) and none is a server error
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert http(worker.url("/health"))[0] == 200


def test_the_web_server_listens_on_loopback_only_by_default(
    worker_factory: Callable[..., WorkerProcess]
) -> None:
    worker = worker_factory()
    assert worker.proc is not None
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    lines = [line for line in listening.splitlines() if f":{worker.web_port} " in line]
    assert lines and all(f"127.0.0.1:{worker.web_port}" in line for line in lines)


def test_without_the_broker_the_worker_is_alive_but_not_ready_and_sigterm_stops_it_in_time(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # Given a ready worker that judges the broker over a short window, whose network to
    # the broker the test can cut (the shared broker itself keeps running)
    worker, cut = cuttable_worker(kafka_bootstrap, topic_prefix, tmp_path,
                                  JOURNEY_HEALTH_BROKER_S="6", JOURNEY_SHUTDOWN_TIMEOUT_S="10",
                                  JOURNEY_WEB_TOKEN=TOKEN)
    try:
        worker.start()
        wait_for(lambda: ready(worker), 60, "ready")
        # When the worker cannot reach the broker
        cut.touch()
        # Then /ready turns 503 and says why
        _, body = wait_for(
            lambda: (r := http(worker.url("/ready")))[0] == 503 and r, 40, "ready fails")
        assert "broker has not answered" in body["reason"]
        # And /health stays 200 all along: a restart would not bring the broker back
        for _ in range(10):
            assert http(worker.url("/health"))[0] == 200
            time.sleep(1)
        # And the repeated connection errors are counted, and the log folds them
        wait_for(lambda: (_metric_sum(worker, "journey_connection_errors_total") or 0) > 50,
                 30, "connection errors counted")
        log_text = worker.log_path.read_text(errors="replace") if worker.log_path else ""
        connect_lines = [line for line in log_text.splitlines() if "Unable connect" in line]
        counted = _metric_sum(worker, "journey_connection_errors_total") or 0
        assert len(connect_lines) < counted / 5
        # When the broker is reachable again, the worker is ready again by itself
        cut.unlink()
        wait_for(lambda: ready(worker), 90, "ready again")
        assert http(worker.url("/health"))[0] == 200
        # When it is cut off again and gets SIGTERM
        cut.touch()
        wait_for(lambda: http(worker.url("/ready"))[0] == 503, 40, "not ready again")
        assert worker.proc is not None
        started = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)
        # Then it is gone within the bound (10 s) plus the process's own exit
        assert time.monotonic() - started < 13
    finally:
        worker.stop()


def _metric_sum(worker: WorkerProcess, name: str) -> float | None:
    samples = _samples(worker, name)
    return None if not samples else sum(samples.values())


def _samples(worker: WorkerProcess, name: str) -> dict[str, float]:
    """The samples of one metric, by their label values joined with commas."""
    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(worker.url("/metrics"), headers=AUTH)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {",".join(sample.labels.values()): float(sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name}
