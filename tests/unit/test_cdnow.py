"""The CDNOW purchase log as touchpoints, and the in-process run over it: a funnel, dormancy."""

from __future__ import annotations

import time
import zipfile
from collections import Counter
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from journey.cli.main import main
from journey.lab.cdnow import CdnowError, import_file, parse
from tests.datasets import _lifetimes_wheel, cdnow_file


@pytest.fixture(scope="module")
def cdnow_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cdnow") / "cdnow.jsonl"
    assert main(["import", "cdnow", str(cdnow_file("CDNOW_master.txt")), "--out", str(out)]) == 0
    return out


def test_the_whole_cdnow_log_becomes_one_purchase_per_line(cdnow_events: Path) -> None:
    events = [orjson.loads(line) for line in cdnow_events.read_bytes().splitlines()]

    # Fader & Hardie: 69,659 purchases by 23,570 customers, January 1997 to June 1998
    assert len(events) == 69_659
    assert len({e["customer_id"] for e in events}) == 23_570
    assert {e["type"] for e in events} == {"purchase"}
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times)
    assert times[0].startswith("1997-01-01") and times[-1].startswith("1998-06-30")
    # each customer's first purchase carries the source, for first-touch attribution
    firsts = Counter(e["customer_id"] for e in events if e.get("source") == "cdnow")
    assert len(firsts) == 23_570 and set(firsts.values()) == {1}


def test_the_wheel_itself_imports_to_the_same_file(cdnow_events: Path, tmp_path: Path) -> None:
    out = tmp_path / "from_wheel.jsonl"

    purchases, customers = import_file(_lifetimes_wheel(), out)

    assert (purchases, customers) == (69_659, 23_570)
    assert out.read_bytes() == cdnow_events.read_bytes()


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    with pytest.raises(CdnowError, match="line 2"):
        list(parse(["00001 19970101 1 11.77", "00002 1997-01-12 1 12.00"]))


def test_the_in_process_run_over_cdnow_draws_a_funnel_and_detects_dormancy(
    cdnow_events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # When the whole log runs through the classic funnel, in-process
    started = time.perf_counter()
    status = main(["run", "--input", str(cdnow_events), "--journey", "classic_funnel",
                   "--out-dir", str(tmp_path), "--no-progress"])
    elapsed = time.perf_counter() - started
    print(f"CDNOW in-process run: {elapsed:.1f} s")  # a figure for the reader, not a limit

    # Then every customer enters the funnel, the repeat buyers reach the later stages
    assert status == 0
    out = capsys.readouterr().out
    funnel = out.split("funnel classic_funnel")[1].split("\n\n")[0]
    reached = {row.split()[0]: int(row.split()[1]) for row in funnel.splitlines()[2:]}
    assert reached["acquaintance"] == 23_570 and reached["payment"] == 23_570
    assert 0 < reached["regular"] < reached["repeat_purchase"] < 23_570
    # and customers who stopped buying are detected as dormant, then lost
    statuses: Counter[str] = Counter()
    first_dormant: dict[str, str] = {}
    for line in (tmp_path / "stage-changes.jsonl").read_bytes().splitlines():
        change = orjson.loads(line)
        if change["journey"] == "lifecycle":
            statuses[change["to_stage"]] += 1
            if change["to_stage"] == "dormant":
                first_dormant.setdefault(change["customer_id"], change["occurred_at"])
    assert statuses["dormant"] > 1000 and statuses["lost"] > 1000
    assert all(datetime.fromisoformat(t).year in (1997, 1998) for t in first_dormant.values())
    assert (tmp_path / "report.html").stat().st_size > 1_000_000  # plotly.js is embedded


def test_the_lifetimes_wheel_ships_the_master_file() -> None:
    with zipfile.ZipFile(_lifetimes_wheel()) as wheel:
        assert "lifetimes/datasets/CDNOW_master.txt" in wheel.namelist()
