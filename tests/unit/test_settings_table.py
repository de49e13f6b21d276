"""The settings table of docs/configuration.md is generated from the settings model, and the
committed page must equal what the model generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from journey.pipeline.settings import Settings
from journey.pipeline.settings_text import (
    CONFIGURATION_DOC,
    REGENERATE,
    TABLE_END,
    TABLE_START,
    configuration_drift,
    env_name,
    render_configuration,
    settings_table,
    unknown_variables,
    write_configuration,
)


def test_the_committed_settings_table_is_the_one_the_model_generates() -> None:
    problems = configuration_drift(CONFIGURATION_DOC)
    assert problems == [], f"{problems}: run `{REGENERATE}` and commit docs/configuration.md"


def test_every_setting_has_a_row_with_a_description() -> None:
    table = settings_table()
    for name, info in Settings.model_fields.items():
        assert f"| `{env_name(name)}` |" in table
        assert info.description, f"{env_name(name)} has no description for the table"
    for wanted in ("JOURNEY_FLUSH_INTERVAL_MS", "JOURNEY_FLUSH_MAX_HELD",
                   "JOURNEY_STATE_CACHE_CUSTOMERS", "JOURNEY_WEB_READ_TOKEN",
                   "JOURNEY_WEB_ERASURES_PER_MINUTE"):
        assert f"`{wanted}`" in table


def test_the_unused_batch_wait_is_gone_and_setting_it_warns() -> None:
    assert "BATCH_WITHIN_MS" not in settings_table()
    assert "BATCH_WITHIN_MS" not in CONFIGURATION_DOC.read_text(encoding="utf-8")
    assert unknown_variables({"JOURNEY_BATCH_WITHIN_MS": "50"}) == [
        "JOURNEY_BATCH_WITHIN_MS is not a setting and is ignored"]


def test_the_table_shows_types_bounds_and_choices_but_never_a_secret(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given secrets in the environment
    monkeypatch.setenv("JOURNEY_WEB_TOKEN", "env-erase-token-123")
    monkeypatch.setenv("JOURNEY_OFFER_CODE_SECRET", "env-offer-secret-123")
    # When the table is generated
    table = settings_table()
    # Then it is made from the model's defaults alone
    assert "env-erase-token-123" not in table and "env-offer-secret-123" not in table
    rows = {line.split(" | ")[0].strip("| `"): line for line in table.splitlines()}
    assert "| integer (≥ 1, ≤ 1024) | `4` |" in rows["JOURNEY_PARTITIONS"]
    assert "| `PLAINTEXT` or `SASL_PLAINTEXT`" in rows["JOURNEY_KAFKA_SECURITY_PROTOCOL"]
    assert "| secret, optional | `(none)` |" in rows["JOURNEY_WEB_TOKEN"]
    assert "| secret | `(empty)` |" in rows["JOURNEY_OFFER_CODE_SECRET"]
    assert "| true/false | `true` |" in rows["JOURNEY_KAFKA_SSL_CHECK_HOSTNAME"]


def test_regenerating_replaces_only_what_is_between_the_markers(tmp_path: Path) -> None:
    # Given a page with prose around an outdated table
    page = tmp_path / "configuration.md"
    page.write_text(f"# Configuration\n\nbefore\n\n{TABLE_START}\n| old |\n{TABLE_END}\n\nafter\n",
                    encoding="utf-8")
    assert configuration_drift(page) == [f"{page}: the settings table is out of date"]
    # When it is regenerated
    assert write_configuration(page) == [page]
    # Then the prose stays, the table is new, and a second run changes nothing
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Configuration\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "| old |" not in text and settings_table() in text
    assert write_configuration(page) == [] and configuration_drift(page) == []


def test_a_page_without_its_markers_is_a_one_line_error(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text("# Configuration\n", encoding="utf-8")
    with pytest.raises(ValueError, match="lost its settings-table markers"):
        render_configuration(page.read_text(encoding="utf-8"))
    [problem] = configuration_drift(page)
    assert "markers" in problem and "\n" not in problem
    assert configuration_drift(tmp_path / "absent.md") == [f"{tmp_path / 'absent.md'}: missing"]
