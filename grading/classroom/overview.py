"""The class's marks as a report: the HTML overview page of ``marks --format html``, and ``render`` for every format.

First the students who need a look, then two figures drawn as inline SVG (no matplotlib, nothing
loaded): the leaderboard scores with the thresholds drawn on them, and the share of the class that
passes each criterion; then every student's row. Everything from a notebook or a CSV is escaped.
"""
from __future__ import annotations

import html
import math

from ..handin.results import FAIL, PASS, WARN
from .marks import (
    APPLIED,
    PENDING,
    ClassMarks,
    StudentRow,
    fmt_number,
    to_csv,
    to_json,
    to_text,
)

esc = html.escape

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem 1.5rem 3rem; font-size: 14px; color: #1f2328; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; } h2 { font-size: 1.05rem; margin: 1.6rem 0 .4rem; }
.sub { color: #59636e; margin: 0 0 1rem; }
.warning { background: #fff8c5; border: 1px solid #d4a72c; padding: .4rem .7rem; border-radius: 4px; }
table { border-collapse: collapse; } th, td { border-bottom: 1px solid #d8dee4; padding: 3px 8px; text-align: left;
vertical-align: top; } th { background: #f6f8fa; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } td.flags { color: #9a6700; max-width: 40rem; }
tr.look td:first-child { border-left: 4px solid #bf8700; }
.figures { display: flex; flex-wrap: wrap; gap: 2rem; align-items: flex-start; }
figure { margin: 0; } figcaption { color: #59636e; max-width: 36rem; margin-top: .2rem; }
svg text { font-family: system-ui, sans-serif; font-size: 12px; fill: #1f2328; }
.note { color: #59636e; } .pending { color: #9a6700; font-weight: bold; } .complete { color: #1a7f37; } .incomplete { color: #cf222e; }
"""
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'
COLOURS = {PASS: "#2da44e", WARN: "#d4a72c", FAIL: "#cf222e"}


def _ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    raw = (hi - lo) / max(1, count - 1)
    step = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= step * factor:
            step *= factor
            break
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _edges(lo: float, hi: float, thresholds: list[float], bins: int) -> list[float]:
    """Bin edges on which every threshold falls, so that no bar straddles a threshold: a round bin
    width that divides the thresholds when there is one (0.8, 0.85, 0.9 -> 0.025), else even bins
    with the thresholds added as edges."""
    span = hi - lo
    for exponent in range(-4, 4):
        for factor in (1, 2, 2.5, 5):
            width = factor * 10.0 ** exponent
            if not 12 <= span / width <= 60:
                continue
            if all(abs(t / width - round(t / width)) < 1e-6 for t in thresholds):
                first = math.floor(lo / width + 1e-9)
                return [(first + i) * width for i in range(math.ceil(hi / width - 1e-9) - first + 1)]
    width = span / bins
    edges = [lo + i * width for i in range(bins + 1)]
    edges = [e for e in edges if all(abs(e - t) > width / 3 for t in thresholds)] + list(thresholds)
    return sorted({min(max(e, lo), hi) for e in edges + [lo, hi]})


BAND_COLOURS = ("#9ab7d9", "#6f98c9", "#4d7fbd", "#2f64a8", "#1b4a87", "#0f3566")


def score_histogram(scores: list[float], steps: tuple[tuple[float, float], ...], width: int = 600,
                    height: int = 270) -> str:
    """Bars of how many teams scored in each bin, shaded by the mark they earn; the thresholds as dashed
    lines labelled with their mark (bins are cut at the thresholds, so a bar never straddles one)."""
    left, right, top, bottom = 44, 16, 46, 40
    values = list(scores) + [s for s, _ in steps]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    pad = (hi - lo) * 0.04
    lo, hi = lo - pad, hi + pad
    thresholds = [t for t, _ in steps]
    edges = _edges(lo, hi, thresholds, 24)
    lo, hi = min(lo, edges[0]), max(hi, edges[-1])
    counts = [0] * (len(edges) - 1)
    for value in scores:
        at = next((i for i in range(len(edges) - 1) if value < edges[i + 1]), len(edges) - 2)
        counts[at] += 1
    peak = max(counts + [1])
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    def y(c: float) -> float:
        return top + plot_h - c / peak * plot_h

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
              f'{_FONT} aria-label="Leaderboard scores with thresholds">'),
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#d0d7de"/>']
    for c in _ticks(0, peak, 5):
        if c == int(c):
            parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(c):.1f}" y2="{y(c):.1f}" stroke="#eaeef2"/>'
                         f'<text x="{left - 6}" y="{y(c) + 4:.1f}" text-anchor="end">{int(c)}</text>')
    for i, c in enumerate(counts):
        if c:
            band = sum(edges[i] >= t - 1e-12 for t in thresholds)
            x0, x1 = x(edges[i]), x(edges[i + 1])
            parts.append(f'<rect x="{x0 + 0.5:.1f}" y="{y(c):.1f}" width="{max(1.0, x1 - x0 - 1):.1f}" '
                         f'height="{top + plot_h - y(c):.1f}" fill="{BAND_COLOURS[min(band, len(BAND_COLOURS) - 1)]}">'
                         f"<title>{c} teams scored {edges[i]:.3g} to {edges[i + 1]:.3g}</title></rect>")
    for t in _ticks(lo, hi):
        if lo <= t <= hi:
            parts.append(f'<text x="{x(t):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{t:g}</text>')
    last_x, row = -1e9, 0
    for score, mark in steps:
        row = 1 - row if x(score) - last_x < 80 else 0      # labels that would collide go on two lines
        last_x = x(score)
        parts.append(f'<line x1="{x(score):.1f}" x2="{x(score):.1f}" y1="{top - 4 - 14 * row}" y2="{top + plot_h}" '
                     'stroke="#cf222e" stroke-width="1.5" stroke-dasharray="5 3"/>'
                     f'<text x="{x(score):.1f}" y="{top - 8 - 14 * row}" text-anchor="middle" fill="#cf222e">'
                     f"&#8805;{score:g}: {fmt_number(mark)}</text>")
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">best leaderboard '
                 "score</text>")
    parts.append(f'<text x="12" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {top + plot_h / 2:.1f})">teams</text></svg>')
    return "".join(parts)


def criteria_bars(rows: list[StudentRow], criteria: list[str], width: int = 520) -> str:
    """One stacked bar per criterion: the share of readable notebooks that pass, warn and fail it."""
    graded = [r for r in rows if r.report is not None and not r.report.unreadable]
    label_w, row_h, top = 170, 20, 22
    plot_w = width - label_w - 50
    height = top + row_h * len(criteria) + 10
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'{_FONT} aria-label="Share of the class passing each criterion">')]
    x = label_w
    for status, word in ((PASS, "pass"), (WARN, "warn"), (FAIL, "fail")):
        parts.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{COLOURS[status]}"/>'
                     f'<text x="{x + 14}" y="13">{word}</text>')
        x += 60
    for i, cid in enumerate(criteria):
        y0 = top + i * row_h
        n = len(graded) or 1
        shares = {s: sum(r.statuses.get(cid) == s for r in graded) / n for s in (PASS, WARN, FAIL)}
        parts.append(f'<text x="{label_w - 6}" y="{y0 + 13}" text-anchor="end">{esc(cid)}</text>')
        x = float(label_w)
        for status in (PASS, WARN, FAIL):
            w = shares[status] * plot_w
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y0 + 2}" width="{w:.1f}" height="{row_h - 5}" '
                             f'fill="{COLOURS[status]}"><title>{esc(cid)}: {shares[status]:.0%} {status}</title></rect>')
            x += w
        parts.append(f'<text x="{label_w + plot_w + 6}" y="{y0 + 13}">{shares[PASS]:.0%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _row_html(row: StudentRow) -> str:
    book = esc(row.filename) if row.filename else "<i>no notebook</i>"
    done = "" if row.complete is None else (
        '<span class="complete">complete</span>' if row.complete else '<span class="incomplete">incomplete</span>')
    passed = f" ({sum(s == PASS for s in row.statuses.values())}/{len(row.statuses)})" if row.statuses else ""
    mark = fmt_number(row.proposed_mark) if row.notebook else ""
    if row.mark_status == PENDING:
        mark = f'<span class="pending" title="pending: confirm with --confirm">{mark}?</span>'
    score = f"{row.score:g}" if row.score is not None else ""
    return (f'<tr class="{"look" if row.flags else ""}"><td>{esc(row.participant or "")}</td>'
            f"<td>{esc(row.full_name or '')}</td><td>{book}</td><td>{esc(row.team or '')}</td>"
            f'<td class="num">{score}</td><td class="num">{mark}</td>'
            f'<td class="num">{fmt_number(row.grade)}</td><td>{done}{passed}</td>'
            f'<td class="flags">{"<br>".join(esc(f) for f in row.flags)}'
            + "".join(f'<div class="note">{esc(n)}</div>' for n in row.notes) + "</td></tr>")


def marks_html(marks: ClassMarks) -> str:
    rows = marks.rows
    look = [r for r in rows if r.flags]
    head = ("<tr><th>participant</th><th>name</th><th>notebook</th><th>leaderboard team</th><th>score</th>"
            "<th>leaderboard mark</th><th>grade</th><th>rubric</th><th>for a look</th></tr>")
    handed = [r for r in rows if r.notebook]
    applied = sum(r.mark_status == APPLIED for r in rows)
    thresholds = ", ".join(f"&#8805;{s:g} &rarr; {fmt_number(m)}" for s, m in marks.thresholds.steps)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
             f"<title>Class marks</title><style>{_STYLE}</style></head><body>",
             "<h1>Class marks</h1>",
             (f'<p class="sub">{len(handed)} notebooks; {applied} leaderboard marks applied, '
             f"{sum(r.mark_status == PENDING for r in rows)} pending confirmation; thresholds {thresholds}. "
             "Flags ask for a look, they decide nothing; the notebook half of the mark is the marker's.</p>"),
             *(f'<p class="warning">Before you upload: {esc(w)}</p>' for w in marks.warnings),
             f"<h2>Needs a look ({len(look)})</h2>"]
    if look:
        parts += ["<table>", head, *(_row_html(r) for r in look), "</table>"]
    else:
        parts.append("<p>Nobody: every notebook matches its team exactly and nothing is odd.</p>")
    scores = [s.score for s in marks.scores.values()]
    parts += ['<h2>The class</h2><div class="figures">',
              (f"<figure>{score_histogram(scores, marks.thresholds.steps)}<figcaption>Best score of each of the "
              f"{len(scores)} teams on the leaderboard; dashed lines: the thresholds and the mark each earns."
              "</figcaption></figure>"),
              (f"<figure>{criteria_bars(rows, marks.criteria)}<figcaption>Share of the readable notebooks that "
              "pass, warn or fail each criterion.</figcaption></figure></div>")]
    if marks.teams_without_notebook:
        parts.append("<h2>Leaderboard teams without a notebook</h2><ul>" + "".join(
            f"<li>{esc(t)}{' (closest notebook: ' + esc(c) + ')' if c else ''}</li>"
            for t, c in marks.teams_without_notebook) + "</ul>")
    parts += [f"<h2>Every student ({len(rows)})</h2>", "<table>", head, *(_row_html(r) for r in rows),
              "</table></body></html>"]
    return "\n".join(parts) + "\n"


def render(marks: ClassMarks, fmt: str) -> str:
    """The class's marks in one of marks.EXTENSIONS' formats (the HTML page is this module's)."""
    if fmt == "html":
        return marks_html(marks)
    return {"text": to_text, "json": to_json, "csv": to_csv}[fmt](marks)
