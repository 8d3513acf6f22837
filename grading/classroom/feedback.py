"""Feedback for one student: a short HTML page and a plain-text summary of the rubric verdicts.

The page is the grader's evidence written for the student: each criterion, its status, the cell that
shows it (quoted from the notebook), and what is missing where it failed. Everything from the notebook
is escaped; the page has no script and loads nothing (its style is inline).
"""
from __future__ import annotations

import html
import re

from ..handin.results import FAIL, PASS, WARN, NotebookReport
from ..handin.rubric import Criterion

WORDS = {PASS: "found", WARN: "check", FAIL: "missing"}
SYMBOLS = {PASS: "✓", WARN: "!", FAIL: "✗"}
_CITED_CELL = re.compile(r"\bcells? (\d+)")
MAX_QUOTED_LINES, BEFORE = 7, 2
_QUOTE = re.compile(r'\s*"([^"]{3,})"')

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 1.5rem auto; padding: 0 1rem; color: #1f2328;
       font-size: 15px; line-height: 1.45; }
h1 { font-size: 1.3rem; margin-bottom: .2rem; } .sub { color: #59636e; margin-top: 0; }
ul.criteria { list-style: none; padding: 0; }
ul.criteria > li { border: 1px solid #d0d7de; border-left-width: 5px; border-radius: 4px; margin: .5rem 0; padding: .4rem .7rem; }
li.pass { border-left-color: #1a7f37; } li.warn { border-left-color: #bf8700; } li.fail { border-left-color: #cf222e; }
.status { font-weight: bold; } .pass .status { color: #1a7f37; } .warn .status { color: #9a6700; } .fail .status { color: #cf222e; }
.what { color: #59636e; } .missing { margin: .3rem 0 0; }
pre { background: #f6f8fa; border: 1px solid #d8dee4; padding: .4rem .6rem; overflow-x: auto; font-size: 13px;
      white-space: pre-wrap; overflow-wrap: anywhere; margin: .3rem 0 0; }
.mark { font-size: 1.05rem; background: #f6f8fa; border: 1px solid #d0d7de; padding: .5rem .8rem; border-radius: 4px; }
"""


def cell_quotes(report: NotebookReport, nb: dict | None) -> dict[str, tuple[int, str]]:
    """For each verdict, the cell its evidence cites and the start of that cell's source."""
    sources = _cell_sources(nb)
    quotes = {}
    for verdict in report.criteria:
        cited = cited_cell(verdict.evidence, sources)
        if cited:
            quotes[verdict.id] = cited
    return quotes


def _cell_sources(nb: dict | None) -> list[str]:
    if not nb:
        return []
    return ["".join(c.get("source", "")) if isinstance(c.get("source"), list) else str(c.get("source", ""))
            for c in nb.get("cells", [])]


def cited_cell(evidence: str, sources: list[str]) -> tuple[int, str] | None:
    """The first cell the evidence cites and the lines around what it quotes (or the cell's start), or None."""
    for found in _CITED_CELL.finditer(evidence):
        number = int(found[1])
        if not (1 <= number <= len(sources) and sources[number - 1].strip()):
            continue
        lines = sources[number - 1].strip("\n").splitlines()
        quoted = _QUOTE.match(evidence, found.end())
        key = quoted[1].removesuffix("...").strip()[:40] if quoted else ""
        at = next((i for i, line in enumerate(lines) if key and key in line.strip()), 0)
        start = max(0, at - BEFORE)
        shown = lines[start:start + MAX_QUOTED_LINES]
        text = "\n".join(shown)
        if start:
            text = f"... ({start} lines above)\n" + text
        if start + MAX_QUOTED_LINES < len(lines):
            text += f"\n... ({len(lines) - start - MAX_QUOTED_LINES} more lines)"
        return number, text
    return None


def summary_html(report: NotebookReport, rubric: list[Criterion], extra: list[str] = ()) -> str:
    """Moodle's "Feedback comments": counts, then what is missing or to check, as small escaped HTML on one line.

    Moodle stores an imported comment as HTML (feedback/comments, ``set_editor_text``): plain-text line breaks
    would run together into one paragraph and anything in angle brackets would be taken for a tag."""
    esc = html.escape
    if report.unreadable:
        return f"<p>Your notebook could not be read: {esc(report.unreadable)}</p>"
    by_id = {c.id: c for c in rubric}
    counts = report.counts()
    parts = [(f"<p>Notebook {esc(report.notebook.rsplit('/', 1)[-1])}: {counts[PASS]} of {len(report.criteria)} "
              f"criteria found, {counts[WARN]} to check, {counts[FAIL]} missing.</p>")]
    for heading, status in (("Missing:", FAIL), ("To check:", WARN)):
        items = [by_id[v.id].description if v.id in by_id else v.id for v in report.criteria if v.status == status]
        if items:
            parts.append(f"<p>{heading}</p><ul>" + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>")
    parts += [f"<p>{esc(line)}</p>" for line in extra]
    parts.append("<p>The attached feedback page shows the cell behind each verdict.</p>")
    return "".join(parts)


def feedback_page(report: NotebookReport, rubric: list[Criterion], quotes: dict[str, tuple[int, str]] | None = None,
                  student: str | None = None, leaderboard: str | None = None) -> str:
    """One self-contained HTML page for one student."""
    esc = html.escape
    by_id = {c.id: c for c in rubric}
    quotes = quotes or {}
    counts = report.counts()
    name = report.notebook.rsplit("/", 1)[-1]
    title = f"Feedback on {name}"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
             f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f'<p class="sub">{esc(student) + " &middot; " if student else ""}Kaggle team {esc(report.team)}</p>']
    if leaderboard:
        parts.append(f'<p class="mark">{esc(leaderboard)}</p>')
    if report.unreadable:
        parts.append(f"<p>Your notebook could not be read: {esc(report.unreadable)}</p></body></html>")
        return "\n".join(parts) + "\n"
    parts.append(f"<p>{counts[PASS]} of {len(report.criteria)} criteria found, {counts[WARN]} to check, "
                 f"{counts[FAIL]} missing. The notebook was read, not run: each verdict cites the cell it "
                 "comes from. The marker reads your notebook too; this page is what the automatic check saw.</p>")
    parts.append('<ul class="criteria">')
    for verdict in report.criteria:
        criterion = by_id.get(verdict.id)
        described = criterion.description if criterion else verdict.id
        parts.append(f'<li class="{esc(verdict.status)}"><span class="status">{SYMBOLS[verdict.status]} '
                     f"{WORDS[verdict.status]}</span> &mdash; {esc(described)} <span class=\"what\">"
                     f"({esc(verdict.id)})</span><div>{esc(verdict.evidence)}</div>")
        cited = quotes.get(verdict.id)
        if cited:
            parts.append(f"<pre>cell {cited[0]}:\n{esc(cited[1])}</pre>")
        if verdict.status != PASS and criterion and criterion.evidence:
            parts.append(f'<p class="missing"><b>What counts:</b> {esc(criterion.evidence)}</p>')
        parts.append("</li>")
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"
