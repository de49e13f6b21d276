"""Journey definitions are validated at load time with errors that say where and what."""

from __future__ import annotations

from pathlib import Path

import pytest

from journey.engine.definitions import DefinitionError, load_definitions, parse_definition


def _error(text: str) -> str:
    with pytest.raises(DefinitionError) as info:
        parse_definition(text, "journeys/shop.yaml")
    return str(info.value)


def test_misspelt_comparison_names_file_path_and_problem() -> None:
    msg = _error("name: shop\nstages:\n  - {name: a, entry: {purchases: {gtee: 3}}}\n")
    assert "journeys/shop.yaml" in msg
    assert "stages.0.entry.purchases.gtee" in msg
    assert "Extra inputs are not permitted" in msg


def test_unknown_event_type_is_rejected_unless_declared_custom() -> None:
    text = "name: shop\nstages:\n  - {name: a, entry: {type: purchace}}\n"
    assert "unknown event types ['purchace']" in _error(text)
    parse_definition(text + "custom_types: [purchace]\n", "x.yaml")


def test_backward_move_must_name_known_stages_and_go_backward() -> None:
    base = "name: shop\nstages:\n  - {name: a}\n  - {name: b}\n"
    assert "unknown stage 'zz'" in _error(base + "backward:\n  - {from: zz, to: a}\n")
    assert "does not go backward" in _error(base + "backward:\n  - {from: a, to: b}\n")


def test_duplicate_stage_and_bad_duration_are_named() -> None:
    assert "stage 'a' is defined twice" in _error("name: s\nstages: [{name: a}, {name: a}]\n")
    msg = _error("name: s\nstages: [{name: a}]\nrules:\n  - {name: r, when: {}, "
                 "trigger: {reason: x, valid_for: 7 days}}\n")
    assert "rules.0.trigger.valid_for" in msg
    assert "'7 days' is not a duration" in msg


def test_invalid_yaml_and_non_mapping_are_rejected() -> None:
    assert "not valid YAML" in _error("name: [unclosed\n")
    assert "mapping at the top level" in _error("- a\n- b\n")


def test_lifecycle_name_is_reserved() -> None:
    assert "reserved" in _error("name: lifecycle\nstages: [{name: a}]\n")


def test_definitions_load_from_preset_names_and_files(tmp_path: Path) -> None:
    custom = tmp_path / "mine.yaml"
    custom.write_text("name: mine\nstages: [{name: a}]\n")
    loaded = load_definitions(["touchpoint_journey", str(custom)])
    assert [d.name for d in loaded] == ["touchpoint_journey", "mine"]


def test_two_definitions_with_the_same_name_are_refused(tmp_path: Path) -> None:
    custom = tmp_path / "again.yaml"
    custom.write_text("name: touchpoint_journey\nstages: [{name: a}]\n")
    with pytest.raises(DefinitionError, match="two definitions are named"):
        load_definitions(["touchpoint_journey", str(custom)])


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read"):
        load_definitions([str(tmp_path / "nope.yaml")])


def test_reached_must_name_a_stage_of_the_journey() -> None:
    msg = _error("name: s\nstages:\n  - {name: a}\n  - {name: b, entry: {reached: zz}}\n")
    assert "'reached' names unknown stages ['zz']" in msg
