"""Render NotebookReports as text (for a person), json (DESIGN.md contract), csv or html."""
from __future__ import annotations

import csv
import html
import io
import json
import os

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
:root { --bar: 3.4rem; }
body { font-family: system-ui, sans-serif; margin: 0; font-size: 14px; color: #1f2328; }
header { position: sticky; top: 0; z-index: 3; height: var(--bar); box-sizing: border-box; display: flex;
         gap: 1.5rem; align-items: center; padding: 0 1rem; background: #f6f8fa; border-bottom: 1px solid #d0d7de; }
header h1 { font-size: 1.1rem; margin: 0; }
table { border-collapse: separate; border-spacing: 0; margin: 0 1rem 2rem; }
th, td { border-bottom: 1px solid #d8dee4; padding: 3px 6px; text-align: left; vertical-align: top; background: #fff; }
thead th { position: sticky; top: var(--bar); z-index: 2; background: #f6f8fa; vertical-align: bottom; }
th.criterion { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: normal; white-space: nowrap;
               padding: 6px 2px; text-align: left; }
td.mark { text-align: center; padding: 3px 2px; position: relative; }
td.name { max-width: 22rem; overflow-wrap: anywhere; }
td.result { white-space: nowrap; }
td.result details .evidence { width: 36rem; left: 0; right: auto; }
details > summary { list-style: none; cursor: pointer; font-weight: bold; width: 1.4em; }
details > summary::-webkit-details-marker { display: none; }
details[open] > summary { outline: 2px solid #0969da; }
details .evidence { position: absolute; z-index: 4; right: 0; top: 1.8em; width: 30rem; text-align: left;
                    color: #1f2328; background: #fff; border: 1px solid #8c959f; box-shadow: 0 4px 12px #0003; padding: 6px 8px;
                    font-weight: normal; white-space: normal; overflow-wrap: anywhere; }
.pass { color: #1a7f37; } .fail { color: #cf222e; } .warn { color: #9a6700; }
td.fail { background: #ffebe9; } td.warn { background: #fff8c5; }
tr.unreadable td.name { color: #cf222e; }
body:has(#only-incomplete:checked) tr.complete { display: none; }
"""


def _common_folder(labels: list[str]) -> str:
    """The folder all notebooks sit in, so that rows show short names ('' when there is none)."""
    try:
        return os.path.commonpath([os.path.dirname(label) or "." for label in labels]) if labels else ""
    except ValueError:   # absolute and relative paths mixed
        return ""


def to_html(reports: list[NotebookReport]) -> str:
    """One table for the class: a row per notebook, a column per criterion, each mark opening its evidence.

    Everything that comes from a notebook (file names, team names, evidence quoting code and markdown)
    is escaped; the page has no script and loads nothing from elsewhere (the incomplete-only filter is
    CSS; the browser's own find serves for names)."""
    esc = html.escape
    ids: list[str] = []
    for report in reports:
        ids += [v.id for v in report.criteria if v.id not in ids]
    folder = _common_folder([r.notebook for r in reports])
    complete = sum(r.complete for r in reports)
    unreadable = sum(bool(r.unreadable) for r in reports)
    fails = {cid: sum(v.id == cid and v.status == FAIL for r in reports for v in r.criteria) for cid in ids}
    header = (f"<header><h1>Grading report</h1><span>{len(reports)} notebooks in {esc(folder or '.')}: "
              f"{complete} complete, {len(reports) - complete - unreadable} incomplete, {unreadable} unreadable"
              '</span><label><input type="checkbox" id="only-incomplete"> only incomplete</label>'
              f"<span>{MARKS[PASS]} pass &nbsp; {MARKS[WARN]} warn &nbsp; {MARKS[FAIL]} fail; click a mark for "
              "its evidence</span></header>")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>Grading report</title>',
             f"<style>{_STYLE}</style></head><body>", header,
             "<table><thead><tr><th>notebook</th><th>team</th><th>result</th>"]
    parts += [f'<th class="criterion" title="{esc(cid)}: {fails[cid]} fail">{esc(cid)} ({fails[cid]}&#x2717;)</th>'
              for cid in ids]
    parts.append("</tr></thead><tbody>")
    for number, report in enumerate(reports, start=1):
        state = "unreadable" if report.unreadable else "complete" if report.complete else "incomplete"
        verdicts = {v.id: v for v in report.criteria}
        shown = os.path.relpath(report.notebook, folder) if folder else report.notebook
        result = esc(summary_line(report)) if not report.unreadable else (
            f'<details><summary class="fail" style="width:auto">UNREADABLE</summary>'
            f'<div class="evidence">{esc(report.unreadable)}</div></details>')
        parts.append(f'<tr class="{state}" id="notebook-{number}">'
                     f'<td class="name" title="{esc(report.notebook)}">{esc(shown)}</td><td>{esc(report.team)}</td>'
                     f'<td class="result mark {"pass" if report.complete else "fail"}">{result}</td>')
        for cid in ids:
            v = verdicts.get(cid)
            if v is None:
                parts.append("<td></td>")
                continue
            parts.append(f'<td class="mark {esc(v.status)}"><details><summary class="{esc(v.status)}" '
                         f'title="{esc(cid)}: {esc(v.status)}">{esc(MARKS[v.status])}</summary>'
                         f'<div class="evidence"><b>{esc(cid)}</b> ({esc(v.status)}): {esc(v.evidence)}</div>'
                         "</details></td>")
        parts.append("</tr>")
    parts.append("</tbody></table></body></html>")
    return "\n".join(parts) + "\n"


def render(reports: list[NotebookReport], fmt: str) -> str:
    return {"text": to_text, "json": to_json, "csv": to_csv, "html": to_html}[fmt](reports)
