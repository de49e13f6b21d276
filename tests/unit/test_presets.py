"""The preset catalogue: each preset loads, is named for its file, cites its seed, runs with all."""

from __future__ import annotations

import pytest

from journey.engine import Engine, load_definitions, load_preset
from journey.engine.definitions import DefinitionError, preset_names

SHIPPED = {
    "touchpoint_journey", "classic_funnel", "aida", "value_ladder", "b2b_sales", "dentist",
    "wedding_photographer", "real_estate", "lead_readiness",
}


def test_the_seed_models_ship_as_presets() -> None:
    assert set(preset_names()) >= SHIPPED


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_under_its_file_name(name: str) -> None:
    assert load_preset(name).name == name


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_cites_its_seed_and_describes_its_stages_and_rules(name: str) -> None:
    definition = load_preset(name)

    assert definition.title
    assert "seed 00" in definition.source
    assert all(stage.description for stage in definition.stages)
    assert all(rule.description for rule in definition.rules)


def test_preset_names_are_unique_so_all_presets_run_in_one_engine() -> None:
    definitions = load_definitions(preset_names())

    names = [d.name for d in definitions]
    assert len(names) == len(set(names))
    assert len(Engine(definitions).journeys) == len(names)


def test_an_unknown_preset_is_an_error_that_lists_the_presets() -> None:
    with pytest.raises(DefinitionError, match="no preset named 'no_such_funnel'") as error:
        load_preset("no_such_funnel")

    for name in preset_names():
        assert name in str(error.value)
