"""The one place where topic names, keys and partition counts are declared."""

from __future__ import annotations

from dataclasses import dataclass

#: Where the local broker of deploy/kafka/kafka.sh listens; the settings' default.
DEFAULT_BOOTSTRAP = "127.0.0.1:19092"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic of the pipeline: its full name, what keys it and what each record holds."""

    name: str
    key: str
    record: str
    partitions: int
    internal: bool = False
    #: topic-level configs journey sets when it creates the topic
    configs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic journey reads or writes, named for one deployment."""

    touchpoints: TopicSpec
    events: TopicSpec
    stage_changes: TopicSpec
    triggers: TopicSpec
    trigger_audit: TopicSpec
    dead_letters: TopicSpec
    state_changelog: TopicSpec
    erasures: TopicSpec
    erasure_changelog: TopicSpec

    @classmethod
    def named(cls, *, prefix: str = "", partitions: int = 4, app_id: str = "journey",
              dead_letter_retention_ms: int | None = None,
              dead_letter_erasure_lag_ms: int | None = None) -> Topics:
        """The topics of one deployment: names carry its prefix (and, for Faust's changelog,
        its app id); every topic has the same partition count, so they are co-partitioned.
        Dead letters keep a record's original bytes, personal data included: their topic
        gets a retention of its own when one is given, and, when an erasure lag is given,
        is compacted too, so that the tombstones an erasure writes remove them
        (journey/contract/deadletters.py)."""
        p, n = prefix, partitions
        dead_letter_configs: tuple[tuple[str, str], ...] = ()
        if dead_letter_erasure_lag_ms is not None:
            dead_letter_configs += (("cleanup.policy", "compact,delete"),
                                    ("max.compaction.lag.ms", str(dead_letter_erasure_lag_ms)))
        if dead_letter_retention_ms is not None:
            dead_letter_configs += (("retention.ms", str(dead_letter_retention_ms)),)
        return cls(
            touchpoints=TopicSpec(f"{p}touchpoints", "any (ignored)", "Touchpoint JSON", n),
            events=TopicSpec(
                f"{p}journey-events", "customer_id", "Touchpoint JSON (validated)", n,
                internal=True,
            ),
            stage_changes=TopicSpec(f"{p}stage-changes", "customer_id", "StageChanged", n),
            triggers=TopicSpec(f"{p}triggers", "customer_id", "TriggerEmitted", n),
            trigger_audit=TopicSpec(f"{p}trigger-audit", "customer_id", "TriggerAudited", n),
            dead_letters=TopicSpec(f"{p}dead-letters", "source topic:partition:offset",
                                   "DeadLetter", n,
                                   configs=dead_letter_configs),
            # Faust's changelog of the customer-state table, created up front (compacted and
            # with the events topic's partition count) rather than raced for at start-up.
            state_changelog=TopicSpec(
                f"{app_id}-customer-state-changelog", "customer_id",
                "CustomerState JSON (internal)", n, internal=True,
                configs=(("cleanup.policy", "compact"),),
            ),
            erasures=TopicSpec(f"{p}erasures", "customer_id", "CustomerErased", n),
            # The erasure markers (customer id -> erased_at, no personal data) of Faust's
            # customer-erasures table: kept so replayed older events do not resurrect anyone.
            erasure_changelog=TopicSpec(
                f"{app_id}-customer-erasures-changelog", "customer_id",
                "erased_at epoch ms (internal)", n, internal=True,
                configs=(("cleanup.policy", "compact"),),
            ),
        )

    def all(self) -> tuple[TopicSpec, ...]:
        return (self.touchpoints, self.events, self.stage_changes, self.triggers,
                self.trigger_audit, self.dead_letters, self.state_changelog, self.erasures,
                self.erasure_changelog)
