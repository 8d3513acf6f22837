"""Render NotebookReports as text (for a person), json (DESIGN.md contract), csv or html."""
from __future__ import annotations

import csv
import html
import io
import json

from .results import FAIL, PASS, WARN, NotebookReport

MARKS = {PASS: "✓", FAIL: "✗", WARN: "!"}
FORMATS = ("text", "json", "csv", "html")


def summary_line(report: NotebookReport) -> str:
    counts = report.counts()
    if report.unreadable:
        return f"UNREADABLE: {report.unreadable}"
    verdict = "complete" if report.complete else "INCOMPLETE"
    return f"{verdict}: {counts[PASS]} pass, {counts[FAIL]} fail, {counts[WARN]} warn"


def to_text(reports: list[NotebookReport]) -> str:
    blocks = []
    for report in reports:
        width = max((len(v.id) for v in report.criteria), default=10)
        lines = [f"{report.notebook}  (team {report.team})"]
        lines += [f"  {MARKS[v.status]} {v.id:<{width}}  {v.evidence}" for v in report.criteria]
        lines.append(f"  => {summary_line(report)}")
        blocks.append("\n".join(lines))
    total = len(reports)
    complete = sum(r.complete for r in reports)
    unreadable = sum(bool(r.unreadable) for r in reports)
    blocks.append(f"{total} notebooks: {complete} complete, {total - complete - unreadable} incomplete, "
                  f"{unreadable} unreadable")
    return "\n\n".join(blocks) + "\n"


def to_json(reports: list[NotebookReport]) -> str:
    return json.dumps([r.as_dict() for r in reports], indent=2, ensure_ascii=False) + "\n"


def to_csv(reports: list[NotebookReport]) -> str:
    ids: list[str] = []
    for report in reports:
        ids += [v.id for v in report.criteria if v.id not in ids]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["notebook", "team", "complete", *ids])
    for report in reports:
        status = {v.id: v.status for v in report.criteria}
        writer.writerow([report.notebook, report.team, "yes" if report.complete else "no",
                         *(status.get(cid, "") for cid in ids)])
    return buffer.getvalue()


_STYLE = """
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; margin-bottom: 2em; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
.pass { color: #176117; } .fail { color: #a31515; font-weight: bold; } .warn { color: #9a6700; }
"""


def to_html(reports: list[NotebookReport]) -> str:
    # Everything that comes from a notebook (names, evidence quoting its code and markdown) is escaped.
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8"><title>Grading report</title>',
             f"<style>{_STYLE}</style></head><body>", "<h1>Grading report</h1>"]
    for report in reports:
        parts.append(f"<h2>{esc(report.notebook)}</h2><p>team {esc(report.team)}: "
                     f'<span class="{"pass" if report.complete else "fail"}">{esc(summary_line(report))}</span></p>')
        parts.append("<table><tr><th></th><th>criterion</th><th>evidence</th></tr>")
        for v in report.criteria:
            parts.append(f'<tr class="{esc(v.status)}"><td>{esc(MARKS[v.status])}</td><td>{esc(v.id)}</td>'
                         f"<td>{esc(v.evidence)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render(reports: list[NotebookReport], fmt: str) -> str:
    return {"text": to_text, "json": to_json, "csv": to_csv, "html": to_html}[fmt](reports)
