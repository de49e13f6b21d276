"""The comparison benchmark's helpers work on tiny inputs (no broker, no timing)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from tests.bench.compare import (
    Drain,
    Latency,
    Results,
    covered,
    markdown_table,
    parse_args,
    percentile,
    ratio,
    report,
)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1001)]  # 1..1000, shuffled order must not matter
    values.reverse()

    assert percentile(values, 50) == 500.0
    assert percentile(values, 99) == 990.0
    assert percentile(values, 99.9) == 999.0
    assert percentile(values, 100) == 1000.0
    assert percentile([7.0], 99.9) == 7.0
    assert math.isnan(percentile([], 50))


def test_covered_counts_commits_only_up_to_the_backlog_end() -> None:
    ends = {0: 10, 1: 5, 2: 0}

    # partition 0 committed past the backlog (ticks appended later), 1 not yet at all,
    # -1 is what a group reports for "no commit"
    assert covered({0: 12, 2: -1}, ends) == 10
    assert covered({0: 10, 1: 5}, ends) == 15
    assert covered({}, ends) == 0


def test_ratio_is_absent_without_both_figures() -> None:
    assert ratio(10.0, 4.0) == 2.5
    assert ratio(None, 4.0) is None
    assert ratio(10.0, None) is None
    assert ratio(10.0, 0.0) is None


def test_drain_rate_is_events_over_seconds() -> None:
    assert Drain(events=1000, seconds=4.0).rate == 250.0
    assert Drain(events=1000).rate is None


def test_markdown_table_has_a_header_rule_and_a_line_per_row() -> None:
    text = markdown_table(["a", "b"], [["1", "2"], ["3", "4"]])

    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |", "| 3 | 4 |"]


def test_report_shows_every_system_ratios_latency_and_the_command() -> None:
    args = parse_args(["--events", "1000", "--customers", "10"])
    results = Results(
        bare=[100_000.0], noop_event=[8_000.0], noop_take=[20_000.0], inprocess=[10_000.0],
        startup=[0.05],
        engine=[40_000.0],
        worker1=[Drain(events=1000, seconds=1.0, commit_s=0.5, outputs=1200, rss_kb=[102_400])],
        worker2=[Drain(events=1000, seconds=0.5, commit_s=0.4, outputs=1200,
                       rss_kb=[51_200, 61_440])],
        quix=[Drain(events=1000, seconds=2.0, commit_s=5.0, outputs=1100)],
        quix_trivial=[Drain(events=1000, seconds=0.1, commit_s=0.1, outputs=1000)],
        latency=Latency(rate=500.0, sent=100, samples_ms=[float(v) for v in range(1, 101)],
                        rss_kb=90_000),
    )
    facts = {"cores": "2", "CPU": "test"}

    text = report(args, results, facts, "python -m tests.bench.compare --events 1000",
                  datetime(2026, 1, 1, tzinfo=UTC), ("1.0", "2.0"))

    assert "    python -m tests.bench.compare --events 1000" in text
    assert "| journey worker, 1 process | 1,000 | 0.01 |" in text
    assert "| journey worker, 2 processes | 2,000 | 0.02 |" in text
    assert "| Quix Streams + journey engine, stateful apply | 500 |" in text
    assert "| worker 2 processes / 1 process | 2 |" in text
    assert "| worker (1 process) / Quix Streams + journey engine | 2 |" in text
    assert "| Quix Streams + journey engine / Quix Streams trivial | 0.05 |" in text
    assert "| Quix Streams, trivial stateful step (parse, count per customer, one record " \
        "out) | 10,000 |" in text
    assert "| worker (1 process) / in-process whole | 0.1 |" in text
    assert "| 500 | 100 | 100 | 50.0 | 99.0 | 100.0 | 100.0 | 13.0 / 88.0 |" in text
    assert "largest process: 100 MiB" in text
    assert "| cores | 2 |" in text
    assert "0.1 s wall, of which start-up 0.1 s" in text
    assert "| in-process run, whole process less start-up | 20,000 |" in text
    assert "| engine only (decode + apply) >= 100,000 events/s (10 µs per event) | 40,000 | " \
        "no |" in text
    assert "| worker (1 process) >= 0.6 x in-process whole | 0.1 | no |" in text
    assert "| 2 processes >= 1.7 x 1 process | 2 | yes |" in text
    assert "| worker (1 process) >= 1.25 x Quix Streams + journey engine | 2 | yes |" in text
    assert "| p99 produce to stage change <= 100 ms at half the 1-process rate | 99.0 ms | " \
        "yes |" in text
