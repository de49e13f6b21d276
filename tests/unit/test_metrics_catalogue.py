"""docs/metrics.md lists exactly what the registry exposes: names, types and labels."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from journey.engine.duration import DAY_MS
from journey.pipeline.processor import BatchResult
from tests.unit.test_metrics import Worker, record, tick, touchpoint

CATALOGUE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def catalogue() -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, labels) from the catalogue table."""
    text = CATALOGUE.read_text(encoding="utf-8").split("## Catalogue", 1)[1]
    text = text.split("\n## ", 1)[0]
    rows: dict[str, tuple[str, frozenset[str]]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        labels = frozenset(x.strip() for x in cells[2].split(",") if x.strip())
        rows[cells[0].strip("`")] = (cells[1], labels)
    return rows


def exposed(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, labels seen on its samples) from /metrics text."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        labels: set[str] = set()
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
        found[name] = (family.type, frozenset(labels))
    # The client's _created companion of each counter and histogram is not catalogued.
    for name in [n for n in found if n.endswith("_created")]:
        base = name.removesuffix("_created")
        if base + "_total" in found or base in found:
            del found[name]
    return found


def compare(text: str) -> list[str]:
    """Differences between the catalogue and a /metrics text (labels only where seen)."""
    want, got = catalogue(), exposed(text)
    problems = [f"exposed, not in the catalogue: {n}" for n in sorted(set(got) - set(want))]
    problems += [f"in the catalogue, not exposed: {n}" for n in sorted(set(want) - set(got))]
    for name in sorted(set(want) & set(got)):
        (wtype, wlabels), (gtype, glabels) = want[name], got[name]
        if wtype != gtype:
            problems.append(f"{name}: catalogue says {wtype}, exposed as {gtype}")
        if glabels and glabels != wlabels:
            problems.append(f"{name}: catalogue labels {sorted(wlabels)}, exposed "
                            f"{sorted(glabels)}")
    return problems


def test_the_catalogue_matches_every_metric_the_registry_exposes() -> None:
    # Given a worker that has seen every kind of input
    w = Worker(hold_ms=DAY_MS)
    m = w.metrics
    m.observe_accepted(touchpoint(type="purchase", channel="store", amount=10, currency="EUR"))
    m.observe_accepted(touchpoint(type="refund", channel="store", amount=5, currency="EUR"))
    m.observe_accepted(touchpoint(type="ad_click", channel="ads", properties={"cost": 1.5}))
    m.set_lag("journey-events", 0, 3)
    m.connection_errors.labels("aiokafka").inc()
    w.run([record(1, "a", "site_visit", 0), record(2, "a", "signup", 1),
           record(3, "a", "purchase", 2, channel="email"),
           record(4, "b", "signup", 0.5), record(5, "b", "opt_out", 0.49)])
    w.run([tick(400)])
    # (the worker's funnel holds nobody out; tests/unit/test_live_lift.py runs a holdout)
    m.observe_batch(BatchResult(lift=[("funnel", "welcome", "held_out", "assigned"),
                                      ("funnel", "welcome", "held_out", "converted")]))
    # When its registry is exposed
    text = generate_latest(m.registry).decode()
    # Then the catalogue lists exactly those metrics, with their types and labels
    assert compare(text) == []
    unlabelled = [n for n, (_, labels) in exposed(text).items()
                  if not labels and catalogue()[n][1]]
    assert unlabelled == [], "every labelled metric was exercised, so its labels were checked"
