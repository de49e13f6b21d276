"""Topic names are declared once and carry the deployment's prefix."""

from __future__ import annotations

from journey.pipeline.settings import Settings


def test_every_topic_carries_the_prefix_and_the_partition_count() -> None:
    topics = Settings(topic_prefix="acme-", partitions=6).topics()
    names = [t.name for t in topics.all() if t is not topics.state_changelog]
    assert all(n.startswith("acme-") for n in names)
    assert len(set(names)) == len(names)
    assert {t.partitions for t in topics.all()} == {6}


def test_only_the_events_topic_and_the_state_changelog_are_internal() -> None:
    topics = Settings().topics()
    assert [t.name for t in topics.all() if t.internal] == [
        "journey-events", "journey-customer-state-changelog"]
    assert dict(topics.state_changelog.configs) == {"cleanup.policy": "compact"}
