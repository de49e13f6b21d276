"""Prometheus metrics of the worker. Takes a registry; no label ever carries a customer id."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Batches are processed in milliseconds; default buckets (5 ms .. 10 s) would hide that.
_BATCH_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_BATCH_SIZE_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class Metrics:
    """Every metric the worker exports, registered on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_accepted = Counter(
            "journey_events_accepted_total", "Touchpoints that passed validation.", registry=r
        )
        self.events_dead_lettered = Counter(
            "journey_events_dead_lettered_total",
            "Records sent to the dead-letter topic, by reason code.",
            ["reason"],
            registry=r,
        )
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
            "journey_events_processed_total",
            "Touchpoints applied to journey state.",
            registry=r,
        )
        self.stage_changes = Counter(
            "journey_stage_changes_total",
            "Stage changes emitted, by journey and target stage.",
            ["journey", "to_stage"],
            registry=r,
        )
        self.triggers_emitted = Counter(
            "journey_triggers_emitted_total",
            "Triggers emitted to the triggers topic, by journey and rule.",
            ["journey", "rule"],
            registry=r,
        )
        self.triggers_withheld = Counter(
            "journey_triggers_withheld_total",
            "Triggers the policy did not send now, by journey, rule, decision (suppressed, "
            "deferred, held_out) and reason.",
            ["journey", "rule", "decision", "reason"],
            registry=r,
        )
        self.batch_size = Histogram(
            "journey_batch_events",
            "Events per batch taken by the journey agent.",
            buckets=_BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "journey_batch_seconds",
            "Time to apply one batch to state and queue its outputs.",
            buckets=_BATCH_SECONDS_BUCKETS,
            registry=r,
        )
        self.ticks_sent = Counter(
            "journey_ticks_sent_total",
            "Timer rounds in which this worker appended ticks to its partitions.",
            registry=r,
        )
        self.ticks_received = Counter(
            "journey_ticks_received_total", "Tick records read from the events topic.",
            registry=r,
        )
        self.ticks_malformed = Counter(
            "journey_ticks_malformed_total", "Tick records that could not be read (ignored).",
            registry=r,
        )
        self.detections_due = Counter(
            "journey_detections_due_total",
            "Customers whose deadline the watermark passed (each checked for detections).",
            registry=r,
        )
        self.customers_armed = Gauge(
            "journey_customers_armed",
            "Customers with a pending deadline after the last due-index rebuild.",
            registry=r,
        )
        self.customers_tracked = Gauge(
            "journey_customers_tracked",
            "Customers with state in the partitions this worker owns.",
            registry=r,
        )
