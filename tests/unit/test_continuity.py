"""Input reaches the pipeline without a hole (journey/stream/continuity.py): from the
committed offset on, in offset order; a record beyond the next expected one makes the worker
seek back and read again, and a real hole (offsets without records) is passed after the
re-read shows it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from faust.types import TP

from journey.stream.continuity import Continuity

P = TP("t-touchpoints", 2)


@dataclass
class Group:
    committed: dict[TP, int | None] = field(default_factory=dict)
    earliest: dict[TP, int] = field(default_factory=dict)
    seeks: list[tuple[TP, int]] = field(default_factory=list)
    rereads: int = 0

    def continuity(self) -> Continuity:
        async def committed(tps: set[TP]) -> dict[TP, int | None]:
            return {tp: self.committed.get(tp) for tp in tps}

        async def earliest(tps: set[TP]) -> dict[TP, int]:
            return {tp: self.earliest[tp] for tp in tps}

        async def seek(tp: TP, offset: int) -> None:
            self.seeks.append((tp, offset))

        def reread() -> None:
            self.rereads += 1

        return Continuity(committed, earliest, seek, on_reread=reread)


def admitted(continuity: Continuity, offsets: list[int], tp: TP = P) -> list[int]:
    async def run() -> list[int]:
        return [o for o in offsets if await continuity.admit(tp, o)]

    return asyncio.run(run())


def test_records_from_the_committed_offset_on_are_admitted_in_order() -> None:
    group = Group(committed={P: 668})
    assert admitted(group.continuity(), [668, 669, 670]) == [668, 669, 670]
    assert group.seeks == []


def test_a_first_record_past_the_committed_offset_is_read_again_from_it() -> None:
    # The fault suite's case: the consumer handed over 3748 first, 3747 being committed.
    group = Group(committed={P: 3747})
    continuity = group.continuity()
    assert admitted(continuity, [3748, 3749]) == []  # 3749 was still queued before the seek
    assert group.seeks == [(P, 3747)] and group.rereads == 1
    assert admitted(continuity, [3747, 3748, 3749]) == [3747, 3748, 3749]


def test_offsets_that_hold_no_records_are_passed_once_the_re_read_shows_it() -> None:
    group = Group(committed={P: 10})
    continuity = group.continuity()
    assert admitted(continuity, [12, 13]) == []  # 10 and 11: a transaction's markers, say
    assert admitted(continuity, [12, 13, 14]) == [12, 13, 14]
    assert group.seeks == [(P, 10)]


def test_records_read_again_below_the_next_expected_offset_are_skipped() -> None:
    group = Group(committed={P: 5})
    continuity = group.continuity()
    assert admitted(continuity, [5, 6, 7, 5, 6, 7, 8]) == [5, 6, 7, 8]


def test_with_nothing_committed_reading_starts_at_the_first_offset_in_the_log() -> None:
    group = Group(earliest={P: 40})
    continuity = group.continuity()
    assert admitted(continuity, [41]) == []
    assert group.seeks == [(P, 40)]
    assert admitted(continuity, [40, 41]) == [40, 41]


def test_after_a_rebalance_the_committed_offset_is_the_starting_point_again() -> None:
    group = Group(committed={P: 100})
    continuity = group.continuity()
    assert admitted(continuity, [100, 101]) == [100, 101]
    group.committed[P] = 250  # another worker had the partition meanwhile
    continuity.reset()
    assert admitted(continuity, [250]) == [250]
    assert group.seeks == []
