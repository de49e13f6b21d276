"""The simulator: reproducible from a seed, in event-time order, valid under the contract."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from journey.cli.main import main
from journey.contract.decode import IngestPolicy, Rejection, decode
from journey.lab.simulate import CHANNELS, LOW_SEASON_MONTHS, SimulationConfig, simulate


@pytest.fixture(scope="module")
def population() -> list[dict[str, Any]]:
    return simulate(SimulationConfig(seed=11, customers=1500))


def test_the_same_seed_writes_byte_identical_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, other = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"

    for out, seed in ((first, "5"), (second, "5"), (other, "6")):
        assert main(["simulate", "--seed", seed, "--customers", "300", "--out", str(out)]) == 0

    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    assert "wrote" in capsys.readouterr().out


def test_events_are_written_in_event_time_order(population: list[dict[str, Any]]) -> None:
    times = [datetime.fromisoformat(e["occurred_at"]) for e in population]

    assert times == sorted(times)
    assert len({e["event_id"] for e in population}) == len(population)


def test_every_event_is_accepted_by_the_contract(population: list[dict[str, Any]]) -> None:
    import orjson

    policy = IngestPolicy(extra_types=frozenset({"diagnosis"}))  # the dentist's custom type

    rejected = [r for e in population
                if isinstance(r := decode(orjson.dumps(e), policy=policy, now_ms=2**62),
                              Rejection)]

    assert rejected == []


def test_each_customer_story_keeps_its_own_order(population: list[dict[str, Any]]) -> None:
    numbers: dict[str, list[int]] = defaultdict(list)
    for event in population:
        numbers[event["customer_id"]].append(int(event["event_id"].rsplit("-", 1)[1]))

    assert all(seq == sorted(seq) for seq in numbers.values())


def test_leads_come_from_ad_channels_with_a_cost_per_lead_in_range(
    population: list[dict[str, Any]],
) -> None:
    costs = [(e["source"], e["properties"]["cost"]) for e in population if "source" in e]

    assert {source for source, _ in costs} == set(CHANNELS)
    for source, cost in costs:
        low, high = CHANNELS[source]
        assert low <= cost <= high
    facebook = [c for s, c in costs if s == "facebook"]
    assert 3.0 <= sum(facebook) / len(facebook) <= 5.0  # seed 000: $3-5 per Facebook lead


def test_the_dentist_funnel_follows_seed_000_rates(population: list[dict[str, Any]]) -> None:
    kinds = Counter(e["type"] for e in population)
    booked, came, cavities = kinds["appointment_booked"], kinds["showed_up"], kinds["diagnosis"]

    # seed 000: 8 of 10 come for the free whitening; about 4 of those 8 have cavities
    assert 0.7 < came / booked < 0.9
    assert 0.4 < cavities / came < 0.6


def test_wedding_sessions_avoid_the_low_season(population: list[dict[str, Any]]) -> None:
    sessions = [datetime.fromisoformat(e["occurred_at"]) for e in population
                if e["type"] == "purchase" and "product" in e.get("properties", {})
                and e["properties"]["product"] in {"wedding", "maternity", "newborn",
                                                    "first_birthday", "family"}]

    assert sessions
    assert not [s for s in sessions if s.month in LOW_SEASON_MONTHS]
    assert any(e["properties"].get("product") == "maternity" for e in population
               if e["type"] == "purchase")


def test_the_population_has_every_persona_the_seeds_describe(
    population: list[dict[str, Any]],
) -> None:
    kinds = Counter(e["type"] for e in population)
    per_customer: dict[str, list[str]] = defaultdict(list)
    for event in population:
        per_customer[event["customer_id"]].append(event["type"])
    complained = [t for t in per_customer.values() if "complaint" in t]

    assert kinds["opt_out"] > 0 and kinds["referral"] > 0 and kinds["lead_magnet_download"] > 0
    assert any("complaint_response" in t for t in complained)
    assert any("complaint_response" not in t for t in complained)
    assert any(t.count("purchase") >= 5 for t in per_customer.values())  # regulars
    assert any(t == ["ad_click", "signup"] for t in per_customer.values())  # leads who stop


def test_a_bad_simulation_size_is_refused_with_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["simulate", "--customers", "0", "--out", str(tmp_path / "x.jsonl")])

    assert status == 2
    assert "customers" in capsys.readouterr().err
