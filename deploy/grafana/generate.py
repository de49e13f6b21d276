"""The Grafana dashboard of the journey worker, as code (grafana-foundation-sdk).

    python deploy/grafana/generate.py          # write deploy/grafana/dashboards/*.json
    python deploy/grafana/generate.py --check  # exit 1 when the committed JSON has drifted

Every query reads metrics catalogued in docs/metrics.md or series recorded by
deploy/prometheus/rules/; the real-scrape test runs each one against a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    prometheus,
    stat,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

OUT = Path(__file__).resolve().parent / "dashboards"
#: The provisioned data source (provisioning/datasources/prometheus.yml).
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
#: Panels filter by the journey variable; the test substitutes a regex that matches all.
J = 'journey=~"$journey"'


_LAST = common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return (prometheus.Dataquery().expr(expr).legend_format(legend or "__auto")
            .ref_id(ref).datasource(DATASOURCE))


def series(title: str, description: str, *queries: prometheus.Dataquery, unit: str = "short",
           stacked: bool = False, width: int = 12) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).unit(unit)
             .datasource(DATASOURCE).height(8).span(width)
             .legend(common.VizLegendOptions().display_mode(LegendDisplayMode.TABLE)
                     .placement(LegendPlacement.RIGHT).show_legend(True)))
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(StackingMode.NORMAL)).fill_opacity(40)
    for q in queries:
        panel = panel.with_target(q)
    return panel


def bars(title: str, description: str, q: prometheus.Dataquery, unit: str = "short",
         width: int = 12) -> bargauge.Panel:
    return (bargauge.Panel().title(title).description(description).unit(unit)
            .datasource(DATASOURCE).height(8).span(width).with_target(q.instant())
            .orientation(VizOrientation.HORIZONTAL)
            .display_mode(BarGaugeDisplayMode.GRADIENT).reduce_options(_LAST))


def single(title: str, description: str, q: prometheus.Dataquery, unit: str = "short",
           width: int = 6) -> stat.Panel:
    return (stat.Panel().title(title).description(description).unit(unit)
            .datasource(DATASOURCE).height(4).span(width).with_target(q.instant())
            .reduce_options(_LAST))


def _in_order(expr: str) -> str:
    """expr by (journey, stage), with each stage's position from journey_stage_info."""
    return (f"sum by (journey, stage, position) ({expr} * on (journey, stage) "
            "group_left (position) max by (journey, stage, position) (journey_stage_info))")


def funnel_row(d: dashboard.Dashboard) -> dashboard.Dashboard:
    d = d.with_row(dashboard.Row("Funnel"))
    d = d.with_panel(bars(
        "Funnel: reached per stage, last day",
        "Customers who reached each stage in the last day, in stage order (seed 001).",
        query(_in_order(f"journey:stage_reached:increase1d{{{J}}}"),
              "{{journey}} {{position}}. {{stage}}")))
    d = d.with_panel(bars(
        "Customers per stage now",
        "Current stage of every customer, summed over the workers' partitions.",
        query(_in_order(f"journey_customers_in_stage{{{J}}}"),
              "{{journey}} {{position}}. {{stage}}")))
    d = d.with_panel(series(
        "Stage populations over time", "Customers per stage, summed over workers.",
        query(f"sum by (journey, stage) (journey_customers_in_stage{{{J}}})",
              "{{journey}} {{stage}}"), stacked=True))
    d = d.with_panel(series(
        "Stage-to-stage conversion, last day",
        "Reached the next stage / reached this one.",
        query(f"journey:stage_conversion:ratio1d{{{J}}}",
              "{{journey}} {{stage}} → {{next_stage}}"), unit="percentunit"))
    d = d.with_panel(bars(
        "Drop-off per stage, last day (where losses peak)",
        "Share of those who reached a stage and did not reach the next.",
        query(f"journey:stage_dropoff:ratio1d{{{J}}}", "{{journey}} {{stage}}"),
        unit="percentunit"))
    d = d.with_panel(series(
        "End-to-end conversion as 1:N", "Entries per customer who reached the last stage "
        "(seed 001: 1:80).",
        query(f"journey:funnel_conversion:one_in_n1d{{{J}}}", "{{journey}} 1:N")))
    d = d.with_panel(series(
        "Customers per lifecycle status", "Lead, customer, regular, loyal, sleeping, ...",
        query("sum by (status) (journey_customers_in_status)", "{{status}}"), stacked=True))
    d = d.with_panel(series(
        "Median time in stage", "Event time spent in a stage by those who left it.",
        query("histogram_quantile(0.5, sum by (journey, stage, le) "
              f"(rate(journey_time_in_stage_seconds_bucket{{{J}}}[1h])))",
              "{{journey}} {{stage}}"), unit="s"))
    d = d.with_panel(series(
        "Revenue and acquisition cost by channel, per day",
        "Purchases' amount and contacts' cost by channel and currency.",
        query("sum by (channel, currency) (increase(journey_revenue_total[1d]))",
              "revenue {{channel}} {{currency}}"),
        query("sum by (channel, currency) (increase(journey_acquisition_cost_total[1d]))",
              "cost {{channel}} {{currency}}", ref="B"), width=24))
    return d


def triggers_row(d: dashboard.Dashboard) -> dashboard.Dashboard:
    d = d.with_row(dashboard.Row("Triggers and detections"))
    d = d.with_panel(series(
        "Triggers sent by rule and channel", "Triggers emitted per second.",
        query(f"sum by (journey, rule, channel) "
              f"(rate(journey_triggers_by_channel_total{{{J}}}[$__rate_interval]))",
              "{{journey}} {{rule}} via {{channel}}"), unit="ops"))
    d = d.with_panel(series(
        "Triggers withheld by decision and reason",
        "Suppressed, deferred or held out, and why, per second.",
        query(f"sum by (decision, reason) "
              f"(rate(journey_triggers_withheld_total{{{J}}}[$__rate_interval]))",
              "{{decision}}: {{reason}}"), unit="ops"))
    d = d.with_panel(series(
        "Detections by kind, per hour", "Dormant, inactive lead, churn risk, complaint...",
        query(f"sum by (journey, kind) (increase(journey_detections_total{{{J}}}[1h]))",
              "{{journey}} {{kind}}")))
    lift = ("sum by (journey, rule) (increase(journey_lift_converted_total{{{j}arm=\"{arm}\"}}"
            "[90d])) / sum by (journey, rule) (increase(journey_lift_assigned_total{{{j}arm="
            "\"{arm}\"}}[90d]))")
    d = d.with_panel(series(
        "Holdout lift by rule, customers assigned in the last 90 days",
        "Share who bought within 30 days after first eligibility, treated minus held out "
        "(intention to treat, one customer per rule). Conversions lag assignments by up to 30 "
        "days; journey run's report gives intervals adjusted for many rules.",
        query(f"{lift.format(j=J + ',', arm='treated')} - "
              f"{lift.format(j=J + ',', arm='held_out')}", "{{journey}} {{rule}}"),
        unit="percentunit"))
    d = d.with_panel(series(
        "Delay from cause to trigger", "95th percentile, wall clock.",
        query("histogram_quantile(0.95, sum by (le) "
              "(rate(journey_trigger_delay_seconds_bucket[$__rate_interval])))", "p95"),
        unit="s"))
    return d


def pipeline_row(d: dashboard.Dashboard) -> dashboard.Dashboard:
    d = d.with_row(dashboard.Row("Pipeline health"))
    d = d.with_panel(single("Workers up", "Workers Prometheus can scrape.",
                            query('sum(up{job="journey"})', "up")))
    d = d.with_panel(single("Dead-letter share", "Dead letters / records read, 5 minutes.",
                            query("journey:dead_letter_share:ratio5m", "share"),
                            unit="percentunit"))
    d = d.with_panel(single("Touchpoints accepted per second", "All workers, 5 minutes.",
                            query("journey:touchpoints_accepted:rate5m", "rate"), unit="ops"))
    d = d.with_panel(single("Customers tracked", "Customers with state, all workers.",
                            query("sum(journey_customers_tracked)", "customers")))
    d = d.with_panel(series(
        "Touchpoints accepted by type", "Per second.",
        query("sum by (type) (rate(journey_touchpoints_accepted_total[$__rate_interval]))",
              "{{type}}"), unit="ops", stacked=True))
    d = d.with_panel(series(
        "Dead letters by reason", "Per second.",
        query("sum by (reason) (rate(journey_events_dead_lettered_total[$__rate_interval]))",
              "{{reason}}"), unit="ops"))
    d = d.with_panel(series(
        "Consumer lag", "Records not yet processed, per partition.",
        query("sum by (topic, partition) (journey_consumer_lag)", "{{topic}}[{{partition}}]")))
    d = d.with_panel(series(
        "Watermark delay", "Wall clock minus event-time watermark, per events partition.",
        query("max by (partition) (journey_watermark_delay_seconds)", "partition {{partition}}"),
        unit="s"))
    d = d.with_panel(series(
        "Batch time", "Time to apply a batch to state, 50th and 99th percentile.",
        query("histogram_quantile(0.5, sum by (le) "
              "(rate(journey_batch_seconds_bucket[$__rate_interval])))", "p50"),
        query("histogram_quantile(0.99, sum by (le) "
              "(rate(journey_batch_seconds_bucket[$__rate_interval])))", "p99", ref="B"),
        unit="s"))
    d = d.with_panel(series(
        "Flush time",
        "From taking what was held to every partition's transaction committed, 50th and 99th "
        "percentile: what a caught-up worker adds to an output's latency.",
        query("histogram_quantile(0.5, sum by (le) "
              "(rate(journey_flush_seconds_bucket[$__rate_interval])))", "p50"),
        query("histogram_quantile(0.99, sum by (le) "
              "(rate(journey_flush_seconds_bucket[$__rate_interval])))", "p99", ref="B"),
        unit="s"))
    d = d.with_panel(series(
        "Event delay", "From occurred_at to acceptance, 95th percentile.",
        query("histogram_quantile(0.95, sum by (le) "
              "(rate(journey_event_delay_seconds_bucket[$__rate_interval])))", "p95"),
        unit="s"))
    d = d.with_panel(series(
        "Duplicates and late events", "Per second.",
        query("sum(rate(journey_events_duplicate_total[$__rate_interval]))", "duplicates"),
        query("sum(rate(journey_events_late_total[$__rate_interval]))", "late", ref="B"),
        unit="ops"))
    d = d.with_panel(series(
        "Worker CPU and memory", "Per worker process.",
        query('rate(process_cpu_seconds_total{job="journey"}[$__rate_interval])',
              "cpu {{instance}}"),
        query('process_resident_memory_bytes{job="journey"} / 2^30',
              "memory GiB {{instance}}", ref="B")))
    return d


def overview() -> dashboard.Dashboard:
    d = (dashboard.Dashboard("Journey: funnel, triggers and pipeline")
         .uid("journey-overview").tags(["journey"]).refresh("30s").time("now-6h", "now")
         .timezone("utc").editable()
         .with_variable(dashboard.QueryVariable("journey").label("Journey")
                        .query("label_values(journey_stage_info, journey)")
                        .datasource(DATASOURCE).multi(True).include_all(True)
                        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)))
    return pipeline_row(triggers_row(funnel_row(d)))


def dashboards() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    board = overview().build()
    for number, panel in enumerate(board.panels or [], start=1):
        panel.id_val = number  # stable ids, so links and the JSON do not change between runs
    built = {"journey-overview.json": board}
    return {name: json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
            for name, board in built.items()}


def panel_queries(board: dict[str, object]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of a dashboard's JSON."""
    found = []
    panels = board.get("panels", [])
    assert isinstance(panels, list)
    for panel in panels:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    return found


def drift(directory: Path = OUT) -> list[str]:
    problems = []
    wanted = dashboards()
    for name, text in wanted.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from what generate.py builds")
    for path in sorted(directory.glob("*.json")):
        if path.name not in wanted:
            problems.append(f"{path}: not generated by generate.py")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON has drifted")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python deploy/grafana/generate.py", file=sys.stderr)
        return 1 if problems else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in dashboards().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
