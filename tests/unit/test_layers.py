"""The folders of journey/ are its layers, and imports point one way: down.

cli -> stream (and lab, the in-process tools) -> pipeline -> contract (and churn, the model
fitting) -> engine.
The pipeline and everything below it never import Faust, so the in-process run does not
load it; presets and sample are data.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "journey"
RANK = {"engine": 0, "contract": 1, "churn": 1, "pipeline": 2, "stream": 3, "lab": 3, "cli": 4}
DATA = {"presets", "sample"}
FAUST_FREE = {"engine", "contract", "churn", "pipeline", "lab"}


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "journey" else None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _modules() -> list[tuple[str, Path]]:
    return [(p.relative_to(PACKAGE).parts[0], p) for p in sorted(PACKAGE.rglob("*.py"))
            if len(p.relative_to(PACKAGE).parts) > 1]


def test_every_package_of_journey_is_a_known_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(RANK) | DATA
    loose = {p.name for p in PACKAGE.glob("*.py")} - {"__init__.py"}
    assert not loose, f"modules outside a layer: {sorted(loose)}"


@pytest.mark.parametrize(("layer", "path"), _modules(), ids=lambda v: str(v))
def test_a_module_imports_only_from_its_own_layer_or_below(layer: str, path: Path) -> None:
    upward = []
    for name in _imports(path):
        target = _layer_of(name)
        if target in RANK and RANK[target] > RANK[layer]:
            upward.append(name)
        if target in RANK and layer in RANK and RANK[target] == RANK[layer] and target != layer:
            upward.append(name)  # sibling layers (contract and churn) stay apart
    assert not upward, f"{path.relative_to(PACKAGE)} imports from a layer above: {upward}"


@pytest.mark.parametrize(("layer", "path"), [m for m in _modules() if m[0] in FAUST_FREE],
                         ids=lambda v: str(v))
def test_the_faust_free_layers_never_import_faust(layer: str, path: Path) -> None:
    faust = [n for n in _imports(path) if n.split(".")[0] in {"faust", "mode", "aiokafka"}]
    assert not faust, f"{path.relative_to(PACKAGE)} imports {faust}"
