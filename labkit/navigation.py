"""Navigation for the assembled notebook: heading anchors, a contents list and a rubric map.

A marker looks for each rubric item; the map at the top of the notebook links every criterion to the
section whose cell shows its evidence record, found in the executed cells, so the links follow the
chapters whenever they change. Links must work in two renderers that make heading ids the same way: the
heading's text with spaces turned into hyphens (JupyterLab as is, nbconvert's HTML export URL-quoted).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from labkit.evidence import EVIDENCE_MIME

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
# Markdown that the renderers drop from a heading's text before making its id.
_INLINE_MARKUP = re.compile(r"\*\*|\*|`")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


@dataclass(frozen=True)
class Heading:
    cell: int      # index of the markdown cell in the notebook
    level: int     # 1 for '#', 2 for '##', ...
    text: str      # as rendered: markup removed
    anchor: str    # the id both renderers give the heading

    def link(self) -> str:
        return f"[{self.text}](#{self.anchor})"


def heading_id(text: str) -> str:
    """The id nbconvert's HTML export gives a heading (nbconvert.filters.strings._convert_header_id).

    JupyterLab uses the same text with spaces as hyphens; the quoting only touches characters that a
    heading here never has, and tests check every link against an exported page.
    """
    return quote(text.replace(" ", "-"), safe="?/:@!$&'()*+,;=")


def _plain(markdown_text: str) -> str:
    return _INLINE_MARKUP.sub("", _LINK.sub(r"\1", markdown_text)).strip()


def headings(cells) -> list[Heading]:
    """Every Markdown heading of the notebook's cells, in order (fenced code blocks skipped)."""
    found = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        in_fence = False
        for line in cell.source.splitlines():
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
                continue
            match = None if in_fence else _HEADING.match(line)
            if match:
                text = _plain(match.group(2))
                found.append(Heading(index, len(match.group(1)), text, heading_id(text)))
    return found


def contents_markdown(cells, deepest: int = 2) -> str:
    """A nested list of links to the chapters (level 1) and their sections (level 2)."""
    lines = []
    for heading in headings(cells):
        if heading.level <= deepest:
            lines.append("  " * (heading.level - 1) + f"- {heading.link()}")
    return "\n".join(lines)


def evidence_cells(cells) -> dict[str, int]:
    """criterion id -> index of the first code cell whose outputs carry its evidence record."""
    first = {}
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            record = output.get("data", {}).get(EVIDENCE_MIME)
            if isinstance(record, dict) and record.get("criterion"):
                first.setdefault(record["criterion"], index)
    return first


def section_of(cell_index: int, all_headings: list[Heading]) -> Heading | None:
    """The deepest heading above a cell: the section a reader scrolls to."""
    above = [h for h in all_headings if h.cell <= cell_index]
    return above[-1] if above else None


def rubric_map_markdown(cells, criteria: list[dict], whole_notebook: str) -> str:
    """One table row per rubric criterion: what it asks, and a link to the section that shows it.

    ``criteria`` are the rubric's entries (``id`` and ``description``); a criterion without an evidence
    record (file name, execution, run order) is about the whole notebook and says so (``whole_notebook``).
    """
    all_headings = headings(cells)
    shown_in = evidence_cells(cells)
    rows = []
    for criterion in criteria:
        index = shown_in.get(criterion["id"])
        section = section_of(index, all_headings) if index is not None else None
        where = section.link() if section else whole_notebook
        rows.append(f"| {criterion['description']} | {where} |")
    return "| rubric item | where it is shown |\n|---|---|\n" + "\n".join(rows)
