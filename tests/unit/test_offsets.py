"""The worker's offset commits (journey/stream/offsets.py): per partition, one past the last
record the barrier acknowledged; never for a partition no longer assigned, never backwards,
and a refused commit is tried again by the next flush."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from faust.types import TP

from journey.stream.offsets import OffsetCommitter

A, B = TP("t-touchpoints", 0), TP("t-touchpoints", 1)


@dataclass
class Message:
    tp: TP
    offset: int


@dataclass
class Event:
    message: Message


def held(*records: tuple[TP, int]) -> list[tuple[int, Event]]:
    return [(tp.partition, Event(Message(tp, offset))) for tp, offset in records]


@dataclass
class Consumer:
    """The two calls the committer makes on Faust's consumer."""

    assigned: set[TP] = field(default_factory=lambda: {A, B})
    refuse: int = 0
    commits: list[dict[TP, int]] = field(default_factory=list)

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    async def _commit(self, offsets: dict[TP, int]) -> bool:
        if self.refuse:
            self.refuse -= 1
            return False
        self.commits.append(dict(offsets))
        return True


@dataclass
class App:
    consumer: Consumer


def run(committer: OffsetCommitter, records: list[tuple[int, Event]]) -> None:
    asyncio.run(committer(records))


def test_commits_one_past_the_last_acknowledged_record_of_each_partition() -> None:
    consumer = Consumer()
    committer = OffsetCommitter(App(consumer))
    run(committer, held((A, 4), (B, 9), (A, 5), (A, 6)))
    assert consumer.commits == [{A: 7, B: 10}]


def test_a_partition_no_longer_assigned_is_left_to_its_new_owner() -> None:
    consumer = Consumer(assigned={A})
    committer = OffsetCommitter(App(consumer))
    run(committer, held((A, 1), (B, 3)))
    assert consumer.commits == [{A: 2}]
    assert committer.pending == {}


def test_a_refused_commit_is_retried_by_the_next_flush_even_with_nothing_new() -> None:
    consumer = Consumer(refuse=1)
    committer = OffsetCommitter(App(consumer))
    run(committer, held((A, 1)))
    assert consumer.commits == [] and committer.pending == {A: 2}
    run(committer, [])
    assert consumer.commits == [{A: 2}]


def test_never_commits_an_offset_at_or_below_one_it_already_committed() -> None:
    consumer = Consumer()
    committer = OffsetCommitter(App(consumer))
    run(committer, held((A, 8)))
    run(committer, held((A, 3), (B, 0)))  # records read again after a seek
    assert consumer.commits == [{A: 9}, {B: 1}]
