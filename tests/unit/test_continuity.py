"""Input reaches the pipeline without a hole (journey/stream/continuity.py): from the
committed offset on, in offset order; records the consumer skipped are read straight from
the broker and processed first, and records read again are skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from faust.types import TP

from journey.stream.continuity import Continuity, Refetched, RefetchedMessage

P = TP("t-touchpoints", 2)


@dataclass
class Group:
    """The committed offsets and the log (offset -> value) the continuity check reads."""

    committed: dict[TP, int | None] = field(default_factory=dict)
    earliest: dict[TP, int] = field(default_factory=dict)
    log: dict[int, bytes] = field(default_factory=dict)
    reads: list[tuple[int, int]] = field(default_factory=list)
    refetched: int = 0

    def continuity(self) -> Continuity:
        async def committed(tp: TP) -> int | None:
            return self.committed.get(tp)

        async def earliest(tp: TP) -> int:
            return self.earliest[tp]

        async def read_range(tp: TP, start: int, end: int) -> Sequence[Refetched]:
            self.reads.append((start, end))
            return [Refetched(RefetchedMessage(tp.topic, tp.partition, o, None, self.log[o]))
                    for o in sorted(self.log) if start <= o < end]

        def count(n: int) -> None:
            self.refetched += n

        return Continuity(committed, earliest, read_range, on_refetched=count)


def processed(continuity: Continuity, offsets: list[int], tp: TP = P) -> list[int]:
    """The offsets processed, in order, when the consumer hands over `offsets`."""
    async def run() -> list[int]:
        done: list[int] = []
        for offset in offsets:
            missing = await continuity.admit(tp, offset)
            if missing is not None:
                done += [r.message.offset for r in missing] + [offset]
        return done

    return asyncio.run(run())


def test_records_from_the_committed_offset_on_are_processed_in_order() -> None:
    group = Group(committed={P: 668})
    assert processed(group.continuity(), [668, 669, 670]) == [668, 669, 670]
    assert group.reads == []


def test_a_record_the_consumer_skipped_is_read_from_the_broker_and_processed_first() -> None:
    # The fault suite's case: the consumer handed over 3748 first, 3747 being committed.
    group = Group(committed={P: 3747}, log={3747: b"lost", 3748: b"next"})
    assert processed(group.continuity(), [3748, 3749]) == [3747, 3748, 3749]
    assert group.reads == [(3747, 3748)] and group.refetched == 1


def test_offsets_that_hold_no_records_are_passed_over() -> None:
    group = Group(committed={P: 10}, log={11: b"x"})  # 10: a transaction marker, say
    assert processed(group.continuity(), [12, 13]) == [11, 12, 13]


def test_records_read_again_below_the_next_expected_offset_are_skipped() -> None:
    group = Group(committed={P: 5})
    assert processed(group.continuity(), [5, 6, 7, 5, 6, 7, 8]) == [5, 6, 7, 8]


def test_with_nothing_committed_reading_starts_at_the_first_offset_in_the_log() -> None:
    group = Group(earliest={P: 40}, log={40: b"first"})
    assert processed(group.continuity(), [41]) == [40, 41]


def test_after_a_rebalance_the_committed_offset_is_the_starting_point_again() -> None:
    group = Group(committed={P: 100})
    continuity = group.continuity()
    assert processed(continuity, [100, 101]) == [100, 101]
    group.committed[P] = 250  # another worker had the partition meanwhile
    continuity.reset()
    assert processed(continuity, [250]) == [250]
    assert group.reads == []
