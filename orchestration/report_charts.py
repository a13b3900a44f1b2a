"""Inline SVG charts for the marketer's report (no JavaScript, no external assets).

Every function takes plain rows (tuples from the analytics marts) and returns one `<svg>` element
with the given id; with no rows it returns an SVG that says so, so the page never breaks."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from html import escape
from typing import Sequence

STAGE_ORDER = ["visitor", "prospect", "new_customer", "repeat_customer", "reactivated", "at_risk", "lapsed", "churned"]
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac"]
STAGE_COLOURS = dict(zip(STAGE_ORDER, PALETTE))
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _svg(chart_id: str, width: int, height: int, body: str, label: str) -> str:
    return (f'<svg id="{chart_id}" class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'aria-label="{escape(label)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" {FONT}>'
            f"{body}</svg>")


def _empty(chart_id: str, label: str, why: str) -> str:
    return _svg(chart_id, 760, 60, f'<text x="10" y="35" fill="#666">{escape(why)}</text>', label)


def stage_rank(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def funnel(chart_id: str, rows: Sequence[tuple[str, int]]) -> str:
    """Horizontal bars of profiles per current stage, in lifecycle order. rows: (stage, profiles)."""
    label = "Profiles by lifecycle stage"
    rows = sorted(((s, int(n)) for s, n in rows if n), key=lambda r: stage_rank(r[0]))
    if not rows:
        return _empty(chart_id, label, "No profiles yet: run `lifeline build` first.")
    total, top = sum(n for _, n in rows), max(n for _, n in rows)
    bar_w, row_h, left = 420, 28, 130
    parts = []
    for k, (stage, n) in enumerate(rows):
        y, w = 10 + k * row_h, max(2.0, bar_w * n / top)
        parts.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{escape(stage)}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                     f'fill="{STAGE_COLOURS.get(stage, "#888")}"><title>{escape(stage)}: {n}</title></rect>'
                     f'<text x="{left + w + 6:.1f}" y="{y + 17}">{n:,} ({100 * n / total:.1f}%)</text>')
    return _svg(chart_id, 680, 20 + row_h * len(rows), "".join(parts), label)


def transition_flow(chart_id: str, rows: Sequence[tuple[str, str, int]]) -> str:
    """Flow (Sankey-style) from each stage to the stages it moved to. rows: (from, to, transitions);
    first intervals (from 'entry') are left out: they are arrivals, not moves."""
    label = "Stage transition flow"
    moves = [(f, t, int(n)) for f, t, n in rows if f != "entry" and n]
    if not moves:
        return _empty(chart_id, label, "No stage changes yet.")
    width, height, node_w, gap = 680, 360, 14, 8
    left_x, right_x = 150, width - 150
    out_tot: dict[str, int] = defaultdict(int)
    in_tot: dict[str, int] = defaultdict(int)
    for f, t, n in moves:
        out_tot[f] += n
        in_tot[t] += n
    total = sum(n for _, _, n in moves)
    usable = height - 20 - gap * max(len(out_tot), len(in_tot))
    scale = usable / total

    def place(totals: dict[str, int]) -> dict[str, float]:
        y, pos = 10.0, {}
        for stage in sorted(totals, key=stage_rank):
            pos[stage] = y
            y += totals[stage] * scale + gap
        return pos

    out_y, in_y = place(out_tot), place(in_tot)
    parts = []
    for stage, y in out_y.items():
        h = out_tot[stage] * scale
        parts.append(f'<rect x="{left_x - node_w}" y="{y:.1f}" width="{node_w}" height="{h:.1f}" '
                     f'fill="{STAGE_COLOURS.get(stage, "#888")}"/><text x="{left_x - node_w - 6}" y="{y + h / 2 + 4:.1f}" '
                     f'text-anchor="end">{escape(stage)}</text>')
    for stage, y in in_y.items():
        h = in_tot[stage] * scale
        parts.append(f'<rect x="{right_x}" y="{y:.1f}" width="{node_w}" height="{h:.1f}" '
                     f'fill="{STAGE_COLOURS.get(stage, "#888")}"/><text x="{right_x + node_w + 6}" y="{y + h / 2 + 4:.1f}">'
                     f'{escape(stage)}</text>')
    out_cursor, in_cursor = dict(out_y), dict(in_y)
    for f, t, n in sorted(moves, key=lambda m: (stage_rank(m[0]), stage_rank(m[1]))):
        h = n * scale
        y0, y1 = out_cursor[f] + h / 2, in_cursor[t] + h / 2
        out_cursor[f] += h
        in_cursor[t] += h
        mid = (left_x + right_x) / 2
        parts.append(f'<path class="flow" d="M{left_x},{y0:.1f} C{mid},{y0:.1f} {mid},{y1:.1f} {right_x},{y1:.1f}" '
                     f'fill="none" stroke="{STAGE_COLOURS.get(f, "#888")}" stroke-opacity="0.45" '
                     f'stroke-width="{max(1.0, h):.1f}"><title>{escape(f)} → {escape(t)}: {n:,}</title></path>')
    return _svg(chart_id, width, height, "".join(parts), label)


def _month(value: date | datetime | str) -> str:
    return value.strftime("%Y-%m") if hasattr(value, "strftime") else str(value)[:7]


def _blue(rate: float) -> str:
    rate = min(1.0, max(0.0, rate))
    r, g, b = (int(255 - (255 - c) * rate) for c in (33, 102, 172))
    return f"rgb({r},{g},{b})"


def cohort_heatmap(chart_id: str, rows: Sequence[tuple], max_months: int = 24, max_cohorts: int = 36) -> str:
    """Retention by first-order month. rows: (cohort_month, months_since_first, cohort_customers, rate)."""
    label = "Cohort retention by first-order month"
    cells = {(_month(c), int(m)): (int(size), float(rate)) for c, m, size, rate in rows if int(m) <= max_months}
    if not cells:
        return _empty(chart_id, label, "No completed orders yet.")
    cohorts = sorted({c for c, _ in cells})[-max_cohorts:]
    # Month 0 is 100% by definition: colour the later months on their own scale.
    scale = max((rate for (_, m), (_, rate) in cells.items() if m > 0), default=1.0) or 1.0
    months = max(m for _, m in cells) + 1
    cell_w, cell_h, left, top = max(18, min(40, 560 // months)), 20, 120, 24
    parts = [f'<text x="{left}" y="14" fill="#444">months since first order →</text>']
    for m in range(months):
        parts.append(f'<text x="{left + m * cell_w + cell_w / 2:.1f}" y="{top + len(cohorts) * cell_h + 14}" '
                     f'text-anchor="middle" font-size="10">{m}</text>')
    for k, cohort in enumerate(cohorts):
        y = top + k * cell_h
        size = next((s for (c, _), (s, _) in cells.items() if c == cohort), 0)
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{cohort} ({size})</text>')
        for m in range(months):
            if (cohort, m) not in cells:
                continue
            rate = cells[(cohort, m)][1]
            parts.append(f'<rect class="cell" x="{left + m * cell_w}" y="{y}" width="{cell_w - 1}" height="{cell_h - 1}" '
                         f'fill="{_blue(min(1.0, rate / scale))}"><title>{cohort} month {m}: {100 * rate:.1f}%</title></rect>')
            if cell_w >= 30:
                colour = "#fff" if min(1.0, rate / scale) > 0.5 else "#222"
                parts.append(f'<text x="{left + m * cell_w + cell_w / 2:.1f}" y="{y + 14}" text-anchor="middle" '
                             f'font-size="9" fill="{colour}">{100 * rate:.0f}</text>')
    return _svg(chart_id, left + months * cell_w + 20, top + len(cohorts) * cell_h + 24, "".join(parts), label)


def audience_sizes(chart_id: str, rows: Sequence[tuple]) -> str:
    """Members (synced + holdout) per audience over runs. rows: (as_of, audience, channel, members, holdout)."""
    label = "Audience sizes over time"
    series: dict[str, dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
    for as_of, audience, _channel, members, holdout in rows:
        series[audience][as_of] += int(members) + int(holdout)
    if not series:
        return _empty(chart_id, label, "No audience members in any build yet (members need consent for a "
                                        "channel); each build appends a snapshot.")
    times = sorted({t for points in series.values() for t in points})
    top = max(v for points in series.values() for v in points.values()) or 1
    width, height, left, right, plot_top, bottom = 760, 300, 50, 230, 10, 260
    span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else 0

    def x(t: datetime) -> float:
        return left + (width - left - right) * ((t - times[0]).total_seconds() / span if span else 0.5)

    def y(v: int) -> float:
        return bottom - (bottom - plot_top) * v / top

    parts = [f'<line x1="{left}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="#999"/>',
             f'<line x1="{left}" y1="{plot_top}" x2="{left}" y2="{bottom}" stroke="#999"/>',
             f'<text x="{left - 6}" y="{plot_top + 10}" text-anchor="end" font-size="10">{top:,}</text>',
             f'<text x="{left - 6}" y="{bottom}" text-anchor="end" font-size="10">0</text>',
             f'<text x="{left}" y="{bottom + 16}" font-size="10">{escape(str(times[0])[:16])}</text>']
    if len(times) > 1:
        parts.append(f'<text x="{width - right}" y="{bottom + 16}" text-anchor="end" font-size="10">'
                     f'{escape(str(times[-1])[:16])}</text>')
    for k, audience in enumerate(sorted(series)):
        colour, points = PALETTE[k % len(PALETTE)], sorted(series[audience].items())
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"><title>{escape(audience)} '
                  f'{escape(str(t)[:16])}: {v:,}</title></circle>' for t, v in points]
        parts.append(f'<rect x="{width - right + 12}" y="{plot_top + k * 18}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{width - right + 28}" y="{plot_top + k * 18 + 9}">{escape(audience)}</text>')
    return _svg(chart_id, width, height + 10, "".join(parts), label)


def holdout_lift(chart_id: str, rows: Sequence[tuple]) -> str:
    """Conversion lift of members over holdout with its 95% CI, per audience and channel.
    rows: (audience, channel, members, holdout, lift, ci_low, ci_high)."""
    label = "Holdout lift (member minus holdout conversion, 95% CI)"
    measured = [r for r in rows if r[4] is not None and r[5] is not None]
    if not rows:
        return _empty(chart_id, label, "No audience members in any build yet: nothing to compare with the holdout.")
    lows = [float(r[5]) for r in measured] + [0.0]
    highs = [float(r[6]) for r in measured] + [0.0]
    lo, hi = min(lows), max(highs)
    lo, hi = (lo - 0.05, hi + 0.05) if hi > lo else (-0.1, 0.1)
    width, left, right, row_h = 760, 300, 40, 26

    def x(v: float) -> float:
        return left + (width - left - right) * (v - lo) / (hi - lo)

    height = 30 + row_h * len(rows)
    parts = [f'<line x1="{x(0):.1f}" y1="4" x2="{x(0):.1f}" y2="{height - 22}" stroke="#999" stroke-dasharray="4 3"/>',
             f'<text x="{x(0):.1f}" y="{height - 6}" text-anchor="middle" font-size="10">0</text>',
             f'<text x="{left}" y="{height - 6}" font-size="10">{100 * lo:+.0f} pts</text>',
             f'<text x="{width - right}" y="{height - 6}" text-anchor="end" font-size="10">{100 * hi:+.0f} pts</text>']
    for k, (audience, channel, members, holdout, lift, low, high) in enumerate(rows):
        y = 14 + k * row_h
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{escape(audience)} · {escape(channel)} '
                     f'({int(members or 0)}/{int(holdout or 0)})</text>')
        if lift is None or low is None:
            parts.append(f'<text x="{left + 4}" y="{y + 4}" fill="#888">not measurable yet (needs members and holdout)</text>')
            continue
        colour = "#59a14f" if float(low) > 0 else ("#e15759" if float(high) < 0 else "#4e79a7")
        parts.append(f'<line x1="{x(float(low)):.1f}" y1="{y}" x2="{x(float(high)):.1f}" y2="{y}" stroke="{colour}" '
                     f'stroke-width="2"/><circle class="lift" cx="{x(float(lift)):.1f}" cy="{y}" r="5" fill="{colour}">'
                     f'<title>{escape(audience)} {escape(channel)}: {100 * float(lift):+.1f} pts '
                     f'[{100 * float(low):+.1f}, {100 * float(high):+.1f}]</title></circle>')
    return _svg(chart_id, width, height, "".join(parts), label)
