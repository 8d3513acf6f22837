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


# The rubric items a marker looks for, in the marker's words, in the order they are marked. Where the rubric
# asks to see code, the map points at the cell that holds it (a listing of that labkit object); otherwise at
# the section whose output shows the result (its evidence record). The file name, execution and run order
# are facts about the whole notebook, not places in it: the map leaves them out.
def _each_model(step: str, label: str) -> tuple[tuple[str, str, None], ...]:
    """The two rows of a step done once per model: ``label`` names the model with ``{model}``."""
    return tuple((f"{step}_{model}", label.format(model=model), None) for model in ("model1", "model2"))


MAP_ITEMS = (
    ("data_loader", "The custom PyTorch Dataset and DataLoader", "labkit.data.NucleiDataset"),
    ("validation_split", "The stratified validation split", "labkit.data.stratified_split"),
    ("model1_small_convnet", "model1: the small ConvNet (at most 8 weight layers)", "labkit.models.Model1"),
    ("model2_pretrained", "model2: torchvision network, ImageNet weights, new head", "labkit.models.build_model2"),
    *_each_model("tuning", "Ray Tune search for {model}"),
    *_each_model("curves", "Loss and accuracy curves, {model}"),
    *_each_model("confusion", "Confusion matrix, {model}"),
    ("confusion_fix", "A fix for the worst confusion, before and after", None),
    *_each_model("captum", "Captum attributions, {model}"),
    ("submission", "submission.csv, checked against example.csv", None),
    ("discussion", "Comparison of the two models", None),
    ("narrative", "Interpretation of the results", None),
)
EVERY_CHAPTER = "under each result, in every chapter"


def listing_cells(cells) -> dict[str, int]:
    """labkit object (dotted name) -> index of the code cell that shows and runs its source."""
    found = {}
    for index, cell in enumerate(cells):
        for dotted in cell.get("metadata", {}).get("labkit_listing", []):
            found.setdefault(dotted, index)
    return found


def _record(cells, index: int, criterion: str) -> dict:
    for output in cells[index].get("outputs", []):
        record = output.get("data", {}).get(EVIDENCE_MIME)
        if isinstance(record, dict) and record.get("criterion") == criterion:
            return record
    return {}


def rubric_map_markdown(cells, criteria: list[dict] | None = None, whole_notebook: str = "") -> str:
    """One row per rubric item a marker looks for: what it is, and a link to where it is.

    Code the rubric asks to see links to the cell that holds it; results link to the section whose output
    shows them. model2's row says plainly when its weights are not verified ImageNet weights.
    ``criteria`` (the rubric's ids and descriptions) limits the rows to the rubric's items.
    """
    all_headings = headings(cells)
    shown_in = evidence_cells(cells)
    code_in = listing_cells(cells)
    wanted = {c["id"] for c in criteria} if criteria is not None else None
    rows = []
    for criterion, label, code in MAP_ITEMS:
        if wanted is not None and criterion not in wanted:
            continue
        index = code_in.get(code) if code else None
        if index is None and criterion != "narrative":  # the narrative is everywhere, not in its record's cell
            index = shown_in.get(criterion)
        section = section_of(index, all_headings) if index is not None else None
        where = section.link() if section else (EVERY_CHAPTER if criterion == "narrative" else whole_notebook
                                                or "not found")
        mark = ""
        if criterion == "model2_pretrained" and criterion in shown_in:
            data = _record(cells, shown_in[criterion], criterion).get("data", {})
            if not data.get("pretrained"):
                mark = " ✗ random weights: no ImageNet weights were available"
            elif not data.get("verified"):
                mark = " ✗ weights not verified as ImageNet's"
        rows.append(f"| {label} | {where}{mark} |")
    return "| rubric item | where |\n|---|---|\n" + "\n".join(rows)
