"""`journey diff`: what a new journey version would have triggered, against the current one.

Trigger ids are deterministic (customer, journey, rule, episode), so the same trigger in two
runs has the same id: an id only in the candidate appeared, only in the base disappeared, and
in both with other contents (timing, reason, priority, expiry, details...) changed.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from journey.lab.facts import UNKNOWN_SOURCE
from journey.lab.run import RunResult

KINDS = ("appeared", "disappeared", "changed", "unchanged")


@dataclass(frozen=True, slots=True)
class TriggerDelta:
    kind: str
    rule: str
    customer_id: str
    trigger_id: str
    status: str  # the customer's lifecycle status when it fired: the segment
    channel: str  # the customer's first-touch source: a second segment
    fields: tuple[str, ...] = ()  # for changed: which fields differ


@dataclass(slots=True)
class TriggerDiff:
    deltas: list[TriggerDelta] = field(default_factory=list)
    by_rule: dict[str, Counter[str]] = field(default_factory=dict)
    by_status: dict[str, Counter[str]] = field(default_factory=dict)
    by_channel: dict[str, Counter[str]] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return sum(c[kind] for c in self.by_rule.values())


def diff_runs(base: RunResult, candidate: RunResult) -> TriggerDiff:
    """Triggers of two runs over the same input, matched by trigger id."""
    old = {t[4]: t[5] for t in base.collected.triggers}
    new = {t[4]: t[5] for t in candidate.collected.triggers}
    sources = {cid: f.source for cid, f in candidate.facts.customers.items()}
    result = TriggerDiff()
    for trigger_id in sorted(old.keys() | new.keys()):
        before, after = old.get(trigger_id), new.get(trigger_id)
        record = after if after is not None else before
        assert record is not None
        changed: tuple[str, ...] = ()
        if before is None:
            kind = "appeared"
        elif after is None:
            kind = "disappeared"
        else:
            changed = tuple(sorted(k for k in before.keys() | after.keys()
                                   if before.get(k) != after.get(k)))
            kind = "changed" if changed else "unchanged"
        delta = TriggerDelta(kind, record["rule"], record["customer_id"], trigger_id,
                             record.get("status") or "-",
                             sources.get(record["customer_id"], UNKNOWN_SOURCE), changed)
        if kind != "unchanged":
            result.deltas.append(delta)
        for table, key in ((result.by_rule, delta.rule), (result.by_status, delta.status),
                           (result.by_channel, delta.channel)):
            table.setdefault(key, Counter())[kind] += 1
    for name in ("by_rule", "by_status", "by_channel"):
        table = getattr(result, name)
        setattr(result, name, dict(sorted(table.items())))
    return result


def diff_text(diff: TriggerDiff) -> str:
    """Terminal tables: per rule, per lifecycle status and per channel."""
    from journey.lab.report import text_table

    lines = [f"triggers: {diff.count('appeared')} appeared, {diff.count('disappeared')} "
             f"disappeared, {diff.count('changed')} changed, {diff.count('unchanged')} unchanged"]
    for title, table in (("rule", diff.by_rule), ("status at trigger", diff.by_status),
                         ("first-touch channel", diff.by_channel)):
        lines.append("")
        rows = [[key, *(str(counts[k]) for k in KINDS)] for key, counts in table.items()]
        lines += text_table([title, *KINDS], rows)
    return "\n".join(lines) + "\n"


def diff_section(diff: TriggerDiff, base_name: str, candidate_name: str) -> str:
    """The report's section on the diff: a chart per rule and the segment tables."""
    import plotly.graph_objects as go

    from journey.lab.report import figure_html, html_table

    rules = list(diff.by_rule)
    figure = go.Figure([go.Bar(name=kind, x=rules, y=[diff.by_rule[r][kind] for r in rules])
                        for kind in KINDS[:3]])
    figure.update_layout(barmode="group", title="Triggers that appear, disappear or change",
                         height=420)
    out = [f"<h2>Diff: {html.escape(base_name)} &rarr; {html.escape(candidate_name)}</h2>",
           f"<p>{diff.count('appeared')} triggers appear, {diff.count('disappeared')} "
           f"disappear, {diff.count('changed')} change, {diff.count('unchanged')} stay the "
           "same.</p>", figure_html(figure, "diff-by-rule")]
    for title, table in (("rule", diff.by_rule), ("status at trigger", diff.by_status),
                         ("first-touch channel", diff.by_channel)):
        rows = [[key, *(str(counts[k]) for k in KINDS)] for key, counts in table.items()]
        out.append(html_table([title, *KINDS], rows))
    fields: Counter[str] = Counter(f for d in diff.deltas for f in d.fields)
    if fields:
        rows = [[name, str(n)] for name, n in sorted(fields.items())]
        out.append("<p>Fields that changed:</p>" + html_table(["field", "triggers"], rows))
    return "\n".join(out)


def deltas_jsonl(diff: TriggerDiff) -> list[dict[str, Any]]:
    """Every trigger that differs, for a file beside the report."""
    return [{"kind": d.kind, "rule": d.rule, "customer_id": d.customer_id,
             "trigger_id": d.trigger_id, "status": d.status, "channel": d.channel,
             "fields": list(d.fields)} for d in diff.deltas]
