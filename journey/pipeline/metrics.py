"""Prometheus metrics of the worker. Takes a registry; no label ever carries a customer id.

The shell calls one method per thing that happened (`observe_accepted`, `observe_rejection`,
`observe_batch`, ...); everything that must be derived from an event or an output (labels,
revenue, delays, detections) is derived here, so the shell stays a few lines per hook. The
catalogue of every name, type and label is docs/metrics.md (a test compares the two).

Labels are bounded: journey, stage, status, rule and reason names come from the journey
definitions and the code; partitions from the topic layout; free-form values the platform
sends (channel, currency) pass through `BoundedLabel`, which keeps the first few distinct
values and folds the rest into "other".
"""

from __future__ import annotations

import math
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from journey.contract.decode import REASONS
from journey.engine import CustomerState, Engine, Event, Output, StageChange, TriggerRequest
from journey.engine.definitions import LIFECYCLE
from journey.engine.detections import DETECTION_RULES
from journey.engine.outputs import TriggerSuppressed
from journey.pipeline.timekeeping import PartitionClock

# Batches are processed in milliseconds; default buckets (5 ms .. 10 s) would hide that.
_BATCH_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_BATCH_SIZE_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_MINUTE, _HOUR, _DAY = 60.0, 3600.0, 86400.0
# From an event's time to its processing: sub-second when live, up to days for a backlog or
# a platform that uploads late.
_EVENT_DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, _MINUTE, 5 * _MINUTE,
                        15 * _MINUTE, _HOUR, 6 * _HOUR, _DAY, 7 * _DAY)
# From a trigger's cause (event or deadline) to its emission: holds and quiet hours add hours.
_TRIGGER_DELAY_BUCKETS = (0.1, 1, 10, _MINUTE, 5 * _MINUTE, 15 * _MINUTE, _HOUR, 3 * _HOUR,
                          12 * _HOUR, _DAY, 3 * _DAY, 7 * _DAY)
# Time customers spend in a stage: minutes (an impulse buy) to a year (a slow B2B deal).
_STAGE_SECONDS_BUCKETS = (_MINUTE, 10 * _MINUTE, _HOUR, 6 * _HOUR, _DAY, 3 * _DAY, 7 * _DAY,
                          14 * _DAY, 30 * _DAY, 60 * _DAY, 90 * _DAY, 180 * _DAY, 365 * _DAY)

#: Distinct values kept per free-form label before the rest fold into OTHER.
FREE_LABEL_LIMIT = 32
OTHER = "other"
NONE = "none"
#: Event types whose amount is revenue, and whose amount is money given back.
REVENUE_TYPES = frozenset({"purchase"})
REFUND_TYPES = frozenset({"refund"})
#: The property of a touchpoint that carries what the contact cost (acquisition spend).
COST_PROPERTY = "cost"
#: Dead-letter reasons: the decoder's, and the shell's own for a decoder that failed.
REJECTION_REASONS = REASONS | {"internal_error"}
#: What became of an erasure request over HTTP (journey/stream/web.py).
ERASURE_OUTCOMES = ("accepted", "rate_limited", "forbidden")


class BoundedLabel:
    """A free-form value as a label: the first `limit` distinct values pass, others fold."""

    def __init__(self, limit: int = FREE_LABEL_LIMIT) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if value is None or value == "":
            return NONE
        if value in self._seen:
            return value
        if len(self._seen) < self.limit:
            self._seen.add(value)
            return value
        return OTHER


class Touchpoint(Protocol):
    """What observe_accepted reads of an accepted touchpoint (journey.contract.records)."""

    @property
    def type(self) -> str: ...
    @property
    def channel(self) -> str | None: ...
    @property
    def amount(self) -> float | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def properties(self) -> dict[str, Any]: ...
    @property
    def occurred_at(self) -> Any: ...


class Batch(Protocol):
    """What observe_batch reads of a journey.pipeline.processor.BatchResult."""

    @property
    def outputs(self) -> list[Output]: ...
    @property
    def processed(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def late(self) -> int: ...
    @property
    def ticks(self) -> int: ...
    @property
    def bad_ticks(self) -> int: ...
    @property
    def detections_due(self) -> int: ...
    @property
    def lift(self) -> list[tuple[str, str, str, str]]: ...


# ----- stage populations ---------------------------------------------------------------------

Position = tuple[tuple[tuple[str, str], ...], str | None]
_EMPTY: Position = ((), None)


def position_of(state: CustomerState | None) -> Position:
    """Where a customer stands: its (journey, stage) pairs, in the state's journey order,
    and its lifecycle status. Called for every customer a batch reads, so kept cheap: pairs
    in another order compare unequal, which costs a move that changes no count."""
    if state is None:
        return _EMPTY
    return tuple([(name, pos.stage) for name, pos in state.journeys.items()
                  if pos.stage is not None]), state.status


class StagePopulations(Collector):
    """Customers per (journey, stage) and per status, counted per partition.

    Each worker reports only the partitions it owns, so the gauges of all workers sum to
    the whole population. Updated from each customer's position before and after a batch:
    the StateCache remembers the position of every state as it is first read, `follow`
    moves the customers read since. After a rebalance `reset_partition` recounts a partition
    from its stored states and `drop_partition` forgets one given away.
    """

    def __init__(self) -> None:
        self._stages: dict[int, Tally[tuple[str, str]]] = {}
        self._statuses: dict[int, Tally[str]] = {}

    # -- incremental updates
    def move(self, partition: int, old: Position, new: Position) -> None:
        """One customer of `partition` went from position `old` to `new`."""
        if old == new:
            return
        stages = self._stages.get(partition)
        if stages is None:
            stages = self._stages[partition] = Tally()
        statuses = self._statuses.get(partition)
        if statuses is None:
            statuses = self._statuses[partition] = Tally()
        old_stages, old_status = old
        new_stages, new_status = new
        for key in old_stages:
            stages[key] -= 1
            if stages[key] <= 0:
                del stages[key]
        for key in new_stages:
            stages[key] += 1
        if old_status != new_status:
            if old_status is not None:
                statuses[old_status] -= 1
                if statuses[old_status] <= 0:
                    del statuses[old_status]
            if new_status is not None:
                statuses[new_status] += 1

    def update(self, partition: int, old: CustomerState | None, new: CustomerState) -> None:
        """A customer's state changed from `old` (None: new customer) to `new`. `old` must not
        be the same object as `new` when the engine changed it in place: see track()."""
        self.move(partition, position_of(old), position_of(new))

    def follow(self, before: Mapping[str, object], live: Mapping[str, CustomerState],
               partition_of: Callable[[str], int]) -> None:
        """Move every customer read since the last call from the position it had when first
        read (StateCache.take_before) to the one its live state has now."""
        for customer_id, old in before.items():
            new = position_of(live.get(customer_id))
            if new != old:
                self.move(partition_of(customer_id), old, new)  # type: ignore[arg-type]

    # -- rebalances
    def add(self, partition: int, positions: Mapping[Position, int]) -> None:
        """Customers of `partition` counted at positions (position -> how many), as new
        ones: a rebuild's tally, applied at once."""
        stages = self._stages.setdefault(partition, Tally())
        statuses = self._statuses.setdefault(partition, Tally())
        for (journey_stages, status), n in positions.items():
            if n <= 0:
                continue
            for key in journey_stages:
                stages[key] += n
            if status is not None:
                statuses[status] += n

    def reset_partition(self, partition: int, states: Iterable[CustomerState]) -> None:
        """Recount a partition from its stored states (after recovery or an assignment)."""
        self._stages[partition] = Tally()
        self._statuses[partition] = Tally()
        for state in states:
            self.move(partition, _EMPTY, position_of(state))

    def recount(self, partitions: Iterable[int],
                states: Iterable[tuple[int, CustomerState]]
                ) -> Iterator[tuple[int, CustomerState]]:
        """After a rebalance: forget partitions not in `partitions`, recount those that are
        from (partition, stored state) pairs, and pass the pairs on, so that one pass over
        the table serves both this and BatchProcessor.rebuild."""
        keep = set(partitions)
        for partition in set(self._stages) | set(self._statuses):
            if partition not in keep:
                self.drop_partition(partition)
        for partition in keep:
            self._stages[partition] = Tally()
            self._statuses[partition] = Tally()
        for partition, state in states:
            if partition in keep:
                self.move(partition, _EMPTY, position_of(state))
            yield partition, state

    def drop_partition(self, partition: int) -> None:
        """Forget a partition this worker no longer owns (its new owner reports it)."""
        self._stages.pop(partition, None)
        self._statuses.pop(partition, None)

    # -- reading
    def by_partition(self) -> dict[int, list[list[Any]]]:
        """[[journey, stage, customers], ...] per partition this worker counts (for the
        web API's populations gathered from every worker)."""
        return {p: [[j, s, n] for (j, s), n in sorted(t.items()) if n > 0]
                for p, t in sorted(self._stages.items())}

    def stages(self) -> dict[tuple[str, str], int]:
        total: Tally[tuple[str, str]] = Tally()
        for counts in self._stages.values():
            total.update(counts)
        return {k: v for k, v in total.items() if v > 0}

    def statuses(self) -> dict[str, int]:
        total: Tally[str] = Tally()
        for counts in self._statuses.values():
            total.update(counts)
        return {k: v for k, v in total.items() if v > 0}

    def collect(self) -> Iterator[Metric]:
        stage = GaugeMetricFamily(
            "journey_customers_in_stage",
            "Customers whose current stage in a journey is this one (partitions this worker "
            "owns; sum over workers for the whole population).",
            labels=["journey", "stage"],
        )
        for (journey, name), count in sorted(self.stages().items()):
            stage.add_metric([journey, name], count)
        yield stage
        status = GaugeMetricFamily(
            "journey_customers_in_status",
            "Customers whose lifecycle status is this one (partitions this worker owns).",
            labels=["status"],
        )
        for name, count in sorted(self.statuses().items()):
            status.add_metric([name], count)
        yield status


# ----- clocks and lag ------------------------------------------------------------------------

class ClockCollector(Collector):
    """Watermark delay and due customers per events partition, read from the processor's
    clocks at scrape time (no bookkeeping in the hot path)."""

    def __init__(self, now_ms: Callable[[], int]) -> None:
        self._now_ms = now_ms
        self._source: Callable[[], Mapping[int, PartitionClock]] = dict

    def watch(self, clocks: Callable[[], Mapping[int, PartitionClock]]) -> None:
        self._source = clocks

    def collect(self) -> Iterator[Metric]:
        now_ms = self._now_ms()
        delay = GaugeMetricFamily(
            "journey_watermark_delay_seconds",
            "Wall-clock time minus the event-time watermark of an events partition this "
            "worker owns (absent until the partition has a watermark).",
            labels=["partition"],
        )
        due = GaugeMetricFamily(
            "journey_customers_armed_by_partition",
            "Customers with a pending deadline in the due index of an events partition.",
            labels=["partition"],
        )
        for partition, clock in sorted(dict(self._source()).items()):
            if clock.watermark_ms > 0:
                delay.add_metric([str(partition)], max(0, now_ms - clock.watermark_ms) / 1000)
            due.add_metric([str(partition)], len(clock.due))
        yield delay
        yield due


def _wall_ms() -> int:
    return int(time.time() * 1000)


# ----- the catalogue -------------------------------------------------------------------------

@dataclass(frozen=True)
class StageOrder:
    """The stage sequence of each journey, to count skipped stages as reached."""

    stages: Mapping[str, Sequence[str]]

    def reached(self, journey: str, from_stage: str | None, to_stage: str) -> Sequence[str]:
        """Stages a move reaches: those after from_stage up to to_stage (a forward move
        that skips stages reaches them too); a backward move reaches none."""
        order = self.stages.get(journey)
        if not order or to_stage not in order:
            return (to_stage,)
        end = order.index(to_stage)
        start = order.index(from_stage) + 1 if from_stage in order else 0
        return order[start:end + 1] if start <= end else ()


class Metrics:
    """Every metric the worker exports, registered on one registry."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        now_ms: Callable[[], int] = _wall_ms,
        process: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.now_ms = now_ms
        self.order = StageOrder({})
        self._channel = BoundedLabel()
        self._trigger_channel = BoundedLabel()
        self._currency = BoundedLabel()
        self._type = BoundedLabel(128)
        r = self.registry
        # -- ingest
        self.events_accepted = Counter(
            "journey_events_accepted_total", "Touchpoints that passed validation.", registry=r
        )
        self.touchpoints_accepted = Counter(
            "journey_touchpoints_accepted_total",
            "Touchpoints that passed validation, by event type and channel.",
            ["type", "channel"], registry=r,
        )
        self.events_dead_lettered = Counter(
            "journey_events_dead_lettered_total",
            "Records sent to the dead-letter topic, by reason code.",
            ["reason"], registry=r,
        )
        self.revenue = Counter(
            "journey_revenue_total",
            "Amount of purchase touchpoints, by channel and currency (money, not customers).",
            ["channel", "currency"], registry=r,
        )
        self.refunds = Counter(
            "journey_refunds_total",
            "Amount of refund touchpoints, by channel and currency.",
            ["channel", "currency"], registry=r,
        )
        self.acquisition_cost = Counter(
            "journey_acquisition_cost_total",
            f"What contacts cost (the touchpoint's properties.{COST_PROPERTY}), by channel "
            "and currency.",
            ["channel", "currency"], registry=r,
        )
        self.event_delay = Histogram(
            "journey_event_delay_seconds",
            "From a touchpoint's occurred_at to its acceptance by the worker.",
            buckets=_EVENT_DELAY_BUCKETS, registry=r,
        )
        # -- state
        self.events_duplicate = Counter(
            "journey_events_duplicate_total",
            "Touchpoints dropped because their event_id was already seen within the horizon.",
            registry=r,
        )
        self.events_late = Counter(
            "journey_events_late_total",
            "Touchpoints older than the allowed lateness (handled by the late-event policy).",
            registry=r,
        )
        self.events_processed = Counter(
            "journey_events_processed_total", "Touchpoints applied to journey state.",
            registry=r,
        )
        self.stage_changes = Counter(
            "journey_stage_changes_total",
            "Stage changes emitted, by journey and target stage.",
            ["journey", "to_stage"], registry=r,
        )
        self.stage_transitions = Counter(
            "journey_stage_transitions_total",
            "Stage changes emitted, by journey, stage left (empty: entering the journey) and "
            "stage entered. Journey \"lifecycle\" carries status changes.",
            ["journey", "from_stage", "to_stage"], registry=r,
        )
        self.stages_reached = Counter(
            "journey_stage_reached_total",
            "Customers reaching a stage: a forward move counts every stage it passes "
            "(skipped stages are reached too); a backward move counts none.",
            ["journey", "stage"], registry=r,
        )
        self.time_in_stage = Histogram(
            "journey_time_in_stage_seconds",
            "Event time a customer spent in a stage, observed when it leaves the stage.",
            ["journey", "stage"], buckets=_STAGE_SECONDS_BUCKETS, registry=r,
        )
        self.stage_info = Gauge(
            "journey_stage_info",
            "1 per stage of each configured journey; position counts from 0 and next_stage "
            "is empty for the last stage (lets rules compute conversion in stage order).",
            ["journey", "stage", "position", "next_stage"], registry=r,
        )
        # -- triggers and detections
        self.triggers_emitted = Counter(
            "journey_triggers_emitted_total",
            "Triggers emitted to the triggers topic, by journey and rule.",
            ["journey", "rule"], registry=r,
        )
        self.triggers_by_channel = Counter(
            "journey_triggers_by_channel_total",
            "Triggers emitted to the triggers topic, by journey, rule and channel.",
            ["journey", "rule", "channel"], registry=r,
        )
        self.triggers_withheld = Counter(
            "journey_triggers_withheld_total",
            "Triggers the policy did not send now, by journey, rule, decision (suppressed, "
            "deferred, held_out, cancelled) and reason.",
            ["journey", "rule", "decision", "reason"], registry=r,
        )
        self.lift_assigned = Counter(
            "journey_lift_assigned_total",
            "Customers assigned to an arm (treated, held_out) of a rule's holdout at their "
            "first eligibility, once per customer and rule (intention to treat).",
            ["journey", "rule", "arm"], registry=r,
        )
        self.lift_converted = Counter(
            "journey_lift_converted_total",
            "Assigned customers who bought within 30 days after their first eligibility, once "
            "per customer and rule.",
            ["journey", "rule", "arm"], registry=r,
        )
        self.trigger_delay = Histogram(
            "journey_trigger_delay_seconds",
            "From a trigger's cause (event time or deadline) to its emission (wall clock).",
            buckets=_TRIGGER_DELAY_BUCKETS, registry=r,
        )
        self.detections = Counter(
            "journey_detections_total",
            "Time-driven detections (dormant, inactive lead, churn risk, unanswered "
            "complaint, ...), by journey and kind, whether the trigger was sent or withheld.",
            ["journey", "kind"], registry=r,
        )
        self.detections_due = Counter(
            "journey_detections_due_total",
            "Customers whose deadline the watermark passed (each checked for detections).",
            registry=r,
        )
        # -- pipeline
        self.batch_size = Histogram(
            "journey_batch_events", "Events per batch taken by the journey agent.",
            buckets=_BATCH_SIZE_BUCKETS, registry=r,
        )
        self.batch_seconds = Histogram(
            "journey_batch_seconds", "Time to apply one batch to state and queue its outputs.",
            buckets=_BATCH_SECONDS_BUCKETS, registry=r,
        )
        self.flush_seconds = Histogram(
            "journey_flush_seconds",
            "Time of one flush that wrote something: from taking what was held until every "
            "partition's transaction (outputs, states, input offsets) is committed.",
            buckets=_BATCH_SECONDS_BUCKETS, registry=r,
        )
        self.ticks_sent = Counter(
            "journey_ticks_sent_total",
            "Timer rounds in which this worker appended ticks to its partitions.", registry=r,
        )
        self.ticks_received = Counter(
            "journey_ticks_received_total", "Tick records read from the events topic.",
            registry=r,
        )
        self.ticks_malformed = Counter(
            "journey_ticks_malformed_total", "Tick records that could not be read (ignored).",
            registry=r,
        )
        self.input_refetched = Counter(
            "journey_input_refetched_total",
            "Input records the consumer skipped, read straight from the broker and processed "
            "in order (journey/stream/continuity.py).",
            registry=r,
        )
        self.customers_armed = Gauge(
            "journey_customers_armed",
            "Customers with a pending deadline in the due indexes of the partitions this "
            "worker owns.", registry=r,
        )
        self.state_restored_records = Counter(
            "journey_state_restored_records_total",
            "Changelog records Faust's recovery applied to the local state store (with "
            "RocksDB only the tail written since the store's persisted offset).", registry=r,
        )
        self.index_rebuild_seconds = Histogram(
            "journey_index_rebuild_seconds",
            "Time to rebuild the due index of one newly assigned partition from its stored "
            "states (in slices that yield to the event loop).",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120), registry=r,
        )
        self.customers_tracked = Gauge(
            "journey_customers_tracked",
            "Customers with state in the partitions this worker owns.", registry=r,
        )
        self.consumer_lag = Gauge(
            "journey_consumer_lag",
            "Records in a partition this worker owns not yet processed (high watermark minus "
            "the next offset to process).",
            ["topic", "partition"], registry=r,
        )
        # Series that exist from the start: a counter first seen at 1 loses that 1 in rate().
        for reason in sorted(REJECTION_REASONS):
            self.events_dead_lettered.labels(reason)
        self._changes = _Children(self.stage_changes)
        self._transitions = _Children(self.stage_transitions)
        self._reached = _Children(self.stages_reached)
        self._stage_time = _Children(self.time_in_stage)
        self._emitted = _Children(self.triggers_emitted)
        self._by_channel = _Children(self.triggers_by_channel)
        self._withheld = _Children(self.triggers_withheld)
        self._detections = _Children(self.detections)
        self._accepted = _Children(self.touchpoints_accepted)
        self.erasures = Counter(
            "journey_erasures_total",
            "Customers erased (GDPR art. 17): state tombstoned, pending triggers dropped.",
            registry=r,
        )
        self.dead_letters_erased = Counter(
            "journey_dead_letters_erased_total",
            "Dead letters written before an erasure that named the erased customer, "
            "tombstoned by the erasure sweeper (compaction then removes their bytes).",
            registry=r,
        )
        self.erasure_requests = Counter(
            "journey_erasure_requests_total",
            "Erasure requests over HTTP (DELETE /customers/{id}) by outcome: accepted, "
            "rate_limited (429), forbidden (401 or 403: no token, a wrong one, or the read "
            "token).", ["outcome"], registry=r,
        )
        for outcome in ERASURE_OUTCOMES:
            self.erasure_requests.labels(outcome)
        self.events_dropped_erased = Counter(
            "journey_events_dropped_erased_total",
            "Events of an erased customer dated at or before the erasure, dropped.", registry=r,
        )
        self.connection_errors = Counter(
            "journey_connection_errors_total",
            "Connection errors logged by the Kafka client and Faust, including the repeats "
            "the log folds into one line.",
            ["logger"], registry=r,
        )
        self.broker_unanswered = Gauge(
            "journey_broker_unanswered_seconds",
            "Seconds since the broker last answered this worker's metadata probe (every 2 s; "
            "since the start when it never did): above a minute the worker is cut off.",
            registry=r,
        )
        self.populations = StagePopulations()
        r.register(self.populations)
        self.clocks = ClockCollector(now_ms)
        r.register(self.clocks)
        if process:
            ProcessCollector(registry=r)

    # ----- set-up hooks (once, at start) -------------------------------------------------------
    def describe_journeys(self, stages: Mapping[str, Sequence[str]]) -> None:
        """Declare each journey's stage order: exported as journey_stage_info and used to
        count skipped stages as reached."""
        self.order = StageOrder({name: tuple(order) for name, order in stages.items()})
        for journey, order in self.order.stages.items():
            for position, stage in enumerate(order):
                following = order[position + 1] if position + 1 < len(order) else ""
                self.stage_info.labels(journey, stage, str(position), following).set(1)
                # from 0, so that the first customers to reach a stage count in increase()
                self.stages_reached.labels(journey, stage)

    def describe_engine(self, engine: Engine) -> None:
        """describe_journeys for every journey the engine runs."""
        self.describe_journeys({j.definition.name: j.names for j in engine.journeys})

    def watch_broker(self, unanswered_s: Callable[[], float]) -> None:
        """Export the seconds since the broker last answered, read at each scrape (the
        worker's probe keeps the answer times; journey/stream/web.py Liveness)."""
        self.broker_unanswered.set_function(unanswered_s)

    def watch_clocks(self, clocks: Callable[[], Mapping[int, PartitionClock]]) -> None:
        """Export watermark delay and due customers from the processor's clocks, e.g.
        `metrics.watch_clocks(lambda: processor.clocks)`."""
        self.clocks.watch(clocks)

    # ----- per record ---------------------------------------------------------------------------
    def observe_rejection(self, reason: str) -> None:
        """A record was dead-lettered with this reason code."""
        self.events_dead_lettered.labels(reason).inc()

    def observe_accepted(self, touchpoint: Touchpoint, now_ms: int | None = None) -> None:
        """A touchpoint passed validation: count it by type and channel, add its revenue,
        refund or cost to its channel, and observe its delay from occurred_at."""
        occurred = touchpoint.occurred_at
        self._accept(touchpoint.type, touchpoint.channel, touchpoint.amount,
                     touchpoint.currency, touchpoint.properties,
                     None if occurred is None else occurred.timestamp() * 1000, now_ms)

    def observe_events(self, events: Sequence[Event], now_ms: int | None = None) -> None:
        """observe_accepted for each of a batch's accepted events (the engine's Events),
        with the counters increased once per (type, channel) instead of once per event
        (each increment takes a lock). The delay histogram still sees every event."""
        if not events:
            return
        now = self.now_ms() if now_ms is None else now_ms
        by_kind: dict[tuple[str, str | None], int] = {}
        delay = self.event_delay.observe
        for event in events:
            kind = (event.type, event.channel)
            by_kind[kind] = by_kind.get(kind, 0) + 1
            if event.amount is not None or event.properties:
                self._money(event.type, self._channel(event.channel), event.amount,
                            event.currency, event.properties)
            delay(max(0.0, (now - event.at_ms) / 1000))
        self.events_accepted.inc(len(events))
        for (event_type, channel_name), n in by_kind.items():
            self._accepted(self._type(event_type), self._channel(channel_name)).inc(n)

    def _accept(self, event_type: str, channel_name: str | None, amount: float | None,
                currency: str | None, properties: Mapping[str, Any],
                occurred_ms: float | None, now_ms: int | None) -> None:
        channel = self._channel(channel_name)
        self.events_accepted.inc()
        self._accepted(self._type(event_type), channel).inc()
        self._money(event_type, channel, amount, currency, properties)
        if occurred_ms is not None:
            now = self.now_ms() if now_ms is None else now_ms
            self.event_delay.observe(max(0.0, (now - occurred_ms) / 1000))

    def _money(self, event_type: str, channel: str, amount: float | None,
               currency: str | None, properties: Mapping[str, Any]) -> None:
        """Revenue, refunds and acquisition cost of one accepted event, by channel."""
        if amount is not None and amount > 0:
            if event_type in REVENUE_TYPES:
                self.revenue.labels(channel, self._currency(currency)).inc(amount)
            elif event_type in REFUND_TYPES:
                self.refunds.labels(channel, self._currency(currency)).inc(amount)
        cost = _amount(properties.get(COST_PROPERTY))
        if cost is not None and cost > 0:
            self.acquisition_cost.labels(channel, self._currency(currency)).inc(cost)

    # ----- per batch ----------------------------------------------------------------------------
    def observe_batch(self, result: Batch, now_ms: int | None = None, *,
                      size: int | None = None) -> None:
        """Everything a processed batch says: counts, and per output the transitions,
        reached stages, time in stage, triggers, withheld triggers, detections and delays.
        `size`: records in the batch (events and ticks), for the batch-size histogram."""
        now = self.now_ms() if now_ms is None else now_ms
        if size is not None:
            self.batch_size.observe(size)
        if result.processed:
            self.events_processed.inc(result.processed)
        if result.duplicates:
            self.events_duplicate.inc(result.duplicates)
        if result.late:
            self.events_late.inc(result.late)
        if result.ticks:
            self.ticks_received.inc(result.ticks)
        if result.bad_ticks:
            self.ticks_malformed.inc(result.bad_ticks)
        if result.detections_due:
            self.detections_due.inc(result.detections_due)
        if result.outputs:
            self._observe_outputs(result.outputs, now)
        if result.lift:
            for (journey, rule, arm, what), n in Tally(result.lift).items():
                counter = self.lift_assigned if what == "assigned" else self.lift_converted
                counter.labels(journey, rule, arm).inc(n)

    def _observe_outputs(self, outputs: Iterable[Output], now_ms: int) -> None:
        # Tallied per batch first: a batch has many outputs but few distinct label sets,
        # and a labelled increment costs far more than a dict update.
        changes: Tally[tuple[str, str | None, str]] = Tally()
        sent: Tally[tuple[str, str, str | None]] = Tally()
        withheld: Tally[tuple[str, str, str, str]] = Tally()
        stage_time, trigger_delay = self._stage_time, self.trigger_delay
        for output in outputs:
            if isinstance(output, StageChange):
                changes[output.journey, output.from_stage, output.to_stage] += 1
                spent = output.ms_in_previous_stage
                if output.from_stage is not None and spent is not None:
                    stage_time(output.journey, output.from_stage).observe(spent / 1000)
            elif isinstance(output, TriggerRequest):
                sent[output.journey, output.rule, output.channel] += 1
                trigger_delay.observe(max(0, now_ms - output.at_ms) / 1000)
            elif isinstance(output, TriggerSuppressed):
                request = output.request
                withheld[request.journey, request.rule, output.decision, output.reason] += 1
        for (journey, from_stage, to_stage), n in changes.items():
            self._changes(journey, to_stage).inc(n)
            self._transitions(journey, from_stage or "", to_stage).inc(n)
            reached = ((to_stage,) if journey == LIFECYCLE
                       else self.order.reached(journey, from_stage, to_stage))
            for stage in reached:
                self._reached(journey, stage).inc(n)
        for (journey, rule, channel), n in sent.items():
            self._emitted(journey, rule).inc(n)
            self._by_channel(journey, rule, self._trigger_channel(channel)).inc(n)
            if rule in DETECTION_RULES:
                self._detections(journey, rule).inc(n)
        for (journey, rule, decision, reason), n in withheld.items():
            self._withheld(journey, rule, decision, reason).inc(n)
            # A deferred trigger is counted as a detection when it is finally sent or dropped.
            if rule in DETECTION_RULES and decision != "deferred":
                self._detections(journey, rule).inc(n)

    # ----- pipeline -----------------------------------------------------------------------------
    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        """Consumer lag of one partition this worker owns."""
        self.consumer_lag.labels(topic, str(partition)).set(max(0, lag))

    def forget_lag(self, topic: str, partition: int) -> None:
        """A partition was revoked: its lag is now its new owner's to report."""
        with suppress(KeyError):
            self.consumer_lag.remove(topic, str(partition))


class _Children:
    """The labelled children of one metric, looked up once: `labels()` validates and locks
    on every call, which costs more than the increment itself on the hot path."""

    def __init__(self, metric: Any) -> None:
        self._labels = metric.labels
        self._cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._labels(*values)
        return child


def _amount(value: object) -> float | None:
    """A finite number, or None: properties are free-form and may hold anything."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
