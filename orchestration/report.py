"""The marketer's report: one self-contained HTML file (inline SVG charts, no scripts, no network)
built from the analytics marts of the last `lifeline build`.

    write_report(warehouse, Path("lifeline-report.html"))
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from string import Template
from typing import Sequence

import sqlalchemy as sa

from orchestration import report_charts as charts
from syncs.warehouse import Warehouse

TEMPLATE = Path(__file__).with_name("report_template.html")

QUERIES = {
    "stages": "select stage, profiles, buyers, total_revenue, revenue_per_profile, revenue_last_at_risk_days "
              "from analytics.revenue_by_stage",
    "transitions": "select from_stage, to_stage, transitions, conversion_rate from analytics.stage_transitions",
    "durations": "select stage, intervals, closed_intervals, avg_days_closed, avg_days_open_so_far "
                 "from analytics.stage_durations",
    "cohorts": "select cohort_month, months_since_first, cohort_customers, retention_rate "
               "from analytics.cohort_retention order by cohort_month, months_since_first",
    "sizes": "select as_of, audience, channel, members, holdout from analytics.audience_sizes order by as_of",
    "lift": "select audience, channel, members, holdout, lift, lift_ci_low, lift_ci_high, member_rate, "
            "holdout_rate, member_conversions, holdout_conversions, conversion_window_days "
            "from analytics.audience_lift order by audience, channel",
    "as_of": "select max(as_of) from analytics.revenue_by_stage",
}


class ReportError(RuntimeError):
    """The report cannot be written; the message says what to do."""


@dataclass
class ReportData:
    stages: list[tuple]
    transitions: list[tuple]
    durations: list[tuple]
    cohorts: list[tuple]
    sizes: list[tuple]
    lift: list[tuple]
    as_of: datetime | None


def read_report_data(warehouse: Warehouse) -> ReportData:
    engine = warehouse.engine()
    try:
        with engine.connect() as conn:
            found = {name: [tuple(r) for r in conn.execute(sa.text(sql)).fetchall()] for name, sql in QUERIES.items()}
    except sa.exc.DBAPIError as exc:
        raise ReportError(f"The analytics marts are missing on {warehouse.describe()}: run `lifeline build` "
                          f"first (dbt said: {str(exc.orig).splitlines()[0]})") from exc
    finally:
        engine.dispose()
    return ReportData(found["stages"], found["transitions"], found["durations"], found["cohorts"], found["sizes"],
                      found["lift"], found["as_of"][0][0] if found["as_of"] else None)


def _number(value: object, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{float(value):,.{digits}f}"


def _pct(value: object) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_report(data: ReportData, warehouse_label: str, generated: datetime) -> str:
    stages = sorted(data.stages, key=lambda r: charts.stage_rank(r[0]))
    profiles = sum(int(r[1]) for r in stages)
    buyers = sum(int(r[2]) for r in stages)
    revenue = sum(float(r[3] or 0) for r in stages)
    kpis = "".join(f'<div class="kpi"><b>{escape(v)}</b>{escape(k)}</div>' for k, v in [
        ("profiles", f"{profiles:,}"), ("buyers", f"{buyers:,}"), ("revenue", _number(revenue, 2)),
        ("audience snapshots", f"{len({r[0] for r in data.sizes}):,}")])
    window = str(data.lift[0][11]) if data.lift else "N"
    values = {
        "warehouse": escape(warehouse_label),
        "as_of": escape(str(data.as_of)[:19] if data.as_of else "(no build yet)"),
        "generated": escape(generated.strftime("%Y-%m-%d %H:%M UTC")),
        "window": escape(window),
        "kpis": kpis,
        "funnel": charts.funnel("chart-funnel", [(r[0], r[1]) for r in stages]),
        "revenue_table": html_table(
            ["stage", "profiles", "buyers", "revenue", "revenue / profile", "revenue, last at_risk_days"],
            [[r[0], _number(r[1]), _number(r[2]), _number(r[3], 2), _number(r[4], 2), _number(r[5], 2)] for r in stages]),
        "flow": charts.transition_flow("chart-transitions", [(r[0], r[1], r[2]) for r in data.transitions]),
        "durations_table": html_table(
            ["stage", "intervals", "closed", "mean days (closed)", "mean days so far (open)"],
            [[r[0], _number(r[1]), _number(r[2]), _number(r[3], 1), _number(r[4], 1)]
             for r in sorted(data.durations, key=lambda r: charts.stage_rank(r[0]))]),
        "cohorts": charts.cohort_heatmap("chart-cohorts", [(r[0], r[1], r[2], r[3]) for r in data.cohorts]),
        "sizes": charts.audience_sizes("chart-audience-sizes", data.sizes),
        "lift": charts.holdout_lift("chart-lift", [r[:7] for r in data.lift]),
        "lift_table": html_table(
            ["audience", "channel", "members", "converted", "rate", "holdout", "converted", "rate", "lift",
             "95% CI"],
            [[r[0], r[1], _number(r[2]), _number(r[9]), _pct(r[7]), _number(r[3]), _number(r[10]), _pct(r[8]),
              _pct(r[4]), "–" if r[5] is None else f"[{_pct(r[5])}, {_pct(r[6])}]"] for r in data.lift]),
    }
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(values)


def write_report(warehouse: Warehouse, out_path: Path) -> Path:
    """Write the self-contained HTML report of the last build to out_path (parents created) and
    return its path. Raises ReportError when the warehouse was never built."""
    out_path = Path(out_path)
    html = render_report(read_report_data(warehouse), warehouse.describe(), datetime.now(timezone.utc))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out_path)
    return out_path
