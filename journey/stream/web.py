"""The worker's web API on Faust's web server: customer lookup and erasure, journeys with
populations gathered from every worker, health, readiness and metrics.

Every path but /health and /ready asks for a bearer token when one is set: the read token
(JOURNEY_WEB_READ_TOKEN) or the erase token (JOURNEY_WEB_TOKEN), which alone may erase, at
most JOURNEY_WEB_ERASURES_PER_MINUTE a minute (journey/pipeline/access.py). Errors are JSON
({"error": code, "message": text}, journey/contract/api.py ErrorBody) with a 4xx status for
the request's faults and 503 for what the worker cannot answer now.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import aiohttp.web
import faust
import orjson
from faust.exceptions import SameNode
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import TypeAdapter, ValidationError

from journey.contract.api import ErasureAccepted, JourneyList
from journey.contract.openapi import openapi_document
from journey.contract.records import CustomerId
from journey.contract.topics import Topics
from journey.engine import Engine
from journey.engine.outputs import stable_id
from journey.pipeline.access import RateLimit, Refusal, Role, Tokens
from journey.pipeline.lookup import customer_profile, journey_views, merge_counts
from journey.pipeline.metrics import Metrics
from journey.pipeline.processor import StateCache, StateUnreadableError
from journey.pipeline.settings import Settings
from journey.pipeline.timekeeping import partition_of
from journey.stream.faust_internals import add_web_middleware

log = logging.getLogger(__name__)

# aiohttp takes the charset separately and refuses it inside content_type.
_METRICS_CONTENT_TYPE = "; ".join(
    part for part in CONTENT_TYPE_LATEST.split("; ") if not part.startswith("charset")
)
#: No path takes a request body; anything larger than this is refused before it is read.
MAX_BODY_BYTES = 1024
#: The internal path each worker serves its own partitions' populations on.
POPULATIONS_PATH = "/internal/populations"
_CUSTOMER_ID: TypeAdapter[str] = TypeAdapter(CustomerId)
ERASURE_TYPE = "erasure_requested"


@dataclass
class Liveness:
    """What /health and /ready judge by, with Kubernetes' meaning: liveness fails only when
    the worker itself is stuck (a restart would help), readiness while it cannot do its
    work now (a restart would not: the broker is away, a rebalance or recovery runs).

    A timer proves the loop runs and asks the broker for metadata (`loop_ran`,
    `broker_answered`, `broker_failed`); `busy_since` says since when the batch being
    processed has been (None between batches)."""

    broker_window_s: float
    stall_window_s: float = 300.0
    loop_window_s: float = 15.0
    started: float = field(default_factory=time.monotonic)
    last_loop: float = field(default_factory=time.monotonic)
    last_broker_ok: float | None = None
    last_broker_error: str | None = None
    #: since when the broker has answered every probe (None while it does not)
    broker_ok_since: float | None = None
    busy_since: Callable[[], float | None] = lambda: None

    def loop_ran(self, now: float) -> None:
        self.last_loop = now

    def broker_answered(self, now: float) -> None:
        if self.broker_ok_since is None:
            self.broker_ok_since = now
        self.last_broker_ok = now
        self.last_broker_error = None

    def broker_failed(self, error: str) -> None:
        self.broker_ok_since = None
        self.last_broker_error = error[:200]

    def health(self, now: float) -> tuple[bool, str | None, dict[str, Any]]:
        """Liveness: the event loop runs its timer, and no batch is stuck. A batch waiting
        on an absent broker is not stuck: its time counts only while the broker answers."""
        loop_age = now - self.last_loop
        busy = self.busy_since()
        stalled = self._stalled_for(now, busy)
        checks: dict[str, Any] = {
            "loop_seconds_since_tick": round(loop_age, 3),
            "batch_seconds": None if busy is None else round(now - busy, 3),
        }
        if loop_age > self.loop_window_s:
            return False, f"the event loop has not run its timer for {loop_age:.0f}s", checks
        if stalled is not None and stalled > self.stall_window_s:
            return False, (f"one batch has been processed for {stalled:.0f}s with the broker "
                           f"answering (limit {self.stall_window_s:.0f}s): processing is "
                           f"stuck"), checks
        return True, None, checks

    def broker(self, now: float) -> tuple[bool, str | None, dict[str, Any]]:
        """For readiness: the broker answered within the window (or the worker is younger)."""
        age = None if self.last_broker_ok is None else self.broker_unanswered_s(now)
        checks: dict[str, Any] = {
            "broker_seconds_since_reachable": None if age is None else round(age, 3),
            "broker_last_error": self.last_broker_error,
        }
        error = self.last_broker_error or "no answer"
        if age is None and now - self.started > self.broker_window_s:
            return False, f"the broker has not answered since start ({error})", checks
        if age is not None and age > self.broker_window_s:
            return False, (f"the broker has not answered for {age:.0f}s "
                           f"(limit {self.broker_window_s:.0f}s; {error})"), checks
        return True, None, checks

    def broker_unanswered_s(self, now: float) -> float:
        """Seconds since the broker last answered (since the start when it never did)."""
        return now - (self.started if self.last_broker_ok is None else self.last_broker_ok)

    def _stalled_for(self, now: float, busy: float | None) -> float | None:
        if busy is None or self.broker_ok_since is None:
            return None
        return now - max(busy, self.broker_ok_since)


@dataclass(frozen=True)
class WebParts:
    """What the pages read: built by the composition root."""

    app: faust.App
    settings: Settings
    topics: Topics
    engine: Engine
    states: StateCache
    table: Any
    metrics: Metrics
    liveness: Liveness
    owned: Callable[[], frozenset[int]]
    #: partitions assigned whose due index is not rebuilt yet (Ownership.unindexed)
    unindexed: Callable[[], frozenset[int]] = frozenset
    #: event-time watermark of a partition this worker owns, or None
    watermark: Callable[[int], int | None] = lambda partition: None


def install_pages(parts: WebParts) -> None:
    app, settings = parts.app, parts.settings
    tokens = Tokens(erase=settings.web_token, read=settings.web_read_token)
    limit = RateLimit(settings.web_erasures_per_minute)
    erasures = parts.metrics.erasure_requests
    # The document schemas/openapi.yaml is generated from: the same models, the same paths.
    document = orjson.dumps(openapi_document())
    add_web_middleware(app, json_router_errors)

    def role_of(request: Any) -> Role | Refusal:
        """What the caller may do, or why the request must not go on."""
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            return Refusal(413, "body_too_large",
                           f"no path takes a body over {MAX_BODY_BYTES} bytes")
        return tokens.role(request.headers.get("Authorization", ""))

    def refused(web: Any, request: Any) -> Any | None:
        """The 4xx answer for a request that may not even read, or None."""
        role = role_of(request)
        return _refused(web, role) if isinstance(role, Refusal) else None

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        ok, reason, checks = parts.liveness.health(time.monotonic())
        return web.json({"status": "ok" if ok else "failing", "reason": reason,
                         "checks": checks}, status=200 if ok else 503)

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        ok, reason, checks = readiness(parts, time.monotonic())
        return web.json({"status": "ok" if ok else "failing", "reason": reason,
                         "checks": checks}, status=200 if ok else 503)

    @app.page("/openapi.json")
    async def openapi(web: Any, request: Any) -> Any:
        if (answer := refused(web, request)) is not None:
            return answer
        return web.bytes(document, content_type="application/json")

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        if (answer := refused(web, request)) is not None:
            return answer
        return web.bytes(generate_latest(parts.metrics.registry),
                         content_type=_METRICS_CONTENT_TYPE)

    @app.page("/customers/{customer_id}")
    class Customer(faust.web.View):
        async def get(self, request: Any, customer_id: str) -> Any:
            if (answer := refused(self, request)) is not None:
                return answer
            cid, problem = _valid_id(self, customer_id)
            if problem is not None:
                return problem
            try:
                return await app.router.route_req(parts.table.name, cid, self.web, request)
            except SameNode:
                return _profile(self, parts, cid)
            except faust.web.exceptions.ServiceUnavailable:
                return _error(self, 503, "rebalancing",
                              "the owner of this customer is not known yet; retry shortly")
            except Exception as exc:  # the owner did not answer
                return _error(self, 503, "owner_unreachable",
                              f"the worker owning this customer did not answer "
                              f"({type(exc).__name__})")

        async def delete(self, request: Any, customer_id: str) -> Any:
            role = role_of(request)
            refusal = role if isinstance(role, Refusal) else tokens.may_erase(role)
            if refusal is not None:
                if refusal.status in (401, 403):
                    erasures.labels("forbidden").inc()
                return _refused(self, refusal)
            cid, problem = _valid_id(self, customer_id)
            if problem is not None:
                return problem
            if (wait_s := limit.take()) > 0:
                erasures.labels("rate_limited").inc()
                return _error(self, 429, "rate_limited",
                              f"this worker takes {settings.web_erasures_per_minute} erasures "
                              f"a minute (JOURNEY_WEB_ERASURES_PER_MINUTE); retry in {wait_s} s",
                              headers={"Retry-After": str(wait_s)})
            accepted = await _request_erasure(parts, cid)
            erasures.labels("accepted").inc()
            return self.json(accepted.model_dump(mode="json"), status=202)

    @app.page("/journeys")
    async def journeys(web: Any, request: Any) -> Any:
        if (answer := refused(web, request)) is not None:
            return answer
        counts = await _gather_counts(parts, request)
        views = journey_views(parts.engine, counts, parts.topics.events.partitions)
        return web.json(JourneyList(journeys=views).model_dump(mode="json"))

    @app.page("/journeys/{name}")
    async def journey(web: Any, request: Any, name: str) -> Any:
        if (answer := refused(web, request)) is not None:
            return answer
        if name not in {j.definition.name for j in parts.engine.journeys}:
            return _error(web, 404, "not_found", f"no journey named {name[:80]!r} runs here")
        counts = await _gather_counts(parts, request)
        views = journey_views(parts.engine, counts, parts.topics.events.partitions, only=name)
        return web.json(views[0].model_dump(mode="json"))

    @app.page(POPULATIONS_PATH)
    async def populations(web: Any, request: Any) -> Any:
        if (answer := refused(web, request)) is not None:
            return answer
        owned = parts.owned()
        mine = {p: rows for p, rows in parts.metrics.populations.by_partition().items()
                if p in owned}
        for p in owned:  # an owned partition without customers counts as counted, empty
            mine.setdefault(p, [])
        return web.json({str(p): rows for p, rows in mine.items()})


@aiohttp.web.middleware
async def json_router_errors(request: aiohttp.web.Request, handler: Any) -> Any:
    """The router's own 404 (no such path) and 405 (no such method on a path) as JSON error
    bodies, as every other error is; aiohttp answers them in plain text."""
    try:
        return await handler(request)
    except aiohttp.web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return aiohttp.web.json_response(
            {"error": "method_not_allowed",
             "message": f"{request.method[:16]} is not allowed here; allowed: {allowed}"},
            status=405, headers={"Allow": exc.headers["Allow"]})
    except aiohttp.web.HTTPNotFound:
        return aiohttp.web.json_response(
            {"error": "not_found", "message": "no such path"}, status=404)


def _error(web: Any, status: int, code: str, message: str,
           headers: Mapping[str, str] | None = None) -> Any:
    return web.json({"error": code, "message": message}, status=status,
                    headers=dict(headers) if headers else None)


def _refused(web: Any, refusal: Refusal) -> Any:
    return _error(web, refusal.status, refusal.error, refusal.message, refusal.headers)


def _valid_id(web: Any, raw: str) -> tuple[str, Any | None]:
    try:
        return _CUSTOMER_ID.validate_python(raw), None
    except ValidationError:
        return raw, _error(web, 400, "invalid_customer_id",
                           "a customer id is 1-128 characters without edge whitespace")


def _profile(web: Any, parts: WebParts, cid: str) -> Any:
    try:
        state = parts.states.peek(cid)
    except StateUnreadableError as exc:
        return _error(web, 500, "state_unreadable", f"the stored state cannot be read: {exc}")
    if state is None:
        return _error(web, 404, "not_found", "no customer with this id")
    partition = partition_of(cid.encode(), parts.topics.events.partitions)
    profile = customer_profile(parts.engine, state, parts.watermark(partition))
    return web.bytes(orjson.dumps(profile.model_dump(mode="json")),
                     content_type="application/json")


def readiness(parts: WebParts, now: float) -> tuple[bool, str | None, dict[str, Any]]:
    """Readiness: no rebalance or table recovery under way, the due index of every
    assigned partition rebuilt, the broker answering, and partitions assigned; each failure
    is a state the worker leaves by itself."""
    app = parts.app
    recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
    recovered = recovery.completed.is_set() and not recovery.in_recovery
    owned = sorted(parts.owned())
    broker_ok, broker_reason, broker_checks = parts.liveness.broker(now)
    checks: dict[str, Any] = {"recovery_done": recovered, "rebalancing": bool(app.rebalancing),
                              "partitions": owned, **broker_checks}
    if app.rebalancing:
        return False, "a rebalance is under way", checks
    if not recovered:
        return False, "table recovery is not done", checks
    unindexed = sorted(parts.unindexed())
    checks["unindexed"] = unindexed
    if unindexed:
        return False, f"the due index of partitions {unindexed} is being rebuilt", checks
    if not broker_ok:
        return False, broker_reason, checks
    if not owned:
        return False, "no partitions are assigned to this worker", checks
    return True, None, checks


async def _gather_counts(parts: WebParts, request: Any) -> dict[int, list[list[Any]]]:
    """Ask every worker of the group (their URLs come from the partition assignor) for the
    populations of the partitions it owns; a worker that does not answer in time leaves its
    partitions missing, which the answer says."""
    app = parts.app
    urls = set(app.router.tables_metadata()) or {str(app.conf.canonical_url)}
    own = str(app.conf.canonical_url).rstrip("/")
    headers = {}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]

    async def ask(url: str) -> Mapping[str, Any]:
        if url.rstrip("/") == own:
            owned = parts.owned()
            mine = {str(p): rows for p, rows in parts.metrics.populations.by_partition().items()
                    if p in owned}
            for p in owned:
                mine.setdefault(str(p), [])
            return mine
        try:
            async with app.http_client.get(url.rstrip("/") + POPULATIONS_PATH,
                                           headers=headers,
                                           timeout=aiohttp.ClientTimeout(total=3)) as response:
                if response.status != 200:
                    return {}
                answer: Mapping[str, Any] = await response.json()
                return answer
        except Exception as exc:
            log.warning("populations: a worker of the group did not answer (%s)",
                        type(exc).__name__)
            return {}

    answers = await asyncio.gather(*(ask(u) for u in sorted(urls)))
    return merge_counts(answers)


async def _request_erasure(parts: WebParts, cid: str) -> ErasureAccepted:
    """Put an erasure_requested event on the touchpoints topic, keyed and partitioned for
    the customer: the owner applies it in order with the customer's other events."""
    now = datetime.now(UTC)
    event_id = stable_id("erasure", cid, now.isoformat())
    body = orjson.dumps({
        "event_id": event_id, "customer_id": cid, "type": ERASURE_TYPE,
        "occurred_at": now.isoformat(), "channel": "api",
    })
    key = cid.encode()
    topic = parts.topics.touchpoints
    future: Awaitable[Any] = await parts.app.producer.send(
        topic.name, key, body, partition_of(key, topic.partitions), None, None)
    await future
    return ErasureAccepted(customer_id=cid, event_id=event_id, requested_at=now)
