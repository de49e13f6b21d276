"""Topic names are declared once and carry the deployment's prefix."""

from __future__ import annotations

from journey.pipeline.settings import Settings


def test_every_topic_carries_the_prefix_and_the_partition_count() -> None:
    topics = Settings(topic_prefix="acme-", partitions=6).topics()
    # Faust names the changelogs after the app id, not the prefix
    changelogs = (topics.state_changelog, topics.erasure_changelog)
    names = [t.name for t in topics.all() if t not in changelogs]
    assert all(n.startswith("acme-") for n in names)
    assert len(set(names)) == len(names)
    assert {t.partitions for t in topics.all()} == {6}


def test_only_the_events_topic_and_the_two_changelogs_are_internal() -> None:
    topics = Settings().topics()
    assert [t.name for t in topics.all() if t.internal] == [
        "journey-events", "journey-customer-state-changelog",
        "journey-customer-erasures-changelog"]
    assert dict(topics.state_changelog.configs) == {"cleanup.policy": "compact"}
    assert dict(topics.erasure_changelog.configs) == {"cleanup.policy": "compact"}


def test_the_dead_letter_topic_alone_gets_the_dead_letter_retention_and_is_compacted_too(
) -> None:
    topics = Settings(dead_letter_retention_days=2, dead_letter_erasure_lag_ms=5000).topics()
    assert dict(topics.dead_letters.configs) == {
        "cleanup.policy": "compact,delete", "max.compaction.lag.ms": "5000",
        "retention.ms": str(2 * 86_400_000)}
    assert dict(Settings().topics().dead_letters.configs) == {
        "cleanup.policy": "compact,delete", "max.compaction.lag.ms": str(86_400_000),
        "retention.ms": str(14 * 86_400_000)}
    assert all(not any(k in ("retention.ms", "max.compaction.lag.ms") for k, _ in spec.configs)
               for spec in topics.all() if spec is not topics.dead_letters)
