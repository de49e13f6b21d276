"""The published contract: committed schema files match the models, and real payloads fit them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from journey.cli.schemas import run
from journey.contract import asyncapi
from journey.contract.records import StageChanged, Touchpoint, TriggerEmitted
from journey.contract.schemas import (
    ASYNCAPI_FILE,
    RECORDS,
    SCHEMA_DIR,
    drift,
    render_all,
    write_all,
)
from journey.pipeline.settings import Settings
from journey.pipeline.settings_text import CONFIGURATION_DOC, TABLE_END, TABLE_START

SAMPLE_TOUCHPOINTS: list[dict[str, Any]] = [
    {
        "event_id": "e-1", "customer_id": "anna", "type": "ad_click",
        "occurred_at": "2026-10-01T09:00:00+02:00",
    },
    {
        "schema_version": 1, "event_id": "e-2", "customer_id": "ben@example.com",
        "type": "purchase", "occurred_at": "2026-10-02T12:30:00Z", "channel": "web",
        "source": "google", "campaign": "autumn", "amount": 49.9, "currency": "EUR",
        "timezone": "Europe/Warsaw", "properties": {"product": "mini-course", "tier": "tripwire"},
    },
    {
        "event_id": "e-3", "customer_id": "c 3", "type": "complaint",
        "occurred_at": "2026-10-03T08:00:00.250-05:00", "channel": None, "amount": 0,
        "properties": {"sentiment": "negative", "tags": ["delay", {"days": 3}]},
    },
]

NOT_TOUCHPOINTS: list[dict[str, Any]] = [
    {"customer_id": "anna", "type": "ad_click", "occurred_at": "2026-10-01T09:00:00Z"},
    {**SAMPLE_TOUCHPOINTS[0], "customer_id": " anna"},
    {**SAMPLE_TOUCHPOINTS[0], "amount": -1},
    {**SAMPLE_TOUCHPOINTS[0], "currency": "eur"},
    {**SAMPLE_TOUCHPOINTS[0], "schema_version": 2},
    {**SAMPLE_TOUCHPOINTS[0], "extra": True},
]


def _validator(slug: str) -> Draft202012Validator:
    record = next(r for r in RECORDS if r.slug == slug)
    schema = json.loads((SCHEMA_DIR / record.file_name).read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def test_committed_schema_files_are_what_the_models_generate() -> None:
    # Given the files in schemas/ / When the models render / Then nothing has drifted
    assert drift() == [], "run `journey schemas` and commit the result"
    for path, text in render_all().items():
        assert path.read_text(encoding="utf-8") == text


def test_every_schema_file_is_a_valid_json_schema_with_id_and_title() -> None:
    for record in RECORDS:
        schema = json.loads((SCHEMA_DIR / record.file_name).read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith(f"{record.slug}:v1")
        assert schema["title"] == record.model.__name__


def test_schema_files_are_sorted_two_space_json_ending_in_a_newline() -> None:
    for record in RECORDS:
        text = (SCHEMA_DIR / record.file_name).read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True,
                                  ensure_ascii=False) + "\n"


@pytest.mark.parametrize("payload", SAMPLE_TOUCHPOINTS, ids=lambda p: str(p["event_id"]))
def test_sample_touchpoints_validate_against_the_published_schema(payload: dict[str, Any]) -> None:
    # Given a payload the model accepts
    Touchpoint.model_validate(payload)
    # When it is checked against the published schema / Then it is valid too
    errors = list(_validator("touchpoint").iter_errors(payload))
    assert errors == []


@pytest.mark.parametrize("payload", NOT_TOUCHPOINTS)
def test_payloads_breaking_the_contract_fail_the_published_schema(payload: dict[str, Any]) -> None:
    assert not _validator("touchpoint").is_valid(payload)


def test_records_journey_writes_validate_against_their_schemas() -> None:
    # Given records as the worker serialises them
    change = StageChanged(
        change_id="ch-1", customer_id="anna", journey="touchpoint9", from_stage=None,
        to_stage="acquaintance", cause_event_id="e-1", occurred_at="2026-10-01T09:00:00Z",
    )
    trigger = TriggerEmitted(
        trigger_id="t-1", customer_id="anna", journey="touchpoint9", rule="paid_offer_ready",
        episode="once",
        reason="seven_touches", occurred_at="2026-10-01T09:00:00Z",
    )
    # Then each dump validates against its published schema
    assert _validator("stage-changed").is_valid(json.loads(change.model_dump_json()))
    assert _validator("trigger-emitted").is_valid(json.loads(trigger.model_dump_json()))


def test_asyncapi_describes_every_topic_with_its_schema_and_its_producers() -> None:
    # Given the generated AsyncAPI document and the declared topics
    doc = yaml.safe_load((SCHEMA_DIR / ASYNCAPI_FILE).read_text(encoding="utf-8"))
    topics = Settings.model_construct().topics()
    # Then every topic is a channel whose message payload is a committed schema file
    addresses = {channel["address"]: channel for channel in doc["channels"].values()}
    public = [spec for spec in topics.all()
              if spec not in (topics.state_changelog, topics.erasure_changelog)]
    assert set(addresses) == {spec.name for spec in public}
    for message in doc["components"]["messages"].values():
        assert (SCHEMA_DIR / message["payload"]["$ref"]).is_file()
    assert addresses["touchpoints"]["x-consumed-by"] == ["ingest agent (`ingest`)"]
    assert "journey agent (`advance`)" in addresses["journey-events"]["x-consumed-by"]
    assert addresses["journey-events"]["x-internal"] is True
    assert any("senders" in c for c in addresses["triggers"]["x-consumed-by"])
    assert doc["asyncapi"] == "3.0.0"


def test_asyncapi_states_the_delivery_contract() -> None:
    doc = yaml.safe_load((SCHEMA_DIR / ASYNCAPI_FILE).read_text(encoding="utf-8"))
    description = doc["info"]["description"]
    for phrase in ("Transactional, at-least-once", "read_committed", "fenced",
                   "keyed by customer_id", "trigger_id", "change_id"):
        assert phrase in description


def test_operations_point_at_channels_and_messages_that_exist() -> None:
    doc = yaml.safe_load((SCHEMA_DIR / ASYNCAPI_FILE).read_text(encoding="utf-8"))
    for operation in doc["operations"].values():
        channel_id = operation["channel"]["$ref"].removeprefix("#/channels/")
        assert channel_id in doc["channels"]
        for ref in operation["messages"]:
            _, _, name = ref["$ref"].rpartition("/")
            assert name in doc["channels"][channel_id]["messages"]


def test_generation_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a deployment with a topic prefix
    monkeypatch.setenv("JOURNEY_TOPIC_PREFIX", "staging.")
    # When the files render / Then they still use the default names
    assert "staging." not in render_all()[SCHEMA_DIR / ASYNCAPI_FILE]


def test_check_exits_one_and_names_the_drifting_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given freshly written files, one of them then edited by hand, and a stray schema
    write_all(tmp_path)
    (tmp_path / "touchpoint.v1.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "old.v0.schema.json").write_text("{}\n", encoding="utf-8")
    # When the check runs
    code = run(argparse.Namespace(check=True, dir=tmp_path, configuration_doc=CONFIGURATION_DOC),
               Settings.model_construct())
    # Then it fails and names both files, and not the untouched ones
    err = capsys.readouterr().err
    assert code == 1
    assert "touchpoint.v1.schema.json: out of date" in err
    assert "old.v0.schema.json: not generated" in err
    assert "asyncapi.yaml" not in err


def test_writing_then_checking_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.model_construct()
    schemas, page = tmp_path / "schemas", tmp_path / "configuration.md"
    page.write_text(f"# Configuration\n{TABLE_START}\n{TABLE_END}\n", encoding="utf-8")
    args = argparse.Namespace(check=False, dir=schemas, configuration_doc=page)
    assert run(args, settings) == 0
    assert f"wrote {page}" in capsys.readouterr().out
    assert run(argparse.Namespace(check=True, dir=schemas, configuration_doc=page), settings) == 0
    assert set(schemas.iterdir()) == set(render_all(schemas))


def test_a_topic_without_a_flow_stops_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a topic that nobody described
    flows = dict(asyncapi.FLOWS)
    del flows["triggers"]
    monkeypatch.setattr(asyncapi, "FLOWS", flows)
    # When the files render / Then generation refuses and names the topic
    with pytest.raises(LookupError, match="'triggers'"):
        render_all()
