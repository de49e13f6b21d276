"""The backtest report: one self-contained HTML file (plotly, embedded) and a terminal summary.

Deterministic: no time of day, fixed div ids, stable ordering; plotly.js is embedded once, so
the file opens offline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from journey.lab.analysis import Analysis, lifecycle_at_risk
from journey.lab.economics import LTV_CAC_TARGET, PAYBACK_TARGET_MONTHS
from journey.lab.lift import Lift

_CONFIG = {"displaylogo": False, "responsive": True}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { color: #666; font-size: 0.85rem; } .bad { color: #b00; } .good { color: #070; }
"""


def render_html(analysis: Analysis, *, diff_section: str = "") -> str:
    """The whole report as one HTML document."""
    from plotly.offline import get_plotlyjs

    parts = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>journey backtest: {html.escape(analysis.input_name)}</title>",
        f"<style>{_STYLE}</style>",
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script>",
        "</head><body>",
        f"<h1>Backtest of {html.escape(', '.join(analysis.journeys))}</h1>",
        f"<p>Input <code>{html.escape(analysis.input_name)}</code>: {analysis.events} events, "
        f"{analysis.customers} customers; {analysis.totals['stage_changes']} stage changes, "
        f"{analysis.totals['triggers']} triggers, {analysis.totals['audits']} audit records, "
        f"{analysis.totals['dead_letters']} dead letters.</p>",
        _section_funnels(analysis),
        _section_populations(analysis),
        _section_triggers(analysis),
        _section_lifecycle(analysis),
        _section_lift(analysis),
        _section_economics(analysis),
        diff_section,
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def figure_html(figure: Any, div_id: str) -> str:
    """A figure as a div with a fixed id, drawing with the plotly.js embedded in the head."""
    import plotly.io as pio

    return str(pio.to_html(figure, include_plotlyjs=False, full_html=False, div_id=div_id,
                           config=_CONFIG))


def summary_text(analysis: Analysis) -> str:
    """The terminal summary: funnels, economics and lift as plain tables."""
    lines: list[str] = []
    for funnel in analysis.funnels:
        lines.append(f"funnel {funnel.journey} (losses peak at: {funnel.loss_peak or '-'})")
        rows = [[s.stage, str(s.reached), _pct(s.conversion), str(s.lost)]
                for s in funnel.steps]
        lines += text_table(["stage", "reached", "conversion", "lost"], rows)
        lines.append("")
    lines.append(f"unit economics per channel ({analysis.currency or 'money'}, margin "
                 f"{analysis.margin:.0%})")
    rows = [[e.channel, str(e.leads), str(e.customers), _money(e.cost_per_lead), _money(e.cac),
             _money(e.ltv_seed003), _money(e.ltv_seed004), _money(e.ltv_model),
             _ratio(e.ltv_cac), _num(e.payback_months)] for e in analysis.economics]
    lines += text_table(["channel", "leads", "customers", "CPL", "CAC", "LTV 003", "LTV 004",
                     "LTV model", "LTV:CAC", "payback mo"], rows)
    for note in economics_notes(analysis):
        lines += wrap(note)
    if analysis.lifts:
        lines.append("")
        lines.append(lift_title(analysis))
        lines += [line.rstrip() for line in text_table(LIFT_HEADER, lift_rows(analysis))]
        lines += wrap(lift_note(analysis))
    lines.append("")
    lines.append(dead_letter_line(analysis))
    return "\n".join(lines) + "\n"


# --- sections --------------------------------------------------------------------------------


def _section_funnels(a: Analysis) -> str:
    import plotly.graph_objects as go

    out = ["<h2>Funnel per journey</h2>",
           "<p class=\"note\">Customers who reached each stage or a later one; conversion is "
           "from the stage before (seed 001); the stage where losses peak is marked.</p>"]
    for f in a.funnels:
        figure = go.Figure(go.Funnel(
            y=[s.stage for s in f.steps], x=[s.reached for s in f.steps],
            textinfo="value+percent previous"))
        figure.update_layout(title=f"{f.title} ({f.journey})", height=120 + 45 * len(f.steps),
                             margin={"l": 160, "r": 40, "t": 50, "b": 30})
        out.append(figure_html(figure, f"funnel-{f.journey}"))
        rows = [[s.stage, str(s.reached), _pct(s.conversion), str(s.lost)] for s in f.steps]
        out.append(html_table(["stage", "reached", "conversion", "lost"], rows,
                               mark=f.loss_peak))
        out.append(f"<p>Losses peak at <b>{html.escape(f.loss_peak or '-')}</b>.</p>")
    return "\n".join(out)


def _section_populations(a: Analysis) -> str:
    out = ["<h2>Stage populations over time</h2>",
           "<p class=\"note\">Customers in each stage at the end of each week.</p>"]
    for journey in a.journeys:
        series = a.populations.get(journey, {})
        out.append(figure_html(_lines(a.weeks, series, f"{journey}: customers per stage",
                                      stacked=True), f"population-{journey}"))
    return "\n".join(out)


def _section_triggers(a: Analysis) -> str:
    import plotly.graph_objects as go

    out = ["<h2>Triggers</h2>"]
    figure = go.Figure([go.Bar(name=rule, x=a.weeks, y=counts)
                        for rule, counts in a.triggers_by_rule.items()])
    figure.update_layout(barmode="stack", title="Triggers by rule per week", height=420)
    out.append(figure_html(figure, "triggers-by-rule"))
    reasons = list(a.audits_by_reason)
    figure = go.Figure(go.Bar(x=[a.audits_by_reason[r] for r in reasons], y=reasons,
                              orientation="h"))
    figure.update_layout(title="Suppressed, deferred and held-out triggers by reason",
                         height=160 + 30 * max(len(reasons), 1), margin={"l": 260})
    out.append(figure_html(figure, "audit-by-reason"))
    if a.dead_letters:
        rows = [[reason, str(n)] for reason, n in a.dead_letters.items()]
        out.append("<p>Dead letters by reason:</p>" + html_table(["reason", "records"], rows))
    return "\n".join(out)


def _section_lifecycle(a: Analysis) -> str:
    return "\n".join([
        "<h2>Inactive, at-risk, dormant and lost customers</h2>",
        figure_html(_lines(a.weeks, lifecycle_at_risk(a), "Customers per lifecycle status"),
                    "lifecycle-at-risk"),
    ])


def _section_lift(a: Analysis) -> str:
    import plotly.graph_objects as go

    out = ["<h2>Holdout lift per rule</h2>"]
    if not a.lifts:
        out.append("<p>No customer was held out (holdout share 0); run with --holdout 0.1 "
                   "to measure lift.</p>")
        return "\n".join(out)
    out.append(f"<p>{html.escape(lift_title(a))}</p>")
    shown = [x for x in a.lifts if x.lift is not None]
    figure = go.Figure(go.Bar(
        x=[lift_label(a, x) for x in shown], y=[x.lift for x in shown],
        error_y={"type": "data", "symmetric": False,
                 "array": [(x.high or 0) - (x.lift or 0) for x in shown],
                 "arrayminus": [(x.lift or 0) - (x.low or 0) for x in shown]}))
    figure.update_layout(title="Conversion lift (treated - held out), adjusted intervals",
                         yaxis_tickformat=".0%", height=420)
    out.append(figure_html(figure, "holdout-lift"))
    out.append(html_table(LIFT_HEADER, lift_rows(a)))
    out.append(f"<p class=\"note\">{html.escape(lift_note(a))}</p>")
    return "\n".join(out)


LIFT_HEADER = ("rule", "treated bought", "sent", "held out bought", "lift", "adjusted 95% CI",
               "p (Holm)", "")


def lift_title(a: Analysis) -> str:
    return (f"holdout lift by intention to treat: bought within {a.conversion_window_days} "
            f"days after first eligibility (holdout share {a.holdout_share:.0%}, salt "
            f"{a.holdout_salt!r})")


def lift_label(a: Analysis, x: Lift) -> str:
    """The rule's name, with its journey when another journey has a rule of that name."""
    same = sum(1 for y in a.lifts if y.rule == x.rule)
    return x.rule if same == 1 else f"{x.journey}/{x.rule}"


def lift_rows(a: Analysis) -> list[list[str]]:
    return [[lift_label(a, x) + (" (primary)" if x.primary else ""),
             f"{x.treated_converted}/{x.treated}", _pct(x.send_rate),
             f"{x.held_out_converted}/{x.held_out}", _pct(x.lift, signed=True),
             f"[{_pct(x.low, signed=True)}, {_pct(x.high, signed=True)}]",
             "-" if x.p_adjusted is None else f"{x.p_adjusted:.3f}",
             "significant" if x.significant else ""] for x in a.lifts]


def lift_note(a: Analysis) -> str:
    """What the lift table means, in plain words."""
    family = [x for x in a.lifts if x.p_value is not None and not x.primary]
    primary = next((x.rule for x in a.lifts if x.primary), None)
    recent = max((x.too_recent for x in a.lifts), default=0)
    text = (f"One row per customer and rule: each customer counts once, from the moment the "
            f"rule first applied to them, in the arm the stable holdout hash put them in, "
            f"whether or not a message went out later (\"sent\" is the share of the treated "
            f"who were actually sent one). \"Significant\" means the Holm-adjusted p-value is "
            f"below 0.05: across the {len(family)} rules read together, the chance that any "
            f"rule without a real effect is called significant is at most 5%; each interval is "
            f"wide enough to hold for all {len(family)} at once (Bonferroni).")
    if primary is not None:
        text += (f" {primary} was named in advance as the primary rule: it is tested on its "
                 f"own, at 95%.")
    if recent:
        text += (f" Customers who became eligible less than {a.conversion_window_days} days "
                 f"before the data ends are left out of both arms (up to {recent} per rule).")
    return text


def economics_notes(a: Analysis) -> list[str]:
    """Each figure's formula with the inputs of the last row (all channels), in plain words."""
    if not a.economics:
        return []
    e, cut, money = a.economics[-1], a.churn_cut, a.currency or ""
    notes = [f"Formulas and inputs ({e.channel}): CPL = cost {_money(e.cost)} / {e.leads} "
             f"leads; CAC = cost / {e.customers} new customers (seed 004)."]
    horizon = ("-" if cut is None else
               f"{_day(cut.at_ms)} (the data's end less the longest lag to lost seen, "
               f"{cut.lag_ms / 86_400_000:.0f} days; later departures are not visible yet)")
    notes.append(
        f"Churn per month = {e.departures} departures (the last purchase of a customer later "
        f"marked lost) / {e.active_months} customer-months (customers active at a month's "
        f"start, summed over the months that ended by {horizon}) = {_pct(e.monthly_churn)}.")
    notes.append(
        f"LTV 003 = margin {a.margin:.0%} x average check {_money(e.average_check)} {money} x "
        f"{_num(e.purchases_per_year)} purchases per year (of the active months) x "
        f"{_years(e.expected_years)} expected years (1 / (12 x monthly churn)) (seed 003).")
    notes.append(
        f"LTV 004 = monthly margin per active customer {_money(e.monthly_margin)} / monthly "
        f"churn {_pct(e.monthly_churn)} (seed 004).")
    if a.churn_model:
        notes.append("LTV model = mean CLV over 12 months from the fitted churn and spend "
                     "models; --churn-params also drives the engine's churn-risk detection, so "
                     "the outputs differ from a run without it.")
    return notes


def _years(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _day(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def dead_letter_line(a: Analysis) -> str:
    if not a.dead_letters:
        return "dead letters: none"
    reasons = ", ".join(f"{reason} {n}" for reason, n in a.dead_letters.items())
    return f"dead letters: {sum(a.dead_letters.values())} ({reasons}); see dead-letters.jsonl"


def wrap(text: str, width: int = 100) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


def _section_economics(a: Analysis) -> str:
    import plotly.graph_objects as go

    out = [f"<h2>Unit economics per channel ({html.escape(a.currency or 'money')})</h2>",
           f"<p class=\"note\">Margin {a.margin:.0%} of revenue. LTV:CAC should exceed "
           f"{LTV_CAC_TARGET:.0f}:1 and CAC payback (CAC / monthly margin) stay under "
           f"{PAYBACK_TARGET_MONTHS:.0f} months (seed 004).</p>"]
    rows = []
    for e in a.economics:
        ratio_class = "" if e.ltv_cac is None else (
            "good" if e.ltv_cac > LTV_CAC_TARGET else "bad")
        rows.append([e.channel, str(e.leads), str(e.customers), _money(e.cost),
                     _money(e.cost_per_lead), _money(e.cac), _money(e.ltv_seed003),
                     _money(e.ltv_seed004), _money(e.ltv_model),
                     f"<span class=\"{ratio_class}\">{_ratio(e.ltv_cac)}</span>",
                     _num(e.payback_months)])
    out.append(html_table(["channel", "leads", "customers", "cost", "CPL", "CAC", "LTV 003",
                            "LTV 004", "LTV model", "LTV:CAC", "payback (months)"], rows,
                           escape=False))
    channels = [e for e in a.economics if e.channel != "all"]
    figure = go.Figure([
        go.Bar(name="CAC", x=[e.channel for e in channels], y=[e.cac for e in channels]),
        go.Bar(name="LTV (seed 003)", x=[e.channel for e in channels],
               y=[e.ltv_seed003 for e in channels]),
        go.Bar(name="LTV (seed 004)", x=[e.channel for e in channels],
               y=[e.ltv_seed004 for e in channels]),
        go.Bar(name="LTV (model)", x=[e.channel for e in channels],
               y=[e.ltv_model for e in channels]),
    ])
    figure.update_layout(barmode="group", title="CAC and LTV per channel", height=420)
    out.append(figure_html(figure, "economics"))
    out += [f"<p class=\"note\">{html.escape(note)}</p>" for note in economics_notes(a)]
    return "\n".join(out)


# --- helpers -------------------------------------------------------------------------------


def _lines(weeks: list[str], series: dict[str, list[int]], title: str, *,
           stacked: bool = False) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure([
        go.Scatter(name=name, x=weeks, y=values, mode="lines",
                   stackgroup="one" if stacked else None)
        for name, values in series.items() if any(values)])
    figure.update_layout(title=title, height=420)
    return figure


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], *,
                mark: str | None = None, escape: bool = True) -> str:
    def cell(text: str) -> str:
        return html.escape(text) if escape else text

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        style = " style=\"background:#fee\"" if mark is not None and row[0] == mark else ""
        body.append(f"<tr{style}>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header), *(fmt.format(*row) for row in rows)]


def _pct(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}:1"
